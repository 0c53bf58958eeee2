"""Split a decision model into its rule-set graph and its per-frame graph.

The rule text reaches the decision only through one tensor, ``MODEL_SPEC.rule_set_output`` (the
rule set as the decision sees it; training.model names that layer and the exporter makes it a
graph output). Everything that depends on the rules alone -- that tensor and the per-rule classes
-- is then computed once per rule set, and each frame runs only the image, the speed and the
cached features through the rest. This is :func:`split_model`; a model without that output (an
older export, the image-only ablation) is run whole.

Uses onnx's own graph extractor (``onnx.utils.Extractor``), so the two graphs are exactly the
exported nodes, with the same weights: no second export, no drift from the file on disk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from perception.spec import MODEL_SPEC

__all__ = ["SplitModel", "split_model"]

log = logging.getLogger(__name__)
_S = MODEL_SPEC


@dataclass(frozen=True)
class SplitModel:
    """Serialized ONNX graphs: ``rules`` (rule states, mask -> rule set features, rule classes)
    and ``frame`` (image, speed, rule set features -> probabilities, image OOD)."""

    rules: bytes
    frame: bytes


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
    try:
        ext = Extractor(model)
        rules = ext.extract_model(
            [_S.rules_input, _S.rule_mask_input], [_S.rule_set_output, _S.rule_output]
        )
        frame = ext.extract_model([_S.image_input, _S.speed_input, cut], [_S.output, _S.ood_output])
    except Exception as exc:  # onnx raises several types for a graph it cannot cut
        log.warning("cannot split the model at %s (%s); running it whole", cut, exc)
        return None
    if cut != _S.rule_set_output:
        _rename_input(frame.graph, cut, _S.rule_set_output)
    frame_inputs = {i.name for i in frame.graph.input}
    if frame_inputs != {_S.image_input, _S.speed_input, _S.rule_set_output}:
        log.warning("the frame graph still reads %s; running the model whole", sorted(frame_inputs))
        return None
    for part in (rules, frame):
        part.ClearField("metadata_props")  # the whole model's file keeps them
    return SplitModel(rules.SerializeToString(), frame.SerializeToString())
