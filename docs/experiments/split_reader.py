"""The rule reader alone, trained with Chinese words split into characters half of the time
(subword regularisation, Kudo 2018, in its simplest form for Chinese), against the same
reader trained on the tokenizer's segmentation only. Everything else is `ruledrive bench
reader --withhold` (same data, withheld families, seeds, epochs, scoring):

    .venv/bin/python docs/experiments/split_reader.py 1,2,3

Forty-sixth session; results in docs/training.md, "Chinese words split into characters".
Why: the tokenizer gives a Chinese word one piece where the vocabulary has it (可以 "may",
超过 "exceed", 不受 "not subject to"), so a reader trained on 可以 has never seen the piece 可,
which the held-out modal family writes alone (驾驶人可超过前方车辆). Each multi-character Han
piece of a training text is replaced, with probability 1/2 and once per text (a fixed draw), by
its characters' own pieces (where each character has one: the common hanzi do); the
encoder then encodes that id sequence, so the reader sees the characters of every word in the
contexts training has, without any new wording. During training each occurrence of a text
is read in its split form with probability 1/2 (same steps, same labels); evaluation reads
the tokenizer's segmentation only, as the node does. A diagnostic, not part of the package:
the split texts' states are cached in ``runs/v2/rule-table-reader-split.npz``.

In the report, "encoder layer 98" is the split-trained reader; the other column the plain one.
"""

from __future__ import annotations

import re
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np

SPLIT = 98  # the variant's "encoder layer" in the report: trained with split segmentations
MARK = "\u27e6split\u27e7"  # prefix of a split text's key in the table (never a rule text)
P_SPLIT = 0.5  # each multi-character Han piece of a text is split with this probability
P_READ = 0.5  # each training occurrence of a text is read split with this probability
_HAN = re.compile("^[\u3400-\u4dbf\u4e00-\u9fff]{2,}$")


def split_ids(ids: list[int], tokenizer: Any, key: str, max_tokens: int) -> list[int]:
    """``ids`` with each multi-character Han piece split into its characters' pieces with
    probability P_SPLIT (a draw fixed by ``key``); unchanged where no character has a piece."""
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    out: list[int] = []
    for i in ids:
        piece = tokenizer.id_to_token(i) or ""
        chars = [tokenizer.token_to_id(c) for c in piece] if _HAN.match(piece) else []
        if chars and all(c is not None for c in chars) and rng.random() < P_SPLIT:
            out.extend(chars)
        else:
            out.append(i)
    if len(out) > max_tokens:  # keep the end-of-text token, as the tokenizer's truncation does
        out = out[: max_tokens - 1] + [ids[-1]]
    return out


def main(seeds: list[int]) -> None:
    from perception.rule_encoder import RuleEncoder
    from ruledrive import bench_reader as br
    from training import reader as tr
    from training.config import TrainConfig
    from training.data import RuleTable

    class SplitEncoder(RuleEncoder):
        def token_ids(self, text: str) -> list[int]:
            if not text.startswith(MARK):
                return super().token_ids(text)
            base = super().token_ids(text[len(MARK) :])
            return split_ids(base, self.tokenizer, text, self.max_tokens)

    one_table = br._table
    made: dict[int, Any] = {}

    def table(work: Path, texts: list[str], layer: int | None = None) -> RuleTable:
        # One table for both columns: the texts' rows as `bench reader` indexes them, then the
        # split forms of the Han texts; `alt` maps a row to its split form's row (-1: none).
        if made:
            return made[0]
        plain = one_table(work, texts, None)
        enc = RuleEncoder.load(Path(TrainConfig().encoder_dir), "cpu", cache_size=0)
        enc.__class__ = SplitEncoder
        enc.cache_key += "/split-p05-v1"
        keys, rows = [], []
        for i, t in enumerate(texts):
            key = MARK + t
            if enc.token_ids(key) != enc.token_ids(t):
                keys.append(key)
                rows.append(i)
        split = RuleTable.build(keys, enc, work / "rule-table-reader-split.npz")
        order = [split.index[k] for k in keys]
        merged = RuleTable(
            [*plain.texts, *keys],
            np.concatenate([plain.states, split.states[order]]),
            np.concatenate([plain.masks, split.masks[order]]),
        )
        alt = np.full(len(merged.texts), -1, np.int64)
        alt[rows] = len(plain.texts) + np.arange(len(keys))
        merged.alt = alt  # type: ignore[attr-defined]
        print(f"split forms: {len(keys)} of {len(texts)} texts", flush=True)
        made[0] = merged
        return merged

    class Swapped:
        """The table as training reads it: a row read in its split form with P_READ."""

        def __init__(self, base: Any, seed: int) -> None:
            self.base, self.rng = base, np.random.default_rng(seed + 7)

        def gather(self, idx: np.ndarray, *_: Any) -> tuple[np.ndarray, np.ndarray]:
            alt = self.base.alt[np.maximum(idx, 0)]
            swap = (idx >= 0) & (alt >= 0) & (self.rng.random(idx.shape) < P_READ)
            return self.base.gather(np.where(swap, alt, idx))

        def sentence_feeds(self, idx: np.ndarray) -> dict[str, np.ndarray]:
            return {}

    arm: dict[str, int | None] = {"layer": None}
    fit = tr.fit_reader

    def fit_reader(reader: Any, tab: Any, data: Any, epochs: int, seed: int, *a: Any) -> None:
        use = Swapped(tab, seed) if arm["layer"] == SPLIT else tab
        fit(reader, use, data, epochs, seed, *a)

    train_and_read = br._train_and_read

    def train_read(
        tab: Any, train: Any, ix_t: Any, ix_e: Any, classes: Any, variant: Any, *a: Any, **k: Any
    ) -> Any:
        arm["layer"] = variant[5]
        return train_and_read(tab, train, ix_t, ix_e, classes, variant, *a, **k)

    br._table = table
    br._train_and_read = train_read
    tr.fit_reader = fit_reader
    from ruledrive.cli import build_parser

    # `ruledrive bench reader --withhold` as the layer-mix experiment ran it, the split forms as
    # a second "encoder layer" column
    args = build_parser().parse_args(
        ["bench", "reader", "--withhold", "--corpus", "runs/v2/data/rule-corpus.jsonl"]
        + ["--seeds", ",".join(map(str, seeds)), "--no-write"]
    )
    args.encoder_layer = [None, SPLIT]
    print(f"encoder layer {SPLIT} below = trained with Chinese words split into characters")
    br.run(args)


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    main([int(s) for s in sys.argv[1].split(",")] if len(sys.argv) > 1 else [1, 2, 3])
