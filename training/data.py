"""Training data: MCAP recordings -> in-memory arrays -> tf.data pipelines.

Recordings come from ``ruledrive generate`` or from the bus recorder (when they carry labels);
both are read by ``bus.recording_reader.read_samples``. Frames go through
``perception.preprocess_jpeg`` and rule sets through ``perception.RuleTokenizer`` -- the same
function objects the node uses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bus.recording import Sample
from bus.recording_reader import read_samples
from bus.schema import DecisionLabel
from core.errors import DataError
from perception.image import preprocess_jpeg
from perception.spec import MODEL_SPEC
from perception.text import UNK_ID, RuleTokenizer, tokenize
from training.wordvectors import WordVectors

__all__ = [
    "KEEP_WORDS",
    "maskable_ids",
    "ArrayDataset",
    "build_tokenizer",
    "encode_samples",
    "fingerprint",
    "load_samples",
]

_TOKENS = MODEL_SPEC.rules_input
_LABEL_INDEX = {lab: i for i, lab in enumerate(DecisionLabel)}


def _label(sample: Sample) -> DecisionLabel:
    if sample.label is None:  # load_samples(require_labels=True) keeps these out
        raise DataError(f"frame {sample.vehicle_id}/{sample.frame_id} has no label")
    return DecisionLabel(sample.label)


@dataclass
class ArrayDataset:
    """Model-ready arrays plus the samples they came from (same order)."""

    images: np.ndarray  # [N,H,W,3] uint8
    tokens: np.ndarray  # [N,R,T] int32
    speeds: np.ndarray  # [N,1] float32
    labels: np.ndarray  # [N] int32, index into DecisionLabel (definition order)
    samples: list[Sample]

    def __len__(self) -> int:
        return len(self.labels)

    def inputs(self) -> dict[str, np.ndarray]:
        return MODEL_SPEC.feeds(self.images, self.tokens, self.speeds)

    def subset(self, idx: np.ndarray) -> ArrayDataset:
        return ArrayDataset(
            self.images[idx],
            self.tokens[idx],
            self.speeds[idx],
            self.labels[idx],
            [self.samples[i] for i in idx],
        )

    def to_tf(  # type: ignore[no-untyped-def]
        self,
        batch_size: int,
        shuffle: bool,
        seed: int,
        token_dropout: float = 0.0,
        tokenizer: RuleTokenizer | None = None,
        position_shift: int = 0,
    ):
        import tensorflow as tf

        ds = tf.data.Dataset.from_tensor_slices((self.inputs(), self.labels))
        if shuffle:
            ds = ds.shuffle(len(self), seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size)
        if position_shift > 0:
            shift_gen = tf.random.Generator.from_seed(seed + 1)

            def shift(x, y):  # type: ignore[no-untyped-def]
                t = x[_TOKENS]  # [B,R,T], each row's tokens first, padding after
                n_pos = tf.shape(t)[-1]
                room = n_pos - tf.reduce_sum(tf.cast(t != 0, tf.int32), axis=-1, keepdims=True)
                k = tf.minimum(
                    shift_gen.uniform(tf.shape(room), 0, position_shift + 1, tf.int32), room
                )  # [B,R,1]
                src = tf.range(n_pos) - k  # [B,R,T]: position j takes token j - k
                moved = tf.gather(t, tf.maximum(src, 0), batch_dims=2)
                return {**x, _TOKENS: tf.where(src >= 0, moved, tf.zeros_like(t))}, y

            ds = ds.map(shift, num_parallel_calls=1)
        if token_dropout > 0.0:
            if tokenizer is None:
                raise ValueError("token dropout needs the tokenizer")
            maskable = tf.constant(maskable_ids(tokenizer))
            gen = tf.random.Generator.from_seed(seed)

            def drop(x, y):  # type: ignore[no-untyped-def]
                t = x[_TOKENS]
                hit = gen.uniform(tf.shape(t)) < token_dropout
                t = tf.where(hit & tf.gather(maskable, t), tf.constant(UNK_ID, t.dtype), t)
                return {**x, _TOKENS: t}, y

            ds = ds.map(drop, num_parallel_calls=1)
        return ds.prefetch(tf.data.AUTOTUNE)


# Words whose loss would change what a rule means: never masked by token dropout.
KEEP_WORDS = frozenset(tokenize("left right centre no not"))


def maskable_ids(tokenizer: RuleTokenizer) -> np.ndarray:
    """bool [vocab]: which token ids token dropout may replace by <unk>."""
    return np.array(
        [
            i > UNK_ID and not w.isdigit() and w not in KEEP_WORDS
            for i, w in enumerate(tokenizer.vocab)
        ]
    )


def load_samples(
    paths: Sequence[str | Path], max_samples: int | None = None, allow_truncated: bool = False
) -> list[Sample]:
    """Every labelled sample of the recordings (directories are searched for *.mcap).

    ``allow_truncated``: take the complete samples of a file cut short (a killed recorder) with a
    warning instead of rejecting it.
    """
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(p.glob("*.mcap"))
            if not found:
                raise DataError(f"{p}: directory holds no .mcap recordings")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"{p}: no such recording or directory")
    samples: list[Sample] = []
    for f in files:
        got = list(read_samples([f], require_labels=True, allow_truncated=allow_truncated))
        if not got:
            raise DataError(f"{f}: recording has no labelled frames (record a label topic)")
        samples.extend(got)
        if max_samples is not None and len(samples) >= max_samples:
            return samples[:max_samples]
    return samples


def build_tokenizer(
    samples: Sequence[Sample], min_count: int = 1, table: WordVectors | None = None
) -> RuleTokenizer:
    """The training rules' vocabulary; with ``table``, its stems come first (see wordvectors)."""
    return RuleTokenizer.from_texts(
        (r for s in samples for r in s.rules),
        min_count=min_count,
        base=table.stems if table is not None else (),
    )


def encode_samples(samples: Sequence[Sample], tokenizer: RuleTokenizer) -> ArrayDataset:
    """Decode and encode samples with the shared preprocessing (threads: cv2 releases the GIL)."""
    if not samples:
        raise DataError("empty data set: no samples to encode")
    unlabelled = [s for s in samples if s.label is None]
    if unlabelled:
        s = unlabelled[0]
        raise DataError(
            f"{len(unlabelled)} samples have no label (first: {s.vehicle_id}/{s.frame_id})"
        )
    with ThreadPoolExecutor(max_workers=2) as pool:
        images = np.stack(list(pool.map(preprocess_jpeg, (s.jpeg for s in samples), chunksize=64)))
    tokens = np.stack([tokenizer.encode_rules(s.rules) for s in samples])
    speeds = np.array([[s.speed_kph] for s in samples], dtype=np.float32)
    labels = np.array([_LABEL_INDEX[_label(s)] for s in samples], dtype=np.int32)
    return ArrayDataset(images, tokens, speeds, labels, list(samples))


def fingerprint(samples: Sequence[Sample]) -> str:
    """Content hash of a data set (frames, rules, speeds, labels), order-independent."""
    rows = sorted(
        hashlib.sha256(
            s.jpeg + repr((s.rules, round(s.speed_kph, 3), str(s.label))).encode()
        ).hexdigest()
        for s in samples
    )
    return hashlib.sha256("".join(rows).encode()).hexdigest()[:16]
