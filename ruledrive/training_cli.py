"""``ruledrive train | evaluate | train-default | export | wordvectors``: TensorFlow is imported
only when they run (image-only / text-only ablations are ``train --variant`` and part of
``train-default``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.errors import ConfigError, ModelError, RuledriveError
from ruledrive.argtypes import (
    fraction,
    non_negative_int,
    positive_float,
    positive_int,
)

if TYPE_CHECKING:
    from training.evaluate import Predictor

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the fused decision model on MCAP recordings")
    p.add_argument(
        "--data", nargs="+", required=True, metavar="PATH", help="recordings or directories"
    )
    p.add_argument("--out", required=True, type=Path, help="checkpoint directory to write")
    p.add_argument("--config", type=Path, help="YAML/JSON TrainConfig; flags override it")
    p.add_argument("--variant", choices=["fused", "image_only", "text_only"])
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--lr", type=positive_float, dest="learning_rate")
    p.add_argument("--seed", type=non_negative_int)
    p.add_argument("--max-samples", type=positive_int)
    p.add_argument("--model-version")
    p.add_argument("--export", type=Path, help="ONNX path (default OUT/model.onnx)")
    p.add_argument("--no-export", action="store_true", help="skip the ONNX export")
    p.add_argument(
        "--eval", nargs="+", metavar="PATH", help="test recordings to evaluate afterwards"
    )
    p.add_argument(
        "--allow-truncated",
        action="store_true",
        help="use the complete samples of recordings cut short (killed recorder); warn",
    )
    p.set_defaults(func=_train)

    e = sub.add_parser("evaluate", help="evaluate a checkpoint directory or an .onnx model")
    e.add_argument("model", type=Path)
    e.add_argument("--data", nargs="+", required=True, metavar="PATH")
    e.add_argument("--out", type=Path, help="write report.json and confusion PNGs here")
    e.add_argument("--min-accuracy", type=fraction, help="exit 3 if any split's accuracy is lower")
    e.add_argument(
        "--allow-truncated",
        action="store_true",
        help="use the complete part of recordings cut short (killed recorder); warn",
    )
    e.set_defaults(func=_evaluate)

    d = sub.add_parser("train-default", help="rebuild models/ruledrive-default.onnx + model card")
    d.add_argument("--out", type=Path, default=Path("models"))
    d.add_argument("--work", type=Path, default=Path("runs/default"), help="data + checkpoints")
    d.add_argument("--scenes", type=positive_int, default=20000, help="training scenes")
    d.add_argument("--epochs", type=positive_int)
    d.add_argument("--seed", type=non_negative_int)
    d.add_argument("--no-ablations", action="store_true", help="skip image-only / text-only runs")
    d.add_argument("--docs", type=Path, default=Path("docs"))
    d.add_argument(
        "--reuse-checkpoints",
        action="store_true",
        help="keep a variant's finished checkpoint in --work when its config and data match "
        "(same code only): reruns only what is missing",
    )
    d.set_defaults(func=_train_default)

    x = sub.add_parser("export", help="export a checkpoint to ONNX (with a parity check)")
    x.add_argument("checkpoint", type=Path)
    x.add_argument("--out", required=True, type=Path)
    x.add_argument(
        "--data", nargs="+", metavar="PATH", help="parity inputs (default: checkpoint's parity.npz)"
    )
    x.set_defaults(func=_export)

    w = sub.add_parser("wordvectors", help="the pretrained word vectors the text encoder uses")
    wsub = w.add_subparsers(dest="wordvectors_command", required=True, metavar="COMMAND")
    b = wsub.add_parser("build", help="rebuild the table from all-MiniLM-L6-v2's files, offline")
    b.add_argument(
        "--model-dir",
        required=True,
        type=Path,
        help="directory holding the model's tokenizer.json and model.safetensors",
    )
    b.add_argument("--dim", type=positive_int, default=64, help="PCA dimensions kept (default 64)")
    b.add_argument("--out", type=Path, help="table to write (default: the packaged table)")
    b.set_defaults(func=_wordvectors_build)
    n = wsub.add_parser("neighbours", help="the table's nearest words to each WORD")
    n.add_argument("words", nargs="+", metavar="WORD")
    n.add_argument("-k", type=positive_int, default=8, help="neighbours per word (default 8)")
    n.add_argument("--table", type=Path, help="table to read (default: the packaged table)")
    n.set_defaults(func=_wordvectors_neighbours)


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    keys = (
        "variant",
        "epochs",
        "batch_size",
        "learning_rate",
        "seed",
        "max_samples",
        "model_version",
    )
    return {k: getattr(args, k) for k in keys}


def _train(args: argparse.Namespace) -> int:
    from training.config import load_config
    from training.train import train

    cfg = load_config(args.config, _overrides(args))
    export_to = None if args.no_export else (args.export or args.out / "model.onnx")
    info = train(
        cfg, args.data, args.out, export_to=export_to, allow_truncated=args.allow_truncated
    )
    if args.eval:
        if export_to is None:
            raise ConfigError("--eval needs the ONNX export (drop --no-export)")
        info["evaluation"] = _run_eval(
            export_to, args.eval, args.out / "eval", args.allow_truncated
        )
        (args.out / "checkpoint.json").write_text(json.dumps(info, indent=2, sort_keys=True))
    print(json.dumps({k: info[k] for k in ("model_version", "train_seconds", "metrics")}, indent=2))
    return 0


def _load_predictor(model: Path) -> Predictor:
    """The model to evaluate; anything that is not one is a one-line error, not a traceback."""
    from training.evaluate import load_predictor

    if not model.exists():
        raise ConfigError(f"{model}: no such model or checkpoint")
    if model.is_file() and model.suffix != ".onnx":
        raise ConfigError(
            f"{model}: not an ONNX model (*.onnx) or a checkpoint directory (ruledrive train --out)"
        )
    try:
        return load_predictor(model)
    except RuledriveError:
        raise
    except Exception as exc:  # onnxruntime raises its own (InvalidProtobuf, Fail, ...)
        raise ModelError(
            f"{model}: cannot load it as an ONNX model ({type(exc).__name__}: {exc})"
        ) from exc


def _run_eval(model: Path, data: list[str], out: Path | None, allow_truncated: bool) -> dict:
    from training.data import load_samples
    from training.evaluate import evaluate_samples

    predictor = _load_predictor(model)
    samples = load_samples(data, allow_truncated=allow_truncated)
    report = evaluate_samples(predictor, samples, out)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"evaluation of {model}")
    for col in ("split", "n", "accuracy", "macro-F1", "counterfactual both-right"):
        table.add_column(col)
    for split, rep in report["splits"].items():
        cf = rep.get("counterfactual_consistency", {}).get("both_right")
        table.add_row(
            split,
            str(rep["n"]),
            f"{rep['accuracy']:.4f}",
            f"{rep['macro_f1']:.4f}",
            "" if cf is None else f"{cf:.4f}",
        )
    Console(stderr=True).print(table)
    return report


def _evaluate(args: argparse.Namespace) -> int:
    report = _run_eval(args.model, args.data, args.out, args.allow_truncated)
    print(
        json.dumps(
            {
                s: {"n": r["n"], "accuracy": r["accuracy"], "macro_f1": r["macro_f1"]}
                for s, r in report["splits"].items()
            },
            indent=2,
        )
    )
    if args.min_accuracy is not None and any(
        r["accuracy"] < args.min_accuracy for r in report["splits"].values()
    ):
        return 3
    return 0


def _train_default(args: argparse.Namespace) -> int:
    from ruledrive.recipe import build_default
    from training.config import load_config

    if args.scenes < 600:
        raise ConfigError("--scenes must be >= 600 (the parity check needs 512 samples)")
    cfg = load_config(None, {"epochs": args.epochs, "seed": args.seed})
    results = build_default(
        args.out,
        args.work,
        args.scenes,
        cfg,
        not args.no_ablations,
        args.docs,
        reuse=args.reuse_checkpoints,
    )
    print((args.out / "MODEL_CARD.md").read_text())
    return 0 if results else 1


def _export(args: argparse.Namespace) -> int:
    from training.checkpoint import load_checkpoint
    from training.export import export_onnx

    ckpt = load_checkpoint(args.checkpoint)
    parity = None
    if args.data:
        from training.data import encode_samples, load_samples

        parity = encode_samples(load_samples(args.data, max_samples=1024), ckpt.tokenizer).inputs()
    print(json.dumps(export_onnx(ckpt, args.out, parity), indent=2))
    return 0


def _wordvectors_build(args: argparse.Namespace) -> int:
    from simulator.rules import catalogue_words
    from training.wordvectors import DEFAULT_TABLE, build_table, load_table

    if not 2 <= args.dim <= 384:
        raise ConfigError(f"--dim must be between 2 and 384, got {args.dim}")
    out = args.out or DEFAULT_TABLE
    arrays = build_table(args.model_dir, args.dim, catalogue_words())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with tmp.open("wb") as f:
        np.savez_compressed(f, **arrays)
    tmp.replace(out)
    table = load_table(out)
    print(f"{out}: {len(table.stems)} stems x {table.dim}, sha256 {table.sha256[:16]}")
    return 0


def _wordvectors_neighbours(args: argparse.Namespace) -> int:
    from training.wordvectors import DEFAULT_TABLE, load_table

    table = load_table(args.table or DEFAULT_TABLE)
    for word in args.words:
        near = ", ".join(f"{s} {c:.2f}" for s, c in table.neighbours(word, args.k))
        print(f"{word}: {near}")
    return 0
