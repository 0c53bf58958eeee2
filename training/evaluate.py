"""Evaluate a Keras checkpoint or an ONNX model on recordings, per split.

Per split: accuracy, macro-F1, per-class recall, confusion matrix (PNG). On the counterfactual
split also counterfactual consistency: the share of pairs (same frame / different rules, or same
rules / different frame) where both members are decided right.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bus.recording import Sample, counterfactual_pairs
from bus.schema import DecisionLabel
from core.metrics import classification_report, counterfactual_consistency, plot_confusion
from perception.text import RuleTokenizer
from training.data import encode_samples

__all__ = ["OnnxPredictor", "Predictor", "evaluate_samples", "load_predictor"]


class Predictor(Protocol):
    tokenizer: RuleTokenizer
    name: str

    def predict(self, inputs: dict[str, np.ndarray]) -> np.ndarray: ...


class KerasPredictor:
    def __init__(self, path: Path) -> None:
        from training.checkpoint import load_checkpoint

        ckpt = load_checkpoint(path)
        self.model, self.tokenizer, self.name = ckpt.model, ckpt.tokenizer, f"keras:{path}"

    def predict(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.model.predict(inputs, batch_size=256, verbose=0)


class OnnxPredictor:
    """Runs an exported model the way the node does: tokenizer and labels from its metadata.

    ``predict`` returns probabilities in DecisionLabel order whatever the model's label order:
    columns are matched by label name from the metadata, never by position."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        from perception.modelmeta import parse_metadata

        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        meta = parse_metadata(self.session.get_modelmeta().custom_metadata_map, source=str(path))
        self.tokenizer, self.labels, self.name = meta.tokenizer, meta.labels, f"onnx:{path}"
        self.meta = meta

    def predict(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        from perception.onnxrun import run_batched, to_label_order

        return to_label_order(run_batched(self.session, inputs), self.labels)


def load_predictor(path: str | Path) -> Predictor:
    p = Path(path)
    return OnnxPredictor(p) if p.suffix == ".onnx" else KerasPredictor(p)


def evaluate_samples(
    predictor: Predictor, samples: Sequence[Sample], out_dir: Path | None = None
) -> dict[str, Any]:
    """Metrics per split (and overall); writes confusion PNGs and report.json into out_dir."""
    data = encode_samples(samples, predictor.tokenizer)
    probs = predictor.predict(data.inputs())
    pred = probs.argmax(axis=1)
    correct = pred == data.labels
    names = [str(x) for x in DecisionLabel]
    by_split: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        by_split[s.split].append(i)
    report: dict[str, Any] = {"model": predictor.name, "splits": {}}
    for split, idx in sorted(by_split.items()):
        ix = np.array(idx)
        rep = classification_report(data.labels[ix], pred[ix], names)
        if split == "counterfactual":
            rep["counterfactual_consistency"] = _consistency(samples, idx, correct)
        report["splits"][split] = rep
        if out_dir is not None:
            plot_confusion(
                np.array(rep["confusion_matrix"]),
                names,
                out_dir / f"confusion_{split}.png",
                f"{split} (n={len(ix)}, acc={rep['accuracy']:.3f})",
            )
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    return report


def _consistency(samples: Sequence[Sample], idx: list[int], correct: np.ndarray) -> dict[str, Any]:
    pos = {(samples[i].vehicle_id, samples[i].frame_id): i for i in idx}
    pairs = counterfactual_pairs([samples[i] for i in idx])
    ix_pairs = [
        (pos[(a.vehicle_id, a.frame_id)], pos[(b.vehicle_id, b.frame_id)]) for a, b in pairs
    ]
    return {"pairs": len(ix_pairs), "both_right": counterfactual_consistency(correct, ix_pairs)}
