"""The reading check: is a rule that decides this frame read surely enough to act on?

The decision sees each rule only through its reading (class and parameter softmaxes; see
training.model). When a rule's class is read unsurely (top probability below ``threshold``),
the check asks what the decision would be had the rule been read as its runner-up class: the
top class's probability is moved onto the runner-up (a reading as sure of the runner-up as the
model was of both together) and the rule set's features are recomputed with the reading graph
(perception.splitgraph), once per rule set; per frame the rest of the decision runs again on those
features (the head graph on the frame's image features, or the frame graph when the model has
no head graph). If the decision changes, the frame's answer hangs on a reading the model is not sure
of, and the node says so (``rules_not_understood``, naming the rule) instead of acting on it.

An unsure reading that does not change the decision is not flagged: most misread rules do not
bind the frame they come with (docs/training.md, "The reading check"), and flagging every
unsure rule refused many readable rule sets to catch few errors.

Before the check, a model that carries a neighbour index (perception.neighbours) has the
readings its training rules' neighbours overrule replaced (:func:`reread`, :func:`neighbour_read`):
the check and the decision see the rule set as the node reads it.

Shared by the node (policy.model) and the evaluation (training.evaluate), so the figures are
the node's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from core.errors import ModelError
from perception.binding import (
    LANE_USE_CLASSES,
    TOPIC_CLASSES,
    amber_condition,
    amber_proceeds,
    barred_lane,
    binds_others_only,
    bound_topics,
    names_bus_lane,
    names_school,
    others_first,
)
from perception.neighbours import META_KEY, NEIGHBOUR_OUTPUT, overrides
from perception.polarity import POLAR_KINDS, polarity_unwritten, written_class, written_polarity
from perception.sentence_reader import META_KEY as SENTENCE_KEY
from perception.sentence_reader import SentenceReaderSpec, fuse, spec_of
from perception.spec import MODEL_SPEC
from perception.splitgraph import IMAGE_FEATURES
from perception.written import (
    HOUR_KINDS,
    LANE_KINDS,
    NOT_BINDING,
    as_read,
    excepted_not_binding,
    lane_unwritten,
    written_hours,
    written_lane,
    written_merge,
)

__all__ = [
    "Alternative",
    "NeighbourReading",
    "ReadingCheck",
    "RULE_TEXTS",
    "SENTENCE_CLASSES",
    "alternatives",
    "binding_alternatives",
    "hours_alternatives",
    "kind_alternatives",
    "conflict_alternatives",
    "conflicting",
    "lane_alternatives",
    "limit_nowhere",
    "limit_unwritten",
    "reading_unwritten",
    "decisive",
    "merged",
    "neighbour_read",
    "outright",
    "read_rule_set",
    "reread",
    "rerun_inputs",
    "written_alternatives",
    "sentence_spec",
]

_S = MODEL_SPEC
# Not a model input: the sentence reader's class softmax [N, R, C] per frame, which
# ReadingCheck.scan takes beside the model inputs (training.evaluate computes it from the texts).
SENTENCE_CLASSES = "rule_sentence_classes"
# Evaluation's extra input beside the model's feeds: each frame's rule texts [N, R] (an object
# array, "" where there is no rule), for the polarity check (:func:`read_rule_set`).
RULE_TEXTS = "rule_texts"

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
    unsure = _unsure(classes, mask, threshold)
    if not unsure:
        return ()
    alt = np.repeat(np.asarray(classes, np.float32)[None], len(unsure), axis=0)  # [A, R, C]
    for a, r in enumerate(unsure):
        first, second = np.argsort(classes[r])[::-1][:2]
        _move(alt[a], r, int(first), int(second))
    features = _features(reading, names, alt, readings, mask)
    return tuple((r, features[a]) for a, r in enumerate(unsure))


def outright(
    reading: Any,
    names: tuple[str, ...],
    readings: list[np.ndarray],
    mask: np.ndarray,
    threshold: float,
) -> tuple[Alternative, ...]:
    """For each present rule whose top class probability is below ``threshold``, the features
    had it been read as its top class outright (arguments as :func:`alternatives`). The
    decision sees an unsure rule as a blend of its classes, and a blend can decide what
    neither class would: 右转车辆红灯时停车观察后可通行 / "Right turn on red after stop" was read
    as a permitted turn at 0.55, and the blend stopped the car at a red light where the
    permission lets it turn, with ``valid=true``, since the runner-up (a ban) stops it too (an
    outside probe, forty-ninth session). Where the rule read outright decides otherwise than
    the blend, the frame hangs on the unsure reading as much as where its runner-up does."""
    classes = np.asarray(readings[0])
    return tuple(
        (r, written_reading(reading, names, readings, mask, r, int(classes[r].argmax())))
        for r in _unsure(classes, mask, threshold)
    )


def _unsure(classes: np.ndarray, mask: np.ndarray, threshold: float) -> list[int]:
    """The present rules whose top class probability is below ``threshold``."""
    present = np.asarray(mask).max(axis=1) > 0
    return [int(r) for r in np.flatnonzero(present & (np.asarray(classes).max(axis=1) < threshold))]


def _move(classes: np.ndarray, r: int, source: int, target: int) -> None:
    """In place: rule ``r``'s probability of class ``source`` moved onto class ``target``."""
    classes[r, target] += classes[r, source]
    classes[r, source] = 0.0


def _read_as(classes: np.ndarray, r: int, c: int) -> None:
    """In place: rule ``r`` read as class ``c`` outright (all its probability on ``c``)."""
    classes[r] = 0.0
    classes[r, c] = 1.0


def _features(
    reading: Any,
    names: tuple[str, ...],
    classes: np.ndarray,
    readings: list[np.ndarray],
    mask: np.ndarray,
) -> np.ndarray:
    """The reading graph's rule-set features [A, F] for A versions ``classes`` [A, R, C] of one
    rule set's class readings, each with that rule set's other readings and ``mask`` [R, T]."""
    n = len(classes)
    feeds = {names[0]: np.asarray(classes, np.float32)}
    for name, tensor in zip(names[1:], readings[1:], strict=True):
        feeds[name] = np.repeat(np.asarray(tensor, np.float32)[None], n, axis=0)
    feeds[_S.rule_mask_input] = np.repeat(np.asarray(mask, np.float32)[None], n, axis=0)
    (features,) = reading.run([_S.rule_set_output], feeds)
    return np.asarray(features)


def reread(
    reading: Any,
    names: tuple[str, ...],
    readings: list[np.ndarray],
    mask: np.ndarray,
    changes: list[tuple[int, int]],
) -> tuple[np.ndarray, np.ndarray]:
    """One rule set read with ``changes`` (rule index, class): each such rule's top class
    probability moved onto that class (as :func:`alternatives` does for a runner-up) -> the rule
    set's features [F] from the reading graph, and the classes [R, C] it used."""
    classes = np.array(readings[0], np.float32, copy=True)
    for r, c in changes:
        top = int(np.argmax(classes[r]))
        if top != c:
            _move(classes, r, top, c)
    return _features(reading, names, classes[None], readings, mask)[0], classes


def written_reading(
    reading: Any,
    names: tuple[str, ...],
    readings: list[np.ndarray],
    mask: np.ndarray,
    r: int,
    c: int,
    params: Mapping[str, int] | None = None,
) -> np.ndarray:
    """The rule set's features [F] had rule ``r`` been read as class ``c`` outright (all its
    probability on ``c``, not the top class's share moved as :func:`reread` does): the polarity
    its words write (perception.polarity), not a blend with what the reader made of it. With
    ``params`` (a parameter layer of MODEL_SPEC.rule_param_layers -> an index into its
    vocabulary), those parameters read so outright too: the speed a rule read as binding
    nobody writes (:func:`binding_alternatives`), the lane and side a lane closure writes
    (:func:`lane_alternatives`)."""
    classes = np.array(readings[0], np.float32, copy=True)
    _read_as(classes, r, c)
    readings = list(readings)
    for layer, index in (params or {}).items():
        k = 1 + _S.rule_param_layers.index(layer)
        values = np.array(readings[k], np.float32, copy=True)
        values[r] = 0.0
        values[r, index] = 1.0
        readings[k] = values
    return _features(reading, names, classes[None], readings, mask)[0]


class NeighbourReading(NamedTuple):
    """A rule set as read with its neighbours (:func:`neighbour_read`)."""

    features: np.ndarray  # [F] the rule set's features with the overruled readings replaced
    classes: np.ndarray  # [R, C] the classes those features were computed from
    # Per overruled rule, the features had the reader's own reading of it stood: where that
    # changes a frame's decision, the two readers disagree on a rule that decides the frame,
    # and the reading check says so (rules_not_understood).
    disagreements: tuple[Alternative, ...]


def neighbour_read(
    reading: Any,
    names: tuple[str, ...],
    readings: list[np.ndarray],
    mask: np.ndarray,
    support: np.ndarray,
    rule_classes: tuple[str, ...],
    min_votes: int,
) -> NeighbourReading | None:
    """One rule set with the readings its neighbours overrule (perception.neighbours.overrides)
    replaced; None when they overrule none."""
    changes = overrides(readings[0], support, mask, rule_classes, min_votes)
    if not changes:
        return None
    features, classes = reread(reading, names, readings, mask, changes)
    disagreements = tuple(
        (r, reread(reading, names, readings, mask, [x for x in changes if x[0] != r])[0])
        for r, _ in changes
    )
    return NeighbourReading(features, classes, disagreements)


# The polarity :func:`agreed` may settle a split reading on: the one that holds the car back
# (no overtaking, no turn on red).
CAUTIOUS = "prohibited"


def agreed(
    classes: np.ndarray,
    mask: np.ndarray,
    threshold: float,
    texts: Sequence[str],
    rule_classes: Sequence[str],
) -> list[tuple[int, int]]:
    """The unsure rules (top class probability below ``threshold``) that the reader splits
    between the two polarities of one kind (overtaking, a right turn on red: its top class and
    its runner-up are that kind permitted and prohibited) and whose words write the prohibition
    (perception.polarity.written_polarity), each with that class: (rule index, class index).
    :func:`read_rule_set` reads such a rule as the prohibition outright instead of as a blend
    of the two: "Making a right turn on red is no longer authorised", read as a permission
    below 0.85 with the rest on the ban, was refused on every frame it decides (held-out
    families; fiftieth session). Only the prohibition: two adversarial reviews of the words'
    reading (fiftieth session; 268 and 256 texts aimed at it) found it writing a permission
    where there is none (a rhetorical question, a permission withdrawn, a ban of the past or of
    somewhere else, sarcasm) far more often than the model was sure, and acting on such a
    reading turns the car on red or overtakes. Settled so, a misreading holds the car back.
    Where the words write the permission, or nothing, or the reader is sure (it may be sure and
    wrong: then the words are the reading check's alternative, :func:`polarity_alternatives`),
    or its runner-up is another kind, the rule is left to the reading check."""
    out = []
    for r in _unsure(classes, mask, threshold):
        if r >= len(texts) or not texts[r]:
            continue
        first, second = (rule_classes[int(c)] for c in np.argsort(classes[r])[::-1][:2])
        kind = first.partition(":")[0]
        split = {first, second} == {f"{kind}:permitted", f"{kind}:prohibited"}
        if kind in POLAR_KINDS and split and written_polarity(texts[r], kind) == CAUTIOUS:
            out.append((r, rule_classes.index(f"{kind}:{CAUTIOUS}")))
    return out


def merged(
    first: tuple[Alternative, ...], more: tuple[Alternative, ...]
) -> tuple[Alternative, ...]:
    """``first`` and the alternatives of ``more`` for rules ``first`` has none of."""
    have = {r for r, _ in first}
    return (*first, *(a for a in more if a[0] not in have))


def read_rule_set(
    reading: Any,
    names: tuple[str, ...],
    features: np.ndarray,
    readings: list[np.ndarray],
    mask: np.ndarray,
    threshold: float,
    support: np.ndarray | None = None,
    rule_classes: tuple[str, ...] = (),
    min_votes: int = 0,
    sentence: tuple[np.ndarray, SentenceReaderSpec] | None = None,
    texts: Sequence[str] = (),
) -> tuple[np.ndarray, np.ndarray, tuple[Alternative, ...], tuple[int, ...]]:
    """One rule set as the node reads it, from the rule graph's ``features`` [F] and
    ``readings`` (classes first): with ``support`` [R, C] (a model's neighbour votes), the
    readings its neighbours overrule replaced; then the reading check's alternatives (the
    reader's own reading of each overruled rule, and the runner-up and the top class outright
    (:func:`outright`) of each rule below ``threshold``; none when ``threshold`` is 0).
    Returns the features, the classes [R, C], the alternatives and the rules checked at any
    threshold (overruled, read otherwise by the sentence reader, or read otherwise than their
    words write). With ``sentence`` (a model's sentence reader: its class softmax [R, C] and
    its spec, perception.sentence_reader): mode "average" first averages the class readings
    with it and computes the features again from the average; mode "check" leaves the reading
    alone and gives each rule the sentence reader reads as another class that reading as an
    alternative, at any threshold. With ``texts`` (the rules' texts, in order), what a rule's
    words write where its reading says otherwise is an alternative at any threshold above 0,
    beside its other alternatives: the polarity its negations compose
    (:func:`polarity_alternatives`), the decisions of the car named by a rule read as binding
    nobody (:func:`binding_alternatives`), the kinds its words write where it is read as a kind
    they rule out (:func:`kind_alternatives`), a lane closure's written lane and side
    (:func:`lane_alternatives`). The node does not act on such a reading where what is written
    would decide the frame otherwise (with the check off, ``threshold`` 0, it flags such a
    rule outright: :func:`reading_unwritten`). Before the alternatives, with the check on, a
    rule the reader splits between the two polarities of one kind whose words write the
    prohibition is read as the prohibition outright (:func:`agreed`): the one place where what
    the words write changes a decision rather than refusing one, and only towards holding the
    car back. Shared by the node (policy.model) and
    :meth:`ReadingCheck.scan`."""
    if sentence is not None and sentence[1].mode == "average":
        fused = fuse(readings[0], sentence[0], mask, sentence[1].weight)
        readings = [fused, *readings[1:]]
        features = _features(reading, names, fused[None], readings, mask)[0]
    classes = np.asarray(readings[0])
    disagree: tuple[Alternative, ...] = ()
    if support is not None:
        read = neighbour_read(reading, names, readings, mask, support, rule_classes, min_votes)
        if read is not None:
            features, classes, disagree = read
    if sentence is not None and sentence[1].mode == "check":
        theirs = np.asarray(sentence[0]).argmax(axis=-1)
        done = {r for r, _ in disagree}
        current = [classes, *readings[1:]]
        disagree = (
            *disagree,
            *(
                (int(r), reread(reading, names, current, mask, [(int(r), int(theirs[r]))])[0])
                for r in np.flatnonzero(np.asarray(mask).max(axis=-1) > 0)
                if int(r) not in done and int(theirs[r]) != int(classes[r].argmax())
            ),
        )
    # A rule the reader splits between the two polarities of one kind, read as the prohibition
    # its words write (:func:`agreed`): no longer unsure, so the check asks no alternative of it.
    if texts and rule_classes and threshold > 0:
        done = {r for r, _ in disagree}
        sure = [
            x for x in agreed(classes, mask, threshold, texts, rule_classes) if x[0] not in done
        ]
        if sure:
            classes = np.array(classes, np.float32, copy=True)
            for r, c in sure:
                _read_as(classes, r, c)
            features = _features(reading, names, classes[None], [classes, *readings[1:]], mask)[0]
    # What the rule's words write (a polarity, a rule of the car read as binding nobody, a lane
    # closure's lane and side): checks of their own, beside the rule's other alternatives (they
    # do not stand in for its runner-up, nor it for them).
    current = [np.asarray(classes), *readings[1:]]
    written: tuple[Alternative, ...] = ()
    if texts and rule_classes and threshold > 0:
        top = np.asarray(classes).argmax(axis=-1)
        asked = written_alternatives(texts, top, rule_classes, readings[1:])
        seen: set[tuple[int, str]] = set()
        for r, cls, params in asked:
            if (r, cls) in seen or np.asarray(mask)[r].max() <= 0:
                continue
            seen.add((r, cls))
            f = written_reading(reading, names, current, mask, r, rule_classes.index(cls), params)
            written = (*written, (r, f))
    alts: tuple[Alternative, ...] = ()
    if threshold > 0:
        alts = (
            *merged(disagree, alternatives(reading, names, current, mask, threshold)),
            *outright(reading, names, current, mask, threshold),
            *written,
        )
    return features, classes, alts, tuple(r for r, _ in (*disagree, *written))


def written_alternatives(
    texts: Sequence[str],
    top: np.ndarray,
    rule_classes: Sequence[str],
    params: Sequence[np.ndarray],
) -> list[tuple[int, str, dict[str, int] | None]]:
    """Every reading a rule's words write where its reading ``top`` [R] says otherwise, in the
    order the reading check asks them (:func:`read_rule_set`): the polarity, the decisions of a
    rule read as binding nobody, the kinds, and (with ``params``, the parameter readings [R, K]
    in MODEL_SPEC.rule_param_layers order; empty for a model without them) a closure's lane and
    side and a school zone's or bus lane's hours. (rule index, class, parameters or None)."""
    with_params = len(params) == len(_S.rule_param_layers)
    return [
        *((r, c, None) for r, c in polarity_alternatives(texts, top, rule_classes)),
        *binding_alternatives(texts, top, rule_classes),
        *kind_alternatives(texts, top, rule_classes),
        *(lane_alternatives(texts, top, rule_classes, params) if with_params else ()),
        *(hours_alternatives(texts, top, rule_classes, params) if with_params else ()),
    ]


def decisive(
    graph: Any,
    inputs: dict[str, np.ndarray],
    decisions: np.ndarray,
    per_row: list[tuple[Alternative, ...]],
) -> list[tuple[int, ...]]:
    """Per frame, the rules whose alternative reading changes its decision (one extra run over
    every alternative of the batch; none when there is none).

    ``graph``: a session that maps ``inputs`` (per frame, [N, ...]) and the rule set features to
    the probabilities: the head graph with the frames' image features (perception.splitgraph),
    or the frame graph with their images and speeds; ``decisions``: [N] the argmax each frame
    got."""
    rows = [(i, r, f) for i, alts in enumerate(per_row) for r, f in alts]
    out: list[set[int]] = [set() for _ in per_row]
    if not rows:
        return [()] * len(per_row)
    ix = np.array([i for i, _, _ in rows])
    feeds = {name: value[ix] for name, value in inputs.items()}
    feeds[_S.rule_set_output] = np.stack([f for _, _, f in rows]).astype(np.float32)
    (probs,) = graph.run([_S.output], feeds)
    for (i, r, _), p in zip(rows, probs, strict=True):
        if int(np.argmax(p)) != int(decisions[i]):
            out[i].add(r)
    return [tuple(sorted(s)) for s in out]


def rerun_inputs(
    frame: Any, head: Any, images: np.ndarray, speeds: np.ndarray, features: np.ndarray | None
) -> tuple[Any, dict[str, np.ndarray]]:
    """The graph :func:`decisive` reruns and its per-frame inputs: the head graph on the frames'
    image features (``features``, the frame graph's IMAGE_FEATURES output) when the model has
    one, so the image encoder does not run again; else the frame graph on the images."""
    if head is None or features is None:
        return frame, {_S.image_input: images, _S.speed_input: speeds}
    return head, {IMAGE_FEATURES: features, _S.speed_input: speeds}


class ReadingCheck:
    """The check over whole batches of model inputs (evaluation, benchmarks): the rule, frame
    and reading graphs of one exported model, run the way the node runs them."""

    def __init__(
        self,
        rules: Any,
        frame: Any,
        reading: Any,
        names: tuple[str, ...],
        neighbours: Any = None,
        rule_classes: tuple[str, ...] = (),
        min_votes: int = 0,
        head: Any = None,
        sentence: SentenceReaderSpec | None = None,
    ) -> None:
        self.rules, self.frame, self.reading, self.names = rules, frame, reading, names
        # The model's sentence reader (perception.sentence_reader); None: it has none. Its class
        # readings come with the inputs (SENTENCE_CLASSES), one row per frame.
        self.sentence = sentence
        # The head graph (perception.splitgraph); None: the check reruns the frame graph.
        self.head = head
        # The neighbour reading (perception.neighbours); None: the model has no index. The rule
        # classes also name the kinds whose contradiction the check finds (conflict_alternatives).
        self.neighbours, self.rule_classes, self.min_votes = neighbours, rule_classes, min_votes

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
        head = None if parts.head is None else ort.InferenceSession(parts.head, providers=cpu)
        sentence = sentence_spec(parts.metadata)
        if parts.neighbours is None:
            from perception.modelmeta import parse_metadata

            meta = parse_metadata(parts.metadata, source="model")
            return cls(
                rules,
                frame,
                reading,
                parts.reading_inputs,
                rule_classes=meta.rule_classes,
                head=head,
                sentence=sentence,
            )
        classes, votes = neighbour_settings(parts.metadata)
        neighbours = ort.InferenceSession(parts.neighbours, providers=cpu)
        return cls(
            rules,
            frame,
            reading,
            parts.reading_inputs,
            neighbours,
            classes,
            votes,
            head=head,
            sentence=sentence,
        )

    def scan(
        self, inputs: dict[str, np.ndarray], threshold: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[np.ndarray] | None, np.ndarray]:
        """For a batch of model inputs: the decision probabilities [N, labels] (the model's label
        order), each rule's top class probability [N, R] (1 for an empty slot, 0 for a rule the
        neighbours overruled, which is always checked), whether its alternative reading changes
        the decision [N, R] (the runner-up for rules below ``threshold``; the reader's own for an
        overruled rule, when ``threshold`` > 0), the rule classes [N, R, C] the decision used
        (the neighbour reading applied), each rule's parameter readings, one [N, R, V] array
        per MODEL_SPEC.rule_param_layers entry (None for a model without them;
        :func:`reading_unwritten`) and the rules whose
        contradiction decides the frame [N, R] (:func:`conflict_alternatives`). With the rule
        texts among the inputs (:data:`RULE_TEXTS`), a polarity the rule's negations contradict
        is checked as the node checks it (:func:`read_rule_set`)."""
        rule_feeds = {
            _S.rules_input: inputs[_S.rules_input],
            _S.rule_mask_input: inputs[_S.rule_mask_input],
        }
        token_feeds = dict(rule_feeds)  # what the neighbour graph reads
        if any(i.name == _S.rule_sentence_input for i in self.rules.get_inputs()):
            rule_feeds[_S.rule_sentence_input] = inputs[_S.rule_sentence_input]
        feats, classes, *params = self.rules.run(
            [_S.rule_set_output, _S.rule_output, *self.names[1:]], rule_feeds
        )
        mask = inputs[_S.rule_mask_input]
        support = (
            self.neighbours.run([NEIGHBOUR_OUTPUT], token_feeds)[0]
            if self.neighbours is not None
            else None
        )
        feats, classes = np.array(feats, copy=True), np.array(classes, copy=True)
        sentence = inputs.get(SENTENCE_CLASSES)
        texts = inputs.get(RULE_TEXTS)
        if (sentence is None) != (self.sentence is None):
            raise ModelError(
                f"the model {'has' if self.sentence is not None else 'has no'} sentence "
                f"reader, but its readings ({SENTENCE_CLASSES}) were "
                f"{'not ' if sentence is None else ''}given"
            )
        per_row: list[tuple[Alternative, ...]] = []
        overruled: list[tuple[int, ...]] = []
        clashing: list[tuple[Alternative, ...]] = []
        for k in range(len(feats)):
            feats[k], classes[k], alts, over = read_rule_set(
                self.reading,
                self.names,
                feats[k],
                [classes[k], *(p[k] for p in params)],
                mask[k],
                threshold,
                None if support is None else support[k],
                self.rule_classes,
                self.min_votes,
                None if sentence is None or self.sentence is None else (sentence[k], self.sentence),
                () if texts is None else [str(t) for t in texts[k]],
            )
            per_row.append(alts)
            overruled.append(over)
            clashing.append(
                conflict_alternatives(
                    self.reading,
                    self.names,
                    [classes[k], *(p[k] for p in params)],
                    mask[k],
                    self.rule_classes,
                )
                if self.rule_classes
                else ()
            )
        images, speeds = inputs[_S.image_input], inputs[_S.speed_input]
        per_frame = {_S.image_input: images, _S.speed_input: speeds}
        probs, *img = self.frame.run(
            [_S.output, *([IMAGE_FEATURES] if self.head is not None else [])],
            {**per_frame, _S.rule_set_output: feats},
        )
        graph, per_frame = rerun_inputs(
            self.frame, self.head, images, speeds, img[0] if img else None
        )
        changes = np.zeros(classes.shape[:2], bool)
        for k, got in enumerate(decisive(graph, per_frame, probs.argmax(1), per_row)):
            changes[k, list(got)] = True
        clash = np.zeros(classes.shape[:2], bool)
        present = mask.max(axis=2) > 0
        for k, got in enumerate(decisive(graph, per_frame, probs.argmax(1), clashing)):
            if got:  # named as the node names them: every rule of the contradiction
                clash[k] = conflicting(classes[k], present[k], self.rule_classes)
        top = np.where(mask.max(axis=2) > 0, classes.max(axis=2), 1.0)
        for k, over in enumerate(overruled):  # checked at any threshold: count them below all
            top[k, list(over)] = 0.0
        readings = [np.asarray(p) for p in params] if params else None
        return np.asarray(probs), top, changes, np.asarray(classes), readings, clash


def sentence_spec(metadata: dict[str, str]) -> SentenceReaderSpec | None:
    """The model's sentence reader (perception.sentence_reader), None when it has none."""
    from perception.modelmeta import parse_metadata

    if SENTENCE_KEY not in metadata:
        return None
    return spec_of(metadata, parse_metadata(metadata, source="model").rule_classes)


def neighbour_settings(metadata: dict[str, str]) -> tuple[tuple[str, ...], int]:
    """The model's rule classes and the neighbour reading's ``min_votes``, from its metadata."""
    import json

    from perception.modelmeta import parse_metadata

    meta = parse_metadata(metadata, source="model")
    try:
        settings = json.loads(metadata[META_KEY])
        votes, k = int(settings["min_votes"]), int(settings["k"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(
            f"the model has a neighbour graph but no valid {META_KEY} metadata ({exc!r})"
        ) from exc
    if not 1 <= votes <= k:
        raise ModelError(f"{META_KEY}: min_votes must be between 1 and k ({k}), not {votes}")
    return meta.rule_classes, votes


def conflicting(
    classes: np.ndarray, present: np.ndarray, rule_classes: tuple[str, ...]
) -> np.ndarray:
    """Per rule slot [..., R] of ``classes`` [..., R, C] (the rule set as the node reads it)
    and ``present`` [..., R]: whether another rule of the same set is read as the same kind
    with another variant: overtaking permitted and prohibited, turn on red permitted and
    prohibited, amber always-stop and proceed-if-close. Such a rule set contradicts itself as
    the model reads it (a publisher's error, or a misread rule), and a model trained on sets
    with at most one rule of a kind for the car picks one of the two by chance: an outside
    probe's "No turn on red" + "Right turn on red permitted after a full stop" was answered
    YIELD at a red light, valid=true. The node answers such frames ``rules_conflict`` instead
    (policy.decider), and the evaluation counts them the same way (training.evaluate)."""
    kinds = np.array([c.split(":", 1)[0] if ":" in c else "" for c in rule_classes])
    top = np.asarray(classes).argmax(-1)
    kind = kinds[top]
    here = np.asarray(present, bool) & (kind != "")
    pair = here[..., :, None] & here[..., None, :] & (kind[..., :, None] == kind[..., None, :])
    return (pair & (top[..., :, None] != top[..., None, :])).any(-1)


def conflict_alternatives(
    reading: Any,
    names: tuple[str, ...],
    readings: list[np.ndarray],
    mask: np.ndarray,
    rule_classes: tuple[str, ...],
) -> tuple[Alternative, ...]:
    """For each kind a rule set is read as both ways (:func:`conflicting`), the rule set's
    features had every rule of that kind been read as one variant, and again as the other. A
    frame whose decision one of them changes hangs on which of the contradicting rules holds
    (``rules_conflict``); a frame neither changes (no car ahead to overtake) does not. All the
    kind's rules move together: with one variant said twice ("Right turn on red permitted after
    a full stop" twice and "No turn on red" once), moving one rule at a time left a contradiction
    in every alternative and the frame was answered YIELD at a red light (an outside probe).
    Each alternative is keyed by the first rule of its kind. Arguments as :func:`alternatives`
    (``readings[0]``: the classes the decision used)."""
    classes = np.asarray(readings[0])
    clash = conflicting(classes, mask.max(axis=1) > 0, rule_classes)
    if not clash.any():
        return ()
    top = classes.argmax(axis=-1)
    kind = {int(r): rule_classes[int(top[r])].split(":", 1)[0] for r in np.flatnonzero(clash)}
    out = []
    for k in sorted(set(kind.values())):
        rules = [r for r in sorted(kind) if kind[r] == k]
        for variant in sorted({int(top[r]) for r in rules}):
            moved = [(r, variant) for r in rules]
            out.append((rules[0], reread(reading, names, readings, mask, moved)[0]))
    return tuple(out)


# Rule kinds whose reading names a speed limit (MODEL_SPEC.rule_limits).
LIMIT_KINDS = ("speed_limit", "school_zone")
# A speed written in digits: a number with a unit of speed after it (km/h in any of its
# spellings: kph, kmph, km h, k.p.h., kilometres per hour, 公里/小时, 码 ...; an opening bracket may
# come between), or a number right after a word that names the limit (限速 / 时速 N; "limit N",
# "max N"), or in a Chinese rule that speaks of speed a number of 公里 / 千米 / km ("限速由80公里
# 调整为50公里"). Units of speed other than km/h (mph, m/s, knots) are foreign to the model. A
# number of another unit (hours, metres, tonnes, "km 14") or in words (forty, 四十) is no speed.
_KMH = (
    r"k(?:m|ms|ilomet(?:re|er)s?)?(?:[\s./-]|per|an|p)*h(?:r|rs|our|ours)?\b\.?"
    r"|(?:公里|千米|km)\s*(?:/|每)\s*(?:小时|时|h)|码"
)
_FOREIGN = (
    r"mph\b|miles?\s*(?:per|an|/)\s*h(?:ou)?r?\b|m\s*/\s*s(?:ec)?\b"
    r"|met(?:re|er)s?\s*(?:per|/)\s*s(?:ec(?:ond)?)?\b|knots?\b"
)
_NUM = r"(\d+(?:\.\d+)?)"
_SPEED = re.compile(_NUM + r"\s*[(\[]?\s*(?:(" + _KMH + r")|(" + _FOREIGN + r"))", re.I)
_NAMED = re.compile(
    r"(?:限速|时速)\s*(?:为|是|不超过|不得超过|不高于|不大于|最高|[:：])?\s*"
    + _NUM
    + r"|\b(?:limit|max)\s*[:=]?\s*"
    + _NUM
    + r"\b(?![.,]?\d)",
    re.I,
)
_ZH_SPEED_WORD = re.compile(r"限速|时速|车速|速度")
# ... but not a distance: 前方2公里, 距离2公里, 还有2公里.
# Nor a length or a stretch: 长度2.5公里, 全长3公里, 接下来3公里内, 未来5公里, 3公里路段.
_ZH_KM = re.compile(
    r"(?<!前方)(?<!距离)(?<!距)(?<!还有)(?<!长度)(?<!全长)(?<!接下来)(?<!未来)(?<!\d)(?<!\d\.)"
    + _NUM
    + r"\s*(?:公里|千米|km)(?!\s*(?:/|每|内|以内|之内|范围|路段|处|后))",
    re.I,
)
_SLASHES = str.maketrans({"\u2215": "/", "\u2044": "/", "\uff0f": "/"})


def written_speeds(text: str) -> tuple[set[float], bool]:
    """The speeds written in digits in a rule as the model reads it (rule_encoder.normalise;
    any script's digits), and whether one is in a unit other than km/h: "Max 50 km/h 7-17 h" ->
    ({50}, False); "限速60公里" -> ({60}, False); "30 mph" -> (set(), True); "forty km/h" -> (set(),
    False)."""
    t = as_read(text).translate(_SLASHES)
    got: set[float] = set()
    foreign = False
    for m in _SPEED.finditer(t):
        if m.group(3):
            foreign = True
        else:
            got.add(float(m.group(1)))
    for m in _NAMED.finditer(t):
        if not _FOREIGN_AFTER.match(t, m.end()):
            got.add(float(m.group(1) or m.group(2)))
    if _ZH_SPEED_WORD.search(t):
        got |= {float(m.group(1)) for m in _ZH_KM.finditer(t)}
    return got, foreign


# A unit right after a named limit that says it is not a speed in km/h ("limit 7.5 t", "max 3 m").
# ... or a time: a postfix "max" before the hours ("50 km/h max 7-17 h", "max 0700-1700", "max
# 24/7", "max 7:00").
_FOREIGN_AFTER = re.compile(
    r"\s*(?:"
    + _FOREIGN
    + r"|t\b|tons?\b|tonnes?\b|m\b|metres?\b|meters?\b|%|吨|米(?!每)|am\b|pm\b|点|时(?!速)"
    + r"|h\b|hrs?\b|hours?\b|/\s*7\b|:\s*\d\d\b"
    + r"|(?:[-–—~]|to)\s*(?:\d{4}\b|\d{1,2}(?::\d\d)?\s*(?:h\b|hrs?\b|hours?\b|am\b|pm\b|点|时)))",
    re.I,
)


def limit_unwritten(text: str, rule_class: str, limit: np.ndarray) -> bool:
    """Whether a rule read as a speed limit (or school zone) says a speed in digits that the
    reading cannot be: the read limit is not the speed written, the rule writes two speeds
    ("50 km/h (was 70 km/h)", "cars 50 km/h, trucks 80 km/h"), or one in a unit the model does
    not read (mph). The node does not act on such a reading (``rules_not_understood``). The
    reading names only the world's limits (MODEL_SPEC.rule_limits, 20-120 km/h): an outside
    probe's "Speed limit 20 km/h", "0 km/h", "9999 km/h" and "1e2 km/h" were read as limits they
    do not say and the car went on at 45 km/h, valid=true. A rule that writes no speed in digits
    (in words, without a unit) is not checked; on the rule language's own limit rules the check
    flags none that is read right (training corpus, test and held-out splits; docs/training.md).
    ``limit``: its rule_limit reading (softmax over rule_limits)."""
    if rule_class not in LIMIT_KINDS:
        return False
    if np.shape(limit)[-1] != len(_S.rule_limits):
        raise ModelError(
            f"the model reads {np.shape(limit)[-1]} speed limits, this node knows "
            f"{len(_S.rule_limits)} (MODEL_SPEC.rule_limits)"
        )
    written, foreign = written_speeds(text)
    if foreign:
        return True
    read = _S.rule_limits[int(np.argmax(limit))]
    if not written:
        return limit_nowhere(text, read)
    return len(written) > 1 or read is None or float(read) not in written


# A limit in words (twenty .. one hundred and twenty; 二十 .. 一百二十): where a read limit can come
# from when no number in digits is it.
_LIMIT_WORD = re.compile(
    r"\b(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred)\b|[十百拾佰](?!字)", re.I
)


def limit_nowhere(text: str, read: float | None) -> bool:
    """Whether a rule that writes numbers in digits, none of them a speed
    (:func:`written_speeds`), was read as a limit that none of them is, and writes no number in
    words a limit could be: "NO OVERTAKING NEXT 5 KM" was read as a speed limit at 0.99 and the
    car slowed to a limit the rule does not give. A rule without digits is not checked."""
    t = as_read(text)
    digits = {float(x) for x in re.findall(r"\d+(?:\.\d+)?", t)}
    if not digits or _LIMIT_WORD.search(t):
        return False
    return read is None or float(read) not in digits


def polarity_alternatives(
    texts: Sequence[str], top: np.ndarray, rule_classes: Sequence[str]
) -> list[tuple[int, str]]:
    """The rules (index, the class their negations write) whose reading ``top`` [R] (indices into
    ``rule_classes``) the negations composing in their text contradict
    (perception.polarity.polarity_unwritten)."""
    out = []
    for r, text in enumerate(texts[: len(top)]):
        other = written_class(text, rule_classes[int(top[r])]) if text else None
        if other is not None and other in rule_classes:
            out.append((r, other))
    return out


def binding_alternatives(
    texts: Sequence[str], top: np.ndarray, rule_classes: Sequence[str]
) -> list[tuple[int, str, dict[str, int] | None]]:
    """For each rule read as binding nobody (``top`` [R], indices into ``rule_classes``) whose
    words name a decision of the car (perception.binding.bound_topics: giving way to
    pedestrians, an amber light, overtaking, a right turn on red, with no road user named but
    cars), the classes of those decisions: (rule index, class, None). A rule that also writes
    one speed limit in digits that the model can read (:func:`written_speeds`, in
    MODEL_SPEC.rule_limits) and names no other road user gets (rule index, "speed_limit",
    {"rule_limit": the limit's index}) too: "All pool cars: do not go above 70 km/h" and
    车队通知：本线路全程限速70km/h were read as binding nobody at 0.94-1.00 (an outside probe,
    forty-eighth session). The reading check asks each as an alternative
    (:func:`read_rule_set`): the node does not act on "binds nobody" where reading the rule as
    one of them would decide the frame otherwise."""
    return [
        (r, c, params)
        for r, text in enumerate(texts[: len(top)])
        if text and rule_classes[int(top[r])] == NOT_BINDING
        for c, params in _bound(text)
        if c in rule_classes
    ]


def _bound(text: str) -> list[tuple[str, dict[str, int] | None]]:
    """The classes (and parameters) a rule read as binding nobody is asked as, whatever the
    model's classes (:func:`binding_alternatives`, and :func:`reading_unwritten` with the
    check off)."""
    out: list[tuple[str, dict[str, int] | None]] = [
        (c, None) for topic in bound_topics(text) for c in TOPIC_CLASSES[topic]
    ]
    speed = _written_limit(text)
    if speed is not None:
        out.append(("speed_limit", {"rule_limit": speed}))
    return out


def _topic_classes(text: str, topic: str) -> tuple[str, ...]:
    """The classes a rule naming ``topic`` is asked as: the prohibition alone where its words
    write one (perception.polarity: on natural texts every ban they write is a ban), else each
    class of the topic (the words' permissions are read generously, so both are asked)."""
    if topic in POLAR_KINDS and written_polarity(text, topic) == "prohibited":
        return (f"{topic}:prohibited",)
    return TOPIC_CLASSES[topic]


# Every class :func:`kind_alternatives` may ask (what :func:`reading_unwritten` offers it with
# the check off, where the model's classes are not at hand).
_KIND_ASKED = (
    NOT_BINDING,
    *LANE_USE_CLASSES,
    "speed_limit",
    "amber:always_stop",
    *(c for classes in TOPIC_CLASSES.values() for c in classes),
)


# Readings a rule of another road user can rightly have: binding nobody, not understood, a
# yield rule (whom the car gives way to opens it: "Cyclists have priority") and a lane's use (a
# bus lane names buses).
_NOT_A_SCOPE = (NOT_BINDING, "not_understood", "yield_pedestrians", *LANE_USE_CLASSES)


def kind_alternatives(
    texts: Sequence[str], top: np.ndarray, rule_classes: Sequence[str]
) -> list[tuple[int, str, dict[str, int] | None]]:
    """Readings of a kind the words rule out, asked as the kinds they write.

    - A rule that bars the car from a lane (perception.binding.barred_lane), read as neither
      a bus lane nor a lane closure, nor as a decision its words also name (the overtaking of
      不准超车（含借用对向车道超车）), is asked as each. The held-out "At all times, cars must
      not use the kerbside lane" was read as binding nobody at 0.95, and
      全天小型汽车不得驶入外侧车道 as no overtaking at 0.97.
    - A rule that names a bus lane in force (perception.binding.names_bus_lane), read as
      neither a bus lane nor a closure, is asked as a bus lane ("BUS ONLY LANE. Violators
      will be fined" and 公交专用道 24小时 were read as binding nobody at 1.00).
    - A rule read as a school zone that names no school, pupil or child
      (perception.binding.names_school) is asked as a speed limit of the limit it was read
      with: a school zone binds only by a school sign, in its hours. "The Borough Council
      (Speed Limits) Order 2026: ... exceeding 30 km/h" was read as one at 0.99, and the car
      kept its speed.
    - A rule read as another kind than every decision of the car its words name
      (perception.binding.bound_topics: giving way to pedestrians, amber, overtaking, a right
      turn on red, with no road user but cars) is asked as each class of those (a rule read
      as binding nobody is :func:`binding_alternatives`'): "No overtaking on this 100 % of the
      road" was read as a speed limit at 1.00 and the car overtook. Where the words write a
      ban, only the ban is asked ("turning right on a red signal is prohibited ... because of
      the school crossing", read as a school zone, decides as the ban on every frame).
    - A rule read as "on amber, proceed if close" that writes no distance to the stop line
      and no closeness (perception.binding.amber_condition) is asked as always stop: "On a
      steady amber signal, a vehicle shall stop at the stop line, regardless of its distance
      from it" was read as proceed if close at 0.95, and the car drove through on amber. And
      the converse: a rule read as always stop whose words let the car go on under that
      condition (perception.binding.amber_proceeds) is asked as proceed if close ("You may
      proceed on amber if you are too close to stop safely", 来不及停车的可以通过路口: read as
      always stop at 0.99-1.00).
    - A rule that opens by naming another road user as whom it binds and names no car
      (perception.binding.others_first), read as a decision of the car, is asked as binding
      nobody: "Trucks must stop on amber" was read as the car's rule at 1.00, and "Buses may
      turn right on red" as the car's permission.

    (rule index, class, None): the reader's own parameters. Only ever a check that refuses
    (:func:`read_rule_set`)."""
    out: list[tuple[int, str, dict[str, int] | None]] = []
    for r, text in enumerate(texts[: len(top)]):
        if not text:
            continue
        read = rule_classes[int(top[r])]
        topic = read.split(":", 1)[0]
        named = bound_topics(text)
        if read not in LANE_USE_CLASSES and topic not in named and barred_lane(text):
            out.extend((r, c, None) for c in LANE_USE_CLASSES if c in rule_classes)
        elif read not in LANE_USE_CLASSES and "bus_lane" in rule_classes and names_bus_lane(text):
            out.append((r, "bus_lane", None))
        if read == "school_zone" and "speed_limit" in rule_classes and not names_school(text):
            out.append((r, "speed_limit", None))
        stop = "amber:always_stop"
        if read == "amber:proceed_if_close" and stop in rule_classes and not amber_condition(text):
            out.append((r, stop, None))
        if read not in _NOT_A_SCOPE and NOT_BINDING in rule_classes and others_first(text):
            out.append((r, NOT_BINDING, None))
        go = "amber:proceed_if_close"
        if read == stop and go in rule_classes and amber_proceeds(text):
            out.append((r, go, None))
        if read not in (NOT_BINDING, "not_understood") and named and topic not in named:
            asked = [c for t in named for c in _topic_classes(text, t) if c in rule_classes]
            out.extend((r, c, None) for c in asked)
    return out


# A merge the words do not write, read towards the outside of a closed outermost lane (no lane
# is there), is asked as the other side: "Left lane closed ahead" was read as closing the left
# lane and merging left at 1.00 (a blind review, fifty-second session).
_OUTWARD = {("L1", "left"): "right", ("R1", "right"): "left"}


def lane_alternatives(
    texts: Sequence[str],
    top: np.ndarray,
    rule_classes: Sequence[str],
    params: Sequence[np.ndarray],
) -> list[tuple[int, str, dict[str, int] | None]]:
    """For each rule read as a lane closure whose words name another lane or another side to
    merge to than it was read with (perception.written.written_lane, written_merge): (rule
    index, "lane_closed", the lane and merge side as written). 右侧车道禁止通行，所有车辆须向左汇入
    ("the right lane is closed, merge left") was read as closing the left lane, merging right,
    at 0.97 (an outside probe, forty-eighth session). A merge it does not write, read towards
    the outside of a closed outermost lane, is asked as the other side (:data:`_OUTWARD`).
    ``params``: the rule set's parameter readings [R, K] in MODEL_SPEC.rule_param_layers
    order."""
    layers = _S.rule_param_layers
    lane_names = ("none", *_S.rule_lanes)
    merge_names = ("none", *_S.rule_merges)
    lanes = np.asarray(params[layers.index("rule_lane")])
    merges = np.asarray(params[layers.index("rule_merge")])
    if lanes.shape[-1] != len(lane_names) or merges.shape[-1] != len(merge_names):
        raise ModelError(
            f"the model reads {lanes.shape[-1]} lanes and {merges.shape[-1]} merge sides, this "
            f"node knows {len(lane_names)} and {len(merge_names)} (MODEL_SPEC)"
        )
    out: list[tuple[int, str, dict[str, int] | None]] = []
    for r, text in enumerate(texts[: len(top)]):
        if not text or rule_classes[int(top[r])] not in LANE_KINDS:
            continue
        written: dict[str, int] = {}
        lane, merge = written_lane(text), written_merge(text)
        if lane is not None and lane_names.index(lane) != int(lanes[r].argmax()):
            written["rule_lane"] = lane_names.index(lane)
        if merge is not None and merge_names.index(merge) != int(merges[r].argmax()):
            written["rule_merge"] = merge_names.index(merge)
        side = lane_names[written.get("rule_lane", int(lanes[r].argmax()))]
        outward = _OUTWARD.get((side, merge_names[int(merges[r].argmax())]))
        if merge is None and outward is not None:
            written["rule_merge"] = merge_names.index(outward)
        if written:
            out.append((r, rule_classes[int(top[r])], written))
    return out


def hours_alternatives(
    texts: Sequence[str],
    top: np.ndarray,
    rule_classes: Sequence[str],
    params: Sequence[np.ndarray],
) -> list[tuple[int, str, dict[str, int] | None]]:
    """For each rule read as a school zone or a bus lane with other hours than its words write
    (perception.written.written_hours): (rule index, its class, {"rule_hours": the hours as
    written}). Held-out school zones said "Mon to Fri 24/7" or "around the clock" were read
    as in force by day only, and the car kept its speed at dusk with ``valid=true``.
    ``params``: the rule set's parameter readings [R, K] in MODEL_SPEC.rule_param_layers
    order."""
    names = ("none", *_S.rule_hours)
    hours = np.asarray(params[_S.rule_param_layers.index("rule_hours")])
    if hours.shape[-1] != len(names):
        raise ModelError(
            f"the model reads {hours.shape[-1]} hours, this node knows {len(names)} (MODEL_SPEC)"
        )
    out: list[tuple[int, str, dict[str, int] | None]] = []
    for r, text in enumerate(texts[: len(top)]):
        if not text or rule_classes[int(top[r])] not in HOUR_KINDS:
            continue
        written = written_hours(text)
        if written is not None and names.index(written) != int(hours[r].argmax()):
            out.append((r, rule_classes[int(top[r])], {"rule_hours": names.index(written)}))
    return out


def _written_limit(text: str) -> int | None:
    """The index in MODEL_SPEC.rule_limits of the one speed limit a rule writes in digits
    (km/h, or a number after "max", "do not exceed", 车速/时速 with no unit), where it names no
    road user other than a car (perception.binding) and the number is no other speed (a
    measured, design, minimum, advised or past speed, the end of a limit: "Your speed 70 km/h",
    "End of 60 km/h zone", 设计时速100公里, 最低限速60) nor another quantity ("max 30
    minutes"); None otherwise."""
    t = as_read(text)
    if binds_others_only(text) or _NOT_A_LIMIT.search(t):
        return None
    speeds, foreign = written_speeds(text)
    if foreign:
        return None
    if not speeds:
        speeds = {float(next(g for g in m.groups() if g)) for m in _MORE_LIMIT.finditer(t)}
    if len(speeds) != 1:
        return None
    (speed,) = speeds
    limits = _S.rule_limits
    return limits.index(int(speed)) if speed.is_integer() and int(speed) in limits else None


# A number that is a speed but not a limit of the car's, or a "max" of something else (the second
# review of perception.binding, forty-ninth session).
_NOT_A_LIMIT = re.compile(
    r"\byour\s+speed\s*[:：]?\s*\d|\b(?:current|design|minimum|min\.?|wind|recommended|advisory"
    r"|advised|suggested)\s+speed|\bend(?:\s+of)?\b|\bgusts?\b|\bstopping\s+distance|\bhit\s+at\b"
    r"|\bwas\b|\bused\s+to\b|\baverage\s+speed\s+of\b"
    r"|\b(?:limit|max)\s*[:=]?\s*\d+\s*(?:min(?:ute)?s?|secs?|seconds?|vehicles?|cars|people|persons?"
    r"|db|spaces?)\b"
    r"|您的车速|当前车速|实时车速|平均车速(?!\s*(?:不|须|应|限|≤))|设计(?:时速|速度|车速)"
    r"|最低(?:限速|车速|时速|速度)|解除限速|限速解除|原限速|去年|曾|风速|建议(?:车速|时速|速度)"
    r"|推荐(?:车速|速度)|绿波|以\s*\d+\s*(?:km|公里)|制动距离",
    re.I,
)
# A limit with no unit: "Max. 60", "Maximum speed 60", "Do not exceed 60", 车速不得超过60.
_MORE_LIMIT = re.compile(
    r"\bmax(?:imum)?\.?\s*(?:speed\s*)?[:=]?\s*(\d+)\b(?!\s*(?:[a-z%]|[.,]\d))"
    r"|\bdo\s+not\s+exceed\s+(\d+)\b(?!\s*[a-z%])"
    r"|(?:车速|时速|速度)[^，。\d]{0,6}?(\d+)(?!\s*(?:米|吨|分钟|秒|%|人|辆|\d))",
    re.I,
)


def reading_unwritten(
    text: str, rule_class: str, params: Sequence[np.ndarray], check_off: bool = False
) -> bool:
    """Whether a rule's reading says what the rule does not write: a speed limit
    (:func:`limit_unwritten`) or a lane number (perception.written.lane_unwritten) it does not
    write, or that it binds nobody though it names an exception
    (perception.written.excepted_not_binding). With ``check_off`` (the reading check does not
    run), also: a polarity that the negations composing in its text contradict
    (perception.polarity.polarity_unwritten), that it binds nobody though it names a decision
    of the car (:func:`binding_alternatives`), or a lane closure's lane or side that its words
    contradict (:func:`lane_alternatives`); where the reading check runs, those are its
    alternatives instead, flagged only on the frames they decide (:func:`read_rule_set`).
    ``params``: its parameter readings in MODEL_SPEC.rule_param_layers order. The node answers
    such a rule ``rules_not_understood`` (policy.model), and evaluation counts it the same
    way."""
    layers = _S.rule_param_layers
    if (
        limit_unwritten(text, rule_class, params[layers.index("rule_limit")])
        or lane_unwritten(text, rule_class, params[layers.index("rule_lane")])
        or excepted_not_binding(text, rule_class)
    ):
        return True
    if not check_off:
        return False
    top = np.array([0])
    return bool(
        polarity_unwritten(text, rule_class)
        or (rule_class == NOT_BINDING and bool(_bound(text)))
        or bool(kind_alternatives((text,), top, (rule_class, *_KIND_ASKED)))
        or lane_alternatives((text,), top, (rule_class,), [np.asarray(p)[None] for p in params])
        or hours_alternatives((text,), top, (rule_class,), [np.asarray(p)[None] for p in params])
    )
