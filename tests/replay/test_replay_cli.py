"""``ruledrive replay`` end to end on the in-memory bus (in-process node, fake model): outputs,
gates and exit codes, golden reference update/compare. Drives are synthetic here; the golden test
uses a real recording."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import replay.drives as drives_mod
from ruledrive.cli import main as cli_main
from tests.policy.fakemodel import build_fake_model
from tests.replay.replay_helpers import drive


@pytest.fixture(scope="module")
def fake_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fake_model(tmp_path_factory.mktemp("model") / "fake.onnx")


@pytest.fixture(autouse=True)
def synthetic(monkeypatch: pytest.MonkeyPatch) -> None:
    drives = [drive("car-a", 6, rule_change_at=2), drive("car-b", 5)]
    monkeypatch.setattr(
        drives_mod, "load_drives", lambda paths, limit=None, **_: drives[: limit or 2]
    )


def run(tmp_path: Path, model: Path, *extra: str) -> tuple[int, dict]:
    rc = cli_main(
        [
            "replay",
            "x.mcap",
            "--bus",
            "memory",
            "--serve-model",
            str(model),
            "--rate",
            "max",
            "--no-progress",
            "--out",
            str(tmp_path),
            *extra,
        ]
    )
    return rc, json.loads((tmp_path / "report.json").read_text())


def test_outputs_and_table(
    tmp_path: Path, fake_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, rep = run(tmp_path, fake_model, "--vehicles", "3")
    assert rc == 0, rep["failures"]
    assert rep["decisions_matched"] == rep["frames_published"] == 6 + 5 + 6
    assert rep["vehicles"] == 3 and rep["latency_ms"]["p99"] is not None
    assert len(rep["confusion_matrix"]) == 6 and rep["accuracy"] is not None
    for name in ("latency_hist.png", "confusion.png", "decisions.jsonl"):
        assert (tmp_path / name).stat().st_size > 0
    out = capsys.readouterr().out
    assert "ruledrive replay" in out and "latency p50 / p95 / p99" in out
    # The confusion table keeps full label names (CHANGE_L... would not tell LEFT from RIGHT).
    assert "CHANGE_LANE_LEFT" in out and "CHANGE_LANE_RIGHT" in out


def test_gates_exit_nonzero(
    tmp_path: Path, fake_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, rep = run(tmp_path, fake_model, "--min-accuracy", "1", "--max-p99-ms", "0.0001")
    assert rep["accuracy"] < 1  # the fake model is wrong on some frames
    assert rc == 1
    err = capsys.readouterr().err
    # Each failure names its gate, the threshold and the measured value.
    acc = f"{rep['accuracy']:.3f}"
    assert f"FAIL --min-accuracy gate: accuracy {acc} < 1 (" in err
    p99 = f"{rep['latency_ms']['p99']:.1f}"
    assert f"FAIL --max-p99-ms gate: latency p99 {p99} ms > 0.0001 ms" in err
    assert len(rep["failures"]) == 2


def test_reference_update_and_compare(tmp_path: Path, fake_model: Path) -> None:
    ref = tmp_path / "ref.json"
    assert run(tmp_path / "a", fake_model, "--update-reference", str(ref))[0] == 0
    doc = json.loads(ref.read_text())
    assert len(doc["decisions"]) == 11 and "timings" not in doc["decisions"][0]
    assert run(tmp_path / "b", fake_model, "--reference", str(ref), "--vehicles", "2")[0] == 0
    doc["decisions"][0]["decision"] = (
        "CHANGE_LANE_LEFT" if doc["decisions"][0]["decision"] != "CHANGE_LANE_LEFT" else "PROCEED"
    )
    ref.write_text(json.dumps(doc))
    rc, rep = run(tmp_path / "c", fake_model, "--reference", str(ref))
    assert rc == 1 and any("golden:" in f and "decision" in f for f in rep["failures"])


def test_memory_bus_needs_a_node(tmp_path: Path) -> None:
    assert cli_main(["replay", "x.mcap", "--bus", "memory", "--out", str(tmp_path)]) == 2


def test_no_frames_writes_report_and_fails(
    tmp_path: Path, fake_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(drives_mod, "load_drives", lambda paths, limit=None, **_: [])
    rc, rep = run(tmp_path, fake_model)
    assert rc == 1 and "the recording has no frames" in rep["failures"]


@pytest.mark.broker
def test_node_down_on_broker(tmp_path: Path, private_broker) -> None:
    rc = cli_main(
        [
            "replay",
            "x.mcap",
            "--mqtt-url",
            private_broker.url,
            "--rate",
            "max",
            "--no-progress",
            "--out",
            str(tmp_path),
            "--timeout-s",
            "1",
            "--wait-node-s",
            "0.2",
        ]
    )
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rc == 1 and rep["aborted"] and rep["decisions_matched"] == 0


def test_unreadable_recording_fails_before_writing_anything(
    tmp_path: Path,
    fake_model: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from core.errors import RecordingError

    def bad(paths, limit=None, **_):
        raise RecordingError("x.mcap: unknown channel 'foo'")

    monkeypatch.setattr(drives_mod, "load_drives", bad)
    out = tmp_path / "out"
    rc = cli_main(
        [
            "replay",
            "x.mcap",
            "--bus",
            "memory",
            "--serve-model",
            str(fake_model),
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    # An earlier report under --out is worth more than an empty one saying why.
    assert rc == 1 and not out.exists()
    assert "ruledrive: error: x.mcap: unknown channel 'foo'" in capsys.readouterr().err
