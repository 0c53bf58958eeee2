"""Export a checkpoint to ONNX with tf2onnx, check parity with onnxruntime, write atomically.

The parity check runs the ONNX graph and the Keras model on the same >= 512 inputs; if any
output differs by more than 1e-4 or any decision argmax differs, the export fails and no file that
looks like a model is left behind.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import TrainingError
from core.paths import write_atomic
from perception.modelmeta import build_metadata, parse_metadata
from perception.neighbours import attach
from perception.onnxrun import run_all_outputs
from perception.spec import MODEL_SPEC
from training.checkpoint import Checkpoint

__all__ = [
    "MIN_PARITY_SAMPLES",
    "PARITY_ATOL",
    "export_onnx",
    "parity_check",
    "serving_model",
    "serving_outputs",
    "write_model",
]

log = logging.getLogger(__name__)

PARITY_ATOL = 1e-4
MIN_PARITY_SAMPLES = 512
OPSET = 17


def serving_outputs(model: Any) -> tuple[str, ...]:
    """The outputs the exported graph has: the spec's three, plus the rule set's features when
    the model has that layer (the fused and text-only models; the node then computes it once per
    rule set instead of per frame)."""
    names = {layer.name for layer in model.layers}
    extra = (MODEL_SPEC.rule_set_output,) if MODEL_SPEC.rule_set_output in names else ()
    return (*MODEL_SPEC.outputs, *extra)


def serving_model(model: Any) -> Any:
    """The trained model with only what serving needs: the spec's outputs and, where there is
    one, the rule-set features layer as an output (training-only heads dropped)."""
    import keras

    outs = {name: model.get_layer(name).output for name in serving_outputs(model)}
    return keras.Model(model.inputs, outs, name=f"{model.name}_serving")


def _convert(model: Any) -> Any:
    """Keras 3 model -> onnx.ModelProto via tf2onnx.from_function (from_keras breaks on Keras 3)."""
    import tensorflow as tf
    import tf2onnx

    width = {t.name: t.shape for t in model.inputs}[MODEL_SPEC.rules_input][-1]
    ins = list(MODEL_SPEC.with_rule_width(int(width)).inputs)  # several encoder layers: wider
    if MODEL_SPEC.rule_sentence_input in {t.name for t in model.inputs}:
        ins.append(MODEL_SPEC.rule_sentences)  # TrainConfig.sentence_input
    spec = [tf.TensorSpec((None, *i.shape), i.dtype, name=i.name) for i in ins]
    served = serving_model(model)

    @tf.function(input_signature=spec)
    def serve(*args):  # type: ignore[no-untyped-def]
        inputs = dict(zip((i.name for i in ins), args, strict=True))
        return served(inputs, training=False)

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=OPSET)
    # Name the dynamic batch dimension instead of tf2onnx's "unk__N", and state the rule axis,
    # which tf2onnx cannot infer through the per-rule layers.
    for value in [*proto.graph.input, *proto.graph.output]:
        dims = value.type.tensor_type.shape.dim
        dims[0].dim_param = "batch"
        if value.name == MODEL_SPEC.rule_output:
            dims[1].dim_value = MODEL_SPEC.max_rules
    return proto


def parity_check(
    onnx_bytes: bytes, keras_model: Any, inputs: dict[str, np.ndarray]
) -> dict[str, float]:
    """Compare onnxruntime and Keras probabilities; raise TrainingError beyond tolerance."""
    import onnxruntime as ort

    n = len(inputs[MODEL_SPEC.speed_input])
    if n < MIN_PARITY_SAMPLES:
        raise TrainingError(f"parity check needs >= {MIN_PARITY_SAMPLES} samples, got {n}")
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    names = serving_outputs(keras_model)
    o_onnx = run_all_outputs(sess, inputs, outputs=names)
    o_keras = serving_model(keras_model).predict(inputs, batch_size=256, verbose=0)
    max_abs = max(float(np.abs(o_onnx[k] - o_keras[k]).max()) for k in names)
    p_onnx, p_keras = o_onnx[MODEL_SPEC.output], o_keras[MODEL_SPEC.output]
    argmax_same = float((p_onnx.argmax(1) == p_keras.argmax(1)).mean())
    result = {"samples": float(n), "max_abs_diff": max_abs, "argmax_agreement": argmax_same}
    if max_abs > PARITY_ATOL or argmax_same < 1.0:
        raise TrainingError(
            f"ONNX parity failed: {result} (tolerance {PARITY_ATOL}, argmax identical)"
        )
    return result


def write_model(out: Path, data: bytes) -> None:
    """Write a model file atomically: a reader sees the old file or the whole new one, never a
    part (the node reloads a model when its file changes). 0644: a model is read by other
    users and containers."""
    write_atomic(out, data, mode=0o644)


def export_onnx(
    ckpt: Checkpoint, out: str | Path, parity_inputs: dict[str, np.ndarray] | None = None
) -> dict[str, Any]:
    """Convert, attach metadata, parity-check and atomically write ``out``. Returns a summary."""
    import onnx

    out = Path(out)
    inputs = parity_inputs if parity_inputs is not None else ckpt.parity_inputs()
    if inputs is None:
        raise TrainingError(
            f"{ckpt.path}: no parity.npz in the checkpoint; pass --data with test recordings"
        )
    try:
        proto = _convert(ckpt.model)
    except Exception as exc:  # tf2onnx raises many types; one clear error for the caller
        raise TrainingError(f"tf2onnx conversion failed: {exc}") from exc
    index = ckpt.neighbours()
    if index is not None and MODEL_SPEC.rule_output in {o.name for o in proto.graph.output}:
        attach(proto, index, len(ckpt.rule_classes))  # perception.neighbours
    parity = parity_check(proto.SerializeToString(), ckpt.model, inputs)
    metrics = {**ckpt.info.get("metrics", {}), "onnx_parity": parity}
    meta = build_metadata(
        ckpt.encoder,
        ckpt.rule_classes,
        ckpt.thresholds,
        model_version=ckpt.info["model_version"],
        training_config=ckpt.config.model_dump(),
        metrics=metrics,
        data_fingerprint=ckpt.info.get("data_fingerprint", ""),
        training_environment=ckpt.info.get("training_environment"),
    )
    # attach() wrote the neighbour index's key already: keep it beside the metadata.
    onnx.helper.set_model_props(proto, {**{e.key: e.value for e in proto.metadata_props}, **meta})
    proto.producer_name = "ruledrive"
    data = proto.SerializeToString()
    parse_metadata(meta, source=str(out))  # what the node will check, checked now
    write_model(out, data)
    log.info("exported %s (%d bytes), parity %s", out, len(data), parity)
    return {
        "path": str(out),
        "bytes": len(data),
        "parity": parity,
        "model_version": ckpt.info["model_version"],
    }
