"""Batched ONNX inference, written once: the node, the exporter's parity check and evaluation.

Lives in perception (not policy or training) because both sides import it; it needs only
onnxruntime's session interface (``session.run``), never TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bus.schema import DecisionLabel
from core.errors import ModelError
from perception.spec import MODEL_SPEC

__all__ = ["DEFAULT_BATCH", "check_io", "run_all_outputs", "run_batched", "to_label_order"]

DEFAULT_BATCH = 256
_EXPECTED_INPUTS = {i.name: (i.onnx_type, i.shape) for i in MODEL_SPEC.inputs}
# Inputs a model may have beside those: each rule's sentence vector (MODEL_SPEC.rule_sentences).
_OPTIONAL_INPUTS = {i.name: (i.onnx_type, i.shape) for i in (MODEL_SPEC.rule_sentences,)}


def run_batched(
    session: Any,
    inputs: Mapping[str, np.ndarray],
    batch_size: int = DEFAULT_BATCH,
    output: str = MODEL_SPEC.output,
) -> np.ndarray:
    """``output`` of ``session`` for every row of ``inputs`` (dict by input name), run in slices
    of at most ``batch_size`` rows and concatenated: float32 [N, ...]."""
    n = len(next(iter(inputs.values())))
    step = max(1, batch_size)
    parts = [
        np.asarray(session.run([output], {k: v[i : i + step] for k, v in inputs.items()})[0])
        for i in range(0, n, step)
    ]
    if not parts:
        return np.zeros((0, len(DecisionLabel)), np.float32)
    return np.concatenate(parts).astype(np.float32, copy=False)


def run_all_outputs(
    session: Any,
    inputs: Mapping[str, np.ndarray],
    batch_size: int = DEFAULT_BATCH,
    outputs: Sequence[str] = MODEL_SPEC.outputs,
) -> dict[str, np.ndarray]:
    """Every one of ``outputs`` for every row of ``inputs``, run in slices of ``batch_size``:
    {name: float32 [N, ...]}."""
    n = len(next(iter(inputs.values())))
    step = max(1, batch_size)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in outputs}
    for i in range(0, n, step):
        got = session.run(list(outputs), {k: v[i : i + step] for k, v in inputs.items()})
        for name, value in zip(outputs, got, strict=True):
            parts[name].append(np.asarray(value, np.float32))
    return {
        name: np.concatenate(p) if p else np.zeros((0,), np.float32) for name, p in parts.items()
    }


def to_label_order(
    probs: np.ndarray,
    labels: Sequence[DecisionLabel],
    order: Sequence[DecisionLabel] = tuple(DecisionLabel),
) -> np.ndarray:
    """Columns of ``probs`` (in the model's ``labels`` order, from its metadata) rearranged by
    label name into ``order`` (default: DecisionLabel definition order)."""
    index = {label: i for i, label in enumerate(labels)}
    return probs[:, [index[label] for label in order]]


def check_io(
    session: Any, path: Path | str, n_rule_classes: int, rule_width: int = MODEL_SPEC.rule_dim
) -> None:
    """Raise ModelError unless an onnxruntime session has the contract's inputs (and no others
    but the optional sentence-vector input) and the outputs the node and evaluation read
    (names, types, shapes, a dynamic batch). ``rule_width``: the rule states' width the model's
    encoder identity says (perception.rule_encoder.state_width: 384 a layer it reads)."""
    got = {i.name: i for i in session.get_inputs()}
    if not set(_EXPECTED_INPUTS) <= set(got) <= set(_EXPECTED_INPUTS) | set(_OPTIONAL_INPUTS):
        want = sorted(_EXPECTED_INPUTS)
        maybe = f" (and may have {sorted(_OPTIONAL_INPUTS)})"
        raise ModelError(f"{path}: inputs {sorted(got)}, the contract wants {want}{maybe}")
    rules = MODEL_SPEC.with_rule_width(rule_width).rules
    wanted = {**_EXPECTED_INPUTS, **_OPTIONAL_INPUTS, rules.name: (rules.onnx_type, rules.shape)}
    for name, (typ, shape) in wanted.items():
        if name in got:
            _check_arg(path, "input", name, got[name].type, got[name].shape, typ, shape)
    outs = {o.name: o for o in session.get_outputs()}
    expected = {
        MODEL_SPEC.output: (len(DecisionLabel),),
        MODEL_SPEC.rule_output: (MODEL_SPEC.max_rules, n_rule_classes),
        MODEL_SPEC.ood_output: (1,),
    }
    for name, shape in expected.items():
        if name not in outs:
            raise ModelError(f"{path}: no output named {name!r} (has {sorted(outs)})")
        _check_arg(path, "output", name, outs[name].type, outs[name].shape, "tensor(float)", shape)


def _check_arg(
    path: Path | str,
    kind: str,
    name: str,
    typ: str,
    shape: list,
    want_typ: str,
    want_shape: tuple[int, ...],
) -> None:
    if typ != want_typ:
        raise ModelError(f"{path}: {kind} {name!r} is {typ}, the contract wants {want_typ}")
    if len(shape) != len(want_shape) + 1 or tuple(shape[1:]) != want_shape:
        raise ModelError(
            f"{path}: {kind} {name!r} has shape {shape}, the contract wants [N, "
            + ", ".join(map(str, want_shape))
            + "]"
        )
    if isinstance(shape[0], int) and shape[0] > 0:
        raise ModelError(f"{path}: {kind} {name!r} has a fixed batch {shape[0]}; export it dynamic")
