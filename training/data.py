"""Training data: MCAP recordings -> in-memory arrays -> Keras batches.

Recordings come from ``ruledrive generate`` or from the bus recorder (when they carry labels);
both are read by ``bus.recording_reader.read_samples``. Frames go through
``perception.preprocess_jpeg`` and rule texts through ``RuleEncoder.encode_rule_set`` -- the
same functions the node calls. The frozen encoder runs once per distinct rule text
(:class:`RuleTable`, cached on disk), and batches gather its token states by index, so the
encoder never runs per frame here either.

Per sample the arrays hold the targets: the decision, each rule's class (what the rule is, or
``not_binding`` / ``not_understood``; -1 = unknown, not trained on), each rule's parameters
(training.ruleparams; -1 = unknown), what the frame side learns from the scene record (which
lanes a rule could name are the ego lane, the time of day, a school-zone sign; -1 = unknown),
and whether the picture is a road scene (negatives from
training.ood have no decision target).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bus.recording import Sample
from bus.recording_reader import read_samples
from bus.schema import DecisionLabel
from core.errors import NPZ_ERRORS, DataError, ImageDecodeError
from core.paths import open_npz, save_npz
from perception.image import DEFAULT_DECODE, preprocess_jpeg
from perception.neighbours import NeighbourIndex, build_index, sentence_vectors
from perception.rule_encoder import RuleEncoder
from perception.spec import MODEL_SPEC
from training.ruleparams import (
    EGO_LANE_OUTPUT,
    LANE_SPECS,
    RULE_PARAMS,
    SCHOOL_SIGN_OUTPUT,
    TIME_OUTPUT,
    param_labels,
    scene_labels,
)

__all__ = [
    "ArrayDataset",
    "RuleTable",
    "SPLIT_KEY",
    "SplitForms",
    "encode_samples",
    "fingerprint",
    "hide_tokens",
    "list_recordings",
    "load_samples",
    "neighbour_index",
    "require_rules",
    "rule_classes_of",
    "rule_meta_of",
    "sentence_feeds",
]

log = logging.getLogger(__name__)
_LABEL_INDEX = {lab: i for i, lab in enumerate(DecisionLabel)}
_N_SCENE = len(LANE_SPECS) + 2  # training.ruleparams.scene_labels
_S = MODEL_SPEC
# Frames per predict call (ArrayDataset.predict). A frame's rule states are 307 KB ([5,40,384]
# float32): all 16,000 frames of the recipe's evaluation splits at once are 4.9 GB, which Keras
# copies again, and the recipe's evaluation was OOM-killed on this 24 GB machine (December 2026).
PREDICT_CHUNK = 2048


def _label(sample: Sample) -> DecisionLabel:
    if sample.label is None:  # load_samples(require_labels=True) keeps these out
        raise DataError(f"frame {sample.vehicle_id}/{sample.frame_id} has no label")
    return DecisionLabel(sample.label)


@dataclass
class RuleTable:
    """Every distinct rule text once, with its encoder states (float16 to halve the memory)."""

    texts: list[str]
    states: np.ndarray  # float16 [U, T, D]
    masks: np.ndarray  # uint8 [U, T]
    index: dict[str, int] = field(default_factory=dict)
    # Seconds build() spent on texts its cache lacked (encoding them, saving the cache): the
    # one-time cost a later run on the same cache does not pay. Reading the cache is not in it.
    encode_seconds: float = 0.0
    # float32 [U, 512]: each text's sentence vector from the second encoder (add_sentences),
    # for a model with the sentence input (TrainConfig.sentence_input); None: not computed.
    sentences: np.ndarray | None = None
    # int [U]: the row of each text's split form (add_split_forms; -1: none), which training
    # reads in its place with probability TrainConfig.split_words (gather); None: not built.
    alt: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.index = {t: i for i, t in enumerate(self.texts)}

    @property
    def n_texts(self) -> int:
        """Rule texts in the table, less their split forms (add_split_forms)."""
        return len(self.texts) - (0 if self.alt is None else int((self.alt >= 0).sum()))

    def add_split_forms(self, encoder: RuleEncoder, cache: Path | None = None) -> int:
        """Encode the split form (RuleEncoder.split_ids: its Chinese words in characters) of
        every text that has one and add it as a row of its own, under the key
        ``SPLIT_KEY + text``, reusing and updating the .npz ``cache``; its time counts in
        encode_seconds. Returns how many texts have one. For training only (TrainConfig.
        split_words): no rule text of the node is read this way."""
        if self.sentences is not None:
            raise DataError("split forms of a table with sentence vectors are not supported")
        if self.alt is not None:
            raise DataError("this rule table already has its split forms")
        t0 = time.monotonic()
        ids = {t: s for t in self.texts if (s := encoder.split_ids(t)) != encoder.token_ids(t)}
        split = sorted(ids)  # as build() keeps its texts: the forms' rows come in this order
        forms = RuleTable.build(split, SplitForms(encoder, ids), cache)
        base = len(self.texts)
        self.alt = np.full(base + len(split), -1, np.int64)
        self.alt[[self.index[t] for t in split]] = base + np.arange(len(split))
        # One new array each, filled in place: np.concatenate of a reordered copy held ~0.7 GB
        # more at once for the recipe's table (1.8 + 0.7 GB).
        for name in ("states", "masks"):
            old = getattr(self, name)
            both = np.empty((base + len(split), *old.shape[1:]), old.dtype)
            both[:base] = old
            both[base:] = getattr(forms, name)
            setattr(self, name, both)
        self.texts = [*self.texts, *(SPLIT_KEY + t for t in split)]
        self.__post_init__()
        self.encode_seconds += time.monotonic() - t0
        log.info("rule table: %d of %d texts have a split form", len(split), base)
        return len(split)

    def add_sentences(self, cache: Path | None = None) -> None:
        """Compute every text's sentence vector (perception.sentence_reader, the node's
        encoder), reusing and updating the .npz ``cache``; its time counts in encode_seconds."""
        from training.sentence import vectors

        t0 = time.monotonic()
        self.sentences = vectors(self.texts, cache)
        self.encode_seconds += time.monotonic() - t0

    @classmethod
    def build(
        cls, texts: Iterable[str], encoder: RuleEncoder | SplitForms, cache: Path | None = None
    ) -> RuleTable:
        """Encode each distinct text with ``encoder.encode_rule_set`` (the node's path). With
        ``cache`` (an .npz), texts already encoded by the same encoder are read back."""
        wanted = sorted(set(texts))
        ident = encoder.cache_key
        known: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if cache is not None and cache.is_file():
            try:
                with open_npz(cache) as z:
                    if str(z["encoder"]) == ident:
                        # Each z[name] reads the whole array again: read each once.
                        c_states, c_masks = z["states"], z["masks"]
                        for i, t in enumerate(z["texts"].tolist()):
                            known[t] = (c_states[i], c_masks[i])
            except NPZ_ERRORS as exc:
                raise DataError(
                    f"rule cache {cache} is not a rule table ({type(exc).__name__}: "
                    f"{str(exc)[:120]}); delete it or name another"
                ) from exc
        t_max, dim = _S.max_rule_tokens, encoder.width
        states = np.zeros((len(wanted), t_max, dim), np.float16)
        masks = np.zeros((len(wanted), t_max), np.uint8)
        todo = [i for i, t in enumerate(wanted) if t not in known]
        log.info("rule table: %d texts, %d to encode", len(wanted), len(todo))
        for i, t in enumerate(wanted):
            if t in known:
                states[i], masks[i] = known[t]

        def some(rows: list[int]) -> None:
            s, m = encoder.encode_rule_set([wanted[i] for i in rows], max_rules=len(rows))
            states[rows], masks[rows] = s, m

        # Texts of similar length together, a batch of the encoder's to a call (one run of its
        # session: RuleEncoder._run_many), two calls at a time (onnxruntime releases the GIL).
        todo.sort(key=lambda i: len(wanted[i]))
        batches = [todo[k : k + encoder.BATCH] for k in range(0, len(todo), encoder.BATCH)]
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(some, batches))
        if cache is not None and todo:
            save_npz(
                cache, encoder=np.array(ident), texts=np.array(wanted), states=states, masks=masks
            )
        return cls(wanted, states, masks, encode_seconds=time.monotonic() - t0 if todo else 0.0)

    def gather(
        self, idx: np.ndarray, split: float = 0.0, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """int [B, R] rule indices (-1 = no rule) -> float32 states [B,R,T,D], mask [B,R,T].
        ``split`` (training only): read each rule that has a split form (add_split_forms) in
        that form with this probability, drawn from ``rng``."""
        if split > 0.0 and self.alt is not None:
            if rng is None:
                raise ValueError("split needs an rng")
            alt = self.alt[np.maximum(idx, 0)]
            idx = np.where((idx >= 0) & (alt >= 0) & (rng.random(idx.shape) < split), alt, idx)
        if not len(self.texts):  # no rule anywhere: every slot is empty
            t, d = self.states.shape[1:]
            return np.zeros((*idx.shape, t, d), np.float32), np.zeros((*idx.shape, t), np.float32)
        safe = np.maximum(idx, 0)
        present = (idx >= 0)[..., None]
        states = self.states[safe].astype(np.float32) * present[..., None]
        masks = self.masks[safe].astype(np.float32) * present
        return states, masks

    def sentence_feeds(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """int [B, R] rule indices -> the sentence-vector input {name: float32 [B,R,512]}
        (zero where there is no rule); empty when the table has no sentence vectors."""
        return {} if self.sentences is None else sentence_feeds(self.sentences, idx)


def sentence_feeds(vectors: np.ndarray, idx: np.ndarray) -> dict[str, np.ndarray]:
    """Rows ``idx`` [B, R] (-1 = no rule) of sentence ``vectors`` [U, 512] as the model's
    sentence-vector input {name: float32 [B,R,512]}, zero where there is no rule."""
    got = vectors[np.maximum(idx, 0)] * (idx >= 0)[..., None]
    return {_S.rule_sentence_input: got.astype(np.float32)}


SPLIT_KEY = "\x00split\x00"  # a split form's key in a RuleTable (no rule text has a NUL)


class SplitForms:
    """An encoder as RuleTable.build uses one, that encodes each text's split form
    (``ids``: RuleEncoder.split_ids of each text, made once by the caller) instead of the text:
    its cache key says so."""

    def __init__(self, encoder: RuleEncoder, ids: dict[str, list[int]]) -> None:
        from perception.rule_encoder import SPLIT_FORM

        self.encoder, self.ids = encoder, ids
        self.BATCH = encoder.BATCH
        self.width = encoder.width
        self.cache_key = f"{encoder.cache_key}/{SPLIT_FORM}"

    def encode_rule_set(
        self, texts: Sequence[str], max_rules: int
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.encoder.encode_ids([self.ids[t] for t in texts])


def hide_tokens(
    states: np.ndarray, masks: np.ndarray, rate: float, rng: np.random.Generator
) -> None:
    """Token dropout, in place: hide ``rate`` of each rule's tokens (mask and states zeroed),
    never a rule's first token, so a rule stays a rule and an empty slot stays empty.
    ``states`` [..., T, D], ``masks`` [..., T] float."""
    keep = rng.random(masks.shape) >= rate
    keep[..., 0] = True
    masks *= keep
    states *= masks[..., None]


@dataclass
class ArrayDataset:
    """Model-ready arrays plus the samples they came from (same order)."""

    images: np.ndarray  # [N,H,W,3] uint8
    rule_idx: np.ndarray  # [N,R] int32 into the RuleTable, -1 = no rule
    speeds: np.ndarray  # [N,1] float32
    labels: np.ndarray  # [N] int32, index into DecisionLabel (definition order)
    rule_cls: np.ndarray  # [N,R] int32 index into the rule classes, -1 = not trained on
    ood: np.ndarray  # [N] float32, 1 = not a road scene (a negative)
    table: RuleTable
    samples: list[Sample | None]  # None for a negative picture
    # [N,R,P] int32: per rule, an index into each training.ruleparams vocabulary, -1 = unknown.
    rule_par: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0), np.int32))
    # [N,S+2] int8, training.ruleparams.scene_labels: per LANE_SPECS entry, is it the ego lane;
    # the time of day's index; a school-zone sign (-1 = unknown).
    scene_lab: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int8))
    # More per-frame arrays [N, ...] that inputs() hands on by name, beside the model's feeds
    # (evaluation: the sentence reader's readings, perception.readcheck.SENTENCE_CLASSES).
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rule_par.shape[:2] != self.rule_idx.shape:
            self.rule_par = np.full((*self.rule_idx.shape, len(RULE_PARAMS)), -1, np.int32)
        if self.scene_lab.shape != (len(self.labels), _N_SCENE):
            self.scene_lab = np.full((len(self.labels), _N_SCENE), -1, np.int8)

    def __len__(self) -> int:
        return len(self.labels)

    def inputs(
        self,
        idx: np.ndarray | None = None,
        token_dropout: float = 0.0,
        rng: np.random.Generator | None = None,
        split_words: float = 0.0,
    ) -> dict[str, np.ndarray]:
        """The model's feeds for frames ``idx``. ``token_dropout`` (training only): hide that
        share of each rule's tokens, drawn from ``rng``, never a rule's first token, so a rule
        stays a rule and an empty slot stays empty; ``split_words`` (training only): read a
        rule in its split form with that probability (RuleTable.gather)."""
        idx = np.arange(len(self)) if idx is None else idx
        if split_words > 0.0 and rng is None:
            raise ValueError("split_words needs an rng")
        split = (split_words, rng) if split_words > 0.0 else ()
        states, masks = self.table.gather(self.rule_idx[idx], *split)
        if token_dropout > 0.0:
            if rng is None:
                raise ValueError("token_dropout needs an rng")
            hide_tokens(states, masks, token_dropout, rng)
        feeds = _S.feeds(self.images[idx], states, masks, self.speeds[idx])
        feeds.update(self.table.sentence_feeds(self.rule_idx[idx]))
        return {**feeds, **{name: v[idx] for name, v in self.extra.items()}}

    def predict(
        self,
        predict: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
        chunk: int | None = None,
    ) -> dict[str, np.ndarray]:
        """``predict`` over every frame, ``chunk`` frames at a time (so the rule states of a
        whole split are never gathered at once), outputs concatenated in frame order. By
        default PREDICT_CHUNK frames of one encoder layer's states, fewer for wider states
        (a model reading three layers side by side: an evaluation of 8,000 frames was killed
        by the kernel at 13 GB with 2,048 of them at once)."""
        if chunk is None:
            width = max(int(self.table.states.shape[-1]), _S.rule_dim)
            chunk = max(1, PREDICT_CHUNK * _S.rule_dim // width)
        parts = [
            predict(self.inputs(np.arange(i, min(i + chunk, len(self)))))
            for i in range(0, len(self), chunk)
        ]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def targets(self, idx: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(targets, sample weights) per output name: negatives carry no decision target, and
        rules of unknown class no rule target."""
        cls = self.rule_cls[idx]
        y = {
            _S.output: self.labels[idx],
            _S.rule_output: np.maximum(cls, 0),
            _S.ood_output: self.ood[idx][:, None],
        }
        w = {
            _S.output: (1.0 - self.ood[idx]).astype(np.float32),
            _S.rule_output: (cls >= 0).astype(np.float32),
            _S.ood_output: np.ones(len(idx), np.float32),
        }
        par = self.rule_par[idx]
        for k, name in enumerate(RULE_PARAMS):
            y[name] = np.maximum(par[..., k], 0)
            w[name] = (par[..., k] >= 0).astype(np.float32)
        sc = self.scene_lab[idx]
        lane, tod, sign = sc[:, : len(LANE_SPECS)], sc[:, -2], sc[:, -1]
        y[EGO_LANE_OUTPUT] = np.maximum(lane, 0).astype(np.float32)
        w[EGO_LANE_OUTPUT] = (lane[:, 0] >= 0).astype(np.float32)
        y[TIME_OUTPUT] = np.maximum(tod, 0).astype(np.int32)
        w[TIME_OUTPUT] = (tod >= 0).astype(np.float32)
        y[SCHOOL_SIGN_OUTPUT] = np.maximum(sign, 0).astype(np.float32)[:, None]
        w[SCHOOL_SIGN_OUTPUT] = (sign >= 0).astype(np.float32)
        return y, w

    def subset(self, idx: np.ndarray) -> ArrayDataset:
        return ArrayDataset(
            self.images[idx],
            self.rule_idx[idx],
            self.speeds[idx],
            self.labels[idx],
            self.rule_cls[idx],
            self.ood[idx],
            self.table,
            [self.samples[i] for i in idx],
            self.rule_par[idx],
            self.scene_lab[idx],
        )

    def batches(
        self,
        batch_size: int,
        shuffle: bool,
        seed: int,
        token_dropout: float = 0.0,
        readers: int = 1,
        split_words: float = 0.0,
    ) -> Any:
        """A keras.utils.PyDataset of (inputs, targets, weights) batches (``token_dropout``,
        ``split_words``: :meth:`inputs`, for training batches; ``readers``: the model's rule
        readers, whose outputs carry the reading targets, training.model.member_targets)."""
        import keras

        from training.model import member_targets

        data = self

        class _Batches(keras.utils.PyDataset):  # type: ignore[misc]
            def __init__(self) -> None:
                super().__init__(workers=1, use_multiprocessing=False)
                self.rng = np.random.default_rng(seed)
                self.order = np.arange(len(data))
                self.on_epoch_end()

            def __len__(self) -> int:
                return int(np.ceil(len(data) / batch_size))

            def __getitem__(self, i: int) -> Any:
                idx = np.sort(self.order[i * batch_size : (i + 1) * batch_size])
                y, w = member_targets(*data.targets(idx), readers)
                return data.inputs(idx, token_dropout, self.rng, split_words), y, w

            def on_epoch_end(self) -> None:
                if shuffle:
                    self.rng.shuffle(self.order)

        return _Batches()


def require_rules(samples: Sequence[Sample], paths: Sequence[str | Path]) -> None:
    """DataError when no frame of ``samples`` came with a rule set: the model decides a frame
    together with its rules, so such data trains or measures nothing of that (a recording made
    without the rules topic, for one)."""
    if samples and not any(s.rules for s in samples):
        raise DataError(
            f"no frame of {', '.join(map(str, paths))[:200]} has a rule set: the model decides "
            "frames together with their rules (record the rules topic too)"
        )


def list_recordings(paths: Sequence[str | Path], remote_ok: bool = False) -> list[Path]:
    """The recordings ``paths`` name, in the order training reads them (each directory's
    ``*.mcap`` sorted). With ``remote_ok`` a ``.mcap`` path that is not here is kept: it may be
    on another worker's disk (the worker it is assigned to checks it)."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(p.glob("*.mcap"))
            if not found:
                raise DataError(f"{p}: directory holds no .mcap recordings")
            files.extend(found)
        elif p.is_file() or (remote_ok and p.suffix == ".mcap"):
            files.append(p)
        else:
            raise DataError(f"{p}: no such recording or directory")
    return files


def load_samples(
    paths: Sequence[str | Path], max_samples: int | None = None, allow_truncated: bool = False
) -> list[Sample]:
    """Every labelled sample of the recordings (directories are searched for *.mcap); frames
    without a label are left out, with a warning per file (on the bus any vehicle may publish
    frames, and only the labeller labels: one unlabelled frame once made a whole recording
    unusable). A file without any labelled frame is a DataError.

    ``allow_truncated``: take the complete samples of a file cut short (a killed recorder) with a
    warning instead of rejecting it.
    """
    samples: list[Sample] = []
    for f in list_recordings(paths):
        every = list(read_samples([f], require_labels=False, allow_truncated=allow_truncated))
        got = [s for s in every if s.label is not None]
        if not got:
            raise DataError(f"{f}: recording has no labelled frames (record a label topic)")
        if len(got) < len(every):
            log.warning(
                "%s: %d of %d frames have no label and are left out",
                f,
                len(every) - len(got),
                len(every),
            )
        samples.extend(got)
        if max_samples is not None and len(samples) >= max_samples:
            return samples[:max_samples]
    return samples


def rule_meta_of(sample: Sample) -> list[Any]:
    """The frame's per-rule scene records (``rule_meta``), None each where there are none
    (recordings from the bus, or catalogue recordings made before the rule language)."""
    meta = (sample.scene or {}).get("rule_meta") if sample.scene else None
    if not isinstance(meta, list) or len(meta) != len(sample.rules):
        return [None] * len(sample.rules)
    return meta


def rule_classes_of(sample: Sample) -> list[str | None]:
    """Each rule's class from the frame's scene record, None where unknown."""
    return [m.get("class") if isinstance(m, dict) else None for m in rule_meta_of(sample)]


def _decode_or_error(jpeg: bytes, decode: str) -> np.ndarray | ImageDecodeError:
    try:
        return preprocess_jpeg(jpeg, decode)
    except ImageDecodeError as exc:
        return exc


def encode_samples(
    samples: Sequence[Sample],
    table: RuleTable,
    rule_classes: Sequence[str],
    negatives: Sequence[bytes] = (),
    decode: str = DEFAULT_DECODE,
) -> ArrayDataset:
    """Decode and encode samples with the shared preprocessing (threads: cv2 releases the GIL);
    ``negatives`` are JPEGs that are not road scenes (training.ood), added with no rules;
    ``decode``: training's, or the evaluated model's (perception.image.PREPROCESSINGS)."""
    if not samples and not negatives:
        raise DataError("empty data set: no samples to encode")
    unlabelled = [s for s in samples if s.label is None]
    if unlabelled:
        s = unlabelled[0]
        raise DataError(
            f"{len(unlabelled)} samples have no label (first: {s.vehicle_id}/{s.frame_id})"
        )
    too_many = [s for s in samples if len(s.rules) > _S.max_rules]
    if too_many:
        raise DataError(f"{len(too_many)} samples have more than {_S.max_rules} rules")
    jpegs = [s.jpeg for s in samples] + list(negatives)
    with ThreadPoolExecutor(max_workers=2) as pool:
        decoded = list(pool.map(partial(_decode_or_error, decode=decode), jpegs, chunksize=64))
    bad = [i for i, x in enumerate(decoded) if isinstance(x, ImageDecodeError)]
    if bad:
        i = bad[0]
        where = (
            f"frame {samples[i].frame_id} of {samples[i].vehicle_id}"
            + (f" in {samples[i].source}" if samples[i].source else "")
            if i < len(samples)
            else "a generated negative picture"
        )
        raise DataError(f"{len(bad)} frames cannot be decoded; the first, {where}: {decoded[i]}")
    images = np.stack(decoded)  # type: ignore[arg-type]
    n, r = len(jpegs), _S.max_rules
    rule_idx = np.full((n, r), -1, np.int32)
    rule_cls = np.full((n, r), -1, np.int32)
    rule_par = np.full((n, r, len(RULE_PARAMS)), -1, np.int32)
    scene_lab = np.full((n, _N_SCENE), -1, np.int8)  # negatives: unknown
    cls_index = {c: i for i, c in enumerate(rule_classes)}
    for i, s in enumerate(samples):
        for j, (text, cls) in enumerate(zip(s.rules, rule_classes_of(s), strict=True)):
            if text not in table.index:
                raise DataError(f"rule text {text[:60]!r} is not in the rule table")
            rule_idx[i, j] = table.index[text]
            rule_cls[i, j] = cls_index.get(cls, -1) if cls is not None else -1
        for j, meta in enumerate(rule_meta_of(s)):
            rule_par[i, j] = param_labels(meta)
        scene_lab[i] = scene_labels(s.scene)
    speeds = np.array([[s.speed_kph] for s in samples] + [[0.0]] * len(negatives), np.float32)
    labels = np.array(
        [_LABEL_INDEX[_label(s)] for s in samples] + [0] * len(negatives), dtype=np.int32
    )
    ood = np.array([0.0] * len(samples) + [1.0] * len(negatives), np.float32)
    return ArrayDataset(
        images,
        rule_idx,
        speeds,
        labels,
        rule_cls,
        ood,
        table,
        [*samples, *([None] * len(negatives))],
        rule_par,
        scene_lab,
    )


def neighbour_index(ds: ArrayDataset, **settings: int) -> NeighbourIndex:
    """The neighbour index (perception.neighbours) of ``ds``'s distinct rule texts with a known
    class; ``settings``: build_index's dim, k, min_votes. A ConfigError when too few."""
    labels = np.full(len(ds.table.texts), -1, np.int64)
    present = ds.rule_idx >= 0
    labels[ds.rule_idx[present]] = ds.rule_cls[present]
    known = np.flatnonzero(labels >= 0)
    vectors = sentence_vectors(ds.table.states[known], ds.table.masks[known])
    return build_index(vectors, labels[known], **settings)


def fingerprint(samples: Sequence[Sample]) -> str:
    """Content hash of a data set (frames, rules, speeds, labels), order-independent."""
    rows = sorted(
        hashlib.sha256(
            s.jpeg + repr((s.rules, round(s.speed_kph, 3), str(s.label))).encode()
        ).hexdigest()
        for s in samples
    )
    return hashlib.sha256("".join(rows).encode()).hexdigest()[:16]
