"""Regenerate the parts of the docs that are made from code: ``python -m ruledrive.docgen``.

docs/contract.md holds blocks between ``<!-- generated: NAME -->`` and ``<!-- end generated -->``;
each NAME maps to the function that renders it, so a table cannot drift from the code (the tests
fail when a block is stale). docs/asyncapi.yaml is written by ``python -m bus.asyncapi``, which
this also runs.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from bus.asyncapi import main as asyncapi_main
from bus.signing import signing_example_markdown
from core.rejects import reject_table_markdown
from policy.fallback import fallback_table_markdown
from policy.settings import NodeSettings
from ruledrive.serve_cli import setting_flags

__all__ = ["BLOCKS", "CONTRACT", "main", "render_blocks"]

CONTRACT = Path(__file__).resolve().parent.parent / "docs" / "contract.md"


def settings_table_markdown() -> str:
    """Every node setting: its environment variable, flag, default and meaning."""
    rows = ["| env var | flag | default | meaning |", "|---|---|---|---|"]
    for name, field in NodeSettings.model_fields.items():
        flags = " / ".join(f"`{f}`" for f in setting_flags(name)) or "env only"
        default = "none" if field.default is None else f"`{field.default}`"
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `RULEDRIVE_{name.upper()}` | {flags} | {default} | {meaning} |")
    return "\n".join(rows)


BLOCKS: dict[str, Callable[[], str]] = {
    "policy.fallback.FALLBACKS": fallback_table_markdown,
    "core.rejects.RejectCode": reject_table_markdown,
    "policy.settings.NodeSettings": settings_table_markdown,
    "bus.signing.example": signing_example_markdown,
}
# An empty block ("<!-- generated: X -->" then "<!-- end generated -->" on the next line) matches
# too: requiring a newline before the end marker once made an empty block run on to the next
# block's end and swallow the sections between them.
_BLOCK = re.compile(
    r"(<!-- generated: (?P<name>[\w.]+) -->\n)(?P<body>.*?)\n?(<!-- end generated -->)", re.DOTALL
)


def render_blocks(text: str) -> str:
    """``text`` with every generated block rendered anew (unknown names are an error)."""

    def fill(m: re.Match[str]) -> str:
        name = m.group("name")
        if name not in BLOCKS:
            raise KeyError(f"no generator for the block {name!r}")
        if "<!-- generated:" in m.group("body"):
            raise ValueError(f"the block {name!r} has no end marker before the next block")
        return m.group(1) + BLOCKS[name]() + "\n" + m.group(4)

    return _BLOCK.sub(fill, text)


def main(argv: list[str] | None = None) -> int:
    text = CONTRACT.read_text()
    new = render_blocks(text)
    if new != text:
        CONTRACT.write_text(new)
        print(f"wrote {CONTRACT}")
    return asyncapi_main(argv or [])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
