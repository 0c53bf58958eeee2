"""docs/benchmarks.md is shared: each benchmark owns one ``## Heading`` section only."""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

from ruledrive.argtypes import output_file

__all__ = [
    "DEFAULT_DOC",
    "add_doc_flags",
    "append_row",
    "bench_command",
    "publish",
    "write_section",
]

DEFAULT_DOC = Path("docs/benchmarks.md")


def write_section(path: Path, heading: str, body: str) -> None:
    """Replace (or append) the section ``## {heading}`` with ``body`` (heading excluded)."""
    section = f"## {heading}\n\n{body.strip()}\n"
    text = path.read_text() if path.is_file() else "# Benchmarks\n"
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section + "\n", text, count=1)
    else:
        text = text.rstrip() + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip() + "\n")


def append_row(path: Path, heading: str, intro: str, row: str) -> None:
    """Append a table row to section ``## {heading}``, creating it with ``intro`` (which ends
    with the table header) when missing; earlier rows stay, so the history is kept."""
    text = path.read_text() if path.is_file() else ""
    m = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    body = m.group(1).strip() if m else intro.strip()
    write_section(path, heading, body + "\n" + row.strip())


def add_doc_flags(parser: argparse.ArgumentParser) -> None:
    """``--output`` (the doc, default docs/benchmarks.md) and ``--no-write`` of a benchmark."""
    parser.add_argument("--output", type=output_file, default=DEFAULT_DOC)
    parser.add_argument("--no-write", action="store_true", help="print only, do not edit the doc")


def bench_command(name: str) -> str:
    """The ``ruledrive bench NAME ...`` command line this process runs, for the doc."""
    argv = sys.argv
    if name not in argv:
        return f"ruledrive bench {name}"
    return f"ruledrive bench {name} {shlex.join(argv[argv.index(name) + 1 :])}".strip()


def publish(args: argparse.Namespace, heading: str, text: str) -> None:
    """Print a benchmark's report and, unless ``--no-write``, make it section ``## heading`` of
    ``--output``."""
    print(text)
    if not args.no_write:
        write_section(args.output, heading, text.removeprefix(f"## {heading}").strip())
        print(f"updated {args.output} (## {heading})")
