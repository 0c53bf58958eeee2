"""The one batched-inference helper: slicing does not change the result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from bus.schema import DecisionLabel
from perception.onnxrun import run_all_outputs, run_batched, to_label_order
from perception.spec import MODEL_SPEC
from tests.policy.fakemodel import build_fake_model


def test_slices_give_the_same_probabilities_as_one_run(tmp_path: Path) -> None:
    sess = ort.InferenceSession(
        str(build_fake_model(tmp_path / "m.onnx")), providers=["CPUExecutionProvider"]
    )
    rng = np.random.default_rng(0)
    n = 13
    feeds = MODEL_SPEC.feeds(
        rng.integers(0, 255, (n, *MODEL_SPEC.image.shape), dtype=np.uint8),
        rng.normal(0, 1, (n, *MODEL_SPEC.rules.shape)).astype(np.float32),
        (rng.random((n, *MODEL_SPEC.rule_mask.shape)) < 0.5).astype(np.float32),
        rng.uniform(0, 120, (n, 1)).astype(np.float32),
    )
    whole = run_batched(sess, feeds, batch_size=n)
    assert whole.shape == (n, len(DecisionLabel)) and whole.dtype == np.float32
    np.testing.assert_allclose(run_batched(sess, feeds, batch_size=4), whole, atol=1e-6)
    every = run_all_outputs(sess, feeds, batch_size=4)
    assert set(every) == set(MODEL_SPEC.outputs)
    np.testing.assert_allclose(every[MODEL_SPEC.output], whole, atol=1e-6)
    assert every[MODEL_SPEC.rule_output].shape[:2] == (n, MODEL_SPEC.max_rules)


def test_to_label_order_matches_by_name() -> None:
    labels = tuple(reversed(DecisionLabel))
    probs = np.arange(len(labels), dtype=np.float32)[None, :]  # column i = labels[i]
    out = to_label_order(probs, labels)
    assert [labels[int(v)] for v in out[0]] == list(DecisionLabel)
