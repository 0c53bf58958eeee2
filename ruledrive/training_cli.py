"""``ruledrive train | evaluate | train-default | export``: TensorFlow is imported
only when they run (image-only / text-only ablations are ``train --variant`` and part of
``train-default``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError, ModelError, RuledriveError, TrainingError
from core.paths import check_not_an_input, check_output_dir, check_output_file
from ruledrive.argtypes import (
    fraction,
    layer_list,
    non_negative_int,
    positive_float,
    positive_int,
)

if TYPE_CHECKING:
    from training.evaluate import Predictor

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the fused decision model on MCAP recordings",
        description="Train the fused decision model. With several workers in TF_CONFIG it runs "
        "under MultiWorkerMirroredStrategy (each worker reads its share of the recording files; "
        "--batch-size is the global batch; only the chief, rank 0, writes --out and the ONNX "
        "model), with several GPUs under MirroredStrategy (docs/training.md, 'Distributed "
        "retraining').",
    )
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
    p.add_argument("--threads", type=non_negative_int, help="TF intra-op threads (0 = all cores)")
    p.add_argument("--model-version")
    p.add_argument(
        "--reader-epochs",
        type=non_negative_int,
        help="train the rule reader alone first, this many epochs (docs/training.md)",
    )
    p.add_argument(
        "--rule-corpus",
        help="rule texts without frames for that (`ruledrive rule-corpus`); needs --reader-epochs",
    )
    _model_flags(p)
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
    d.add_argument(
        "--seeds",
        type=_seed_list,
        default=(1234, 1, 2),
        help="fused-model seeds, comma-separated; the first is shipped, the targets are judged "
        "on the worst (default 1234,1,2)",
    )
    d.add_argument("--no-ablations", action="store_true", help="skip image-only / text-only runs")
    d.add_argument(
        "--ablations",
        type=_ablation_list,
        default=ABLATIONS,
        help="which ablations to train and report, comma-separated (default: "
        f"{','.join(ABLATIONS)}); the model card says which were left out",
    )
    _model_flags(d)
    d.add_argument(
        "--written",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the reader also trains on the written wording files (training/written/, "
        "ruledrive.written_corpus); default: the recipe's choice (docs/training.md)",
    )
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

    m = sub.add_parser(
        "merge-readers",
        help="one checkpoint whose decision is the first's and whose rule reading is the average "
        "of every checkpoint's reader (training.ensemble; no training)",
    )
    m.add_argument(
        "checkpoints", type=Path, nargs="+", help="2-5 fused checkpoints; the first decides"
    )
    m.add_argument("--out", required=True, type=Path, help="the merged checkpoint's directory")
    m.set_defaults(func=_merge_readers)


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    keys = (
        "variant",
        "epochs",
        "batch_size",
        "learning_rate",
        "seed",
        "max_samples",
        "threads",
        "model_version",
        "reader_epochs",
        "rule_corpus",
        "encoder_layer",
        "sentence_input",
        "ema_momentum",
        "split_words",
    )
    return {k: getattr(args, k) for k in keys}


def _model_flags(p: argparse.ArgumentParser) -> None:
    """The TrainConfig flags that ``train`` and ``train-default`` share."""
    p.add_argument(
        "--encoder-layer",
        type=layer_list,
        metavar="K[+K...]",
        help="read the text encoder's token states after this layer, or after several side by "
        "side (6+9+12); default: the last (TrainConfig.encoder_layer, docs/training.md)",
    )
    p.add_argument(
        "--sentence-input",
        choices=["none", "use-m-v3"],
        help="also read each rule's USE-m-v3 sentence vector, an input of the model (default "
        "none; TrainConfig.sentence_input, docs/training.md)",
    )
    p.add_argument(
        "--ema-momentum",
        type=fraction,
        metavar="M",
        help="validate and checkpoint an exponential moving average of the weights with this "
        "momentum, below 1 (default 0: off; TrainConfig.ema_momentum, docs/training.md)",
    )
    p.add_argument(
        "--split-words",
        type=fraction,
        metavar="P",
        help="read a training rule with Chinese words in their characters with probability P "
        "(default 0: off; TrainConfig.split_words, docs/training.md)",
    )


def _train(args: argparse.Namespace) -> int:
    from training.config import load_config
    from training.distributed import cluster_from_env
    from training.train import train

    cfg = load_config(args.config, _overrides(args))
    export_to = None if args.no_export else (args.export or args.out / "model.onnx")
    # Refused before training, not after it.
    if args.eval and export_to is None:
        raise ConfigError("--eval needs the ONNX export (drop --no-export)")
    if export_to is not None:
        check_output_file(export_to, "--export")
        check_not_an_input(export_to, "--export", named_recordings(args.data))
    try:
        info = train(
            cfg, args.data, args.out, export_to=export_to, allow_truncated=args.allow_truncated
        )
    except TrainingError as exc:
        if cluster_from_env().multi_worker:
            # A lost worker leaves TensorFlow's runtime waiting for it at interpreter exit
            # (seen: the process never ends); say why and leave without that wait.
            print(f"ruledrive: error: {exc}", file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(1)
        raise
    if not info.get("chief", True):  # a worker that is not the chief wrote nothing to keep
        print(json.dumps({k: info.get(k) for k in ("model_version", "worker", "metrics")}))
        return 0
    if args.eval and export_to is not None:
        info["evaluation"] = _run_eval(
            export_to,
            args.eval,
            args.out / "eval",
            args.allow_truncated,
            reads_rules=cfg.variant != "image_only",
        )
        (args.out / "checkpoint.json").write_text(json.dumps(info, indent=2, sort_keys=True))
    print(json.dumps({k: info[k] for k in ("model_version", "train_seconds", "metrics")}, indent=2))
    return 0


def _load_predictor(model: Path) -> Predictor:
    """The model to evaluate; anything that is not one is a one-line error, not a traceback."""
    from training.evaluate import load_predictor

    if not model.exists():
        raise ConfigError(f"{model}: no such model or checkpoint")
    if model.is_file() != (model.suffix == ".onnx"):  # a file not *.onnx, a directory *.onnx
        raise ConfigError(
            f"{model}: not an ONNX model (*.onnx) or a checkpoint directory (ruledrive train --out)"
        )
    try:
        return load_predictor(model)
    except RuledriveError:
        raise
    except Exception as exc:  # onnxruntime raises its own (InvalidProtobuf, Fail, ...)
        what = "a checkpoint directory" if model.is_dir() else "an ONNX model"
        detail = f"{type(exc).__name__}: {exc}"
        raise ModelError(f"{model}: cannot load it as {what} ({detail})") from exc


def _run_eval(
    model: Path,
    data: list[str],
    out: Path | None,
    allow_truncated: bool,
    reads_rules: bool | None = None,
) -> dict:
    from training.data import load_samples
    from training.evaluate import evaluate_samples

    predictor = _load_predictor(model)
    samples = load_samples(data, allow_truncated=allow_truncated)
    report = evaluate_samples(predictor, samples, out, reads_rules=reads_rules)
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
    console = Console(stderr=True)
    console.print(table)
    for line in unsafe_lines(report):
        console.print(line, markup=False, highlight=False)
    return report


UNSAFE_SHOWN = 5  # constructions named per split under `ruledrive evaluate`'s table


def unsafe_lines(report: dict[str, Any]) -> list[str]:
    """Per split with answers wrong with valid=true on targeted frames: the constructions of
    the targeted rules they fall on, most first (training.evaluate's unsafe_constructions)."""
    lines = []
    for split, rep in report["splits"].items():
        unsafe = [(c, v) for c, v in rep.get("unsafe_constructions", {}).items() if v["unsafe"]]
        if not unsafe:
            continue
        named = ", ".join(f"{c} {v['unsafe']} of {v['frames']}" for c, v in unsafe[:UNSAFE_SHOWN])
        if len(unsafe) > UNSAFE_SHOWN:
            named += f"; {len(unsafe) - UNSAFE_SHOWN} more constructions"
        lines.append(
            f"{split}: targeted frames answered wrong with valid=true, by construction "
            f"(wrong with valid=true of targeted frames): {named}"
        )
    return lines


def _evaluate(args: argparse.Namespace) -> int:
    if args.out is not None:  # before the evaluation, not after it
        check_output_dir(args.out, "--out")
        # the files it writes there: a directory in the way ended a whole evaluation in a
        # traceback (an outside pass)
        for name in ("report.json", *(p.name for p in args.out.glob("confusion_*.png"))):
            check_output_file(args.out / name, "--out")
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


ABLATIONS = ("image_only", "text_only")


def _ablation_list(text: str) -> tuple[str, ...]:
    names = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [n for n in names if n not in ABLATIONS]
    if not names or bad or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"ablations must be distinct names from {', '.join(ABLATIONS)}: {text!r}"
        )
    return names


def _seed_list(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seeds must be integers, e.g. 1234,1,2: {text!r}"
        ) from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds must be distinct non-negative integers: {text!r}")
    return seeds


def _train_default(args: argparse.Namespace) -> int:
    from ruledrive.recipe import build_default
    from training.config import load_config

    if args.scenes < 600:
        raise ConfigError("--scenes must be >= 600 (the parity check needs 512 samples)")
    cfg = load_config(
        None,
        {
            "epochs": args.epochs,
            "sentence_input": args.sentence_input,
            "encoder_layer": args.encoder_layer,
            "ema_momentum": args.ema_momentum,
            "split_words": args.split_words,
        },
    )
    results = build_default(
        args.out,
        args.work,
        args.scenes,
        cfg,
        () if args.no_ablations else args.ablations,
        args.docs,
        reuse=args.reuse_checkpoints,
        seeds=args.seeds,
        **({} if args.written is None else {"written": args.written}),
    )
    print((args.out / "MODEL_CARD.md").read_text())
    return 0 if results else 1


def _merge_readers(args: argparse.Namespace) -> int:
    from training.ensemble import merge_readers

    check_output_dir(args.out, "--out")
    info = merge_readers(args.out, args.checkpoints)
    print(json.dumps({k: info[k] for k in ("model_version", "readers_from", "params")}, indent=2))
    return 0


def named_recordings(paths: list[Path]) -> list[Path]:
    """The recordings ``--data`` names, to refuse an output that is one of them (paths that
    name none are left to the command's own error)."""
    from core.errors import DataError
    from training.data import list_recordings

    try:
        return list_recordings(paths, remote_ok=True)
    except DataError:
        return []


def _export(args: argparse.Namespace) -> int:
    from training.checkpoint import load_checkpoint
    from training.export import export_onnx

    check_output_file(args.out, "--out")
    check_not_an_input(args.out, "--out", named_recordings(args.data or []))
    ckpt = load_checkpoint(args.checkpoint)
    parity = None
    if args.data:
        from perception.rule_encoder import RuleEncoder
        from training.data import RuleTable, encode_samples, load_samples

        samples = load_samples(args.data, max_samples=1024)
        encoder = RuleEncoder.load(
            Path(ckpt.config.encoder_dir), "cpu", cache_size=0, layer=ckpt.config.encoder_layer
        )
        table = RuleTable.build((r for s in samples for r in s.rules), encoder)
        if ckpt.config.reads_sentences:
            table.add_sentences()
        parity = encode_samples(samples, table, ckpt.rule_classes).inputs()
    print(json.dumps(export_onnx(ckpt, args.out, parity), indent=2))
    return 0
