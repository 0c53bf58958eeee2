"""docs/benchmarks.md is shared: each benchmark owns one ``## Heading`` section only."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["DEFAULT_DOC", "write_section"]

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
