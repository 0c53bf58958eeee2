"""The reading check: is a rule that decides this frame read surely enough to act on?

The decision sees each rule only through its reading (class and parameter softmaxes; see
training.model). When a rule's class is read unsurely (top probability below ``threshold``),
the check asks what the decision would be had the rule been read as its runner-up class: the
top class's probability is moved onto the runner-up (a reading as sure of the runner-up as the
model was of both together) and the rule set's features are recomputed with the reading graph
(perception.splitgraph), once per rule set; per frame the frame graph runs again on those
features. If the decision changes, the frame's answer hangs on a reading the model is not sure
of, and the node says so (``rules_not_understood``, naming the rule) instead of acting on it.

An unsure reading that does not change the decision is not flagged: most misread rules do not
bind the frame they come with (docs/training.md, "The reading check"), and flagging every
unsure rule refused many readable rule sets to catch few errors.

Shared by the node (policy.model) and the evaluation (training.evaluate), so the figures are
the node's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from perception.spec import MODEL_SPEC

__all__ = ["Alternative", "ReadingCheck", "alternatives", "decisive"]

_S = MODEL_SPEC

# (rule index, the rule set's features had that rule been read as its runner-up class)
Alternative = tuple[int, np.ndarray]


def alternatives(
    reading: Any,
    names: tuple[str, ...],
    readings: list[np.ndarray],
    mask: np.ndarray,
    threshold: float,
) -> tuple[Alternative, ...]:
    """One rule set's alternatives: for each present rule whose top class probability is below
    ``threshold``, the features with its top class's probability moved onto its runner-up.

    ``reading``: an onnxruntime session of the reading graph; ``names``: its inputs after the
    mask's (SplitModel.reading_inputs: classes first); ``readings``: those tensors for this rule
    set, each [R, K]; ``mask``: [R, T]."""
    classes = readings[0]
    present = mask.max(axis=1) > 0
    top = classes.max(axis=1)
    unsure = [int(r) for r in np.flatnonzero(present & (top < threshold))]
    if not unsure:
        return ()
    alt = np.repeat(classes[None], len(unsure), axis=0)  # [A, R, C]
    for a, r in enumerate(unsure):
        first, second = np.argsort(classes[r])[::-1][:2]
        alt[a, r, second] = classes[r, first] + classes[r, second]
        alt[a, r, first] = 0.0
    feeds = {names[0]: alt.astype(np.float32)}
    for name, tensor in zip(names[1:], readings[1:], strict=True):
        feeds[name] = np.repeat(tensor[None], len(unsure), axis=0).astype(np.float32)
    feeds[_S.rule_mask_input] = np.repeat(mask[None], len(unsure), axis=0).astype(np.float32)
    (features,) = reading.run([_S.rule_set_output], feeds)
    return tuple((r, np.asarray(features[a])) for a, r in enumerate(unsure))


def decisive(
    frame: Any,
    images: np.ndarray,
    speeds: np.ndarray,
    decisions: np.ndarray,
    per_row: list[tuple[Alternative, ...]],
) -> list[tuple[int, ...]]:
    """Per frame, the rules whose alternative reading changes its decision (one extra run of
    the frame graph over every alternative of the batch; none when there is none).

    ``frame``: the frame graph's session; ``decisions``: [N] the argmax each frame got."""
    rows = [(i, r, f) for i, alts in enumerate(per_row) for r, f in alts]
    out: list[set[int]] = [set() for _ in per_row]
    if not rows:
        return [()] * len(per_row)
    ix = np.array([i for i, _, _ in rows])
    (probs,) = frame.run(
        [_S.output],
        {
            _S.image_input: images[ix],
            _S.speed_input: speeds[ix],
            _S.rule_set_output: np.stack([f for _, _, f in rows]).astype(np.float32),
        },
    )
    for (i, r, _), p in zip(rows, probs, strict=True):
        if int(np.argmax(p)) != int(decisions[i]):
            out[i].add(r)
    return [tuple(sorted(s)) for s in out]


class ReadingCheck:
    """The check over whole batches of model inputs (evaluation, benchmarks): the rule, frame
    and reading graphs of one exported model, run the way the node runs them."""

    def __init__(self, rules: Any, frame: Any, reading: Any, names: tuple[str, ...]) -> None:
        self.rules, self.frame, self.reading, self.names = rules, frame, reading, names

    @classmethod
    def from_model(cls, model_bytes: bytes) -> ReadingCheck | None:
        """None for a model without a reading graph (perception.splitgraph)."""
        import onnxruntime as ort

        from perception.splitgraph import split_model

        parts = split_model(model_bytes)
        if parts is None or parts.reading is None:
            return None
        cpu = ["CPUExecutionProvider"]
        rules, frame, reading = (
            ort.InferenceSession(g, providers=cpu)
            for g in (parts.rules, parts.frame, parts.reading)
        )
        return cls(rules, frame, reading, parts.reading_inputs)

    def scan(
        self, inputs: dict[str, np.ndarray], threshold: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For a batch of model inputs: the decision probabilities [N, labels] (the model's label
        order), each rule's top class probability [N, R] (1 for an empty slot), and whether its
        runner-up reading changes the decision [N, R] (checked for rules below ``threshold``)."""
        feats, classes, *params = self.rules.run(
            [_S.rule_set_output, _S.rule_output, *self.names[1:]],
            {
                _S.rules_input: inputs[_S.rules_input],
                _S.rule_mask_input: inputs[_S.rule_mask_input],
            },
        )
        images, speeds = inputs[_S.image_input], inputs[_S.speed_input]
        (probs,) = self.frame.run(
            [_S.output], {_S.image_input: images, _S.speed_input: speeds, _S.rule_set_output: feats}
        )
        mask = inputs[_S.rule_mask_input]
        per_row = [
            alternatives(
                self.reading, self.names, [classes[k], *(p[k] for p in params)], mask[k], threshold
            )
            for k in range(len(images))
        ]
        changes = np.zeros(classes.shape[:2], bool)
        for k, got in enumerate(decisive(self.frame, images, speeds, probs.argmax(1), per_row)):
            changes[k, list(got)] = True
        top = np.where(mask.max(axis=2) > 0, classes.max(axis=2), 1.0)
        return np.asarray(probs), top, changes
