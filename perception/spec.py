"""The model's input/output contract: names, shapes, dtypes and metadata keys.

Training builds the Keras inputs from ``MODEL_SPEC.inputs``, the exporter names the ONNX graph's
inputs after them, the node checks a model's inputs against them and feeds them by name
(``MODEL_SPEC.feeds``), and it refuses a model whose metadata does not match this spec.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import ClassVar

import numpy as np

__all__ = ["META_KEYS", "MODEL_SPEC", "InputSpec", "ModelSpec"]


@dataclass(frozen=True)
class InputSpec:
    """One model input: its name in Keras and ONNX, numpy dtype and shape after the batch."""

    name: str
    dtype: str  # numpy dtype name: "uint8", "int32", "float32"
    shape: tuple[int, ...]  # without the dynamic batch dimension

    @property
    def onnx_type(self) -> str:
        """The type string onnxruntime reports for this input, e.g. ``tensor(uint8)``."""
        return "tensor(float)" if self.dtype == "float32" else f"tensor({self.dtype})"

    def zeros(self, n: int) -> np.ndarray:
        """A batch of ``n`` zero inputs (warm-up, tests)."""
        return np.zeros((n, *self.shape), self.dtype)


@dataclass(frozen=True)
class ModelSpec:
    image_height: int = 96
    image_width: int = 160
    max_rules: int = 5
    # Rule text arrives as the frozen multilingual encoder's token states (perception.rule_encoder):
    # the first ``max_rule_tokens`` tokens of each rule (prefix and special tokens included), each
    # ``rule_dim`` wide, zeros where there is no token.
    max_rule_tokens: int = 40
    rule_dim: int = 384
    # ONNX input / output names (kept by tf2onnx from the Keras Input names). These fields are
    # what the metadata stores (to_dict); ``inputs`` adds dtypes and shapes.
    image_input: str = "image"  # uint8 [N, H, W, 3] RGB
    rules_input: str = "rule_states"  # float32 [N, max_rules, max_rule_tokens, rule_dim]
    rule_mask_input: str = "rule_mask"  # float32 [N, max_rules, max_rule_tokens], 1 = a token
    speed_input: str = "speed_kph"  # float32 [N, 1]
    output: str = "probabilities"  # float32 [N, n_labels], softmax over decisions
    rule_output: str = "rule_classes"  # float32 [N, max_rules, n_rule_classes], softmax per rule
    ood_output: str = "image_ood"  # float32 [N, 1]: probability the frame is not a road scene
    # float32 [N, F]: the rule set as the decision sees it; a function of the rule inputs only,
    # so the node computes it once per rule set (perception.splitgraph). An optional output:
    # not part of the stored spec, so models exported before it still load (and run whole).
    rule_set_output: ClassVar[str] = "rule_set_features"
    # The per-rule parameter softmaxes (training.ruleparams.RULE_PARAMS, inside the graph, not
    # outputs): with ``rule_output`` they are each rule's reading, all the decision sees of it
    # (perception.splitgraph cuts a reading graph there; perception.readcheck uses it).
    # An optional input, float32 [N, max_rules, rule_sentence_dim]: each rule's sentence vector
    # from a second pretrained encoder (perception.sentence_reader, USE-m-v3), zero for an empty
    # slot; a model trained with TrainConfig.sentence_input has it and reads each rule from both.
    # Not part of the stored spec, so models without it still load.
    rule_sentence_input: ClassVar[str] = "rule_sentences"
    rule_sentence_dim: ClassVar[int] = 512
    # The speed limits the rule_limit reading can name, in its order (None: the rule names no
    # limit); training.ruleparams.RULE_PARAMS builds its vocabulary from it.
    rule_limits: ClassVar[tuple[int | None, ...]] = (None, *range(20, 121, 10))
    # The lanes the rule_lane reading can name after "none", in its order: the centre lane, or
    # the Nth lane counted from the left (L) or from the right (R); training.ruleparams.RULE_PARAMS
    # builds its vocabulary from it.
    rule_lanes: ClassVar[tuple[str, ...]] = ("C", "L1", "L2", "L3", "R1", "R2", "R3")
    # The sides the rule_merge reading can name after "none", in its order;
    # training.ruleparams.RULE_PARAMS builds its vocabulary from it.
    rule_merges: ClassVar[tuple[str, ...]] = ("left", "right")
    # The hours the rule_hours reading can name after "none", in its order (the world's
    # simulator.rules.HOURS); training.ruleparams.RULE_PARAMS builds its vocabulary from it.
    rule_hours: ClassVar[tuple[str, ...]] = ("day", "extended", "always")
    rule_param_layers: ClassVar[tuple[str, ...]] = (
        "rule_limit",
        "rule_hours",
        "rule_lane",
        "rule_merge",
    )

    @property
    def image(self) -> InputSpec:
        return InputSpec(self.image_input, "uint8", (self.image_height, self.image_width, 3))

    @property
    def rules(self) -> InputSpec:
        shape = (self.max_rules, self.max_rule_tokens, self.rule_dim)
        return InputSpec(self.rules_input, "float32", shape)

    @property
    def rule_mask(self) -> InputSpec:
        return InputSpec(self.rule_mask_input, "float32", (self.max_rules, self.max_rule_tokens))

    @property
    def rule_sentences(self) -> InputSpec:
        """The optional sentence-vector input (see ``rule_sentence_input``)."""
        shape = (self.max_rules, self.rule_sentence_dim)
        return InputSpec(self.rule_sentence_input, "float32", shape)

    @property
    def speed(self) -> InputSpec:
        return InputSpec(self.speed_input, "float32", (1,))

    @property
    def inputs(self) -> tuple[InputSpec, InputSpec, InputSpec, InputSpec]:
        """The model's inputs in call order: image, rule states, rule mask, speed."""
        return (self.image, self.rules, self.rule_mask, self.speed)

    @property
    def outputs(self) -> tuple[str, str, str]:
        """The model's outputs: decision probabilities, per-rule classes, image OOD score."""
        return (self.output, self.rule_output, self.ood_output)

    def feeds(
        self, images: np.ndarray, states: np.ndarray, masks: np.ndarray, speeds: np.ndarray
    ) -> dict[str, np.ndarray]:
        """The input dict of one batch, keyed by input name (Keras ``predict``, ONNX ``run``)."""
        arrays = (images, states, masks, speeds)
        return dict(zip((i.name for i in self.inputs), arrays, strict=True))

    def with_rule_width(self, width: int) -> ModelSpec:
        """This spec with rule states ``width`` wide (a model reading several encoder layers side
        by side: perception.rule_encoder); the stored spec keeps ``rule_dim``, one layer's."""
        return replace(self, rule_dim=width)

    def to_dict(self) -> dict[str, object]:
        """What the ONNX metadata stores; a model exported with another spec is refused."""
        return asdict(self)


MODEL_SPEC = ModelSpec()

Layers = int | tuple[int, ...] | None
"""What a decision model reads of the text encoder (perception.rule_encoder): None (the last
layer), k (the states after layer k) or (k1, k2, ...) (those after each, side by side)."""
MAX_LAYERS = 8


def check_layers(layers: Sequence[object]) -> int | tuple[int, ...]:
    """Encoder layers checked: 1 to MAX_LAYERS layer numbers 1 to 99 (ints, not bools), none
    twice; one layer is that int, several a tuple. ValueError naming the problem (the node,
    the encoder and the training config each say it in their own error)."""
    if not 1 <= len(layers) <= MAX_LAYERS:
        raise ValueError(f"names {len(layers)} layers, not 1 to {MAX_LAYERS}")
    checked: list[int] = []
    for k in layers:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 99:
            raise ValueError(f"{k!r} is not a layer number 1 to 99")
        checked.append(k)
    if len(set(checked)) != len(checked):
        raise ValueError(f"{'+'.join(map(str, checked))} names a layer twice")
    return checked[0] if len(checked) == 1 else tuple(checked)


def parse_layers(text: str) -> int | tuple[int, ...]:
    """``"9"`` or ``"6+9+12"`` (an encoder identity's ``layer``, a config value), checked as
    :func:`check_layers` checks them."""
    parts = text.split("+")
    if not all(p.isdigit() for p in parts):
        raise ValueError(f"{text[:20]!r} is not a layer number, nor layer numbers joined by +")
    return check_layers([int(p) for p in parts])


# Keys of the ONNX metadata_props that ruledrive writes and the node reads.
META_KEYS = {
    "labels": "ruledrive.labels",
    "encoder": "ruledrive.text_encoder",
    "rule_classes": "ruledrive.rule_classes",
    "thresholds": "ruledrive.thresholds",
    "spec": "ruledrive.model_spec",
    "preprocessing": "ruledrive.preprocessing",
    "schema_version": "ruledrive.schema_version",
    "model_version": "ruledrive.model_version",
    "training_config": "ruledrive.training_config",
    "data_fingerprint": "ruledrive.data_fingerprint",
    "metrics": "ruledrive.metrics",
}
