"""A training writes its checkpoint beside ``--out`` and moves it in only when it finished: a
run that fails into a directory holding an earlier checkpoint leaves that checkpoint whole (it
once left the failed run's checkpoint.json beside the old weights, which export then stamped
with the failed run's version)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.errors import TrainingError
from simulator.generate import generate
from training.config import TrainConfig

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("data")
    generate(d, "train", 60, 3, progress=False, rule_language="bilingual")
    return d


def test_a_failed_run_leaves_the_earlier_checkpoint_and_a_finished_one_replaces_it(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.train as tt

    out = tmp_path / "ckpt"
    out.mkdir()
    old = {
        "checkpoint.json": b'{"train_seconds": 1.0, "model_version": "old"}',
        "config.json": b"{}",
        "model.keras": b"old weights",
        "curves.png": b"old curves",
    }
    for name, body in old.items():
        (out / name).write_bytes(body)
    (out / "eval").mkdir()  # an earlier `train --eval`'s report
    (out / "model.onnx").write_bytes(b"old export")
    (out / "notes.txt").write_text("mine")

    def failing(cfg: TrainConfig, stage: Path, *_: Any) -> dict[str, Any]:
        assert stage.parent == out and stage.name.startswith(".training-")
        (stage / "checkpoint.json").write_text('{"model_version": "new"}')
        (stage / "model.keras").write_bytes(b"half")
        raise TrainingError("lost the run")

    monkeypatch.setattr(tt, "_fit", failing)
    cfg = TrainConfig(epochs=1, reader_epochs=0)
    with pytest.raises(TrainingError, match="lost the run"):
        tt.train(cfg, [data], out)
    assert {n: (out / n).read_bytes() for n in old} == old
    assert (out / "model.onnx").read_bytes() == b"old export" and (out / "eval").is_dir()
    assert not list(out.glob(".training-*"))  # no stage left

    def finishing(cfg: TrainConfig, stage: Path, *_: Any) -> dict[str, Any]:
        (stage / "model.keras").write_bytes(b"new weights")
        (stage / "config.json").write_text("{}")
        (stage / "history.csv").write_text("epoch\n0\n")
        (stage / "checkpoint.json").write_text('{"train_seconds": 2.0, "model_version": "new"}')
        return {"model_version": "new"}

    monkeypatch.setattr(tt, "_fit", finishing)
    assert tt.train(cfg, [data], out)["model_version"] == "new"
    assert (out / "model.keras").read_bytes() == b"new weights"
    assert b'"new"' in (out / "checkpoint.json").read_bytes()
    assert not (out / "curves.png").exists()  # the old run's, not written by this one
    assert not (out / "model.onnx").exists()  # no stale export beside the new checkpoint
    # The earlier run's evaluation goes with it; the rule-table cache and the user's own
    # files stay.
    assert not (out / "eval").exists() and (out / "rule-table.npz").is_file()
    assert (out / "notes.txt").read_text() == "mine"
    assert not list(out.glob(".training-*"))


def test_the_stage_lives_in_out_whatever_out_is_linked_to_and_a_killed_runs_stage_goes(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--out may be a link to (or a mount of) another file system: the stage is made inside
    it, so the final moves are renames there; a stage a killed run left is removed."""
    import training.train as tt

    real = tmp_path / "elsewhere"
    real.mkdir()
    (real / ".training-killed").mkdir()
    (real / ".training-killed" / "model.keras").write_bytes(b"from a killed run")
    out = tmp_path / "link"
    out.symlink_to(real)
    seen: list[Path] = []

    def finishing(cfg: TrainConfig, stage: Path, *_: Any) -> dict[str, Any]:
        seen.append(stage)
        (stage / "model.keras").write_bytes(b"new")
        (stage / "checkpoint.json").write_text('{"train_seconds": 1.0}')
        return {"model_version": "new"}

    monkeypatch.setattr(tt, "_fit", finishing)
    tt.train(TrainConfig(epochs=1, reader_epochs=0), [data], out)
    assert seen[0].resolve().parent == real.resolve()
    assert (real / "model.keras").read_bytes() == b"new"
    assert not list(real.glob(".training-*"))


def test_a_damaged_model_file_is_a_model_error_as_for_onnx(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint whose model.keras is not a Keras archive: exit 1 (as a damaged .onnx),
    without Keras's "File not found" for a file that is there."""
    import json

    from ruledrive.cli import main

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(TrainConfig().model_dump_json())
    info = {"rule_classes": ["not_binding", "not_understood"], "encoder": {}}
    (ckpt / "checkpoint.json").write_text(json.dumps(info))
    (ckpt / "model.keras").write_bytes(b"not a zip archive")
    assert main(["export", str(ckpt), "--out", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert "not a .keras archive, or a damaged one" in err and "File not found" not in err
    assert not (tmp_path / "m.onnx").exists()
