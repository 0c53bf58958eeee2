"""Evaluate a Keras checkpoint or an ONNX model on recordings, per split, where it can fail.

Per split: accuracy, macro-F1, per-class recall, confusion matrix (PNG), calibration (ECE, the
confidence of the errors) and the share of frames the node would answer with ``valid=false``.
Per rule kind and language, on the frames that rule TARGETS (the oracle's decision changes if it
is read wrongly; ``rule_meta`` in the recording), split by held-out wording: averages over frames
a rule does not affect hide exactly the failures that matter. Rule understanding: how often a
rule nobody can read is flagged (``rules_not_understood``), and how often a readable rule set is.
An exported model is run the way the node runs it, its reading check included
(perception.readcheck: a frame whose decision hangs on an unsurely read rule is flagged
``rules_not_understood``); a Keras checkpoint has no reading graph, and its report says
``reading_check: null``. Pictures: how often a non-road picture of the *test* kinds
(training.ood) is flagged, and how often a road frame is. On the counterfactual split also
counterfactual consistency.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bus.recording import Sample, counterfactual_pairs
from bus.schema import DecisionLabel
from core.defaults import READING_THRESHOLD
from core.errors import ModelError
from core.metrics import (
    classification_report,
    clustered_interval,
    counterfactual_consistency,
    plot_confusion,
)
from perception.image import DEFAULT_DECODE, colourless
from perception.modelmeta import NOT_UNDERSTOOD, Thresholds
from perception.onnxrun import check_io
from perception.readcheck import (
    RULE_TEXTS,
    SENTENCE_CLASSES,
    ReadingCheck,
    conflicting,
    reading_unwritten,
)
from perception.rule_encoder import (
    Layers,
    RuleEncoder,
    encoder_layer,
    read_in_part,
    state_width,
    unreadable_script,
)
from perception.sentence_reader import SentenceReader, spec_of
from perception.spec import MODEL_SPEC
from training.data import ArrayDataset, RuleTable, encode_samples, require_rules, rule_meta_of
from training.ood import TEST_KINDS, negative_jpegs
from training.thresholds import expected_calibration_error

__all__ = ["MISREAD_SHOWN", "OnnxPredictor", "Predictor", "evaluate_samples", "load_predictor"]

_S = MODEL_SPEC
N_NEGATIVES = 600
READING_OUTPUT = "reading_unsure"  # [N, R] bool: rules the reading check flags (ONNX only)
CONFLICT_OUTPUT = "rules_conflict"  # [N, R] bool: rules whose contradiction decides (ONNX)
# Per targeted cell, the misread rule texts report.json lists (the most unsafe first).
MISREAD_SHOWN = 10
# [N, R, V] per parameter (MODEL_SPEC.rule_param_layers): each rule's reading (ONNX only)
PARAM_READINGS = tuple(f"{name}_reading" for name in _S.rule_param_layers)


class Predictor(Protocol):
    name: str
    rule_classes: tuple[str, ...]
    encoder_dir: str
    encoder_layer: Layers  # the encoder layer(s) it reads (RuleEncoder.load(layer=...))
    thresholds: Thresholds
    decode: str  # how its frames are decoded (perception.image.PREPROCESSINGS)

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


# A predictor may also say ``sentence_input = True``: its model reads each rule's sentence
# vector (TrainConfig.sentence_input), which evaluate_samples then adds to the rule table.


class KerasPredictor:
    def __init__(self, path: Path) -> None:
        from training.checkpoint import load_checkpoint

        ckpt = load_checkpoint(path)
        self.model, self.name = ckpt.model, f"keras:{path}"
        self.rule_classes, self.thresholds = ckpt.rule_classes, ckpt.thresholds
        self.encoder_dir = ckpt.config.encoder_dir
        self.encoder_layer = ckpt.config.encoder_layer
        self.reads_rules = ckpt.config.variant != "image_only"
        self.decode = DEFAULT_DECODE  # a checkpoint is this build's training
        self._inputs = {t.name for t in self.model.inputs}
        self.sentence_input = _S.rule_sentence_input in self._inputs

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Only the model's own inputs: a shared table may carry sentence vectors it does not read.
        feeds = {k: v for k, v in inputs.items() if k in self._inputs}
        outs: dict[str, np.ndarray] = self.model.predict(feeds, batch_size=256, verbose=0)
        return outs


class OnnxPredictor:
    """Runs an exported model the way the node does: labels, rule classes and thresholds from
    its metadata; decision columns matched by label name, never by position."""

    def __init__(
        self,
        path: Path,
        encoder_dir: str = "models/text-encoder",
        reading_check: bool = True,
        neighbour_reading: bool = True,
    ) -> None:
        import onnxruntime as ort

        from perception.modelmeta import parse_metadata

        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        meta = parse_metadata(self.session.get_modelmeta().custom_metadata_map, source=str(path))
        layers = encoder_layer(meta.encoder, str(path))
        check_io(self.session, path, len(meta.rule_classes), state_width(layers))  # as the node
        self.labels, self.name, self.meta = meta.labels, f"onnx:{path}", meta
        self.rule_classes, self.thresholds = meta.rule_classes, meta.thresholds
        self.encoder_dir = encoder_dir
        self.encoder_layer = layers
        self.decode = meta.decode
        # Whether it reads each rule's sentence vector too (TrainConfig.sentence_input).
        self.sentence_input = _S.rule_sentence_input in {i.name for i in self.session.get_inputs()}
        # The node's split graphs (perception.readcheck): its reading check, at the node's
        # default threshold, and its neighbour reading (perception.neighbours) where the model
        # has an index; None for a model without a reading graph.
        graphs = ReadingCheck.from_model(Path(path).read_bytes())
        self.reading_check = graphs if reading_check else None
        has_index = graphs is not None and graphs.neighbours is not None
        self.neighbours = graphs if has_index and neighbour_reading else None
        if graphs is not None and not neighbour_reading:
            graphs.neighbours = None
        # The sentence reader (perception.sentence_reader): evaluate_samples gives its readings
        # of each frame's rules (sentence_classes) with the inputs, as the node computes them.
        spec = spec_of(self.session.get_modelmeta().custom_metadata_map, meta.rule_classes)
        if spec is not None and graphs is None:
            raise ModelError(f"{path} has a sentence reader but no reading graph to apply it")
        self.sentence = SentenceReader(spec) if spec is not None else None
        self._graphs = graphs

    def sentence_classes(self, data: ArrayDataset) -> np.ndarray | None:
        """The sentence reader's class softmax of every frame's rules [N, R, C] (zeros where
        there is no rule); None for a model without one."""
        if self.sentence is None:
            return None
        texts = sorted({r for s in data.samples if s is not None for r in s.rules})
        read = dict(zip(texts, self.sentence.classes_of(texts), strict=True))
        out = np.zeros((len(data), _S.max_rules, len(self.rule_classes)), np.float32)
        for i, s in enumerate(data.samples):
            for j, text in enumerate(s.rules[: _S.max_rules] if s is not None else ()):
                out[i, j] = read[text]
        return out

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from perception.onnxrun import run_all_outputs, to_label_order

        mine = {i.name for i in self.session.get_inputs()}
        outs = run_all_outputs(self.session, {k: v for k, v in inputs.items() if k in mine})
        graphs = self.reading_check or self.neighbours
        if graphs is None and self.sentence is not None:
            graphs = self._graphs  # the node applies a sentence reader with or without them
        if graphs is not None:  # the decision and the classes as the node computes them
            threshold = READING_THRESHOLD if self.reading_check is not None else 0.0
            probs, top, changes, classes, readings, clash = graphs.scan(inputs, threshold)
            outs[_S.output], outs[_S.rule_output] = probs, classes
            outs[CONFLICT_OUTPUT] = clash
            for name, reading in zip(PARAM_READINGS, readings or (), strict=False):
                outs[name] = reading
            if self.reading_check is not None:
                outs[READING_OUTPUT] = (top < READING_THRESHOLD) & changes
        outs[_S.output] = to_label_order(outs[_S.output], self.labels)
        return outs


def load_predictor(path: str | Path) -> Predictor:
    p = Path(path)
    return OnnxPredictor(p) if p.suffix == ".onnx" else KerasPredictor(p)


def evaluate_samples(
    predictor: Predictor,
    samples: Sequence[Sample],
    out_dir: Path | None = None,
    table: RuleTable | None = None,
    reads_rules: bool | None = None,
) -> dict[str, Any]:
    """Metrics per split (and the picture check); writes confusion PNGs and report.json.
    ``reads_rules``: whether the model reads rules (False: the image-only variant, which may be
    measured on frames without rule sets); None: the predictor says (a checkpoint's config),
    else it is taken to."""
    if reads_rules is None:
        reads_rules = getattr(predictor, "reads_rules", True)
    if reads_rules:
        require_rules(samples, sorted({s.source for s in samples if s.source}) or ["the data"])
    if table is None:
        encoder = RuleEncoder.load(
            Path(predictor.encoder_dir), "cpu", cache_size=0, layer=predictor.encoder_layer
        )
        table = RuleTable.build((r for s in samples for r in s.rules), encoder)
    if getattr(predictor, "sentence_input", False) and table.sentences is None:
        table.add_sentences()
    data = encode_samples(samples, table, predictor.rule_classes, decode=predictor.decode)
    outs = _with_sentence(predictor, data).predict(predictor.predict)
    report: dict[str, Any] = {
        "model": predictor.name,
        "thresholds": predictor.thresholds.to_dict(),
        # The node's reading check is in the flags only for an exported model with a reading
        # graph (perception.readcheck); its threshold, or None where it was not run.
        "reading_check": READING_THRESHOLD if getattr(predictor, "reading_check", None) else None,
        "splits": {},
    }
    by_split: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        by_split[s.split].append(i)
    names = [str(x) for x in DecisionLabel]
    for split, idx in sorted(by_split.items()):
        ix = np.array(idx)
        rep = _split_report(predictor, data, outs, ix, names)
        if split == "counterfactual":
            correct = outs[_S.output].argmax(1) == data.labels
            rep["counterfactual_consistency"] = _consistency(samples, idx, correct)
        report["splits"][split] = rep
        if out_dir is not None:
            plot_confusion(
                np.array(rep["confusion_matrix"]),
                names,
                out_dir / f"confusion_{split}.png",
                f"{split} (n={len(ix)}, acc={rep['accuracy']:.3f})",
            )
    report["pictures"] = _pictures(predictor, data, outs, samples)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    return report


def _with_sentence(predictor: Predictor, data: ArrayDataset) -> ArrayDataset:
    """``data`` with the predictor's sentence readings of its rules among its inputs, where the
    model has a sentence reader (OnnxPredictor.sentence_classes)."""
    sentence = getattr(predictor, "sentence_classes", lambda _: None)(data)
    if sentence is not None:
        data.extra[SENTENCE_CLASSES] = sentence
    if getattr(predictor, "reading_check", None) is not None:  # what the words write
        data.extra[RULE_TEXTS] = np.array([*data.table.texts, ""], object)[data.rule_idx]
    return data


def _flags(
    predictor: Predictor, outs: dict[str, np.ndarray], data: ArrayDataset, ix: np.ndarray
) -> dict[str, np.ndarray]:
    """Per frame: which of the node's model-based fallbacks would fire (the reading check where
    the predictor ran it: exported models only)."""
    th = predictor.thresholds
    nu = predictor.rule_classes.index(NOT_UNDERSTOOD)
    present = data.rule_idx[ix] >= 0
    # The node's ways (policy.decider): the model's score, or a script it does not read, or a
    # rule longer than it reads.
    script = np.array([unreadable_script(t) for t in data.table.texts] + [False], bool) | np.append(
        read_in_part(data.table.masks), False
    )
    unread = (
        (outs[_S.rule_output][ix, :, nu] >= th.not_understood) | script[data.rule_idx[ix]]
    ) & present
    if READING_OUTPUT in outs:
        unread |= outs[READING_OUTPUT][ix] & present
    # Two rules read as one kind with opposite variants: rules_conflict (policy.decider); a
    # readable set flagged all the same, so counted with the rules not understood.
    if CONFLICT_OUTPUT in outs:  # asked per frame, as the node asks it (policy.model)
        unread |= outs[CONFLICT_OUTPUT][ix] & present
    else:
        unread |= conflicting(outs[_S.rule_output][ix], present, predictor.rule_classes)
    if PARAM_READINGS[0] in outs:  # a reading the rule's words contradict (policy.model)
        check_off = READING_OUTPUT not in outs  # else the reading check checked it per frame
        unread |= _readings_unwritten(predictor, outs, data, ix, check_off) & present
    # As the node (policy.decider): the model's score, or a frame without colour.
    ood = (outs[_S.ood_output].reshape(-1)[ix] >= th.image_ood) | colourless(data.images[ix])
    low = outs[_S.output][ix].max(1) < th.confidence
    return {"unread": unread, "ood": ood, "low": low, "any": unread.any(1) | ood | low}


def _readings_unwritten(
    predictor: Predictor,
    outs: dict[str, np.ndarray],
    data: ArrayDataset,
    ix: np.ndarray,
    check_off: bool,
) -> np.ndarray:
    """Per frame and rule slot [len(ix), R]: perception.readcheck.reading_unwritten, as the node
    applies it to each rule set it reads (policy.model.PolicyModel.encode_rules); ``check_off``:
    where the reading check did not run (it checks what the words write per frame,
    readcheck.scan)."""
    top = outs[_S.rule_output][ix].argmax(-1)
    readings = [outs[name][ix] for name in PARAM_READINGS]
    rows = data.rule_idx[ix]
    out = np.zeros(rows.shape, bool)
    for k, r in zip(*np.nonzero(rows >= 0), strict=True):
        text = data.table.texts[rows[k, r]]
        cls = predictor.rule_classes[top[k, r]]
        out[k, r] = reading_unwritten(text, cls, [p[k, r] for p in readings], check_off)
    return out


def _split_report(
    predictor: Predictor,
    data: ArrayDataset,
    outs: dict[str, np.ndarray],
    ix: np.ndarray,
    names: list[str],
) -> dict[str, Any]:
    probs = outs[_S.output][ix]
    pred, labels = probs.argmax(1), data.labels[ix]
    rep = classification_report(labels, pred, names)
    right = pred == labels
    flags = _flags(predictor, outs, data, ix)
    rep["ece"] = round(expected_calibration_error(probs, labels), 4)
    rep["mean_confidence_of_errors"] = (
        round(float(probs.max(1)[~right].mean()), 4) if (~right).any() else None
    )
    rep["valid_false_share"] = round(float(flags["any"].mean()), 4)
    rep["errors_caught_by_fallbacks"] = (
        round(float(flags["any"][~right].mean()), 4) if (~right).any() else None
    )
    rep["targeted"] = _targeted(data, ix, right, flags["any"])
    rep["unsafe_constructions"] = _unsafe_constructions(data, ix, right, flags["any"])
    rep["rules_not_understood"] = _understanding(data, ix, flags["unread"], predictor)
    return rep


def _targeted_rules(data: ArrayDataset, ix: np.ndarray) -> Iterator[tuple[int, dict[str, Any]]]:
    """(position in ``ix``, scene record) of every rule that targets its frame and can be read:
    the rules the per-kind and per-construction figures count."""
    for k, i in enumerate(ix):
        s = data.samples[i]
        for m in rule_meta_of(s) if s is not None else []:
            if isinstance(m, dict) and m.get("targeted") and m.get("understood", True):
                yield k, m


def _targeted(
    data: ArrayDataset, ix: np.ndarray, right: np.ndarray, flagged: np.ndarray
) -> dict[str, Any]:
    """Accuracy per (rule class, language, wording) on the frames each rule targets; with how
    many distinct rule texts those frames hold, on how many of them at least one frame is
    wrong, and the texts misread most (``misread_texts``: each text's targeted frames, those
    answered wrong and those wrong with ``valid=true``; most unsafe first, MISREAD_SHOWN of
    them). A split draws a few texts many times: a held-out cell of 75 frames was 26 texts,
    and a model reads one text the same way on most of its frames, so the texts, not the
    frames, say how much a cell's accuracy can be trusted, and which wording it fails on
    (docs/training.md, "Twenty-first round"); ``accuracy_ci95`` is the accuracy's 95 %
    interval with each text's frames as one cluster (core.metrics.clustered_interval)."""
    by_text = _tally(
        ((_cell(m), m.get("text")), right[k], flagged[k]) for k, m in _targeted_rules(data, ix)
    )
    cells: dict[str, dict[Any, list[int]]] = defaultdict(dict)
    for (cell, text), c in by_text.items():
        cells[cell][text] = c
    out = {}
    for key, texts in sorted(cells.items()):
        frames = sum(c[0] for c in texts.values())
        wrong = _most_unsafe(texts)
        interval = clustered_interval([(c[0], c[0] - c[1]) for c in texts.values()])
        out[key] = {
            "frames": frames,
            "accuracy": round((frames - sum(c[1] for c in texts.values())) / frames, 4),
            "accuracy_ci95": [round(b, 4) for b in interval] if interval else None,
            "texts": len(texts),
            "texts_wrong": len(wrong),
            "misread_texts": [
                {"text": t, "frames": f, "wrong": w, "unsafe": u}
                for t, (f, w, u) in wrong[:MISREAD_SHOWN]
            ],
        }
    return out


def _unsafe_constructions(
    data: ArrayDataset, ix: np.ndarray, right: np.ndarray, flagged: np.ndarray
) -> dict[str, dict[str, int]]:
    """Where the wrong answers on targeted frames fall: per generator construction of a rule
    that targets the frame (simulator.language; "unknown" where the record has none), its
    targeted frames, those answered wrong, and those wrong with ``valid=true`` (no fallback
    fired: the unsafe ones); constructions with a wrong answer only, most unsafe first. A
    per-kind cell can be one construction the model misreads (a negation, say) on every frame."""
    counts = _tally(
        (str(m.get("construction", "unknown")), right[k], flagged[k])
        for k, m in _targeted_rules(data, ix)
    )
    return {
        name: {"frames": f, "wrong": w, "unsafe": u} for name, (f, w, u) in _most_unsafe(counts)
    }


def _tally(answers: Iterable[tuple[Any, Any, Any]]) -> dict[Any, list[int]]:
    """Per key of (key, answered right, a fallback fired): [frames, wrong, wrong with
    ``valid=true``]."""
    counts: dict[Any, list[int]] = defaultdict(lambda: [0, 0, 0])
    for key, ok, fired in answers:
        c = counts[key]
        c[0] += 1
        c[1] += int(not ok)
        c[2] += int(not ok and not fired)
    return counts


def _most_unsafe(counts: dict[Any, list[int]]) -> list[tuple[Any, list[int]]]:
    """The keys with a wrong answer, most wrong with ``valid=true`` first, then most wrong."""
    wrong = [(key, c) for key, c in counts.items() if c[1]]
    wrong.sort(key=lambda kc: (-kc[1][2], -kc[1][1], str(kc[0])))
    return wrong


def _cell(m: dict[str, Any]) -> str:
    """A rule's report key from its scene record: "class|language|wording" (wording held-out or
    training; "unknown" for what a record without it, a bus recording's, does not say)."""
    wording = "held-out" if m.get("held_out") else "training" if m else "unknown"
    return f"{m.get('class', 'unknown')}|{m.get('lang', 'unknown')}|{wording}"


def _understanding(
    data: ArrayDataset, ix: np.ndarray, unread: np.ndarray, predictor: Predictor
) -> dict[str, Any]:
    nu = predictor.rule_classes.index(NOT_UNDERSTOOD)
    cls = data.rule_cls[ix]
    with_unreadable = (cls == nu).any(1)
    readable_sets = ~with_unreadable & (data.rule_idx[ix] >= 0).any(1)
    caught = np.asarray(unread)[cls == nu]
    return {
        "unreadable_rules": int((cls == nu).sum()),
        "unreadable_rules_flagged": round(float(caught.mean()), 4) if caught.size else None,
        "readable_sets": int(readable_sets.sum()),
        "readable_sets_flagged": (
            round(float(np.asarray(unread.any(1))[readable_sets].mean()), 4)
            if readable_sets.any()
            else None
        ),
        **_readable_flags_by_wording(data, ix, np.asarray(unread), readable_sets),
    }


def _readable_flags_by_wording(
    data: ArrayDataset, ix: np.ndarray, unread: np.ndarray, readable_sets: np.ndarray
) -> dict[str, Any]:
    """Where the readable rule sets' flags fall: per (rule class, language, wording) of the
    readable rules in those sets, how many rules and how many flagged; and the constructions
    (simulator.language) of the flagged ones, most flagged first. Frames without per-rule scene
    records (recordings from the bus) count under "unknown"."""
    rules: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    constructions: Counter[str] = Counter()
    for k in np.flatnonzero(readable_sets):
        s = data.samples[ix[k]]
        for j, meta in enumerate(rule_meta_of(s) if s is not None else []):
            m = meta if isinstance(meta, dict) else {}
            cell = rules[_cell(m)]
            cell[0] += 1
            if unread[k, j]:
                cell[1] += 1
                constructions[str(m.get("construction", "unknown"))] += 1
    return {
        "readable_rules_flagged_by_kind": {
            key: {"rules": n, "flagged": f} for key, (n, f) in sorted(rules.items())
        },
        "flagged_constructions": dict(constructions.most_common()),
    }


def _pictures(
    predictor: Predictor, data: ArrayDataset, outs: dict[str, np.ndarray], samples: Sequence[Sample]
) -> dict[str, Any]:
    """Non-road pictures of the test kinds (never seen in training) vs the road frames."""
    th = predictor.thresholds.image_ood
    road_flagged = float(((outs[_S.ood_output].reshape(-1) >= th) | colourless(data.images)).mean())
    negatives = negative_jpegs(N_NEGATIVES, TEST_KINDS, 7, [s.jpeg for s in samples[:200]])
    neg = encode_samples(
        [], data.table, predictor.rule_classes, [j for _, j in negatives], predictor.decode
    )
    scores = _with_sentence(predictor, neg).predict(predictor.predict)[_S.ood_output].reshape(-1)
    flagged = (scores >= th) | colourless(neg.images)
    kinds: dict[str, list[bool]] = defaultdict(list)
    for (kind, _), flag in zip(negatives, flagged, strict=True):
        kinds[kind].append(bool(flag))
    return {
        "road_frames_flagged": round(road_flagged, 4),
        "negatives_flagged": round(float(flagged.mean()), 4),
        "by_kind": {k: round(float(np.mean(v)), 4) for k, v in sorted(kinds.items())},
    }


def _consistency(samples: Sequence[Sample], idx: list[int], correct: np.ndarray) -> dict[str, Any]:
    pos = {(samples[i].vehicle_id, samples[i].frame_id): i for i in idx}
    pairs = counterfactual_pairs([samples[i] for i in idx])
    ix_pairs = [
        (pos[(a.vehicle_id, a.frame_id)], pos[(b.vehicle_id, b.frame_id)]) for a, b in pairs
    ]
    return {"pairs": len(ix_pairs), "both_right": counterfactual_consistency(correct, ix_pairs)}
