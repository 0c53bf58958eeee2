"""Distributed retraining (training.distributed): TF_CONFIG, sharding by recording file, the
per-worker input streams, and two CPU workers on loopback against one worker.

The two-worker test trains 1 epoch on two generated recordings of 520 scenes (the chief's
needs >= 512 frames for the export's parity check): one in the catalogue language, whose rules
carry no class, for the chief, one in the rule language for the other worker (equal sizes: a
smaller one is oversampled, which moved the loss 9 % from the one-worker run's). So it checks
that the job runs and trains like one worker, not that either model is good. On so few frames the
decision is at chance (1/6) for both after one epoch, so "the same accuracy" (within 0.10 on a
shared test recording of 200 scenes, where one accuracy's standard error is ~0.03) is a loose
check; so is the training loss within 10 % of the one-worker run's. What can fail sharply: both
workers must log the same loss (the all-reduced step; a worker training alone logs its own); the
chief's checkpoint must name 2 replicas of 32, the steps per epoch of the whole data set and
the one-worker run's rule classes (the catalogue worker alone would have 2); only the chief
writes, and the other worker's temp directory is gone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from core.errors import ConfigError, DataError
from ruledrive.bench_distributed import (
    generate,
    history_loss,
    quiet_env,
    run_single,
    run_workers,
    train_command,
)
from ruledrive.cli import main as cli
from tests.training.recordings import write_recording
from training.data import list_recordings
from training.distributed import (
    Cluster,
    StepPlan,
    _Shuffled,
    _val_stream,
    _why,
    cluster_from_env,
    shard_files,
)


def _tf_config(n: int, index: int, kind: str = "worker", ports: list[int] | None = None) -> str:
    ports = ports or list(range(20000, 20000 + n))
    return json.dumps(
        {
            "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
            "task": {"type": kind, "index": index},
        }
    )


# -- TF_CONFIG ---------------------------------------------------------------------------------


def test_no_tf_config_is_one_worker() -> None:
    assert cluster_from_env({}) == Cluster(1, 0)
    assert cluster_from_env({"TF_CONFIG": "  "}) == Cluster(1, 0)


def test_ranks_follow_the_chief_then_the_workers() -> None:
    assert cluster_from_env({"TF_CONFIG": _tf_config(3, 2)}) == Cluster(3, 2)
    both = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}
    for task, rank in ((("chief", 0), 0), (("worker", 0), 1), (("worker", 1), 2)):
        env = {
            "TF_CONFIG": json.dumps(
                {"cluster": both, "task": dict(zip(("type", "index"), task, strict=True))}
            )
        }
        got = cluster_from_env(env)
        assert got == Cluster(3, rank) and got.is_chief == (rank == 0)


def _raw(cluster: object, task: object = None) -> str:
    task = {"type": "worker", "index": 0} if task is None else task
    return json.dumps({"cluster": cluster, "task": task})


TWO = {"worker": ["h:1", "h:2"]}


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"task": {"type": "worker", "index": 0}}), '"cluster"'),
        (json.dumps({"cluster": TWO}), '"task"'),
        (_raw(TWO, {"type": "worker", "index": 2}), "task.index"),
        (_raw(TWO, {"type": "worker"}), "task.index"),
        (_raw(TWO, {"type": "chief", "index": 0}), "task.type"),
        (_raw({"worker": ["h1", "h:2"]}), "host:port"),
        (_raw({"worker": "h:1,h:2"}), "host:port"),
        (_raw({"worker": ["h:1"], "ps": ["h:2"]}), '"ps"'),
        (_raw({"worker": ["h:1"], "master": ["h:2"]}), "unknown task types"),
        (_raw({"worker": ["h:1", "h:1"]}), "share"),
    ],
)
def test_malformed_tf_config_is_a_config_error_naming_it(raw: str, why: str) -> None:
    with pytest.raises(ConfigError, match="TF_CONFIG") as err:
        cluster_from_env({"TF_CONFIG": raw})
    assert why in str(err.value)


# -- sharding by file --------------------------------------------------------------------------


def test_worker_i_reads_files_i_i_plus_n(tmp_path: Path) -> None:
    for name in ("c.mcap", "a.mcap", "b.mcap"):
        (tmp_path / name).write_bytes(b"")
    files = list_recordings([tmp_path])
    assert [f.name for f in files] == ["a.mcap", "b.mcap", "c.mcap"]
    assert [f.name for f in shard_files(files, Cluster(2, 0))] == ["a.mcap", "c.mcap"]
    assert [f.name for f in shard_files(files, Cluster(2, 1))] == ["b.mcap"]
    shares = [shard_files(files, Cluster(3, r)) for r in range(3)]
    assert sorted(f for s in shares for f in s) == files  # each file read once, by one worker


def test_a_file_on_another_workers_disk_is_listed_but_a_missing_directory_is_not(
    tmp_path: Path,
) -> None:
    remote = tmp_path / "on-worker-1.mcap"
    assert list_recordings([remote], remote_ok=True) == [remote]
    with pytest.raises(DataError, match="no such recording"):
        list_recordings([remote])
    with pytest.raises(DataError, match="no such recording or directory"):
        list_recordings([tmp_path / "gone"], remote_ok=True)


def test_fewer_files_than_workers_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"1 recording file\(s\) for 2 workers"):
        shard_files([tmp_path / "only.mcap"], Cluster(2, 1))


@pytest.mark.parametrize(
    ("tf_config", "rc", "message"),
    [
        (_tf_config(2, 1), 1, "1 recording file(s) for 2 workers"),
        ('{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker"}}', 2, "TF_CONFIG"),
    ],
)
def test_train_refuses_a_job_it_cannot_shard_before_starting_tensorflow(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tf_config: str,
    rc: int,
    message: str,
) -> None:
    """No TensorFlow is imported (the test is not marked `tf`: tests/markers.py checks it), so
    a worker refuses at once instead of waiting for its peers."""
    monkeypatch.setenv("TF_CONFIG", tf_config)
    data = write_recording(tmp_path / "one.mcap")
    out = tmp_path / "out"
    assert cli(["train", "--data", str(data), "--out", str(out), "--no-export"]) == rc
    assert message in capsys.readouterr().err
    assert not out.exists()


# -- the per-worker input streams ---------------------------------------------------------------


class _Frames:
    """ArrayDataset's batch interface over n frames whose input is their own index."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def inputs(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        return {"i": idx.astype(np.int64)}

    def targets(self, idx: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        return {"y": idx}, {"y": np.ones(len(idx), np.float32), "r": np.ones((len(idx), 5))}


def test_training_stream_shuffles_every_pass_and_continues_after_a_restart() -> None:
    order = _Shuffled(10, 4, (7, 1))
    seen = np.concatenate([order.take() for _ in range(5)])  # 20 = two whole passes
    assert sorted(seen[:8]) != list(range(8)) or sorted(seen[8:]) != list(range(8, 16))
    assert np.bincount(seen, minlength=10).tolist() == [2] * 10
    again = _Shuffled(10, 4, (7, 2))  # another worker's seed: another order
    assert not np.array_equal(np.concatenate([again.take() for _ in range(5)]), seen)


def test_validation_stream_pads_with_zero_weights_and_counts_each_frame_once() -> None:
    batches = list(_val_stream(_Frames(5), _Frames(3), batch=2, n_batches=4)())
    assert len(batches) == 4 and all(len(b[0]["i"]) == 2 for b in batches)
    weights = np.concatenate([b[2]["y"] for b in batches])
    frames = np.concatenate([b[0]["i"] for b in batches])
    assert weights.tolist() == [1, 1, 1, 1, 1, 0, 0, 0]
    assert sorted(frames[weights > 0].tolist()) == [0, 1, 2, 3, 4]
    assert all(b[2]["r"].shape == (2, 5) for b in batches)  # per-rule weights padded too
    assert batches[2][2]["r"][1].sum() == 0
    empty = list(_val_stream(_Frames(0), _Frames(3), batch=2, n_batches=2)())
    assert sum(b[2]["y"].sum() for b in empty) == 0  # a worker without validation frames


def _strategy(replicas: int, local: int) -> Any:
    return SimpleNamespace(
        num_replicas_in_sync=replicas, extended=SimpleNamespace(worker_devices=["d"] * local)
    )


def test_every_worker_runs_the_steps_of_the_whole_data_set() -> None:
    plan = StepPlan.make(_strategy(2, 1), 64, n_train_total=1000, n_val_per_worker=(300, 20))
    assert (plan.batch, plan.steps_per_epoch) == (32, 16)  # ceil(1000 / 64), as one worker
    assert (plan.val_batch, plan.val_steps) == (128, 3)  # the worker with the most frames
    assert StepPlan.make(_strategy(2, 1), 64, 1000, (0, 0)).val_steps == 0
    # 4 replicas, 2 per worker: batches of 64, 300 frames = 5 batches, 2 per step
    assert StepPlan.make(_strategy(4, 2), 64, 1000, (300, 300)).val_steps == 3
    with pytest.raises(ConfigError, match="batch_size 64 .* 3 replicas"):
        StepPlan.make(_strategy(3, 1), 64, 1000, (1, 1))


def test_a_failed_collective_is_reported_by_what_happened_not_by_its_first_line() -> None:
    """TensorFlow's message starts with "Graph execution error:"; the report names the cause
    (this text is what the chief printed when worker 1 was killed mid-run)."""
    message = (
        "Graph execution error:\n\nDetected at node CollectiveReduceV2 defined at ...\n"
        "Collective ops is aborted by: Error reported from /job:worker/task:1: The following "
        "tasks are unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1\n"
        "The tasks have crashed.\n"
    )
    why = _why(message)
    assert "unhealthy" in why and why.endswith("/job:worker/replica:0/task:1")
    assert _why("Graph execution error:\nsomething else") == "Graph execution error:"


@pytest.mark.tf
def test_workers_wait_longer_than_tensorflows_10_s_for_a_heartbeat() -> None:
    """In its own process: configuring the coordination service changes TensorFlow's global
    context. The leader and jobs are those MultiWorkerMirroredStrategy would pick itself."""
    import subprocess
    import sys

    code = (
        "from tensorflow.python.eager import context\n"
        "from training.distributed import HEARTBEAT_TIMEOUT_S, _configure_coordination\n"
        "_configure_coordination(HEARTBEAT_TIMEOUT_S)\n"
        "c = context.context().coordination_service\n"
        "print(c.heartbeat_timeout_in_ms, c.service_leader,"
        " [(j.name, j.num_tasks) for j in c.coordinated_job_list])\n"
    )
    env = {**quiet_env(), "TF_CONFIG": _tf_config(3, 1)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    timeout_ms, leader, jobs = done.stdout.strip().splitlines()[-1].split(" ", 2)
    assert int(timeout_ms) >= 60_000
    assert leader == "/job:worker/replica:0/task:0" and jobs == "[('worker', 3)]"


# -- two CPU workers on loopback ----------------------------------------------------------------


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("recordings")
    train = root / "train"
    train.mkdir()
    # Two files, one per worker: the catalogue language's (its rules carry no class, like the
    # bus recorder's recordings) for the chief and the rule language's (each rule's class
    # recorded) for the other, so the workers must agree on the classes: the chief alone
    # would give a 2-class per-rule head.
    generate(root / "g0", 520, 31, "train", "catalogue").rename(train / "part0.mcap")
    generate(root / "g1", 520, 32, "train").rename(train / "part1.mcap")
    return train, generate(root / "test", 200, 33, "test")


def _epoch_losses(log: str) -> list[str]:
    """The per-epoch ' - loss: X' of Keras' verbose=2 lines (the reduced training loss)."""
    return re.findall(r"/step - .*? - loss: ([0-9.e+-]+)", log)


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_workers_on_loopback_train_like_one(
    recordings: tuple[Path, Path], tmp_path: Path
) -> None:
    from training.data import load_samples
    from training.evaluate import evaluate_samples, load_predictor

    train_dir, test_file = recordings
    cfg = tmp_path / "cfg.json"  # more validation drives than the default on 20 vehicles
    cfg.write_text(json.dumps({"val_fraction": 0.3, "threads": 1}))
    env = quiet_env()

    one = tmp_path / "one"
    solo, solo_s = run_single(
        train_command(train_dir, one, cfg, 1, 7, "--no-export", "--threads", "0"),  # 2 cores
        env,
        timeout_s=600,
    )
    assert solo.returncode == 0, solo.stderr[-3000:]

    wall = {"one": solo_s}
    two = tmp_path / "two"
    job = run_workers(train_command(train_dir, two, cfg, 1, 7), 2, tmp_path, env, timeout_s=600)
    wall["two"] = job.wall_s
    logs = job.logs
    for i, (rc, log) in enumerate(zip(job.returncodes, logs, strict=True)):
        assert rc == 0, f"worker {i}:\n{log[-3000:]}"

    # Both workers logged the same all-reduced losses each epoch.
    losses = [_epoch_losses(log) for log in logs]
    assert len(losses[0]) == 1 and losses[0] == losses[1], losses
    # Only the chief wrote: its checkpoint and ONNX model; the other left nothing behind.
    for name in ("model.keras", "checkpoint.json", "history.csv", "curves.png", "model.onnx"):
        assert (two / name).is_file(), name
    copy = re.search(r"it writes to (\S+) \(removed\)", logs[1])
    assert copy and Path(copy[1]).parent == tmp_path / "tmp1" and not Path(copy[1]).exists()
    assert not list((tmp_path / "tmp0").glob("ruledrive-*"))
    assert '"worker": 1' in logs[1]
    info = json.loads((two / "checkpoint.json").read_text())
    solo_info = json.loads((one / "checkpoint.json").read_text())
    dist = info["distribution"]
    assert dist.pop("strategy") == "MultiWorkerMirroredStrategy"
    assert (dist["workers"], dist["replicas"], dist["batch_per_replica"]) == (2, 2, 32)
    # The steps of the whole data set (the workers' negatives and splits round differently).
    assert abs(dist["steps_per_epoch"] - -(-solo_info["n_train"] // 64)) <= 1
    assert "distribution" not in solo_info  # one process: the default strategy, as before
    assert info["rule_classes"] == solo_info["rule_classes"]
    assert info["n_train"] < solo_info["n_train"]  # the chief read its share only

    samples = load_samples([test_file])
    acc = {
        name: evaluate_samples(load_predictor(path), samples, None)["splits"]["test"]["accuracy"]
        for name, path in (("one", one), ("two", two / "model.onnx"))
    }
    loss = {name: history_loss(path) for name, path in (("one", one), ("two", two))}
    print(f"test accuracy {acc}, training loss {loss}, wall seconds {wall} (one vs two workers)")
    assert abs(acc["one"] - acc["two"]) <= 0.10, acc
    assert abs(loss["two"] / loss["one"] - 1) <= 0.10, loss
