"""``ruledrive bench distributed``: its bad flags and its report (the run itself is the
two-worker test in tests/training/test_distributed.py, which uses the same launch helpers)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ruledrive.bench_distributed import _report, tf_config
from ruledrive.cli import main as cli


def test_one_file_cannot_be_sharded_over_two_workers(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["bench", "distributed", "--files", "1", "--no-write"]) != 0
    assert "--files must be at least 2" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--scenes", "--epochs", "--test-scenes"])
def test_a_non_positive_size_is_a_usage_error(flag: str) -> None:
    assert cli(["bench", "distributed", flag, "0", "--no-write"]) == 2


def test_each_worker_gets_the_whole_cluster_and_its_own_index() -> None:
    import json

    configs = [json.loads(tf_config([2001, 2002], i)) for i in (0, 1)]
    assert all(c["cluster"] == {"worker": ["127.0.0.1:2001", "127.0.0.1:2002"]} for c in configs)
    assert [c["task"] for c in configs] == [
        {"type": "worker", "index": 0},
        {"type": "worker", "index": 1},
    ]


def test_the_report_gives_both_runs_and_their_ratios() -> None:
    args = argparse.Namespace(files=2, scenes=2000, epochs=4, seed=7, test_scenes=300)
    rows = [
        {"run": "one worker, all cores", "path": Path("one"), "wall": 96.0, "accuracy": 0.73,
         "loss": 0.634},
        {"run": "two workers, 1 thread each", "path": Path("two"), "wall": 200.0,
         "accuracy": 0.743, "loss": 0.589},
    ]  # fmt: skip
    dist = {"strategy": "MultiWorkerMirroredStrategy", "workers": 2, "replicas": 2,
            "batch_per_replica": 32, "steps_per_epoch": 50}  # fmt: skip
    text = _report(args, rows, dist)
    assert text.startswith("## Distributed training")
    assert "| one worker, all cores | 0.730 | 0.634 | 96 s |" in text
    assert "| two workers, 1 thread each | 0.743 | 0.589 | 200 s |" in text
    assert "accuracy +0.013" in text and "wall time x2.08" in text
    assert "2 workers, 2 replicas of 32, 50 steps per epoch" in text
