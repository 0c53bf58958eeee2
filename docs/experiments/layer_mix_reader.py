"""The rule reader alone on SEVERAL encoder layers at once: the token states after layers
6, 9 and 12 (say) side by side, [T, 3 x 384], so the reader's first projection learns its own
mix of them, against the same reader on the last layer alone. Everything else is
`ruledrive bench reader --withhold` (same data, withheld families, seeds, epochs, scoring):

    .venv/bin/python docs/experiments/layer_mix_reader.py 6+9+12 1,2

Thirty-eighth session; results in docs/training.md, "A reader of several encoder layers".
Why: the thirty-seventh session's linear probe found more of the Chinese held-out polarity in
the middle layers (layer 6: 89 %, layer 12: 70 %) and more of the English in the last; a reader
of one middle layer (the thirteenth round, layer 9) gained on held-out wording but flagged
readable rules. A diagnostic, not part of the package: the layer tables are cached under
``runs/v2`` (``rule-table-reader-L{k}.npz``, as `bench reader --encoder-layer` caches them).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

MIX = 99  # the variant's "encoder layer" in the report: the mix of the layers named


def main(layers: list[int], seeds: list[int]) -> None:
    from ruledrive import bench_reader as br
    from training.data import RuleTable

    last = 12
    one_table = br._table
    base_spec = br.MODEL_SPEC

    def table(work: Path, texts: list[str], layer: int | None = None) -> RuleTable:
        if layer != MIX:
            return one_table(work, texts, layer)
        parts = [one_table(work, texts, None if k == last else k) for k in layers]
        if any(p.texts != parts[0].texts for p in parts):
            raise SystemExit("layer tables hold different texts")
        if any(not np.array_equal(p.masks, parts[0].masks) for p in parts):
            raise SystemExit("layer tables mask different tokens")
        states = np.concatenate([p.states for p in parts], axis=-1)
        texts_, masks = parts[0].texts, parts[0].masks
        del parts
        return RuleTable(texts_, states, masks)

    train_and_read = br._train_and_read

    def wide(tab: RuleTable, *a: object, **k: object) -> object:
        # The reader's input is as wide as the table's states (384 a layer); nothing else moves.
        br.MODEL_SPEC = dataclasses.replace(base_spec, rule_dim=int(tab.states.shape[-1]))
        try:
            return train_and_read(tab, *a, **k)
        finally:
            br.MODEL_SPEC = base_spec

    br._table = table
    br._train_and_read = wide
    args = argparse.Namespace(
        work=Path("runs/v2"),
        seeds=seeds,
        token_dropout=[0.15],
        state_noise=[0.0],
        rule_head=["flat"],
        corpus=Path("runs/v2/data/rule-corpus.jsonl"),
        withhold=True,
        readers=[1],
        members=[1],
        encoder_layer=[None, MIX],
        class_balance=[0.0],
        sentence_input=[False],
        epochs=20,
        no_write=True,
        output=None,
    )
    print(f"encoder layer {MIX} below = the layers {'+'.join(map(str, layers))} side by side")
    br.run(args)


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    main(
        [int(k) for k in sys.argv[1].split("+")],
        [int(s) for s in sys.argv[2].split(",")] if len(sys.argv) > 2 else [1, 2],
    )
