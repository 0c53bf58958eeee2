"""``ruledrive bench gpu`` where there is no GPU (CI): every row it can measure on the CPU
provider, a row saying why each accelerator was not measured, and bad flags refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from ruledrive.bench_gpu import GPU_HEADING, frames_from, main, time_runs

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models/ruledrive-default.onnx"
GOLDEN = ROOT / "tests/golden/drive.mcap"


@pytest.mark.slow
def test_the_bench_on_a_cpu_says_what_it_did_not_measure(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    rc = main(
        [
            "gpu", "--model", str(MODEL), "--frames", str(GOLDEN), "--providers", "cuda,cpu",
            "--batches", "1,2", "--node-batches", "1,3", "--node-provider", "cpu",
            "--seconds", "0.05", "--replicas", "1", "--replica-start-s", "10",
            "--replica-batch", "2", "--output", str(doc),
        ]
    )  # fmt: skip
    assert rc == 0
    text = doc.read_text()
    assert f"## {GPU_HEADING}" in text
    assert "| cuda, float32 | - | - | - | - | not measured: this onnxruntime has no CUDA" in text
    for row in (
        "| cpu, float32, numpy feeds | 2 |",
        "| PolicyModel.run_encoded on CPUExecutionProvider, one rule read unsure | 3 |",
        "| PolicyModel.run_encoded on CPUExecutionProvider, no rule unsure | 1 |",
        "| Decider.decide_batch on CPUExecutionProvider",
        "| JPEG decode alone, ",
        "| 1 node replica processes",
    ):
        assert row in text, row
    assert "3 of 3 answers valid" in text  # the Decider decided the golden frames
    assert "CUDA graphs" not in text.split("| what |")[1]  # no capture on a CPU


def test_frames_come_from_a_recording_or_a_folder_of_jpegs(tmp_path: Path) -> None:
    frames = frames_from(GOLDEN)
    assert len(frames) > 10 and frames[0][:2] == b"\xff\xd8"
    for i, f in enumerate(frames[:3]):
        (tmp_path / f"{i}.jpg").write_bytes(f)
    assert frames_from(tmp_path) == frames[:3]
    with pytest.raises(ConfigError, match="not found"):
        frames_from(tmp_path / "missing.mcap")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no .jpg"):
        frames_from(tmp_path / "empty")


@pytest.mark.parametrize(
    "flags",
    [["--batches", "0"], ["--batches", "a,b"], ["--providers", "metal"], ["--seconds", "0"]],
)
def test_bad_flags_are_refused(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["gpu", *flags])
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_a_missing_model_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        main(["gpu", "--model", str(tmp_path / "none.onnx"), "--no-write"])


def test_time_runs_times_every_call_after_the_untimed_ones() -> None:
    calls = []
    times = time_runs(lambda: calls.append(1), seconds=0.0, min_runs=5)
    assert len(times) == 5 and len(calls) == 8 and (times >= 0).all()
