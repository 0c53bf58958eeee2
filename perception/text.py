"""Rule-text tokenizer: the one text path used by training and the node.

A rule set is a list of 0..max_rules rule strings. Each rule becomes a row of ``max_tokens``
token ids (0 = padding, 1 = unknown word); the model pools over rows, so rule order does not
matter. The vocabulary is built from training rule texts and travels inside the ONNX metadata.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import snowballstemmer

from core.errors import ConfigError, MessageError
from core.rejects import RejectCode
from perception.spec import MODEL_SPEC

__all__ = ["NORMALISER", "PAD_ID", "UNK_ID", "WORD_RE", "RuleTokenizer", "tokenize"]

PAD_ID = 0
UNK_ID = 1
# What a word is: lower-case letter runs and digit runs (the table in training/wordvectors.py
# is built over the same words).
WORD_RE = re.compile(r"[a-z]+|\d+")
# Words are reduced to their Snowball (Porter 2) stems, so a rewording that changes only a
# word's form ("turning ... allowed after stopping" vs "turn ... allow after stop") reads the
# same. The id travels in the tokenizer JSON; a model built with another normaliser is refused.
NORMALISER = "snowball-english"
_STEMMER = snowballstemmer.stemmer("english")


def tokenize(text: str) -> list[str]:
    """Lower-case word stems and digit runs; punctuation and units' slashes are dropped.

    "School zones: 30 km/h" -> ["school", "zone", "30", "km", "h"].
    """
    return [w if w.isdigit() else _STEMMER.stemWord(w) for w in WORD_RE.findall(text.lower())]


class RuleTokenizer:
    """Word-level vocabulary with fixed-shape encoding of rule sets."""

    def __init__(
        self,
        vocab: Sequence[str],
        max_rules: int = MODEL_SPEC.max_rules,
        max_tokens: int = MODEL_SPEC.max_tokens,
    ) -> None:
        if len(vocab) < 2 or vocab[PAD_ID] != "<pad>" or vocab[UNK_ID] != "<unk>":
            raise ConfigError("tokenizer vocabulary must start with '<pad>', '<unk>'")
        if len(set(vocab)) != len(vocab):
            raise ConfigError("tokenizer vocabulary has duplicate entries")
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.max_rules = max_rules
        self.max_tokens = max_tokens

    @classmethod
    def from_texts(
        cls, texts: Iterable[str], min_count: int = 1, base: Sequence[str] = ()
    ) -> RuleTokenizer:
        """Build a vocabulary from rule texts (deterministic: by count, then alphabetically).

        ``base``: tokens that come first whatever the texts hold (the stems of a pretrained
        word-vector table, so words never seen in training still get their own id).
        """
        counts = Counter(tok for t in texts for tok in tokenize(t))
        known = set(base)
        words = sorted(
            (w for w, c in counts.items() if c >= min_count and w not in known),
            key=lambda w: (-counts[w], w),
        )
        return cls(["<pad>", "<unk>", *base, *words])

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode_rule(self, text: str) -> np.ndarray:
        ids = [self.index.get(tok, UNK_ID) for tok in tokenize(text)][: self.max_tokens]
        row = np.zeros(self.max_tokens, dtype=np.int32)
        row[: len(ids)] = ids
        return row

    def encode_rules(self, rules: Sequence[str]) -> np.ndarray:
        """Encode a rule set to int32 (max_rules, max_tokens). Too many rules is an error."""
        if len(rules) > self.max_rules:
            raise MessageError(
                RejectCode.TOO_MANY_RULES,
                f"{len(rules)} rules, the model takes at most {self.max_rules}",
            )
        out = np.zeros((self.max_rules, self.max_tokens), dtype=np.int32)
        for i, text in enumerate(rules):
            out[i] = self.encode_rule(text)
        return out

    def to_json(self) -> str:
        return json.dumps(
            {
                "vocab": self.vocab,
                "max_rules": self.max_rules,
                "max_tokens": self.max_tokens,
                "normaliser": NORMALISER,
            },
            separators=(",", ":"),
        )

    def sha256(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_json(cls, text: str) -> RuleTokenizer:
        try:
            obj = json.loads(text)
            normaliser = obj.get("normaliser")
            tok = cls(obj["vocab"], int(obj["max_rules"]), int(obj["max_tokens"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"tokenizer JSON is invalid: {exc}") from exc
        if normaliser != NORMALISER:
            raise ConfigError(
                f"tokenizer built with normaliser {normaliser!r}; this build uses {NORMALISER!r}"
            )
        return tok

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RuleTokenizer) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(self.to_json())
