"""``ruledrive generate``, ``ruledrive scenes show`` and ``ruledrive bench generate``."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import sys
import tempfile
from pathlib import Path

from core.defaults import WRITTEN_RENDERINGS
from core.errors import ConfigError
from ruledrive.argtypes import int_within, non_empty, non_negative_int, output_file
from ruledrive.benchdoc import append_row

__all__ = ["register", "register_bench"]

BENCH_DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
BENCH_SECTION = "## Scene generation"


def register(sub: argparse._SubParsersAction) -> None:
    from simulator.language import RULE_LANGUAGES
    from simulator.limits import MAX_CORPUS_SETS, MAX_SCENES, MAX_SHEET_FRAMES, MAX_WORKERS
    from simulator.plan import SPLITS

    gen = sub.add_parser("generate", help="generate a split of the scene world as MCAP")
    gen.add_argument(
        "--out",
        type=non_empty,
        required=True,
        help="output directory (DIR/<split>.mcap + .json; replaced only once the split is whole)",
    )
    gen.add_argument(
        "--scenes",
        type=int_within(1, MAX_SCENES),
        required=True,
        help=f"number of frames, 1..{MAX_SCENES}",
    )
    gen.add_argument("--seed", type=non_negative_int, default=0)
    gen.add_argument("--split", choices=SPLITS, default="train")
    gen.add_argument(
        "--workers",
        type=int_within(1, MAX_WORKERS),
        default=2,
        help=f"render processes, 1..{MAX_WORKERS} (default 2; more than the CPUs gains nothing)",
    )
    gen.add_argument(
        "--rule-language",
        choices=RULE_LANGUAGES,
        default="catalogue",
        help="catalogue (default): the English catalogue phrasings (the golden replay's "
        "recording); bilingual: the rule language the shipped model is trained on "
        "(English, Chinese, mixed; scopes; unreadable rules; what train-default and the demo "
        "generate)",
    )
    gen.add_argument("--no-progress", action="store_true")
    gen.set_defaults(func=_generate)

    corpus = sub.add_parser(
        "rule-corpus",
        help="write rule texts with their meaning and no frames (JSON lines) for the reader",
        description="Rule sets drawn as the training split draws them (training wording "
        "families only, the training pool of rules nobody can read), one rule per line with its "
        "class and parameters; `ruledrive train --rule-corpus FILE --reader-epochs N` trains the "
        "rule reader on them before the whole model (docs/training.md).",
    )
    corpus.add_argument(
        "--out", required=True, type=non_empty, help="the .jsonl file to write (not a directory)"
    )
    corpus.add_argument(
        "--sets",
        type=int_within(1, MAX_CORPUS_SETS),
        default=10000,
        help=f"rule sets to draw, 1..{MAX_CORPUS_SETS} (default %(default)s; ~1.3 kB each)",
    )
    corpus.add_argument("--seed", type=non_negative_int, default=777)
    corpus.add_argument(
        "--written",
        type=Path,
        nargs="+",
        help="written wording files (bench wording's template format, plus per language an "
        "optional not_binding list; training/written/ holds the recipe's): their renderings "
        "follow the drawn sets, labelled with the rule each renders",
    )
    corpus.add_argument(
        "--renderings",
        type=int_within(1, 100),
        help="renderings of each written template that has slots, 1..100 (default "
        f"{WRITTEN_RENDERINGS}; with --written only)",
    )
    corpus.set_defaults(func=_rule_corpus)

    scenes = sub.add_parser("scenes", help="inspect recordings")
    ssub = scenes.add_subparsers(dest="scenes_cmd", metavar="CMD", required=True)
    show = ssub.add_parser("show", help="print a summary; optionally write a contact sheet")
    show.add_argument("file", help="an MCAP recording")
    show.add_argument(
        "--sheet", type=non_empty, help="write a contact sheet here (an image file: .png, .jpg)"
    )
    show.add_argument(
        "--n",
        type=int_within(1, MAX_SHEET_FRAMES),
        default=16,
        help=f"frames on the sheet, 1..{MAX_SHEET_FRAMES} (default %(default)s)",
    )
    show.add_argument(
        "--allow-truncated",
        action="store_true",
        help="use the complete part of recordings cut short (killed recorder); warn",
    )
    show.set_defaults(func=_show)


def _rule_corpus(args: argparse.Namespace) -> int:
    from simulator.generate import write_rule_corpus

    if not args.written:
        if args.renderings is not None:
            raise ConfigError("--renderings renders written wording: give --written FILE... too")
        print(json.dumps(write_rule_corpus(args.out, args.sets, args.seed)))
        return 0
    from core.paths import check_not_an_input
    from ruledrive.written_corpus import load_written, write_corpus_with_written

    check_not_an_input(Path(args.out), "--out", [Path(p) for p in args.written])
    for path in args.written:  # a bad file is refused before anything is drawn
        load_written(path)
    out = Path(args.out)
    # The drawn sets go to a temporary first: --out is replaced only by the whole corpus.
    base = out.with_name(out.name + ".sets.tmp")
    try:
        counts = write_rule_corpus(base, args.sets, args.seed)
        counts |= write_corpus_with_written(
            base, args.written, out, args.renderings or WRITTEN_RENDERINGS, args.seed
        )
    finally:
        base.unlink(missing_ok=True)
    print(json.dumps(counts))
    return 0


def register_bench(bench_sub: argparse._SubParsersAction) -> None:
    from simulator.limits import MAX_SCENES, MAX_WORKERS

    b = bench_sub.add_parser("generate", help="time scene generation; appends to benchmarks.md")
    b.add_argument("--scenes", type=int_within(1, MAX_SCENES), default=20000)
    b.add_argument("--seed", type=non_negative_int, default=0)
    b.add_argument(
        "--workers",
        type=int_within(1, MAX_WORKERS),
        default=2,
        help=f"render processes, 1..{MAX_WORKERS} (default 2)",
    )
    b.add_argument("--doc", type=output_file, default=BENCH_DOC, help="benchmark log to append to")
    b.set_defaults(func=_bench)


def _generate(args: argparse.Namespace) -> int:
    import signal

    from simulator.generate import generate

    def stop(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt  # the way Ctrl-C stops it: the half-written split is removed

    old = signal.signal(signal.SIGTERM, stop)  # SIGTERM left OUT/.SPLIT.mcap.tmp behind
    try:
        summary = generate(
            args.out,
            args.split,
            args.scenes,
            args.seed,
            args.workers,
            progress=not args.no_progress,
            rule_language=args.rule_language,
        )
    finally:
        signal.signal(signal.SIGTERM, old)
    _print_summary(summary)
    return 0


def _print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title=f"split {summary['split']} (seed {summary['seed']})")
    t.add_column("decision")
    t.add_column("frames", justify="right")
    t.add_column("share", justify="right")
    total = max(sum(summary["class_balance"].values()), 1)
    for k, v in summary["class_balance"].items():
        t.add_row(k, str(v), f"{100 * v / total:.1f}%")
    console.print(t)
    f = summary["fusion"]
    console.print(
        f"scenes whose decision another rule set changes: {100 * f['scenes_rule_dependent']:.1f}%"
        f"\nrule sets whose decision another scene changes: "
        f"{100 * f['rules_scene_dependent']:.1f}%"
        f"\n{summary['frames']} frames ({summary['unique_frames']} unique), "
        f"{summary['drives']} drives in {summary['elapsed_s']} s "
        f"({summary['frames_per_s']} frames/s) -> {summary['recording']}"
    )
    if "rule_language" in summary:
        console.print(f"rule language: {json.dumps(summary['rule_language'])}")


def _show(args: argparse.Namespace) -> int:
    from bus.recording_reader import read_samples
    from simulator.sheet import check_sheet_path, contact_sheet, pick_diverse, summarise

    if args.sheet:
        check_sheet_path(args.sheet)  # before reading: a bad name must not cost the whole work
        from core.paths import check_not_an_input

        check_not_an_input(Path(args.sheet), "--sheet", [Path(args.file)])
    samples = list(read_samples(args.file, allow_truncated=args.allow_truncated))
    print(json.dumps(summarise(samples), indent=2))
    if args.sheet:
        out = contact_sheet(pick_diverse(samples, args.n), args.sheet)
        print(f"contact sheet: {out}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from simulator.generate import generate

    with tempfile.TemporaryDirectory() as tmp:
        s = generate(
            tmp, "train", args.scenes, args.seed, args.workers, progress=True, fusion_samples=2000
        )
    cmd = "ruledrive bench generate " + " ".join(shlex.quote(a) for a in sys.argv[3:])
    line = (
        f"| {dt.date.today().isoformat()} | `{cmd.strip()}` | {s['frames']} | "
        f"{args.workers} | {s['elapsed_s']} | {s['frames_per_s']} | "
        f"{platform.machine()}, {os.cpu_count()} CPUs |\n"
    )
    intro = (
        "`ruledrive bench generate`: plan + render + write MCAP of the train split "
        "(JPEG 640x360), wall clock.\n\n"
        "| date | command | frames | workers | seconds | frames/s | machine |\n"
        "|---|---|---|---|---|---|---|"
    )
    append_row(Path(args.doc), BENCH_SECTION.removeprefix("## "), intro, line)
    print(
        f"{s['frames']} frames in {s['elapsed_s']} s = {s['frames_per_s']} frames/s "
        f"(budget: 20000 in < 120 s) -> {args.doc}"
    )
    return 0
