"""Train a model's sentence reader (perception.sentence_reader) and attach it to the model.

The head reads a rule's class from its USE-m-v3 sentence vector: Dense(256, GELU) -> dropout
0.2 -> Dense(C) softmax, cross-entropy, Adam (2e-3), 20 epochs, batch 128, trained on the
distinct rule texts the decision model trained on (its recordings and its rule corpus) with
their oracle classes. Trained after the decision model, which it does not change: the node
averages the two readings (perception.sentence_reader.fuse).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import NPZ_ERRORS, ConfigError, DataError, ModelError
from core.paths import open_npz, save_npz
from perception.sentence_reader import (
    DIM,
    INPUT,
    META_KEY,
    OUTPUT,
    SentenceEncoder,
    head_graph,
    metadata_value,
)

__all__ = [
    "HeadConfig",
    "attach_sentence_reader",
    "cache_beside",
    "fit_head",
    "labelled_texts",
    "vectors",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeadConfig:
    seed: int = 1234
    epochs: int = 20
    batch_size: int = 128
    learning_rate: float = 2e-3
    hidden: int = 256
    dropout: float = 0.2
    weight: float = 0.5  # the head's share of the averaged reading (chosen on withheld families)
    mode: str = "average"  # perception.sentence_reader.SentenceReaderSpec.mode


def labelled_texts(
    data: Sequence[Path], corpus: Path | None, classes: Sequence[str]
) -> tuple[list[str], np.ndarray]:
    """Distinct rule texts with a known class among ``classes`` in the recordings ``data`` and
    the rule corpus, and their class indices."""
    from training.data import load_samples, rule_classes_of
    from training.reader import load_rule_corpus

    index = {c: i for i, c in enumerate(classes)}
    seen: dict[str, int] = {}
    for s in load_samples(list(data)):
        for text, cls in zip(s.rules, rule_classes_of(s), strict=False):
            if cls is not None and cls in index:
                seen.setdefault(text, index[cls])
    if corpus is not None:
        c = load_rule_corpus(corpus)
        for text, cls in zip(c.texts, c.classes, strict=True):
            if cls in index:
                seen.setdefault(text, index[cls])
    if not seen:
        raise DataError("no labelled rule texts in the given recordings or corpus")
    missing = sorted(set(classes) - {classes[i] for i in seen.values()})
    if missing:
        raise DataError(f"no training text of rule classes {missing}")
    texts = sorted(seen)
    return texts, np.array([seen[t] for t in texts], np.int32)


def cache_beside(rule_cache: Path) -> Path:
    """The sentence vectors' cache kept beside a rule table's cache (``rule-table.npz`` ->
    ``rule-table.sentences.npz``): one per rule table, so workers never share one."""
    return rule_cache.with_suffix(".sentences.npz")


def vectors(texts: Sequence[str], cache: Path | None = None) -> np.ndarray:
    """USE-m-v3 vectors [n, 512] of ``texts``, reusing and updating an .npz ``cache`` of them."""
    have: dict[str, np.ndarray] = {}
    if cache is not None and cache.suffix != ".npz":
        raise ConfigError(f"sentence cache {cache}: must be an .npz file")
    if cache is not None and cache.exists():
        try:
            with open_npz(cache) as z:
                vecs = z["vectors"]
                if vecs.ndim != 2 or vecs.shape[1] != DIM:
                    raise ValueError(f"vectors of shape {vecs.shape}, not [n, {DIM}]")
                have = dict(zip(z["texts"].tolist(), vecs, strict=True))
        except NPZ_ERRORS as exc:
            raise ConfigError(
                f"sentence cache {cache}: not a cache of this command ({exc})"
            ) from exc
    todo = [t for t in texts if t not in have]
    if todo:
        encoder = SentenceEncoder(threads=2, cache_size=0)
        log.info("sentence vectors: %d texts to encode (%d cached)", len(todo), len(have))
        for i in range(0, len(todo), 512):  # the encoder encodes each text alone
            chunk = todo[i : i + 512]
            have.update(zip(chunk, encoder.encode(chunk), strict=True))
        if cache is not None:  # written whole or not at all, as the rule table's cache
            keys = sorted(have)
            save_npz(cache, texts=np.array(keys), vectors=np.stack([have[k] for k in keys]))
    return np.stack([have[t] for t in texts]).astype(np.float32).reshape(len(texts), DIM)


def fit_head(x: np.ndarray, y: np.ndarray, n_classes: int, cfg: HeadConfig) -> bytes:
    """Train the head on vectors ``x`` [n, 512] and classes ``y`` [n]; its ONNX graph, checked
    against Keras on the training vectors (max abs diff <= 1e-4)."""
    import onnxruntime as ort

    try:
        import keras
    except ImportError as exc:
        raise ConfigError(
            "training a sentence reader needs the training extra: pip install -e '.[train]'"
        ) from exc
    keras.utils.set_random_seed(cfg.seed)
    model = keras.Sequential(
        [
            keras.Input((DIM,)),
            keras.layers.Dense(cfg.hidden, activation="gelu"),
            keras.layers.Dropout(cfg.dropout),
            keras.layers.Dense(n_classes, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.learning_rate), loss="sparse_categorical_crossentropy"
    )
    model.fit(x, y, epochs=cfg.epochs, batch_size=cfg.batch_size, verbose=0)
    (w1, b1), (w2, b2) = (layer.get_weights() for layer in model.layers if layer.weights)
    graph = head_graph(w1, b1, w2, b2)
    probe = x[: min(len(x), 512)]
    want = np.asarray(model.predict(probe, verbose=0))
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    (got,) = session.run([OUTPUT], {INPUT: probe})
    diff = float(np.abs(got - want).max())
    if diff > 1e-4:
        raise ModelError(f"the sentence head's graph differs from Keras by {diff:.2e}")
    read = float((model.predict(x, verbose=0).argmax(1) == y).mean())
    log.info("sentence head: %d texts, %.2f %% read right (training texts)", len(x), 100 * read)
    keras.backend.clear_session()
    return graph


def attach_sentence_reader(
    model_path: Path,
    data: Sequence[Path],
    out: Path,
    corpus: Path | None = None,
    cfg: HeadConfig | None = None,
    cache: Path | None = None,
) -> dict[str, Any]:
    """Train the head on the model's training rules, attach it to ``model_path``, write ``out``.
    The model must have a reading graph (perception.splitgraph) and no sentence reader yet."""
    import onnx

    from perception.modelmeta import parse_metadata
    from perception.splitgraph import split_model
    from training.export import write_model

    cfg = cfg or HeadConfig()
    raw = model_path.read_bytes()
    try:
        model = onnx.load_from_string(raw)
    except Exception as exc:  # onnx raises DecodeError, ...
        raise ModelError(f"{model_path}: not an ONNX model ({exc})") from exc
    props = {p.key: p.value for p in model.metadata_props}
    meta = parse_metadata(props, source=str(model_path))
    if META_KEY in props:
        raise ModelError(f"{model_path}: has a sentence reader already")
    parts = split_model(raw)
    if parts is None or parts.reading is None:
        raise ModelError(f"{model_path}: no reading graph, so no sentence reader can be applied")
    texts, y = labelled_texts(data, corpus, meta.rule_classes)
    graph = fit_head(vectors(texts, cache), y, len(meta.rule_classes), cfg)
    entry = model.metadata_props.add()
    entry.key = META_KEY
    entry.value = metadata_value(graph, meta.rule_classes, cfg.weight, cfg.mode)
    data_bytes = model.SerializeToString()
    write_model(out, data_bytes)
    return {"texts": len(texts), "bytes": len(data_bytes), "head_bytes": len(graph)}
