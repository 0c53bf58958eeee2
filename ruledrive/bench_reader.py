"""``ruledrive bench reader``: how well the rule reader alone reads wording it never saw.

The fused model decides from what its reader made of each rule (docs/training.md, "The
model"), so reading is what the per-kind held-out figures measure. Training the whole model
takes ~20 minutes a seed; this trains only the reader (``training.model.create_text_encoder``
and the per-rule heads of ``_read_rules``, the same builders) on the rule texts of the recipe's
training splits, with their per-rule labels, in a few minutes, and scores it the way the model
card weights rules: per (rule kind, language, wording), over the frames each rule targets in the
test split (training wording) and the held-out-family split (held-out wording).

A rule counts as read when its class is right and, for a rule that binds the car, every
parameter it names (limit, hours, lane, merge side) is right too. Several token-dropout rates
(``--token-dropout 0,0.15``), training-noise stds on the token states (``--state-noise
0,0.13``; TrainConfig.state_noise), rule heads, readers trained together in one model
(``--readers 1,3``; TrainConfig.readers), readers trained apart whose readings are averaged
(``--members 1,3``: seeds seed, seed + 1000, ...), the encoder layer whose token states it
reads (``--encoder-layer 12,9``; TrainConfig.encoder_layer), whether the reader also reads each
rule's sentence vector from a second pretrained encoder (``--sentence-input 0,1``: USE-m-v3,
training.sentence; TrainConfig.sentence_input puts it in the model) and seeds run side by
side on the same data;
the worst seed is reported. ``--withhold`` sets aside one training family per concept (the
texts that use it), trains every variant without them and scores it on them: a held-out test made of
training data, to choose a variant on without looking at the real held-out split. Results
and the exact command replace the "## Rule reader" section of docs/benchmarks.md (with
``--withhold``, the "## Rule reader, choosing on withheld training families" section). Needs
the training extra (TensorFlow) and the recipe's data
(``ruledrive train-default --work W`` makes ``W/data``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import logging
import platform
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.defaults import READING_THRESHOLD
from core.errors import ConfigError, DataError
from perception.spec import MODEL_SPEC
from ruledrive.argtypes import positive_int
from ruledrive.benchdoc import add_doc_flags, bench_command, publish
from simulator.oracle import NOT_BINDING, NOT_UNDERSTOOD

__all__ = [
    "ReaderData",
    "Withheld",
    "add_corpus",
    "add_probe",
    "collect",
    "ensemble",
    "probe_wording",
    "read_right",
    "register_bench",
    "score",
    "score_withheld",
    "unsure_share",
    "withheld_families",
]

log = logging.getLogger(__name__)

HEADING = "Rule reader"
# A run with --withhold trains on fewer texts, so it gets its own section beside the full one.
HEADING_WITHHELD = "Rule reader, choosing on withheld training families"
WITHHOLD_SEED = 99  # which training families ``--withhold`` sets aside
NOT_READ = (NOT_BINDING, NOT_UNDERSTOOD)  # classes whose parameters decide nothing


@dataclass
class ReaderData:
    """Distinct rule texts with their labels; for evaluation texts, the frames they target."""

    texts: list[str] = field(default_factory=list)
    cls: list[str] = field(default_factory=list)
    params: list[list[int]] = field(default_factory=list)  # training.ruleparams.param_labels
    families: list[tuple[str, ...]] = field(default_factory=list)  # the wording's families
    # text index -> {(class, language, wording): targeted frames}
    weights: dict[int, dict[tuple[str, str, str], int]] = field(default_factory=dict)
    # text index -> the generator's construction (simulator.language) of an evaluation text
    constructions: dict[int, str] = field(default_factory=dict)
    # text index -> {(language, wording): times it is a readable rule of an evaluation split},
    # targeted or not: what the node's readable-set flags are made of
    readable: dict[int, dict[tuple[str, str], int]] = field(default_factory=dict)
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def add(self, text: str, cls: str, params: list[int], families: Sequence[str] = ()) -> int:
        if text in self._index:
            return self._index[text]
        self._index[text] = len(self.texts)
        self.texts.append(text)
        self.cls.append(cls)
        self.params.append(params)
        self.families.append(tuple(families))
        return self._index[text]


def collect(
    samples: Sequence[Any], wording: str | None = None, out: ReaderData | None = None
) -> ReaderData:
    """Distinct labelled rule texts of ``samples`` (bus.recording.Sample), added to ``out`` (a
    new set by default); with ``wording``, also count, per text, the frames it targets by
    (class, language, wording), and the times it is a readable rule by (language, wording)."""
    from training.data import rule_classes_of
    from training.ruleparams import param_labels

    out = ReaderData() if out is None else out
    for s in samples:
        meta = (s.scene or {}).get("rule_meta")
        metas = meta if isinstance(meta, list) and len(meta) == len(s.rules) else []
        for text, cls, m in zip(s.rules, rule_classes_of(s), metas, strict=False):
            if cls is None:
                continue
            fams = m.get("families") if isinstance(m, dict) else None
            i = out.add(text, cls, param_labels(m), fams if isinstance(fams, list) else ())
            if wording is not None and cls != NOT_UNDERSTOOD and isinstance(m, dict):
                r = out.readable.setdefault(i, {})
                where = (str(m.get("lang")), wording)
                r[where] = r.get(where, 0) + 1
            if wording is None or not (isinstance(m, dict) and m.get("targeted")):
                continue
            if not m.get("understood", True) or bool(m.get("held_out")) != (wording == "held-out"):
                continue
            key = (str(m.get("class")), str(m.get("lang")), wording)
            w = out.weights.setdefault(i, {})
            w[key] = w.get(key, 0) + 1
            out.constructions[i] = str(m.get("construction", "unknown"))
    return out


@dataclass(frozen=True)
class Withheld:
    """The reader on the training texts of withheld families (``--withhold``)."""

    texts: int
    read: float  # share of those texts read right
    worst: float  # the worst withheld family's share
    worst_family: str


SENTENCE_INPUT = MODEL_SPEC.rule_sentence_input  # USE-m-v3 vectors, [N, R, 512]
SENTENCE_CACHE = "sentence-vectors.npz"  # in --work: the vectors of every text, once


class SentenceFeed:
    """The sentence-vector input of a batch, from the vectors of a rule table's rows (zero
    where a slot has no rule)."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors

    def __call__(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        from training.data import sentence_feeds

        return sentence_feeds(self.vectors, rows)


def _model(
    n_classes: int,
    state_noise: float = 0.0,
    factor_classes: Sequence[str] | None = None,
    readers: int = 1,
    sentence: bool = False,
) -> Any:
    """The model's reader (the same builders); with ``sentence``, each reader's per-rule
    features are joined by the rule's sentence vector through a Dense(128, GELU) of their own
    before the heads: a second pretrained encoder's reading, learnt beside the token reader's
    (the twenty-seventh session averaged two separately trained readings instead)."""
    import keras

    from training.model import _input, _read_rules, _sentence_input, _text_encoders

    states, mask = _input(MODEL_SPEC.rules), _input(MODEL_SPEC.rule_mask)
    vec = _sentence_input(MODEL_SPEC, sentence)
    inputs = [states, mask, *vec]
    per_rule = _text_encoders(MODEL_SPEC, states, mask, readers, state_noise, *vec)
    members: dict[str, Any] = {}
    _, cls, params = _read_rules(
        per_rule, mask, n_classes, MODEL_SPEC, factor_classes=factor_classes, members=members
    )
    # Several readers: the losses are on each one's own outputs (training.reader.fit_reader).
    return keras.Model(inputs, {MODEL_SPEC.rule_output: cls, **params, **members})


def _train_and_read(
    table: Any,
    train: ReaderData,
    ix_train: np.ndarray,
    ix_eval: np.ndarray,
    classes: list[str],
    variant: Variant,
    seed: int,
    epochs: int,
    sentence: SentenceFeed | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Train a reader with (token dropout, state noise, rule head, readers in the model)
    ``variant[:4]``, the class balance ``variant[6]`` and, with ``variant[7]``, the sentence
    vectors of ``sentence`` as a second input; its softmax outputs on the evaluation texts
    (class [E,C], params {name: [E,V]})."""
    import keras

    from training.config import TrainConfig
    from training.reader import ReaderSet, fit_reader, pack_rows
    from training.ruleparams import RULE_PARAMS

    keras.utils.set_random_seed(seed)
    cfg = TrainConfig.model_validate(
        {
            "token_dropout": variant[0],
            "state_noise": variant[1],
            "rule_head": variant[2],
            "readers": variant[3],
            "reader_class_balance": variant[6],
        }
    )
    factors = classes if cfg.rule_head == "factorized" else None
    feed = sentence if variant[7] else None
    if variant[7] and feed is None:
        raise ValueError("a variant with sentence input needs the sentence vectors")
    model = _model(len(classes), cfg.state_noise, factors, cfg.readers, feed is not None)
    cls_of = np.array([classes.index(c) for c in train.cls], np.int32)
    par_of = np.array(train.params, np.int32).reshape(len(train.texts), len(RULE_PARAMS))
    fit_reader(model, table, ReaderSet(ix_train, cls_of, par_of), epochs, seed, cfg, feed)
    slots = MODEL_SPEC.max_rules
    rows = pack_rows(len(ix_eval), slots)
    present = rows >= 0
    table_rows = np.where(present, ix_eval[np.maximum(rows, 0)], -1)
    states, masks = table.gather(table_rows)
    feeds = {MODEL_SPEC.rules_input: states, MODEL_SPEC.rule_mask_input: masks}
    if feed is not None:
        feeds.update(feed(table_rows))
    outs = model.predict_on_batch(feeds)
    keep = present.reshape(-1)

    def flat(name: str) -> np.ndarray:
        out = np.asarray(outs[name])
        return out.reshape(-1, out.shape[-1])[keep]

    cls = flat(MODEL_SPEC.rule_output)
    params = {p: flat(p) for p in RULE_PARAMS}
    keras.backend.clear_session()
    return cls, params


def ensemble(
    members: Sequence[tuple[np.ndarray, dict[str, np.ndarray]]],
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The readings of several readers of the same texts, averaged (class and every parameter
    softmax), as argmaxes: class [E], params {name: [E]}."""
    cls = np.mean([m[0] for m in members], axis=0).argmax(-1)
    params = {p: np.mean([m[1][p] for m in members], axis=0).argmax(-1) for p in members[0][1]}
    return cls, params


def score(
    data: ReaderData, classes: list[str], cls: np.ndarray, params: dict[str, np.ndarray]
) -> dict[tuple[str, str, str], dict[str, float]]:
    """(class, language, wording) -> frames and the share of them whose rule was read right."""

    hit: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for i, w in data.weights.items():
        ok = read_right(data, i, classes, cls, params)
        for key, n in w.items():
            hit[key][0] += n
            hit[key][1] += n * int(ok)
    return {k: {"frames": n, "read": right / n} for k, (n, right) in sorted(hit.items())}


def unsure_share(
    data: ReaderData, classes: list[str], probs: np.ndarray, threshold: float
) -> dict[tuple[str, str], float]:
    """(language, wording) -> the share of readable rule occurrences read as not understood or
    with the top class below ``threshold`` (core.defaults.READING_THRESHOLD: the node's
    reading check looks again at such a rule and flags the frame when its runner-up would
    change the decision): a proxy, with no frames, of the readable rule sets the node flags.
    ``probs``: the class softmax of ``data``'s texts [E, C]."""
    nu = classes.index(NOT_UNDERSTOOD)
    unsure = (probs.argmax(-1) == nu) | (probs.max(-1) < threshold)
    tally: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for i, where in data.readable.items():
        for key, n in where.items():
            tally[key][0] += n
            tally[key][1] += n * int(unsure[i])
    return {k: bad / n for k, (n, bad) in sorted(tally.items())}


def score_constructions(
    data: ReaderData,
    classes: list[str],
    cls: np.ndarray,
    params: dict[str, np.ndarray],
    wording: str = "held-out",
) -> dict[str, dict[str, float]]:
    """Per generator construction of the evaluation texts of ``wording``: the frames they
    target and the share of those whose rule was read right. A kind's cell can be one
    construction read wrongly on every frame (a negation, say); the kind's share hides which."""
    hit: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for i, w in data.weights.items():
        n = sum(f for key, f in w.items() if key[2] == wording)
        if n:
            c = hit[data.constructions.get(i, "unknown")]
            c[0] += n
            c[1] += n * int(read_right(data, i, classes, cls, params))
    return {c: {"frames": n, "read": right / n} for c, (n, right) in sorted(hit.items())}


WORST_SHOWN = 4  # held-out constructions named per variant, worst first
MIN_CONSTRUCTION_FRAMES = 10  # fewer targeted frames: too noisy to name as the worst


def worst_constructions(per_seed: Sequence[dict[str, dict[str, float]]]) -> str:
    """The constructions read worst on the worst seed of each (at least
    MIN_CONSTRUCTION_FRAMES targeted frames), worst first, with their frames."""
    worst: dict[str, tuple[float, int]] = {}
    for res in per_seed:
        for c, x in res.items():
            if x["frames"] >= MIN_CONSTRUCTION_FRAMES and (
                c not in worst or x["read"] < worst[c][0]
            ):
                worst[c] = (x["read"], int(x["frames"]))
    ranked = sorted(worst.items(), key=lambda cx: (cx[1][0], cx[0]))[:WORST_SHOWN]
    return ", ".join(f"`{c}` {_fmt(r)} ({n})" for c, (r, n) in ranked) or "n/a"


def read_right(
    data: ReaderData,
    i: int,
    classes: list[str],
    cls: np.ndarray,
    params: dict[str, np.ndarray],
    k: int | None = None,
) -> bool:
    """Text ``i`` of ``data``, predicted at row ``k`` (default ``i``), read right: its class,
    and for a rule that binds the car every parameter it names."""
    from training.ruleparams import RULE_PARAMS

    k = i if k is None else k
    ok = classes[int(cls[k])] == data.cls[i]
    if ok and data.cls[i] not in NOT_READ:
        ok = all(
            lab < 0 or int(params[p][k]) == lab
            for p, lab in zip(RULE_PARAMS, data.params[i], strict=True)
        )
    return ok


def withheld_families(data: ReaderData, seed: int = WITHHOLD_SEED) -> set[str]:
    """One family of every concept that has at least three among the training texts (a
    concept: a family id less its last part, ``en.stop`` of ``en.stop.halt``), drawn with
    ``seed``. ``--withhold`` trains without the texts that use them and scores the reader on
    those texts: a held-out test made of training families only, for choosing between variants
    without looking at the real held-out split."""
    by_concept: dict[str, set[str]] = defaultdict(set)
    for fams in data.families:
        for f in fams:
            if "." in f:
                by_concept[f.rsplit(".", 1)[0]].add(f)
    rng = np.random.default_rng(seed)
    return {
        sorted(members)[int(rng.integers(len(members)))]
        for _, members in sorted(by_concept.items())
        if len(members) >= 3
    }


def score_withheld(
    data: ReaderData,
    ix: np.ndarray,
    withheld: set[str],
    classes: list[str],
    cls: np.ndarray,
    params: dict[str, np.ndarray],
) -> Withheld:
    """Over the withheld texts ``ix`` of ``data`` (predictions in the same order): the share
    read right, and the worst family's share (each text counts for every withheld family it
    uses)."""
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    right = 0
    for k, i in enumerate(ix):
        ok = read_right(data, int(i), classes, cls, params, k)
        right += ok
        for f in set(data.families[int(i)]) & withheld:
            per[f][0] += 1
            per[f][1] += ok
    if not per:
        raise DataError("no training text uses a withheld family")
    family, (n, ok_n) = min(per.items(), key=lambda kv: (kv[1][1] / kv[1][0], kv[0]))
    return Withheld(len(ix), right / len(ix), ok_n / n, family)


def add_corpus(train: ReaderData, path: Path, withheld: set[str]) -> int:
    """Add a rule corpus's texts (training.reader.load_rule_corpus) to ``train``, less those
    using a withheld family; returns how many new texts it added."""
    from training.reader import load_rule_corpus

    corpus = load_rule_corpus(path)
    if withheld and not all(corpus.families):
        raise DataError(
            f"rule corpus {path}: not every line names its wording families, so --withhold "
            "cannot keep withheld families out of training; write it again with "
            "`ruledrive rule-corpus`"
        )
    before = len(train.texts)
    for text, cls, par, fams in zip(
        corpus.texts, corpus.classes, corpus.params, corpus.families, strict=True
    ):
        if not set(fams) & withheld:
            train.add(text, cls, par, fams)
    return len(train.texts) - before


PROBE_SPLIT = "test"  # the recipe's split whose targeted rules ``--probe`` re-words


def probe_wording(path: Path) -> str:
    """The wording name a ``--probe`` file's renderings are scored under."""
    return f"probe {path.stem}"


def add_probe(out: ReaderData, samples: Sequence[Any], path: Path, classes: Sequence[str]) -> int:
    """Re-word each targeted rule that binds every vehicle with the templates of ``path``, as
    ``bench wording`` does by default (its frames, file format and draws:
    ``bench_wording.reworded``), and count each rendering's frame under the wording
    :func:`probe_wording` in ``out``; returns the frames counted. The rendered rule keeps its
    class and parameters, so reading it right is what ``bench wording`` asks of the model."""
    from ruledrive.bench_wording import load_templates, reworded
    from training.ruleparams import param_labels

    wording, frames = probe_wording(path), 0
    for _, m, lang, text in reworded(samples, load_templates(path, tuple(classes))):
        kind = m["class"]
        i = out.add(text, kind, param_labels(m))
        key = (kind, lang, wording)
        w = out.weights.setdefault(i, {})
        w[key] = w.get(key, 0) + 1
        frames += 1
    if not frames:
        raise DataError(f"--probe {path}: no targeted rule of the test split has a template")
    return frames


def _load(work: Path, keep: str | None = None) -> tuple[ReaderData, ReaderData, list[Any]]:
    """(training texts, evaluation texts with their targeted frames, the samples of the
    evaluation split ``keep``: none when not asked for) of the recipe's data."""
    from ruledrive.recipe import TRAIN_SETS
    from ruledrive.recipe_card import WORDING_SPLITS
    from training.data import load_samples

    missing = [n for n in (*TRAIN_SETS, *WORDING_SPLITS) if not (work / "data" / n).is_dir()]
    if missing:
        raise ConfigError(
            f"--work {work}: no {', '.join(missing)} under {work / 'data'}; the recipe's data "
            f"comes from `ruledrive train-default --work {work}`"
        )
    train = collect(load_samples([work / "data" / n for n in TRAIN_SETS]))
    evals = ReaderData()
    kept: list[Any] = []
    for name, wording in WORDING_SPLITS.items():
        samples = load_samples([work / "data" / name])
        collect(samples, wording, evals)
        if name == keep:
            kept = list(samples)
    if not train.texts or not evals.weights:
        raise DataError(f"--work {work}: no labelled rule texts (bilingual recipe data needed)")
    return train, evals, kept


def _table(work: Path, texts: list[str], layer: int | None = None) -> Any:
    """The texts' encoder states after ``layer`` (None: the last), cached in ``work``: one
    file per layer, so comparing layers does not re-encode the other's cache."""
    from perception.rule_encoder import RuleEncoder
    from training.config import TrainConfig
    from training.data import RuleTable

    encoder = RuleEncoder.load(Path(TrainConfig().encoder_dir), "cpu", cache_size=0, layer=layer)
    name = "rule-table-reader.npz" if encoder.layer is None else f"rule-table-reader-L{layer}.npz"
    return RuleTable.build(texts, encoder, work / name)


def _fmt(v: float) -> str:
    return f"{100 * v:.1f} %"


# (token dropout, state noise, rule head, readers in the model, trained readers averaged,
# encoder layer: None for the last, not named; the reader's class balance; sentence input)
Variant = tuple[float, float, str, int, int, int | None, float, bool]
Scores = dict[tuple[str, str, str], dict[str, float]]


def _label(v: Variant) -> str:
    head = "" if v[2] == "flat" else f", {v[2]} rule head"
    inside = "" if v[3] == 1 else f", {v[3]} readers in the model"
    members = "" if v[4] == 1 else f", {v[4]} trained readers averaged"
    layer = "" if v[5] is None else f", encoder layer {v[5]}"
    balance = "" if v[6] == 0 else f", class balance {v[6]:g}"
    sentence = ", sentence vectors" if v[7] else ""
    return (
        f"token dropout {v[0]:g}, state noise {v[1]:g}"
        f"{head}{inside}{members}{layer}{balance}{sentence}"
    )


def _probe_note(args: argparse.Namespace, probes: dict[str, tuple[int, int]]) -> list[str]:
    if not probes:
        return []
    files = ", ".join(f"`{p}`" for p in args.probe)
    parts = "; ".join(
        f"{w}: {frames} frames, {seen} of them ({seen / frames:.1%}) a training text verbatim"
        for w, (frames, seen) in probes.items()
    )
    return [
        "",
        f"`--probe` {files}: on the {PROBE_SPLIT} split's frames where one rule that binds every "
        "vehicle decides, that rule re-worded by the file's templates (`ruledrive bench "
        f"wording`'s draws) and scored as read right or not, per kind and language ({parts}). "
        "Reading is not deciding: a misread rule may still be flagged by the node (`bench "
        "wording` says what the node answers).",
    ]


def _report(
    args: argparse.Namespace,
    results: dict[Variant, list[Scores]],
    constructions: dict[Variant, list[dict[str, dict[str, float]]]],
    withheld: dict[Variant, list[Withheld]],
    n_train: int,
    n_corpus: int,
    n_eval: int,
    seconds: float,
    probes: dict[str, tuple[int, int]] | None = None,
    unsure: dict[Variant, list[dict[tuple[str, str], float]]] | None = None,
) -> str:
    variants = list(results)
    head = "| figure | " + " | ".join(_label(v) for v in variants) + " |"
    lines = [head, "|---" * (len(variants) + 1) + "|"]
    if withheld:
        n_texts = withheld[variants[0]][0].texts
        lines.append(
            f"| withheld training families ({n_texts} texts): read right, per seed | "
            + " | ".join(" / ".join(_fmt(w.read) for w in withheld[v]) for v in variants)
            + " |"
        )
        lines.append(
            "| withheld training families: worst family, per seed | "
            + " | ".join(
                " / ".join(f"{_fmt(w.worst)} ({w.worst_family})" for w in withheld[v])
                for v in variants
            )
            + " |"
        )
    probes = probes or {}
    for wording in ("training", "held-out", *probes):
        for lang in ("en", "zh"):
            worst_row, mean_row = [], []
            for v in variants:
                per_seed = [
                    [x["read"] for k, x in res.items() if k[1] == lang and k[2] == wording]
                    for res in results[v]
                ]
                worst = [min(s) for s in per_seed if s]
                means = [float(np.mean(s)) for s in per_seed if s]
                worst_row.append(
                    " / ".join(_fmt(w) for w in worst) + f" (worst {_fmt(min(worst))})"
                    if worst
                    else "n/a"
                )
                mean_row.append(" / ".join(_fmt(m) for m in means) if means else "n/a")
            what = f"{wording} wording, {lang}, per seed"
            lines.append(f"| worst kind, {what} | " + " | ".join(worst_row) + " |")
            lines.append(f"| mean over kinds, {what} | " + " | ".join(mean_row) + " |")
    unsure = unsure or {}
    splits = ("training", "held-out") if unsure else ()  # the reader's flag proxy, when measured
    for wording, lang in itertools.product(splits, ("en", "zh")):
        cells = [
            " / ".join(_fmt(u.get((lang, wording), float("nan"))) for u in unsure[v])
            for v in variants
        ]
        lines.append(
            f"| readable rules read unsure (top class < {READING_THRESHOLD:g}) or as not "
            f"understood, {wording} split, {lang}, per seed | " + " | ".join(cells) + " |"
        )
    lines.append(
        "| held-out wording: constructions read worst (worst seed; targeted frames) | "
        + " | ".join(worst_constructions(constructions[v]) for v in variants)
        + " |"
    )
    kinds = sorted({k for res in results[variants[-1]] for k in res})
    cols = " | ".join(f"worst seed, {_label(v)}" for v in variants)
    per_kind = [f"| kind | language | wording | frames | {cols} |"]
    per_kind.append("|---|---|---|---|" + "---|" * len(variants))
    for k in kinds:
        cells = [_fmt(min(res[k]["read"] for res in results[v] if k in res)) for v in variants]
        frames = int(results[variants[-1]][0][k]["frames"])
        per_kind.append(f"| {k[0]} | {k[1]} | {k[2]} | {frames} | " + " | ".join(cells) + " |")
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    withhold_note = (
        [
            "",
            "`--withhold`: one family of every concept with at least three among the training "
            f"texts (rng seed {WITHHOLD_SEED}) is set aside; every variant trains without the "
            "texts that use one and is scored on them (read right: class and parameters), a "
            "held-out test made of training data only, on which to choose a variant. Every "
            "row comes from these readers, so the real held-out split's rows (for reporting, "
            "not for choosing) are of a reader trained on fewer texts than without it.",
        ]
        if withheld
        else []
    )
    return "\n".join(
        [
            f"Command: `{bench_command('reader')}`  ",
            f"Date: {date}; machine: {platform.machine()}, CPython {platform.python_version()}; "
            f"data: `{args.work}/data` ({n_train} distinct training rule texts"
            + (f", {n_corpus} of them from the rule corpus `{args.corpus}`" if n_corpus else "")
            + f", {n_eval} evaluation texts); seeds {', '.join(map(str, args.seeds))}; "
            f"{args.epochs} epochs; {seconds / 60:.1f} min in all.",
            *withhold_note,
            *_probe_note(args, probes),
            "",
            "Share of targeted frames whose rule the reader alone reads right (class, and for a "
            "rule that binds the car every parameter it names), per rule kind; per seed, "
            "separated by /:",
            "",
            *lines,
            "",
            *per_kind,
        ]
    )


def _add_probes(
    args: argparse.Namespace,
    evals: ReaderData,
    train: ReaderData,
    classes: list[str],
    samples: list[Any],
) -> dict[str, tuple[int, int]]:
    """The ``--probe`` files' renderings of the targeted rules of ``samples`` (the
    PROBE_SPLIT's) added to ``evals``: wording -> (frames, frames whose rendering is a training
    text verbatim: memory, not reading)."""
    if not args.probe:
        return {}
    known = set(train.texts)
    probes: dict[str, tuple[int, int]] = {}
    for path in args.probe:
        wording = probe_wording(path)
        if wording in probes:
            raise ConfigError(f"--probe: two files named {path.stem}")
        frames = add_probe(evals, samples, path, classes)
        seen = sum(
            n
            for i, w in evals.weights.items()
            if evals.texts[i] in known
            for key, n in w.items()
            if key[2] == wording
        )
        probes[wording] = (frames, seen)
    return probes


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    train, evals, probe_samples = _load(args.work, PROBE_SPLIT if args.probe else None)
    # Withheld families are drawn from the splits' texts alone, so runs with and without a
    # corpus set aside the same families and are scored on the same texts.
    held: set[str] = withheld_families(train) if args.withhold else set()
    aside_list = [bool(set(f) & held) for f in train.families]
    n_corpus = add_corpus(train, args.corpus, held) if args.corpus else 0
    aside = np.array(aside_list + [False] * (len(train.texts) - len(aside_list)), bool)
    if held:
        log.info(
            "withheld %d families: %d of %d training texts", len(held), aside.sum(), len(aside)
        )
    classes = sorted(set(train.cls) | set(NOT_READ))
    n_eval = len(evals.texts)  # the splits' own texts; the probes' renderings are counted apart
    probes = _add_probes(args, evals, train, classes, probe_samples)
    all_texts = sorted(set(train.texts) | set(evals.texts))
    unknown = sorted(set(evals.cls) - set(classes))
    if unknown:
        raise DataError(f"evaluation rule classes never trained on: {unknown}")
    # A table's rows are its sorted texts, whatever the layer: the indices hold for every one.
    index = {t: i for i, t in enumerate(all_texts)}
    ix_all = np.array([index[t] for t in train.texts], np.int32)
    ix_train, ix_aside = ix_all[~aside], np.flatnonzero(aside)
    kept = ReaderData()
    for i in np.flatnonzero(~aside):
        kept.add(train.texts[i], train.cls[i], train.params[i], train.families[i])
    ix_eval = np.array([index[t] for t in evals.texts], np.int32)
    ix_read = np.concatenate([ix_eval, ix_all[ix_aside]])
    results: dict[Variant, list[Scores]] = {}
    constructions: dict[Variant, list[dict[str, dict[str, float]]]] = {}
    withheld: dict[Variant, list[Withheld]] = {}
    unsure: dict[Variant, list[dict[tuple[str, str], float]]] = {}
    grid = [
        (d, n, h, r, b, v)
        for d in args.token_dropout
        for n in args.state_noise
        for h in args.rule_head
        for r in args.readers
        for b in args.class_balance
        for v in args.sentence_input
    ]
    sentence = None
    if any(args.sentence_input):
        from training.sentence import vectors

        sentence = SentenceFeed(vectors(all_texts, args.work / SENTENCE_CACHE))
    e = len(ix_eval)
    table: Any = None
    for layer in args.encoder_layer:
        table = None  # one table in memory at a time (~1 GB for the recipe's texts)
        table = _table(args.work, all_texts, layer)
        for (d, n, h, r, b, v), seed in itertools.product(grid, args.seeds):
            single: Variant = (d, n, h, r, 1, layer, b, v)
            # Member m of an ensemble trains with seed + 1000 m, so member 0 is the single
            # reader of this seed and an ensemble of k adds k - 1 readers to it.
            readings = [
                _train_and_read(
                    table,
                    kept,
                    ix_train,
                    ix_read,
                    classes,
                    single,
                    seed + 1000 * m,
                    args.epochs,
                    sentence,
                )
                for m in range(max(args.members))
            ]
            for k in args.members:
                variant = (d, n, h, r, k, layer, b, v)
                cls, params = ensemble(readings[:k])
                read = {n: v[:e] for n, v in params.items()}
                results.setdefault(variant, []).append(score(evals, classes, cls[:e], read))
                probs = np.mean([m[0] for m in readings[:k]], axis=0)[:e]
                unsure.setdefault(variant, []).append(
                    unsure_share(evals, classes, probs, READING_THRESHOLD)
                )
                constructions.setdefault(variant, []).append(
                    score_constructions(evals, classes, cls[:e], read)
                )
                if held:
                    got = score_withheld(
                        train,
                        ix_aside,
                        held,
                        classes,
                        cls[e:],
                        {n: v[e:] for n, v in params.items()},
                    )
                    withheld.setdefault(variant, []).append(got)
            took = time.perf_counter() - t0
            log.info("%s, seed %d: done at %.0f s", _label(single), seed, took)
    text = _report(
        args,
        results,
        constructions,
        withheld,
        len(kept.texts),
        n_corpus,
        n_eval,
        time.perf_counter() - t0,
        probes,
        unsure,
    )
    publish(args, HEADING_WITHHELD if held else HEADING, text)
    return 0


def _numbers(value: str) -> list[float]:
    """A comma-separated list of numbers; empty or unparsable is a usage error."""
    try:
        numbers = [float(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {value!r}") from exc
    if not numbers:
        raise argparse.ArgumentTypeError(f"no number given: {value!r}")
    return numbers


def _rates(value: str) -> list[float]:
    rates = _numbers(value)
    if any(not 0.0 <= r < 1.0 for r in rates):
        raise argparse.ArgumentTypeError(f"rates must be in [0, 1): {value!r}")
    return rates


def _in_unit_interval(what: str) -> Callable[[str], list[float]]:
    """A parser of comma-separated numbers in [0, 1], named ``what`` in its error."""

    def parse(value: str) -> list[float]:
        got = _numbers(value)
        if any(not 0.0 <= v <= 1.0 for v in got):
            raise argparse.ArgumentTypeError(f"{what} must be in [0, 1]: {value!r}")
        return got

    return parse


_noises = _in_unit_interval("noise stds")
_balances = _in_unit_interval("class balance exponents")


def _heads(value: str) -> list[str]:
    heads = [v.strip() for v in value.split(",") if v.strip()]
    if not heads or any(h not in ("flat", "factorized") for h in heads):
        raise argparse.ArgumentTypeError(f"rule heads are flat and factorized: {value!r}")
    return heads


def _members(value: str) -> list[int]:
    sizes = _seeds(value)
    if any(k < 1 or k > 9 for k in sizes):
        raise argparse.ArgumentTypeError(f"numbers of readers must be 1 to 9: {value!r}")
    return sorted(set(sizes))


def _readers(value: str) -> list[int]:
    """Numbers of readers in one model: each must be a TrainConfig.readers the model accepts
    (checked here, before the data is read, not when the first model is built)."""
    from pydantic import ValidationError

    from training.config import TrainConfig

    sizes = _seeds(value)
    for k in sizes:
        try:
            TrainConfig(readers=k)
        except ValidationError as exc:
            msg = exc.errors()[0]["msg"]
            raise argparse.ArgumentTypeError(f"readers {k}: {msg}") from exc
    return sorted(set(sizes))


def _layers(value: str) -> list[int | None]:
    """Encoder layers, 1 to 99 (the encoder's own count is checked when it loads)."""
    layers = _seeds(value)
    if any(k < 1 or k > 99 for k in layers):
        raise argparse.ArgumentTypeError(f"encoder layers are 1 to 99: {value!r}")
    return list(dict.fromkeys(layers))


def _switches(value: str) -> list[bool]:
    """Comma-separated 0 and 1, each once at most."""
    got = [v.strip() for v in value.split(",") if v.strip()]
    if not got or any(v not in ("0", "1") for v in got):
        raise argparse.ArgumentTypeError(f"a list of 0 and 1: {value!r}")
    return list(dict.fromkeys(v == "1" for v in got))


def _seeds(value: str) -> list[int]:
    try:
        seeds = [int(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of integers: {value!r}") from exc
    if not seeds:
        raise argparse.ArgumentTypeError("no seed given")
    return seeds


def register_bench(bench_sub: argparse._SubParsersAction) -> None:
    p = bench_sub.add_parser(
        "reader", help="the rule reader alone: held-out wording read right, per kind"
    )
    p.add_argument("--work", type=Path, default=Path("runs/v2"), help="the recipe's --work")
    p.add_argument("--seeds", type=_seeds, default=[1, 2], help="comma-separated")
    p.add_argument(
        "--token-dropout", type=_rates, default=[0.15], help="comma-separated rates to compare"
    )
    p.add_argument(
        "--state-noise",
        type=_noises,
        default=[0.0],
        help="comma-separated stds of the training noise on the token states to compare",
    )
    p.add_argument(
        "--rule-head",
        type=_heads,
        default=["flat"],
        help="comma-separated rule heads to compare: flat, factorized (TrainConfig.rule_head)",
    )
    p.add_argument(
        "--corpus",
        type=Path,
        help="also train on this rule corpus (`ruledrive rule-corpus`), as the recipe does",
    )
    p.add_argument(
        "--withhold",
        action="store_true",
        help="also train without one family per concept and score on its texts (for choosing)",
    )
    p.add_argument(
        "--readers",
        type=_readers,
        default=[1],
        help="comma-separated numbers of readers inside one model, trained together on their "
        "averaged reading (TrainConfig.readers), to compare",
    )
    p.add_argument(
        "--members",
        type=_members,
        default=[1],
        help="comma-separated numbers of readers (seeds seed, seed+1000, ...) whose readings "
        "are averaged, to compare (1: one reader)",
    )
    p.add_argument(
        "--encoder-layer",
        type=_layers,
        default=[None],
        help="comma-separated text-encoder layers whose token states the reader reads, to "
        "compare (TrainConfig.encoder_layer; default: the last)",
    )
    p.add_argument(
        "--class-balance",
        type=_balances,
        default=[0.0],
        help="comma-separated exponents of the reader's class-loss weights (mean count / class "
        "count)^x, to compare (TrainConfig.reader_class_balance; 0: unweighted)",
    )
    p.add_argument(
        "--sentence-input",
        type=_switches,
        default=[False],
        help="comma-separated 0/1: whether the reader also reads each rule's USE-m-v3 sentence "
        "vector (training.sentence; vectors cached in --work), to compare; bench only",
    )
    p.add_argument(
        "--probe",
        type=Path,
        nargs="+",
        help="template files (`bench wording`'s format): also score the reader on the test "
        "split's targeted rules re-worded by each",
    )
    p.add_argument("--epochs", type=positive_int, default=20)
    add_doc_flags(p)
    p.set_defaults(func=run)
