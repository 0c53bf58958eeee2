"""Reading rules without frames: the rule corpus, and training the rule reader on its own.

The fused model reads each rule into a symbolic form (``training.model._read_rules``) and decides
from that form. The recipe's training splits hold ~13,500 distinct rule texts, each seen with
the 5-15 frames of its rule set. A rule corpus (``ruledrive rule-corpus``, drawn by
``simulator.language.rule_corpus`` from the training families only) adds rule texts with their
meaning and no frame: rule texts are cheap, frames are not. With ``TrainConfig.reader_epochs``,
the reader (the text encoder and the per-rule heads, a sub-model sharing the whole model's
layers) first trains on the training splits' rule texts and the corpus; then the whole model
trains as before, the reader included. ``ruledrive bench reader`` trains the reader alone with
the same loop (:func:`fit_reader`).

A corpus line is one JSON object: ``text``, ``class`` (a rule class, ``simulator.oracle``) and
``rule`` (its parameters, as a frame's ``rule_meta`` carries them; null for a rule nobody can
read). A line marked ``held_out`` is refused: held-out wording is for evaluation only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bus.schema import MAX_RULE_CHARS
from core.errors import DataError
from perception.modelmeta import NOT_UNDERSTOOD
from perception.spec import MODEL_SPEC
from training.data import RuleTable, hide_tokens
from training.ruleparams import RULE_PARAMS, param_labels

__all__ = [
    "ReaderSet",
    "RuleCorpus",
    "class_weights",
    "fit_reader",
    "load_rule_corpus",
    "pack_rows",
    "reader_of",
    "readers_of",
]


class _Line(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    text: str = Field(min_length=1)
    cls: str = Field(alias="class", min_length=1)
    rule: dict[str, Any] | None
    held_out: bool = False
    families: list[str] = Field(default_factory=list)  # the wording's families, when given


@dataclass(frozen=True)
class RuleCorpus:
    """Distinct rule texts of a corpus file, their class names and parameter labels."""

    texts: list[str]
    classes: list[str]
    params: list[list[int]]  # per text, training.ruleparams.param_labels
    families: list[tuple[str, ...]]  # per text, its wording families (none in an old file)
    digest: str  # of the file's bytes: part of the training data's fingerprint


def load_rule_corpus(path: str | Path) -> RuleCorpus:
    """Read a corpus file (JSON lines); a bad line is a DataError naming the file and line."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DataError(f"rule corpus {p}: cannot read it: {exc}") from exc
    seen: dict[str, int] = {}
    texts: list[str] = []
    classes: list[str] = []
    params: list[list[int]] = []
    families: list[tuple[str, ...]] = []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_no = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"rule corpus {p}, line {line_no}: not UTF-8 text") from exc
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = _Line.model_validate(json.loads(line))
        except ValidationError as exc:
            e = exc.errors(include_url=False)[0]
            msg = f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}"
            raise DataError(f"rule corpus {p}, line {n}: not a corpus record ({msg})") from exc
        except ValueError as exc:  # not JSON
            msg = str(exc).splitlines()[0]
            raise DataError(f"rule corpus {p}, line {n}: not a corpus record ({msg})") from exc
        why = _unusable(rec)
        if why:
            raise DataError(f"rule corpus {p}, line {n}: {why}")
        if rec.held_out:
            raise DataError(
                f"rule corpus {p}, line {n}: held-out wording ({rec.text!r}) is for evaluation "
                "only and must not train"
            )
        if rec.text in seen:
            if classes[seen[rec.text]] != rec.cls:
                raise DataError(
                    f"rule corpus {p}, line {n}: {rec.text!r} is {rec.cls} here and "
                    f"{classes[seen[rec.text]]} on an earlier line"
                )
            continue
        seen[rec.text] = len(texts)
        texts.append(rec.text)
        classes.append(rec.cls)
        params.append(param_labels({"rule": rec.rule}))
        families.append(tuple(rec.families))
    if not texts:
        raise DataError(f"rule corpus {p}: no rule texts in it")
    return RuleCorpus(texts, classes, params, families, hashlib.sha256(raw).hexdigest()[:16])


def _unusable(rec: _Line) -> str | None:
    """Why a corpus record cannot train the reader, or None: a text longer than the node takes,
    a class that contradicts the rule it describes, a parameter outside the reader's vocabulary
    (it would be dropped without a word)."""
    if len(rec.text) > MAX_RULE_CHARS:
        return f"a rule of {len(rec.text)} characters (the contract takes {MAX_RULE_CHARS})"
    if rec.rule is None or rec.cls in ("not_binding", NOT_UNDERSTOOD):
        return None
    kind, variant = rec.rule.get("kind"), rec.rule.get("variant") or ""
    if kind is not None and rec.cls not in (kind, f"{kind}:{variant}"):  # some variants name it
        return f"class {rec.cls!r} does not match its rule (kind {kind!r}, variant {variant!r})"
    for name, label in zip(RULE_PARAMS, param_labels({"rule": rec.rule}), strict=True):
        if label < 0:
            return f"{name} {rec.rule.get(name.removeprefix('rule_'))!r} is not one it reads"
    return None


@dataclass(frozen=True)
class ReaderSet:
    """What the reader trains on: rule-table rows with their labels (-1 = not trained on)."""

    rows: np.ndarray  # int32 [U], into the RuleTable
    classes: np.ndarray  # int32 [U], into the model's rule classes
    params: np.ndarray  # int32 [U, P]

    def __len__(self) -> int:
        return len(self.rows)


def readers_of(model: Any) -> int:
    """How many rule readers a model (or a reader of one) has (training.model._read_rules
    names each one's class layer ``rule_classes_r<i>`` when there are several)."""
    names = {layer.name for layer in model.layers}
    n = 0
    while f"{MODEL_SPEC.rule_output}_r{n}" in names:
        n += 1
    return max(n, 1)


def reader_of(model: Any) -> Any:
    """The reader of a whole model as a model of its own (rule states and mask, and the
    sentence vectors where the model has them -> rule classes and parameters), sharing the
    whole model's layers: training it trains them."""
    import keras

    from training.model import reading_outputs

    s = MODEL_SPEC
    ins = {t.name: t for t in model.inputs}
    outs = {
        m: model.get_layer(m).output
        for members in reading_outputs(readers_of(model)).values()
        for m in members
    }
    reads = [ins[s.rules_input], ins[s.rule_mask_input]]
    if s.rule_sentence_input in ins:  # TrainConfig.sentence_input
        reads.append(ins[s.rule_sentence_input])
    return keras.Model(reads, outs, name="rule_reader")


def pack_rows(n: int, slots: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices 0..n-1 packed ``slots`` per row (-1 = empty slot); shuffled when ``rng``."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    pad = (-n) % slots
    return np.concatenate([order, np.full(pad, -1)]).reshape(-1, slots).astype(np.int32)


def class_weights(classes: np.ndarray, power: float) -> np.ndarray:
    """Per class index, the weight of its rules in the reader's class loss: (mean count over
    the classes present / its count)^``power`` over ``classes`` (labels, -1 = not trained on);
    all 1 at ``power`` 0. float32 [max label + 1]."""
    labels = np.asarray(classes)
    counts = np.bincount(labels[labels >= 0], minlength=int(labels.max(initial=0)) + 1)
    out = np.ones(len(counts), np.float32)
    seen = counts > 0
    if power > 0 and seen.any():
        out[seen] = (counts[seen].mean() / counts[seen]) ** power
    return out


def fit_reader(
    reader: Any,
    table: RuleTable,
    data: ReaderSet,
    epochs: int,
    seed: int,
    cfg: Any,
    extra: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None,
) -> None:
    """Train ``reader`` (:func:`reader_of`, or ``bench reader``'s own) on ``data``: rule texts
    packed five to a row as the model sees them, the class and parameter losses weighted as in
    the whole model (``cfg``: a TrainConfig), token dropout at ``cfg.token_dropout``, Adam with
    a cosine decay over the run. ``extra``, for a reader with more inputs than the token
    states (``bench reader --sentence-input``): the table rows of a batch [B, R] (-1: no rule)
    -> those inputs by name."""
    import keras

    from training.model import member_targets, reading_losses

    if len(data) == 0:
        raise DataError("the rule reader has no labelled rule text to train on")
    s = MODEL_SPEC
    slots = s.max_rules
    per_epoch = int(np.ceil(len(data) / slots / cfg.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate, decay_steps=epochs * per_epoch, alpha=cfg.min_lr_ratio
    )
    # Its outputs are the reading's (one reader) or every reader's own (reading_outputs).
    readers = readers_of(reader)
    losses, weights = reading_losses(readers, cfg.rule_loss_weight, cfg.param_loss_weight)
    reader.compile(optimizer=keras.optimizers.Adam(schedule), loss=losses, loss_weights=weights)
    rng = np.random.default_rng(seed)
    balance = class_weights(data.classes, cfg.reader_class_balance)
    for _ in range(epochs):
        rows = pack_rows(len(data), slots, rng)
        for b in range(0, len(rows), cfg.batch_size):
            local = rows[b : b + cfg.batch_size]
            present = local >= 0
            which = np.where(present, local, 0)
            rows_of = np.where(present, data.rows[which], -1)
            split = (cfg.split_words, rng) if cfg.split_words > 0.0 else ()
            states, masks = table.gather(rows_of, *split)
            if cfg.token_dropout > 0.0:
                hide_tokens(states, masks, cfg.token_dropout, rng)
            cls = data.classes[which]
            y = {s.rule_output: np.maximum(cls, 0)}
            w = {s.rule_output: (present & (cls >= 0)) * balance[np.maximum(cls, 0)]}
            par = data.params[which]
            for k, name in enumerate(RULE_PARAMS):
                lab = par[..., k]
                y[name] = np.maximum(lab, 0)
                w[name] = (present & (lab >= 0)).astype(np.float32)
            y, w = member_targets(y, w, readers)
            feeds = {s.rules_input: states, s.rule_mask_input: masks}
            feeds.update(table.sentence_feeds(rows_of))
            if extra is not None:
                feeds.update(extra(rows_of))
            reader.train_on_batch(feeds, y, sample_weight=w)
