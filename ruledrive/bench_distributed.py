"""``ruledrive bench distributed``: one training job run by one worker and by two CPU workers
on loopback (``MultiWorkerMirroredStrategy`` from ``TF_CONFIG``), side by side, on the same
generated recordings: test accuracy, last training loss and wall time of each.

The recordings are generated here (``--files`` bilingual training recordings of ``--scenes``
scenes each, sharded by file over the workers, and one test recording), so the row is
reproducible from the command alone. On one machine the workers share its cores: the row says
whether two workers train like one, not how fast several machines are. The launch helpers
(:func:`train_command`, :func:`run_workers`) are the ones the two-worker test uses.

Results and the command replace the "## Distributed training" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bus.broker import free_port
from core.errors import ConfigError
from ruledrive.argtypes import positive_int
from ruledrive.benchdoc import add_doc_flags, bench_command, publish

__all__ = [
    "WorkerRun",
    "generate",
    "history_loss",
    "register_bench",
    "quiet_env",
    "run_single",
    "run_workers",
    "tf_config",
    "train_command",
]

REPO = Path(__file__).resolve().parents[1]


def tf_config(ports: list[int], index: int) -> str:
    """``TF_CONFIG`` of worker ``index`` in a cluster of workers on loopback ``ports``."""
    return json.dumps(
        {
            "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
            "task": {"type": "worker", "index": index},
        }
    )


def generate(out: Path, scenes: int, seed: int, split: str, language: str = "bilingual") -> Path:
    """One generated recording (``ruledrive generate``, one process); returns its path."""
    from ruledrive.cli import main as cli

    args = ["generate", "--out", str(out), "--scenes", str(scenes), "--seed", str(seed)]
    args += ["--split", split, "--rule-language", language, "--workers", "1", "--no-progress"]
    if cli(args) != 0:
        raise ConfigError(f"generating {split} recording in {out} failed")
    return out / f"{split}.mcap"


def train_command(
    data: Path, out: Path, cfg: Path, epochs: int, seed: int, *extra: str
) -> list[str]:
    """The ``ruledrive train`` command line every worker of the job runs."""
    return [
        sys.executable, "-m", "ruledrive.cli", "-v", "train", "--data", str(data),
        "--out", str(out), "--config", str(cfg), "--epochs", str(epochs), "--seed", str(seed),
        *extra,
    ]  # fmt: skip


def history_loss(ckpt: Path) -> float:
    """The last epoch's training loss (all losses weighted) from a checkpoint's history.csv."""
    rows = (ckpt / "history.csv").read_text().splitlines()
    return float(rows[-1].split(",")[rows[0].split(",").index("loss")])


@dataclass(frozen=True)
class WorkerRun:
    returncodes: list[int]
    logs: list[str]  # stdout and stderr of each worker, in rank order
    wall_s: float


def run_workers(
    command: list[str], n: int, tmp: Path, env: dict[str, str], timeout_s: float = 600
) -> WorkerRun:
    """Run ``command`` as ``n`` workers on loopback (worker i gets TMPDIR ``tmp/tmp{i}``); a
    worker still running at ``timeout_s`` is killed (its return code then is negative)."""
    ports = [free_port() for _ in range(n)]
    procs = []
    t0 = time.monotonic()
    for i in range(n):
        worker_tmp = tmp / f"tmp{i}"
        worker_tmp.mkdir(parents=True, exist_ok=True)
        worker_env = {**env, "TF_CONFIG": tf_config(ports, i), "TMPDIR": str(worker_tmp)}
        procs.append(
            subprocess.Popen(
                command,
                cwd=REPO,
                env=worker_env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        )
    logs = []
    try:
        for p in procs:
            try:
                logs.append(p.communicate(timeout=max(1.0, timeout_s - (time.monotonic() - t0)))[0])
            except subprocess.TimeoutExpired:
                p.kill()
                logs.append(p.communicate()[0] + f"\n(killed after {timeout_s:g} s)")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return WorkerRun([p.returncode for p in procs], logs, time.monotonic() - t0)


def quiet_env() -> dict[str, str]:
    """This process's environment with TensorFlow's start-up noise turned down."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}


def run_single(
    command: list[str], env: dict[str, str], timeout_s: float = 600
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``command`` as a one-worker job (``TF_CONFIG`` emptied); returns it and its wall
    seconds (``subprocess.TimeoutExpired`` after ``timeout_s``)."""
    t0 = time.monotonic()
    done = subprocess.run(
        command, cwd=REPO, env={**env, "TF_CONFIG": ""}, capture_output=True, text=True,
        timeout=timeout_s,
    )  # fmt: skip
    return done, time.monotonic() - t0


def run_distributed(args: argparse.Namespace) -> int:
    from training.data import load_samples
    from training.evaluate import evaluate_samples, load_predictor

    with tempfile.TemporaryDirectory(prefix="ruledrive-bench-dist-") as tmp_s:
        tmp = Path(tmp_s)
        train = tmp / "train"
        train.mkdir()
        for i in range(args.files):
            generate(tmp / f"g{i}", args.scenes, args.seed + i, "train").rename(
                train / f"part{i}.mcap"
            )
        test = generate(tmp / "test", args.test_scenes, args.seed + 100, "test")
        cfg = tmp / "cfg.json"
        cfg.write_text(json.dumps({"val_fraction": 0.3}))
        env = quiet_env()
        rows: list[dict[str, Any]] = []

        one = tmp / "one"
        cmd = train_command(
            train, one, cfg, args.epochs, args.seed, "--threads", "0", "--no-export"
        )
        try:
            solo, wall = run_single(cmd, env, timeout_s=args.timeout)
        except subprocess.TimeoutExpired as exc:
            raise ConfigError(f"the one-worker run took over {args.timeout} s (--timeout)") from exc
        if solo.returncode != 0:
            raise ConfigError(f"the one-worker run failed:\n{solo.stderr[-2000:]}")
        rows.append({"run": "one worker, all cores", "path": one, "wall": wall})

        two = tmp / "two"
        cmd = train_command(train, two, cfg, args.epochs, args.seed, "--threads", "1")
        job = run_workers(cmd, 2, tmp, env, timeout_s=args.timeout)
        for i, (rc, log) in enumerate(zip(job.returncodes, job.logs, strict=True)):
            if rc != 0:
                raise ConfigError(f"worker {i} of 2 failed (exit {rc}):\n{log[-2000:]}")
        rows.append(
            {"run": "two workers, 1 thread each", "path": two / "model.onnx", "wall": job.wall_s}
        )
        samples = load_samples([test])
        for row in rows:
            rep = evaluate_samples(load_predictor(row["path"]), samples, None)
            row["accuracy"] = rep["splits"]["test"]["accuracy"]
            ckpt = row["path"] if row["path"].is_dir() else row["path"].parent
            row["loss"] = history_loss(ckpt)
        dist = json.loads((two / "checkpoint.json").read_text())["distribution"]
        publish(args, "Distributed training", _report(args, rows, dist))
    return 0


def _report(args: argparse.Namespace, rows: list[dict[str, Any]], dist: dict[str, Any]) -> str:
    one, two = rows
    lines = [
        "## Distributed training",
        "",
        f"Command: `{bench_command('distributed')}`",
        "",
        f"Machine: {os.cpu_count()} CPUs, {platform.machine()}, Python "
        f"{platform.python_version()}. {args.files} generated bilingual training recordings of "
        f"{args.scenes} scenes (sharded by file), {args.epochs} epoch(s), seed {args.seed}, "
        f"`val_fraction` 0.3; test: one recording of {args.test_scenes} scenes. Two workers: "
        f"{dist['strategy']}, {dist['workers']} workers, {dist['replicas']} replicas of "
        f"{dist['batch_per_replica']}, {dist['steps_per_epoch']} steps per epoch; the chief "
        "exports ONNX (its time is in the wall time), the one-worker run does not.",
        "",
        "| run | test accuracy | last training loss | wall time |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['run']} | {r['accuracy']:.3f} | {r['loss']:.3f} | {r['wall']:.0f} s |")
    lines += [
        "",
        f"Two workers / one: accuracy {two['accuracy'] - one['accuracy']:+.3f}, training loss "
        f"x{two['loss'] / one['loss']:.3f}, wall time x{two['wall'] / one['wall']:.2f}. On one "
        "machine both workers share its cores and every step all-reduces the gradients over "
        "loopback, so two workers are not faster here; the strategy is for machines with their "
        "own cores, GPUs and disks (not measured: no second machine). The two-worker run is "
        "also a test: `pytest tests/training/test_distributed.py -k two_workers`.",
    ]
    return "\n".join(lines)


def register_bench(bench_sub: argparse._SubParsersAction) -> None:
    p = bench_sub.add_parser(
        "distributed", help="one training job on one worker and on two loopback workers"
    )
    p.add_argument("--scenes", type=positive_int, default=600, help="scenes per training file")
    p.add_argument("--files", type=positive_int, default=2, help="training recordings (>= 2)")
    p.add_argument("--test-scenes", type=positive_int, default=300)
    p.add_argument("--epochs", type=positive_int, default=3)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--timeout", type=positive_int, default=1800, help="seconds per job")
    add_doc_flags(p)
    p.set_defaults(func=_checked)


def _checked(args: argparse.Namespace) -> int:
    if args.files < 2:
        raise ConfigError("--files must be at least 2: input is sharded by file over 2 workers")
    return run_distributed(args)
