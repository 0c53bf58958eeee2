"""The pretrained multilingual rule-text encoder, as the node and training run it.

``models/text-encoder/`` holds multilingual-e5-small (4-bit, vocabulary pruned to English +
Chinese) as ``model.onnx``, its ``tokenizer.json`` and a ``manifest.json`` with the files' sha256
(built by ``ruledrive encoder build``). :meth:`RuleEncoder.load` refuses a directory whose files
do not match their manifest, then creates one onnxruntime session.

A rule is encoded as ``"query: " + text`` (the e5 convention for symmetric similarity), with the
``tokenizers`` package (no PyTorch), to:

- :meth:`RuleEncoder.encode`: float32 [n, D], the mean of the token states over real tokens,
  L2-normalised (computed in the graph);
- :meth:`RuleEncoder.token_states`: the hidden states float32 [n, L, D] + mask [n, L], for
  a downstream model that must read numbers or negation precisely: the last layer's, or with
  ``layer=k`` those after layer k (added as a graph output in memory; the committed file is
  unchanged), or with ``layer=(6, 9, 12)`` those after each of several layers side by side,
  float32 [n, L, 3 x D] in the order given (one pass of the graph; the decision model's first
  projection learns its own mix). A decision model records the layers it was trained on in its
  encoder identity (:meth:`RuleEncoder.identity`, ``layer``: ``"9"`` or ``"6+9+12"``), and the
  node loads the encoder at those layers (:func:`encoder_layer`); the model's rule input is
  :attr:`RuleEncoder.width` wide.

The 4-bit weights are multiplied in float32 (``MatMulNBits`` accuracy level 1, set at load time):
the build's level 4 quantises the activations to int8 with kernels that differ by CPU (AVX2,
AVX512-VNNI), which moved token states by up to 0.018 and a replayed decision's probabilities
by 7e-3 between two machines; in float32 every CPU gives the same encoding to rounding, at
1.75x the time per rule (measured 11.3 against 6.4 ms per rule, one thread).

Texts missing from the cache are encoded together, padded, up to BATCH of similar length to a
run of the session: a text's token states (what the decision model reads) are the same to the
bit as when it runs alone, so they never depend on what it is encoded with; its sentence vector
(mean-pooled over the padded row) to a few 1e-8. Results are kept in an LRU cache per text, so a
rule set is encoded once, not per frame.
Any string encodes: empty, emoji, control characters, mixed scripts; lone surrogates are replaced
by ``?``. The encoder reads at most what the decision model reads (``read_tokens``, by default
MODEL_SPEC.max_rule_tokens = 40 with the prefix and the two special tokens): a longer text is
truncated to that, which changes no decision (a rule that fills all 40 is not understood,
:func:`read_in_part`) and bounds a rule's cost (a 200-character Chinese rule, ~200 tokens, took
~0.15 s; with one encoder thread per node, a fleet's long rules kept other vehicles' rule sets
waiting for seconds). ``read_tokens=None`` reads up to the manifest's ``max_tokens`` (512).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
import unicodedata
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnxruntime as ort

from core.errors import ConfigError, DataError, MessageError, ModelError
from core.rejects import RejectCode
from perception.spec import MODEL_SPEC, Layers, check_layers, parse_layers

__all__ = [
    "normalise",
    "read_in_part",
    "split_han_words",
    "garbled",
    "unreadable_script",
    "DEFAULT_ENCODER_DIR",
    "MANIFEST",
    "MANIFEST_FORMAT",
    "MODEL_FILE",
    "SPLIT_FORM",
    "SPLIT_SHARE",
    "TOKENIZER_FILE",
    "CacheInfo",
    "RuleEncoder",
    "TokenStates",
    "Layers",
    "encoder_layer",
    "encoder_providers",
    "layer_name",
    "state_width",
    "read_manifest",
]

DEFAULT_ENCODER_DIR = Path("models/text-encoder")
"""The committed encoder, relative to the repository root."""
MANIFEST, MODEL_FILE, TOKENIZER_FILE = "manifest.json", "model.onnx", "tokenizer.json"
MANIFEST_FORMAT = "ruledrive-text-encoder/1"
_CPU, _CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
_OUTPUTS = ("sentence_embedding", "token_states")
_LAYER_OUTPUT = "layer_states"  # + _k: the states after layer k (RuleEncoder.load(layer=k))
FLOAT32_ACCURACY = 1  # MatMulNBits accuracy_level: float32 activations, CPU-independent


def encoder_providers(requested: str, available: list[str] | None = None) -> list[str]:
    """Providers for ``cpu`` | ``auto`` (CUDA when this onnxruntime has it) | ``cuda`` (a
    ConfigError when it has not). TensorRT is not offered: the graph's 4-bit MatMulNBits is an
    onnxruntime contrib op."""
    available = list(ort.get_available_providers()) if available is None else available
    if requested == "cpu":
        return [_CPU]
    if requested not in ("auto", "cuda"):
        raise ConfigError(f"unknown encoder providers setting {requested!r} (cpu, auto, cuda)")
    if _CUDA in available:
        return [_CUDA, _CPU]
    if requested == "cuda":
        raise ConfigError(f"providers=cuda but this onnxruntime has only {', '.join(available)}")
    return [_CPU]


@dataclass(frozen=True)
class TokenStates:
    """Token-level output for n texts, padded to the longest (L tokens)."""

    ids: np.ndarray  # int64 [n, L] token ids (pad id where mask is 0)
    mask: np.ndarray  # int64 [n, L] 1 for real tokens (<s>, "query:", the text, </s>)
    states: np.ndarray  # float32 [n, L, D] last hidden states, zeros where mask is 0


class CacheInfo(NamedTuple):
    hits: int
    misses: int
    size: int
    maxsize: int


@dataclass(frozen=True)
class _Encoded:
    vector: np.ndarray  # float32 [D]
    ids: np.ndarray  # int64 [L]
    states: np.ndarray  # float32 [L, D]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of an encoder directory, after checking every file's size and sha256."""
    path = directory / MANIFEST
    if not directory.is_dir():
        raise ModelError(f"text encoder {directory}: no such directory (ruledrive encoder build)")
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ModelError(f"text encoder {directory}: no {MANIFEST}") from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"text encoder {path}: unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ModelError(f"text encoder {path}: not a {MANIFEST_FORMAT} manifest")
    try:
        for name in (MODEL_FILE, TOKENIZER_FILE):
            want = manifest["files"][name]
            f = directory / name
            if not f.is_file():
                raise ModelError(f"text encoder {directory}: {name} is missing")
            if f.stat().st_size != want["bytes"] or _sha256(f) != want["sha256"]:
                raise ModelError(
                    f"text encoder {f}: size or sha256 differs from {MANIFEST} "
                    "(changed or corrupt; rebuild with `ruledrive encoder build`)"
                )
        for key, kind in (("dim", int), ("vocab_size", int), ("max_tokens", int), ("prefix", str)):
            if not isinstance(manifest[key], kind):
                raise ModelError(f"text encoder {path}: {key} is not {kind.__name__}")
    except (KeyError, TypeError) as exc:
        raise ModelError(f"text encoder {path}: manifest lacks {exc}") from exc
    return manifest


def _float32_graph(path: Path, layers: Sequence[int] = ()) -> bytes:
    """The encoder graph with its 4-bit matrix products computed in float32 (see the module
    docstring: the same encoding on every CPU); with ``layers``, one more output per layer,
    ``layer_states_{k}``: the hidden states after layer k (1-based; its output layer norm, whose
    weights ``ruledrive encoder build`` names ``l{k - 1}.oln.w``)."""
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:
        if node.op_type == "MatMulNBits":
            for attr in node.attribute:
                if attr.name == "accuracy_level":
                    attr.i = FLOAT32_ACCURACY
    for layer in layers:
        weight = f"l{layer - 1}.oln.w"
        found = [
            n.output[0]
            for n in model.graph.node
            if n.op_type == "LayerNormalization" and len(n.input) > 1 and n.input[1] == weight
        ]
        if len(found) != 1:
            raise ModelError(f"text encoder {path}: no output of layer {layer} ({weight})")
        name = f"{_LAYER_OUTPUT}_{layer}"
        model.graph.node.append(onnx.helper.make_node("Identity", found, [name]))
        model.graph.output.append(
            onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        )
    return model.SerializeToString()


def _many(layer: Layers) -> tuple[int, ...]:
    """The layers named, as a tuple (none for the last layer alone)."""
    return () if layer is None else (layer,) if isinstance(layer, int) else layer


def layer_name(layer: Layers) -> str | None:
    """The identity's ``layer`` value: None, ``"9"`` or ``"6+9+12"``."""
    return None if layer is None else "+".join(map(str, _many(layer)))


def encoder_layer(identity: dict[str, str], source: str = "model") -> Layers:
    """The encoder layer(s) a decision model reads (its encoder identity's ``layer``: ``"9"`` or
    ``"6+9+12"``), or None for the last one (models from before the key: their identity has
    none)."""
    value = identity.get("layer")
    if value is None:
        return None
    try:
        return parse_layers(value)
    except ValueError as exc:
        raise ModelError(f"{source}: text encoder layer: {exc}") from exc


def state_width(layer: Layers, dim: int = MODEL_SPEC.rule_dim) -> int:
    """The width of the token states a model reading ``layer`` takes: ``dim`` a layer."""
    return dim * max(len(_many(layer)), 1)


def _layers(layer: Layers, last: Any, directory: Path) -> Layers:
    """``layer`` checked against the encoder's ``last`` layer: None for the last layer alone
    (the graph's own token_states: the same encoder, the same identity), else the layer or
    the tuple of layers."""
    if layer is None:
        return None
    try:
        checked = check_layers(layer if isinstance(layer, tuple) else (layer,))
    except ValueError as exc:
        raise ConfigError(f"text encoder layers: {exc}") from exc
    if not isinstance(last, int):
        raise ModelError(f"text encoder {directory}: its manifest names no layers")
    for k in _many(checked):
        if k > last:
            raise ConfigError(f"text encoder {directory} has layers 1 to {last}, not {k}")
    return None if checked == last else checked


class RuleEncoder:
    """One onnxruntime session + tokenizer + per-text LRU cache. Thread-safe."""

    BATCH = 16  # texts encoded in one run of the session (_run_many)

    def __init__(
        self,
        session: ort.InferenceSession,
        tokenizer: Any,
        manifest: dict[str, Any],
        cache_size: int = 256,
        layer: Layers = None,
        read_tokens: int | None = MODEL_SPEC.max_rule_tokens,
    ) -> None:
        if cache_size < 0:
            raise ConfigError("encoder cache_size must be >= 0")
        self.session = session
        self.tokenizer = tokenizer
        self.manifest = manifest
        self.dim: int = manifest["dim"]
        self.prefix: str = manifest["prefix"]
        if read_tokens is not None and read_tokens < 3:
            raise ConfigError(f"encoder read_tokens must be at least 3, not {read_tokens}")
        # The tokens a text is encoded with (prefix and special tokens included); more is cut.
        self.max_tokens: int = min(manifest["max_tokens"], read_tokens or manifest["max_tokens"])
        self.version: str = manifest["files"][MODEL_FILE]["sha256"][:12]
        # None: the last layer's states (``token_states``); k: those after layer k; a tuple:
        # those after each layer, side by side (the last layer's under its own output name).
        self.layer = layer
        last = manifest.get("layers")
        self._state_outputs = [
            _OUTPUTS[1] if k == last else f"{_LAYER_OUTPUT}_{k}" for k in _many(layer)
        ] or [_OUTPUTS[1]]
        # The width of a token's states as the decision model reads them.
        self.width: int = self.dim * len(self._state_outputs)
        # What a cache of encodings is valid for: these weights, computed this way, this layer,
        # from texts normalised this way (normalise).
        self.cache_key = (
            f"{manifest['files'][MODEL_FILE]['sha256']}/level{FLOAT32_ACCURACY}/{TEXT_FORM}"
            + ("" if layer is None else f"/layer{layer_name(layer)}")
            + ("" if self.max_tokens == manifest["max_tokens"] else f"/read{self.max_tokens}")
        )
        self.provider: str = session.get_providers()[0]
        self._cache: OrderedDict[str, _Encoded] = OrderedDict()
        self._maxsize = cache_size
        self._hits = self._misses = 0
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        directory: Path = DEFAULT_ENCODER_DIR,
        providers: str = "cpu",
        threads: int | None = None,
        cache_size: int = 256,
        layer: Layers = None,
        read_tokens: int | None = MODEL_SPEC.max_rule_tokens,
    ) -> RuleEncoder:
        """Check ``directory`` against its manifest and open it; ``threads`` sets onnxruntime's
        intra-op threads (None: its default, one per core); ``layer``: read the token states
        after this layer (1 .. the manifest's ``layers``; None or the last: the last layer's),
        or after each of a tuple of layers, side by side (:attr:`width`);
        ``read_tokens``: encode at most this many tokens of a text (module docstring)."""
        from tokenizers import Tokenizer

        directory = Path(directory)
        manifest = read_manifest(directory)
        if threads is not None and threads < 1:
            raise ConfigError("encoder threads must be >= 1")
        chosen = encoder_providers(providers)
        try:
            tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        except Exception as exc:  # the Rust library raises its own Exception type
            raise ModelError(f"text encoder {directory}: unreadable {TOKENIZER_FILE}") from exc
        if tokenizer.get_vocab_size() != manifest["vocab_size"]:
            raise ModelError(f"text encoder {directory}: tokenizer size differs from manifest")
        tokenizer.no_padding()
        cap = manifest["max_tokens"] if read_tokens is None else read_tokens
        tokenizer.enable_truncation(max_length=min(manifest["max_tokens"], cap))
        last = manifest.get("layers")
        layer = _layers(layer, last, directory)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # ORT's own fusion notes are not the user's business
        if threads is not None:
            opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(
                _float32_graph(directory / MODEL_FILE, [k for k in _many(layer) if k != last]),
                opts,
                chosen,
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(
                f"text encoder {directory}: onnxruntime cannot load it ({exc})"
            ) from exc
        names = [o.name for o in session.get_outputs()][: len(_OUTPUTS)]
        width = session.get_outputs()[0].shape[-1]
        if tuple(names) != _OUTPUTS or width != manifest["dim"]:
            raise ModelError(f"text encoder {directory}: outputs {names} do not match manifest")
        meta = session.get_modelmeta().custom_metadata_map
        if json.loads(meta.get("ruledrive.encoder.prefix", "null")) != manifest["prefix"]:
            raise ModelError(f"text encoder {directory}: model metadata differs from manifest")
        encoder = cls(session, tokenizer, manifest, cache_size, layer, read_tokens)
        encoder._run("")  # warm-up before serving
        return encoder

    def token_ids(self, text: str) -> list[int]:
        """Token ids of ``prefix + text`` with the special tokens, truncated to max_tokens."""
        ids: list[int] = self.tokenizer.encode(self.prefix + normalise(text)).ids
        return ids

    def split_ids(self, text: str) -> list[int]:
        """:meth:`token_ids` of ``text`` with words split into characters
        (:func:`split_han_words`, the same draw on every call): a second segmentation of a
        Chinese rule for training (TrainConfig.split_words); the node never reads one."""
        return split_han_words(self.token_ids(text), self.tokenizer, text, self.max_tokens)

    def encode_ids(
        self, ids: Sequence[Sequence[int]], max_tokens: int = MODEL_SPEC.max_rule_tokens
    ) -> tuple[np.ndarray, np.ndarray]:
        """Token states [n, max_tokens, width] and mask [n, max_tokens] of token id sequences
        as given (prefix and special tokens included; not cached): :meth:`encode_rule_set`'s
        arrays for ids that are not a text's own segmentation (:meth:`split_ids`)."""
        states = np.zeros((len(ids), max_tokens, self.width), np.float32)
        mask = np.zeros((len(ids), max_tokens), np.float32)
        for r, e in enumerate(self._run_ids([list(i) for i in ids])):
            n = min(len(e.ids), max_tokens)
            states[r, :n] = e.states[:n]
            mask[r, :n] = 1.0
        return states, mask

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length sentence vectors, float32 [n, D] (cached per text)."""
        rows = [e.vector for e in self._get_many(_texts(texts))]
        return np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)

    def token_states(self, texts: Sequence[str]) -> TokenStates:
        """Token-level states and mask of each text, padded to the longest (cached per text)."""
        items = self._get_many(_texts(texts))
        n, length = len(items), max((len(e.ids) for e in items), default=0)
        ids = np.full((n, length), self.manifest.get("pad_id", 1), np.int64)
        mask = np.zeros((n, length), np.int64)
        states = np.zeros((n, length, self.width), np.float32)
        for i, e in enumerate(items):
            ids[i, : len(e.ids)], mask[i, : len(e.ids)], states[i, : len(e.ids)] = (
                e.ids,
                1,
                e.states,
            )
        return TokenStates(ids=ids, mask=mask, states=states)

    def identity(self) -> dict[str, str]:
        """What a decision model trained on this encoder's outputs records and checks."""
        files = self.manifest["files"]
        ident = {
            "model_sha256": files[MODEL_FILE]["sha256"],
            "tokenizer_sha256": files[TOKENIZER_FILE]["sha256"],
            "prefix": self.prefix,
        }
        if self.layer is not None:  # the last layer's models carry no key (as before it)
            ident["layer"] = str(layer_name(self.layer))
        return ident

    def encode_rule_set(
        self,
        texts: Sequence[str],
        max_rules: int = MODEL_SPEC.max_rules,
        max_tokens: int = MODEL_SPEC.max_rule_tokens,
    ) -> tuple[np.ndarray, np.ndarray]:
        """A rule set as the decision model reads it: float32 states [max_rules, max_tokens, width]
        and mask [max_rules, max_tokens] (1 = a token; rows past the rules and tokens past
        ``max_tokens`` are zero). The one text path of training and the node.

        More rules than ``max_rules`` is a MessageError (``too_many_rules``)."""
        rules = _texts(texts)
        if len(rules) > max_rules:
            raise MessageError(
                RejectCode.TOO_MANY_RULES,
                f"{len(rules)} rules, the model takes at most {max_rules}",
            )
        states = np.zeros((max_rules, max_tokens, self.width), np.float32)
        mask = np.zeros((max_rules, max_tokens), np.float32)
        for r, e in enumerate(self._get_many(rules)):
            n = min(len(e.ids), max_tokens)
            states[r, :n] = e.states[:n]
            mask[r, :n] = 1.0
        return states, mask

    def cache_info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(self._hits, self._misses, len(self._cache), self._maxsize)

    def cache_clear(self) -> None:
        with self._lock:
            self._cache.clear()
            self._hits = self._misses = 0

    def _get_many(self, texts: Sequence[str]) -> list[_Encoded]:
        """Each text's encoding: from the cache, or encoded with the others missing from it in
        one run of the session (:meth:`_run_many`). A lookup served without encoding counts as
        a hit, a second copy of a text in the same call too (cache on or off)."""
        got: dict[str, _Encoded] = {}
        with self._lock:
            for text in texts:
                hit = self._cache.get(text)
                if hit is not None:
                    self._cache.move_to_end(text)
                    got[text] = hit
            todo = list(dict.fromkeys(t for t in texts if t not in got))
            self._hits += len(texts) - len(todo)
            self._misses += len(todo)
        if todo:
            encoded = self._run_many(todo)
            got.update(zip(todo, encoded, strict=True))
            with self._lock:
                if self._maxsize:
                    for text, e in zip(todo, encoded, strict=True):
                        self._cache[text] = e
                    while len(self._cache) > self._maxsize:
                        self._cache.popitem(last=False)
        return [got[t] for t in texts]

    def _run_many(self, texts: Sequence[str]) -> list[_Encoded]:
        """Encode ``texts`` together: padded to the longest (the attention mask hides the
        padding), BATCH texts of similar length to a run. A text's token states are the same,
        bit for bit, as when it is encoded alone (checked by tests/perception/
        test_rule_encoder.py); its sentence vector, pooled over a longer padded row, to a few 1e-8.
        On 2 cores, a training's rule table (two such calls at a time) encoded 1.3-1.5x as many
        texts a second as with one text a run, the same states to the bit (1,177 texts of the
        catalogue and the wording files, December 2026)."""
        return self._run_ids([self.token_ids(t) for t in texts])

    def _run_ids(self, ids: list[list[int]]) -> list[_Encoded]:
        """:meth:`_run_many` of token id sequences."""
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out: list[_Encoded | None] = [None] * len(ids)
        for start in range(0, len(order), self.BATCH):
            chunk = order[start : start + self.BATCH]
            width = max(len(ids[i]) for i in chunk)
            feed = np.full((len(chunk), width), self.manifest.get("pad_id", 1), np.int64)
            mask = np.zeros((len(chunk), width), np.int64)
            for row, i in enumerate(chunk):
                feed[row, : len(ids[i])], mask[row, : len(ids[i])] = ids[i], 1
            vec, *states = self.session.run(
                [_OUTPUTS[0], *self._state_outputs], {"input_ids": feed, "attention_mask": mask}
            )
            for row, i in enumerate(chunk):
                n = len(ids[i])
                parts = [s[row, :n] for s in states]  # copies: no cache entry holds a batch
                joined = parts[0].copy() if len(parts) == 1 else np.concatenate(parts, -1)
                out[i] = _Encoded(vector=vec[row].copy(), ids=feed[row, :n].copy(), states=joined)
        return [e for e in out if e is not None]

    def _run(self, text: str) -> _Encoded:
        return self._run_many([text])[0]


# Letters of the scripts the model reads (English and Chinese), by Unicode character name.
_READ_SCRIPTS = (
    "LATIN ",
    "FULLWIDTH LATIN ",
    "CJK UNIFIED IDEOGRAPH",
    "CJK COMPATIBILITY IDEOGRAPH",
)
# Above this share of letters in other scripts, a rule is not in a language the model reads.
_OTHER_SCRIPT_SHARE = 0.2
_MARKS = ("Mn", "Me")  # Unicode combining marks: non-spacing, enclosing
# Latin words broken up, as obfuscation, OCR or a damaged feed leaves them (checked on the
# NFKC form, so full-width letters count). A digit inside a word between two runs of at least
# two letters ("Ov3rtaking", "OVERT4KING"; not codes such as "A1M", "N3G", "exit12A", "4m50"),
# or a zero that starts a word of letters ("0VERTAKING"; no unit or ordinal starts with 0) ...
_DIGIT_IN_WORD = re.compile(r"[A-Za-z]{2,}[0-9]+[A-Za-z]{2,}|(?<![0-9.,:])0[A-Za-z]{3,}")
# ... or a word of three or more digit runs between letters other than x ("0V3RT4K3"; "2x2x2"
# is a size), or a word of three or more letters with a digit that looks like a letter (0 1 3 4
# 5 7) between two of them ("P4SS", "L4NE"; codes such as "A1M", "N3G", "L3e" have two letters,
# "CO2e" and "Euro6d" other digits).
_WORD = re.compile(r"[A-Za-z0-9]+")
_LOOKALIKE = re.compile(r"[A-Za-z][013457][A-Za-z]")
# Two lone letters in a row ("N o", "N-o", "N(o", "O V E R", "N-O"): a lone letter has no letter
# or digit beside it; "a", "A" and "I" are words; a letter after a number is a unit ("7.5 t",
# "7 h"); letters joined by a dot are an abbreviation ("p.m."); one beside a slash is a unit or
# a shorthand ("km/h", "w/ trailer"); one after an apostrophe ends a word ("don't U-turn");
# and lone letters right after "lane(s)" name lanes ("lanes B-D", "lane B (C is closed)").
_LONE = r"(?<![A-Za-z0-9.'’/])(?<![0-9] )[B-HJ-Zb-z](?![A-Za-z0-9/])"
_LONE_PAIR = re.compile(_LONE + r"[\s()*_\-–—]{1,2}" + r"(?<![A-Za-z])[B-HJ-Zb-z](?![A-Za-z0-9./])")
_AFTER_LANE = re.compile(r"\b(?:lanes?|ln)\s*$", re.I)
# A symbol inside a word: "over*take", "over_take", or an opening bracket inside a word that the
# text never closes ("trav(elling", "S(peed limit"; "vehicle(s)" and "closed(road works)" close
# theirs).
_SYMBOL_IN_WORD = re.compile(r"[A-Za-z][*_][A-Za-z]")
_BRACKET_IN_WORD = re.compile(r"[A-Za-z]\([A-Za-z]")


def garbled(text: str) -> bool:
    """True when a Latin word of ``text`` is broken up by a digit, by spaces or by a symbol
    (see the patterns above). An outside fuzzing pass's "N o overtaking", "N-o overtaking" and
    "S(peed limit 30 km/h" were read confidently (overtaking permitted, no limit) and decided
    with ``valid=true``; vowels written as digits ("0V3RT4K3", an OCR or leetspeak form) turned
    158 of 954 frames of an outside-written English probe into wrong decisions with
    ``valid=true``, against 49 for the same wording intact. Not caught (the model reads them
    about as well as intact): one space or a dropped letter inside a word ("OVERTAK ING",
    "OVERTAE"). No text of the rule language and none of the outside-written wording files
    trips it (docs/training.md, "Broken-up words")."""
    t = unicodedata.normalize("NFKC", text)
    if _DIGIT_IN_WORD.search(t) or _SYMBOL_IN_WORD.search(t):
        return True
    for word in _WORD.findall(t):
        letters = re.findall(r"[A-Za-z]+", word)
        if len(re.findall(r"[0-9]+", word)) >= 3 and any(set(x) - {"x", "X"} for x in letters):
            return True
        if sum(map(len, letters)) >= 3 and _LOOKALIKE.search(word):
            return True
    if t.count("(") > t.count(")") and _BRACKET_IN_WORD.search(t):
        return True
    return any(not _AFTER_LANE.search(t, 0, m.start()) for m in _LONE_PAIR.finditer(t))


def unreadable_script(text: str) -> bool:
    """True when a rule cannot be in a language the model reads, whatever the model makes of
    it: it has no letters at all (emoji, digits, punctuation: "🚗🚲", "50") or more than a fifth
    of its letters are of other scripts than Latin and Han (kana, Hangul, Cyrillic, Greek,
    Arabic, Devanagari, Thai, ...), or it holds a combining mark that no letter takes (one
    left after NFC composition: strikethrough "O\u0336v\u0336e\u0336r\u0336..." and underlined
    text, stacked "Zalgo" marks; neither English nor Chinese writes them, and an outside probe's
    struck-through "No overtaking" was read as a rule that binds nobody, confidently, so the car
    overtook; "cafe\u0301" composes to "café" and counts as a letter). The node flags such a
    rule ``rules_not_understood`` beside the rules its model flags; training's evaluation
    counts it the same way. Latin-script languages other than English, and all-Han Japanese,
    are the model's to flag. A rule whose Latin words are broken up (:func:`garbled`: "N o
    overtaking", "0V3RT4K3"), which the model read confidently and wrongly, is flagged here too."""
    letters = [c for c in text if unicodedata.category(c).startswith("L")]
    if not letters or garbled(text):
        return True
    if any(unicodedata.category(c) in _MARKS for c in unicodedata.normalize("NFC", text)):
        return True
    other = sum(1 for c in letters if not unicodedata.name(c, "").startswith(_READ_SCRIPTS))
    return other > _OTHER_SCRIPT_SHARE * len(letters)


def read_in_part(mask: np.ndarray) -> np.ndarray:
    """Per rule slot of ``mask`` [..., R, T] (encode_rule_set's), whether the rule fills every
    token slot the model reads: it may go on past them, and the model would decide on its first
    ``T`` tokens only ("Traffic order 2026/114 ... section 7 ...: No overtaking" read without
    its last words). The node flags such a rule ``rules_not_understood`` beside the rules its
    model flags, and training's evaluation counts it the same way. A rule of exactly ``T``
    tokens counts too (the mask cannot tell it from a longer one); the rule language's longest
    rules have 33 of the 40 (prefix and specials included)."""
    return np.asarray(mask)[..., -1] > 0


def _texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise DataError("rule texts must be a sequence of strings")
    return list(texts)


# Subword regularisation for Chinese (Kudo 2018, in its simplest form), a training-only second
# segmentation of a rule (TrainConfig.split_words): the tokenizer gives a Chinese word one piece
# where its vocabulary has one (可以 "may", 超过 "exceed", 不受 "not subject to"), so a reader
# trained on 可以 has never seen the piece 可 that a rule writing 可 alone is made of. Each piece
# of two or more Han characters is split into its characters' own pieces with this
# probability, a draw fixed by the text. The common characters have pieces of their own (the
# world's rules use none that lacks one); a word with a character that has none stays whole.
SPLIT_SHARE = 0.5
SPLIT_FORM = "split1"  # names split_han_words' draw: part of a cache key of split forms
_HAN_WORD = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]{2,}")


def split_han_words(ids: Sequence[int], tokenizer: Any, key: str, max_tokens: int) -> list[int]:
    """``ids`` (a text's token ids) with each piece of two or more Han characters replaced,
    with probability SPLIT_SHARE, by its characters' pieces (unchanged where a character has
    none; a piece that starts a word after a space, "▁第二", stays whole); the draw is fixed by
    ``key`` (the text), so a text has at most one split form. ``ids`` unchanged when the split
    form would be longer than ``max_tokens``: cut, it would lose its last words and fill every
    token slot, which the node answers as a rule read in part (read_in_part), and training
    would still label it with the whole rule's meaning."""
    rng = np.random.default_rng(zlib.crc32(key.encode("utf-8", "replace")))
    out: list[int] = []
    for i in ids:
        piece = tokenizer.id_to_token(int(i)) or ""
        chars = [tokenizer.token_to_id(c) for c in piece] if _HAN_WORD.fullmatch(piece) else []
        if chars and None not in chars and rng.random() < SPLIT_SHARE:
            out.extend(chars)
        else:
            out.append(int(i))
    return [int(i) for i in ids] if len(out) > max_tokens else out


# Names how normalise() writes a text; part of the cache key, so a change re-encodes caches.
TEXT_FORM = "shout1-cf-zs-t2s"
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_HAN_CHAR = re.compile(f"[{_HAN}]")


@functools.cache
def _simplified() -> Any:
    """OpenCC's traditional-to-simplified converter, built once per process."""
    import opencc

    return opencc.OpenCC("t2s")


_HAN_GAP = re.compile(f"(?<=[{_HAN}])\\s+(?=[{_HAN}])")  # any run of whitespace
_THIN_IN_WORD = re.compile(r"(?<=\w)[\u1680\u2000-\u200a\u202f\u205f]+(?=\w)")
_ODD_SPACE = re.compile(r"[^\S ]")  # whitespace other than the plain space
_SHOUT_MIN_LETTERS = 4  # "STOP" is shouted, "OK" is not
_SHOUT_SHARE = 2 / 3  # of the cased letters upper case: "NO U-TURN", not "CCTV in operation"


def normalise(text: str) -> str:
    """The text the encoder reads for a rule, on every path (training, evaluation, the node).

    Lone surrogates (from a bad JSON escape; the Rust tokenizer cannot take them) become ``?``.
    A *shouted* rule, as road signs and sign-recognition feeds write them ("YIELD TO
    PEDESTRIANS IN CROSSWALK", "SPEED LIMIT 70"), more than two thirds of its cased letters
    (at least four) upper case, is read in sentence case ("Yield to pedestrians in
    crosswalk"): the encoder's vocabulary is cased, upper-case words split into other pieces,
    and the model was trained on sentence case, so the same rule shouted was read as not
    understood. Any other text is unchanged (Chinese has no case; "CCTV in operation" keeps
    its acronym).

    Invisible format characters (Unicode category Cf: zero-width space, joiners, the byte-order
    mark, soft hyphen, bidirectional marks and overrides, tag characters) are removed: a reader
    of the sign never sees them, but the tokenizer did, and "N\u200bo overtaking" was read as
    overtaking *permitted* (an outside probe, thirty-eighth session). So are spaces the eye does
    not see as a break: between two Chinese characters (Chinese is written without them) and
    thin spaces inside a word ("N\u200ao overtaking", 禁\u200a止超车: read as permissions); any
    other space, tab or line break is one plain space.

    Chinese in traditional characters (Taiwan's and Hong Kong's signs: 第一車道封閉，請向右併線,
    紅燈時准許右轉) is read in simplified characters (OpenCC's t2s conversion, phrase by phrase):
    the model was trained on simplified Chinese only, and an outside probe's traditional rules
    were read as not understood or misread (fifty-second session). t2s leaves every text of the
    rule language unchanged (tests/perception/test_rule_encoder.py)."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    if any(unicodedata.category(c) == "Cf" for c in text):
        text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    if _ODD_SPACE.search(text) or _HAN_GAP.search(text):
        text = _ODD_SPACE.sub(" ", _THIN_IN_WORD.sub("", _HAN_GAP.sub("", text)))
    if _HAN_CHAR.search(text):
        text = _simplified().convert(text)
    cased = [c for c in text if c.isupper() or c.islower()]
    upper = sum(1 for c in cased if c.isupper())
    if len(cased) < _SHOUT_MIN_LETTERS or upper <= _SHOUT_SHARE * len(cased):
        return text
    lower = text.lower()
    first = next(i for i, c in enumerate(lower) if c.islower() or c.isupper())
    return lower[:first] + lower[first].upper() + lower[first + 1 :]
