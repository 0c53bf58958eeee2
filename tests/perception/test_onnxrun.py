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


class _Arg:
    def __init__(self, name: str, typ: str, shape: list) -> None:
        self.name, self.type, self.shape = name, typ, shape


class _Session:
    """What check_io reads of an onnxruntime session: its inputs' and outputs' signatures."""

    def __init__(self, inputs: list[_Arg]) -> None:
        self.inputs = inputs
        s = MODEL_SPEC
        self.outputs = [
            _Arg(s.output, "tensor(float)", ["batch", len(DecisionLabel)]),
            _Arg(s.rule_output, "tensor(float)", ["batch", s.max_rules, 4]),
            _Arg(s.ood_output, "tensor(float)", ["batch", 1]),
        ]

    def get_inputs(self) -> list[_Arg]:
        return self.inputs

    def get_outputs(self) -> list[_Arg]:
        return self.outputs


def _arg(spec: object, shape: tuple[int, ...] | None = None) -> _Arg:
    return _Arg(spec.name, spec.onnx_type, ["batch", *(shape or spec.shape)])  # type: ignore[attr-defined]


def test_the_sentence_vector_input_is_optional_and_checked() -> None:
    import pytest

    from core.errors import ModelError
    from perception.onnxrun import check_io

    base = [_arg(i) for i in MODEL_SPEC.inputs]
    check_io(_Session(base), "m.onnx", 4)  # the contract's four inputs
    check_io(_Session([*base, _arg(MODEL_SPEC.rule_sentences)]), "m.onnx", 4)
    wrong = _arg(MODEL_SPEC.rule_sentences, (MODEL_SPEC.max_rules, 384))
    with pytest.raises(ModelError, match="rule_sentences.*shape"):
        check_io(_Session([*base, wrong]), "m.onnx", 4)
    with pytest.raises(ModelError, match="contract wants"):
        check_io(_Session([*base, _Arg("extra", "tensor(float)", ["batch", 3])]), "m.onnx", 4)
    with pytest.raises(ModelError, match="contract wants"):
        check_io(_Session([*base[:3], _arg(MODEL_SPEC.rule_sentences)]), "m.onnx", 4)


def test_the_rule_input_is_as_wide_as_the_encoder_layers_the_model_names() -> None:
    """A model reading encoder layers 6, 9 and 12 side by side takes rule states 3 x 384 wide;
    the width its identity names is checked, either way."""
    import pytest

    from core.errors import ModelError
    from perception.onnxrun import check_io
    from perception.rule_encoder import state_width

    wide = [_arg(i) for i in MODEL_SPEC.with_rule_width(1152).inputs]
    narrow = [_arg(i) for i in MODEL_SPEC.inputs]
    assert state_width((6, 9, 12)) == 1152 and state_width(9) == state_width(None) == 384
    check_io(_Session(wide), "m.onnx", 4, state_width((6, 9, 12)))
    with pytest.raises(ModelError, match="rule_states.*1152"):
        check_io(_Session(narrow), "m.onnx", 4, 1152)
    with pytest.raises(ModelError, match="rule_states.*384"):
        check_io(_Session(wide), "m.onnx", 4)
