"""docs/benchmarks.md is shared: each benchmark owns one ``## Heading`` section only."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["DEFAULT_DOC", "append_row", "write_section"]

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
