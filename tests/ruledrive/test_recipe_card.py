"""The default model's card says which targets are met, and which checkpoints a run reused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruledrive.recipe import render_card
from training.config import TrainConfig


def _split(acc: float, cf: float | None = None) -> dict[str, Any]:
    rep: dict[str, Any] = {
        "n": 1000,
        "accuracy": acc,
        "macro_f1": acc,
        "per_class_recall": {"PROCEED": acc},
    }
    if cf is not None:
        rep["counterfactual_consistency"] = {"pairs": 500, "both_right": cf}
    return rep


def _results(cf: float, reused: bool) -> dict[str, Any]:
    info = {
        "model_version": "fused-x",
        "params": 10,
        "labels": ["PROCEED"],
        "n_train": 1,
        "n_val": 1,
        "data_fingerprint": "f",
        "train_seconds": 600.0,
        "export": {"parity": {"max_abs_diff": 1e-7, "argmax_agreement": 1.0, "samples": 1024}},
    }
    if reused:
        info["reused_checkpoint"] = True
    evals = {
        "test": _split(0.99),
        "heldout-phrasing": _split(0.95),
        "counterfactual": _split(0.97, cf),
    }
    return {
        "fused": {"info": info, "eval": evals},
        "image_only": {"info": {}, "eval": {"test": _split(0.70)}},
    }


def test_card_with_every_target_met_says_so(tmp_path: Path) -> None:
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x" * 1000)
    card = render_card(_results(0.96, reused=False), TrainConfig(), "ruledrive train-default", onnx)
    assert "**missed**" not in card and "Every target is met." in card
    assert "Every variant was trained by this command." in card
    assert "| image_only accuracy, test (gap to fused) | 70.00% (29.0 points) |" in card


def test_card_names_missed_targets_and_reused_checkpoints(tmp_path: Path) -> None:
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    card = render_card(_results(0.94, reused=True), TrainConfig(), "ruledrive train-default", onnx)
    assert "| counterfactual consistency | 94.00% | >= 95 % | **missed** |" in card
    assert "Why the missed targets are missed" in card
    assert "Reused from an earlier run of this recipe" in card and ": fused." in card
