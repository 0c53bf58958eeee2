"""The ``ruledrive`` console command.

Each package owns its subcommands in its own ``cli.py`` (``register(subparsers)`` and optionally
``register_bench(bench_subparsers)``); handlers import heavy modules (TensorFlow, onnxruntime)
lazily so ``ruledrive serve`` never loads TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from core.errors import ConfigError, RecordingError, RuledriveError
from ruledrive import __version__

__all__ = ["build_parser", "main", "truncation_hint"]

COMMAND_MODULES = (
    "ruledrive.world_cli",
    "ruledrive.replay_cli",
    "ruledrive.training_cli",
    "ruledrive.encoder_cli",
    "ruledrive.serve_cli",
    "ruledrive.rules_cli",
    "ruledrive.demo",
    "ruledrive.bench_reliability",
    "ruledrive.bench_levers",
    "ruledrive.bench_profile",
    "ruledrive.bench_distributed",
    "ruledrive.bench_reader",
    "ruledrive.bench_wording",
    "ruledrive.bench_readcheck",
    "ruledrive.bench_gpu",
    "ruledrive.credentials_cli",
    "ruledrive.neighbours_cli",
    "ruledrive.sentence_cli",
)

SERVICES = ("serve", "record")  # long-running commands: INFO is their default log level

log = logging.getLogger("ruledrive")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ruledrive",
        description="Camera frame + traffic-rule text -> driving decision, served over MQTT.",
    )
    parser.add_argument("--version", action="version", version=f"ruledrive {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    bench = sub.add_parser("bench", help="benchmarks; results go to docs/benchmarks.md")
    bench_sub = bench.add_subparsers(dest="bench", metavar="BENCH", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        if hasattr(module, "register"):
            module.register(sub)
        if hasattr(module, "register_bench"):
            module.register_bench(bench_sub)
    return parser


def truncation_hint(exc: Exception) -> str:
    """The error's message, plus what to do when it is a truncated recording (for commands that
    take ``--allow-truncated``: train, evaluate, scenes show, replay)."""
    msg = str(exc)
    if isinstance(exc, RecordingError) and "truncated" in msg:
        msg += (
            " (cut short, e.g. a killed recorder; pass --allow-truncated to use its complete part)"
        )
    return msg


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage error (message already printed), --help, --version
        return exc.code if isinstance(exc.code, int) else 2
    # Services log their normal start-up ("node ... serving") at INFO, and a user running one
    # must see it; one-shot commands only show warnings unless -v.
    base = logging.INFO if args.command in SERVICES else logging.WARNING
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(max(logging.DEBUG, base - 10 * args.verbose))
    try:
        rc = args.func(args)
    except ConfigError as exc:
        print(f"ruledrive: configuration error: {exc}", file=sys.stderr)
        return 2
    except RuledriveError as exc:
        msg = truncation_hint(exc) if hasattr(args, "allow_truncated") else str(exc)
        print(f"ruledrive: error: {msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
