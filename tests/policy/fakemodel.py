"""TEST DOUBLE: a tiny ONNX model with exactly the production model's interface and metadata.

probabilities = softmax(scale * (W @ [mean pixel / 255, rule tokens / 20, speed / 100] + b))

so brighter images, more rule words and higher speeds give different decisions. ``scale=0`` gives
uniform probabilities (low confidence). Per rule, the ``not_understood`` class wins when the rule
has more than :data:`UNREAD_TOKENS` tokens (a long gibberish rule); ``image_ood`` is high for an
almost black frame (mean pixel below 2 %). Keyword arguments break one part of the contract at a
time for the refusal tests. Run ``python -m tests.policy.fakemodel OUT.onnx`` to write one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from bus.schema import DecisionLabel
from perception.modelmeta import NOT_UNDERSTOOD, Thresholds, build_metadata
from perception.rule_encoder import DEFAULT_ENCODER_DIR, MODEL_FILE, TOKENIZER_FILE, read_manifest
from perception.spec import MODEL_SPEC, InputSpec

__all__ = ["FAKE_RULE_CLASSES", "RULE_TEXTS", "UNREAD_TOKENS", "build_fake_model", "encoder_id"]

FAKE_RULE_CLASSES = ("speed_limit", "lane_closed", "not_binding", NOT_UNDERSTOOD)
UNREAD_TOKENS = 30

RULE_TEXTS = [
    "School zone: 30 km/h",
    "Stop at the red light",
    "Yield to pedestrians at the crossing",
    "Lane closed ahead, merge left",
    "Road works: merge right",
    "Speed limit 50 km/h",
]

# Rows: mean pixel, tokens, speed, bias -> 6 labels in DecisionLabel order.
_W = np.array(
    [
        [4.0, -1.0, -3.0, 0.0, 0.5, 0.5],  # bright image -> PROCEED
        [-1.0, 2.5, 1.0, 1.0, 0.0, 0.0],  # many rule words -> SLOW_DOWN / STOP
        [-2.0, 3.0, 0.5, -0.5, 1.0, -1.0],  # fast -> SLOW_DOWN
    ],
    dtype=np.float32,
)
_B = np.array([0.0, 0.0, 1.5, 0.0, -1.0, -1.0], dtype=np.float32)


_ELEM_TYPES = {"uint8": TensorProto.UINT8, "int32": TensorProto.INT32, "float32": TensorProto.FLOAT}


def _value_info(
    spec: InputSpec,
    name: str | None = None,
    elem_type: int | None = None,
    shape: tuple[int | str, ...] | None = None,
) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(
        name or spec.name,
        _ELEM_TYPES[spec.dtype] if elem_type is None else elem_type,
        list(shape) if shape is not None else ["N", *spec.shape],
    )


def encoder_id() -> dict[str, str]:
    """The identity of the committed text encoder, as a trained model records it."""
    m = read_manifest(DEFAULT_ENCODER_DIR)
    return {
        "model_sha256": m["files"][MODEL_FILE]["sha256"],
        "tokenizer_sha256": m["files"][TOKENIZER_FILE]["sha256"],
        "prefix": m["prefix"],
    }


def build_fake_model(
    path: str | Path,
    *,
    scale: float = 3.0,
    version: str = "fake-1",
    metadata: dict[str, str] | None = None,
    drop_meta: tuple[str, ...] = (),
    image_name: str | None = None,
    image_shape: tuple[int | str, ...] | None = None,
    speed_type: int | None = None,
    n_out: int = 6,
    label_order: tuple[DecisionLabel, ...] = tuple(DecisionLabel),
) -> Path:
    """The inputs come from MODEL_SPEC.inputs; ``image_name``, ``image_shape`` and
    ``speed_type`` override one of them to break the contract. ``label_order`` permutes the
    output columns and the metadata's label list together (the same model, labels reordered)."""
    s = MODEL_SPEC
    image_name = image_name or s.image.name
    inputs = [
        _value_info(s.image, name=image_name, shape=image_shape),
        _value_info(s.rules),
        _value_info(s.rule_mask),
        _value_info(s.speed, elem_type=speed_type),
    ]
    n_cls = len(FAKE_RULE_CLASSES)
    outputs = [
        helper.make_tensor_value_info(s.output, TensorProto.FLOAT, ["N", n_out]),
        helper.make_tensor_value_info(s.rule_output, TensorProto.FLOAT, ["N", s.max_rules, n_cls]),
        helper.make_tensor_value_info(s.ood_output, TensorProto.FLOAT, ["N", 1]),
    ]
    w = np.zeros((3, n_out), np.float32)
    perm = [list(DecisionLabel).index(label) for label in label_order]
    w[:, : min(6, n_out)] = _W[:, perm][:, : min(6, n_out)]
    b = np.zeros(n_out, np.float32)
    b[: min(6, n_out)] = _B[perm][: min(6, n_out)]
    # Per rule: logits = ntok * cw + cb, so not_understood wins past UNREAD_TOKENS tokens.
    cw = np.zeros((1, n_cls), np.float32)
    cb = np.zeros((n_cls,), np.float32)
    cw[0, -1], cb[-1], cb[0] = 1.0, -float(UNREAD_TOKENS), 0.5
    inits = [
        numpy_helper.from_array(w * scale, "W"),
        numpy_helper.from_array(b * scale, "B"),
        numpy_helper.from_array(cw, "CW"),
        numpy_helper.from_array(cb, "CB"),
        numpy_helper.from_array(np.array([1, 2], np.int64), "tok_axes"),
        numpy_helper.from_array(np.array([2], np.int64), "rule_axis"),
        numpy_helper.from_array(np.array([-1, 1], np.int64), "col"),
        numpy_helper.from_array(np.array([1 / 255, 1 / 20, 1 / 100], np.float32), "norm"),
        numpy_helper.from_array(np.array(-40.0, np.float32), "ood_k"),
        numpy_helper.from_array(np.array(0.02 * 255, np.float32), "ood_t"),
    ]
    nodes = [
        helper.make_node("Cast", [image_name], ["img_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["img_f"], ["img_m"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["img_m", "col"], ["f_img"]),
        helper.make_node("ReduceSum", [s.rule_mask.name, "tok_axes"], ["tok_s"], keepdims=0),
        helper.make_node("Reshape", ["tok_s", "col"], ["f_tok"]),
        helper.make_node("Cast", [s.speed.name], ["f_speed"], to=TensorProto.FLOAT),
        helper.make_node("Concat", ["f_img", "f_tok", "f_speed"], ["feat"], axis=1),
        helper.make_node("Mul", ["feat", "norm"], ["feat_n"]),
        helper.make_node("MatMul", ["feat_n", "W"], ["logits0"]),
        helper.make_node("Add", ["logits0", "B"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [s.output], axis=-1),
        # rule classes: [N,R,1] token counts -> [N,R,C]
        helper.make_node("ReduceSum", [s.rule_mask.name, "rule_axis"], ["ntok"], keepdims=1),
        helper.make_node("MatMul", ["ntok", "CW"], ["cl0"]),
        helper.make_node("Add", ["cl0", "CB"], ["cl"]),
        helper.make_node("Softmax", ["cl"], [s.rule_output], axis=-1),
        # image OOD: sigmoid(-40 * (mean pixel - 2 % of 255) / 255)
        helper.make_node("Sub", ["f_img", "ood_t"], ["ood0"]),
        helper.make_node("Mul", ["ood0", "ood_k"], ["ood1"]),
        helper.make_node("Div", ["ood1", "norm_255"], ["ood2"]),
        helper.make_node("Sigmoid", ["ood2"], [s.ood_output]),
    ]
    inits.append(numpy_helper.from_array(np.array(255.0, np.float32), "norm_255"))
    graph = helper.make_graph(nodes, "ruledrive_fake", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = build_metadata(
        encoder_id(),
        FAKE_RULE_CLASSES,
        Thresholds(),
        version,
        {"kind": "test-double"},
        {"accuracy": 0.0},
        "fake",
        labels=label_order,
    )
    meta.update(metadata or {})
    for key in drop_meta:
        meta.pop(key, None)
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


if __name__ == "__main__":
    print(build_fake_model(sys.argv[1] if len(sys.argv) > 1 else "/tmp/ruledrive-fake.onnx"))
