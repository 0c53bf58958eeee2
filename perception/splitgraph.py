"""Split a decision model into its rule-set graph and its per-frame graph.

The rule text reaches the decision only through one tensor, ``MODEL_SPEC.rule_set_output`` (the
rule set as the decision sees it; training.model names that layer and the exporter makes it a
graph output). Everything that depends on the rules alone -- that tensor and the per-rule classes
-- is then computed once per rule set, and each frame runs only the image, the speed and the
cached features through the rest. This is :func:`split_model`; a model without that output (an
older export, the image-only ablation) is run whole.

Uses onnx's own graph extractor (``onnx.utils.Extractor``), so the two graphs are exactly the
exported nodes, with the same weights: no second export, no drift from the file on disk.

A third graph, ``reading`` (each rule's reading: the class and parameter softmaxes, and the mask
-> the rule-set features), lets the node ask what the decision would be had a rule been read
otherwise (perception.readcheck); the rule graph then also outputs the parameter softmaxes. A
model whose reading tensors cannot be found gets no reading graph (the check is off for it).

A fourth, ``neighbours`` (rule states, mask -> ``rule_support``), is cut from a model that
carries a neighbour index (perception.neighbours): run once per rule set, beside the rule graph.

A fifth, ``head`` (image features, speed, rule set features -> probabilities), is the frame
graph after the image encoder: the frame graph then also outputs the image features
(``IMAGE_FEATURES``), so the reading check's second run over alternative readings reuses them
and does not run the image encoder again (the image encoder is most of a frame's cost). It is cut
at the last tensor of the Keras ``image_encoder`` submodel (training.model), and only kept when
the rest of the frame graph reads no other image tensor; otherwise the check reruns the frame graph.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from perception.neighbours import NEIGHBOUR_OUTPUT
from perception.spec import MODEL_SPEC

__all__ = ["IMAGE_FEATURES", "SplitModel", "split_model"]

log = logging.getLogger(__name__)
_S = MODEL_SPEC
# The frame graph's extra output and the head graph's input: the image encoder's output.
IMAGE_FEATURES = "image_features"
_IMAGE_SCOPE = "image_encoder"  # training.model.create_image_encoder's Keras name


@dataclass(frozen=True)
class SplitModel:
    """Serialized ONNX graphs: ``rules`` (rule states, mask and, where the model has them, the
    rules' sentence vectors -> rule set features, rule classes,
    then the tensors of ``reading_inputs`` after the classes), ``frame`` (image, speed, rule set
    features -> probabilities, image OOD) and ``reading`` (``reading_inputs``: rule classes and
    parameter softmaxes, then the rule mask -> rule set features; None: not found)."""

    rules: bytes
    frame: bytes
    reading: bytes | None = None
    reading_inputs: tuple[str, ...] = ()
    neighbours: bytes | None = None
    metadata: dict[str, str] = field(default_factory=dict)  # the whole model's metadata_props
    # (IMAGE_FEATURES, speed, rule set features) -> probabilities; then ``frame`` also outputs
    # IMAGE_FEATURES (last). None: not cut (the frame graph has its two outputs only).
    head: bytes | None = None


def _param_tensors(graph: object) -> tuple[str, ...] | None:
    """The parameter readings' tensor names in MODEL_SPEC.rule_param_layers order; None if one
    is missing. tf2onnx names a layer's tensors after it (``.../rule_limit_1/Softmax:0``) and
    ONNX keeps nodes in topological order, so a layer's output is the last tensor of its scope:
    the Softmax of a single reader, the average of several readers' softmaxes (whose own layers,
    ``rule_limit_r0`` ..., are other scopes)."""
    found: dict[str, str] = {}
    for node in graph.node:  # type: ignore[attr-defined]
        out = node.output[0] if node.output else ""
        for name in _S.rule_param_layers:
            if out == name or f"/{name}/" in out or f"/{name}_1/" in out:
                found[name] = out
    if set(found) != set(_S.rule_param_layers):
        return None
    return tuple(found[n] for n in _S.rule_param_layers)


def _image_cut(graph: object) -> str | None:
    """The image encoder's output: the last tensor (ONNX keeps nodes in topological order) in
    the scope tf2onnx gives the Keras submodel (``.../image_encoder_1/dense_1/Relu:0``)."""
    cut = None
    for node in graph.node:  # type: ignore[attr-defined]
        for out in node.output:
            scope = out.split("/")
            if any(p == _IMAGE_SCOPE or p.startswith(f"{_IMAGE_SCOPE}_") for p in scope[:-1]):
                cut = out
    return cut


def _rename_tensor(graph: object, old: str, new: str) -> None:
    for node in graph.node:  # type: ignore[attr-defined]
        for k, name in enumerate(node.output):
            if name == old:
                node.output[k] = new
    for value in graph.output:  # type: ignore[attr-defined]
        if value.name == old:
            value.name = new
    _rename_input(graph, old, new)


def _head(ext: Any, graph: Any, cut: str) -> tuple[Any, Any] | None:
    """(frame graph with IMAGE_FEATURES as its last output, head graph); None if the graph
    after the image encoder reads anything but its output, the speed and the rule features."""
    img = _image_cut(graph)
    if img is None:
        return None
    try:
        head = ext.extract_model([img, _S.speed_input, cut], [_S.output])
        frame = ext.extract_model(
            [_S.image_input, _S.speed_input, cut], [_S.output, _S.ood_output, img]
        )
    except Exception as exc:  # onnx raises several types for a graph it cannot cut
        log.warning("no head graph (%s): the reading check reruns the frame graph", exc)
        return None
    if {i.name for i in head.graph.input} != {img, _S.speed_input, cut}:
        log.warning("the head graph reads more than the image features; not cut")
        return None
    _rename_input(head.graph, img, IMAGE_FEATURES)
    _rename_tensor(frame.graph, img, IMAGE_FEATURES)
    return frame, head


def _rename_input(graph: object, old: str, new: str) -> None:
    for value in graph.input:  # type: ignore[attr-defined]
        if value.name == old:
            value.name = new
    for node in graph.node:  # type: ignore[attr-defined]
        for k, name in enumerate(node.input):
            if name == old:
                node.input[k] = new


def split_model(model_bytes: bytes) -> SplitModel | None:
    """The two graphs of a model that outputs ``rule_set_features``; None when it has no such
    output or when the frame graph would still need a rule input (then run the model whole)."""
    import onnx
    from onnx.utils import Extractor

    model = onnx.load_from_string(model_bytes)
    if _S.rule_set_output not in {o.name for o in model.graph.output}:
        return None
    # tf2onnx makes a graph output an Identity of the tensor the rest of the graph reads: cut
    # the frame graph at that tensor.
    cut = _S.rule_set_output
    for node in model.graph.node:
        if _S.rule_set_output in node.output and node.op_type == "Identity":
            cut = node.input[0]
    # The rule graph reads the token states and mask, and each rule's sentence vector where the
    # model has that input (MODEL_SPEC.rule_sentences).
    rule_inputs = [_S.rules_input, _S.rule_mask_input]
    if _S.rule_sentence_input in {i.name for i in model.graph.input}:
        rule_inputs.append(_S.rule_sentence_input)
    params = _param_tensors(model.graph)
    reading_inputs = () if params is None else (_S.rule_output, *params)
    try:
        if params is not None:  # the extractor needs the shapes of inner tensors
            model = onnx.shape_inference.infer_shapes(model)
        ext = Extractor(model)
        rules = ext.extract_model(
            rule_inputs,
            [_S.rule_set_output, _S.rule_output, *reading_inputs[1:]],
        )
        frame = ext.extract_model([_S.image_input, _S.speed_input, cut], [_S.output, _S.ood_output])
        with_head = _head(ext, model.graph, cut)
    except Exception as exc:  # onnx raises several types for a graph it cannot cut
        log.warning("cannot split the model at %s (%s); running it whole", cut, exc)
        return None
    reading = None
    if params is not None:
        try:
            reading = ext.extract_model([*reading_inputs, _S.rule_mask_input], [_S.rule_set_output])
            reading.ClearField("metadata_props")
        except Exception as exc:
            log.warning("no reading graph (%s): the reading check is off for this model", exc)
            reading_inputs = ()
    head = None
    if with_head is not None:
        frame, head = with_head
    if cut != _S.rule_set_output:
        _rename_input(frame.graph, cut, _S.rule_set_output)
        if head is not None:
            _rename_input(head.graph, cut, _S.rule_set_output)
    frame_inputs = {i.name for i in frame.graph.input}
    if frame_inputs != {_S.image_input, _S.speed_input, _S.rule_set_output}:
        log.warning("the frame graph still reads %s; running the model whole", sorted(frame_inputs))
        return None
    neighbours = None
    if NEIGHBOUR_OUTPUT in {o.name for o in model.graph.output}:
        try:
            neighbours = ext.extract_model([_S.rules_input, _S.rule_mask_input], [NEIGHBOUR_OUTPUT])
            neighbours.ClearField("metadata_props")
        except Exception as exc:
            log.warning("no neighbour graph (%s): the neighbour reading is off", exc)
    for part in (rules, frame, *(() if head is None else (head,))):
        part.ClearField("metadata_props")  # the whole model's file keeps them
    return SplitModel(
        rules.SerializeToString(),
        frame.SerializeToString(),
        None if reading is None else reading.SerializeToString(),
        reading_inputs if reading is not None else (),
        None if neighbours is None else neighbours.SerializeToString(),
        {p.key: p.value for p in model.metadata_props},
        None if head is None else head.SerializeToString(),
    )
