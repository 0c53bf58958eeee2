"""The model spec: inputs as data, metadata unchanged for models already shipped."""

from __future__ import annotations

import json
from pathlib import Path

import onnxruntime as ort

from core.defaults import DEFAULT_MODEL_PATH
from perception.spec import META_KEYS, MODEL_SPEC

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_model_inputs_match_the_spec_inputs() -> None:
    sess = ort.InferenceSession(str(ROOT / DEFAULT_MODEL_PATH), providers=["CPUExecutionProvider"])
    got = {i.name: (i.type, tuple(i.shape[1:])) for i in sess.get_inputs()}
    assert got == {i.name: (i.onnx_type, i.shape) for i in MODEL_SPEC.inputs}
    stored = json.loads(sess.get_modelmeta().custom_metadata_map[META_KEYS["spec"]])
    assert stored == json.loads(json.dumps(MODEL_SPEC.to_dict()))


def test_feeds_and_zeros_follow_the_inputs() -> None:
    arrays = [i.zeros(2) for i in MODEL_SPEC.inputs]
    feeds = MODEL_SPEC.feeds(*arrays)
    assert list(feeds) == [
        MODEL_SPEC.image_input,
        MODEL_SPEC.rules_input,
        MODEL_SPEC.rule_mask_input,
        MODEL_SPEC.speed_input,
    ]
    for spec, arr in zip(MODEL_SPEC.inputs, feeds.values(), strict=True):
        assert arr.shape == (2, *spec.shape) and arr.dtype == spec.dtype
