"""The generated blocks of docs/contract.md are current, and the generator fills them."""

from __future__ import annotations

import pytest

from ruledrive.docgen import BLOCKS, CONTRACT, render_blocks


def test_contract_is_current() -> None:
    text = CONTRACT.read_text()
    for name in BLOCKS:
        assert f"<!-- generated: {name} -->" in text, name
    assert render_blocks(text) == text, "stale: run python -m ruledrive.docgen"


def test_a_stale_block_is_rewritten_and_an_unknown_one_refused() -> None:
    stale = "a\n<!-- generated: core.rejects.RejectCode -->\nSTALE\n<!-- end generated -->\nb"
    new = render_blocks(stale)
    assert "STALE" not in new and "`bad_json`" in new and new.endswith("\nb")
    with pytest.raises(KeyError):
        render_blocks("<!-- generated: nope -->\nx\n<!-- end generated -->")


def test_an_empty_block_is_filled_and_keeps_what_follows() -> None:
    text = (
        "<!-- generated: core.rejects.RejectCode -->\n<!-- end generated -->\nkept\n"
        "<!-- generated: core.rejects.RejectCode -->\nSTALE-BODY\n<!-- end generated -->\n"
    )
    new = render_blocks(text)
    assert new.count("`bad_json`") == 2 and "\nkept\n" in new and "STALE-BODY" not in new
    assert render_blocks(new) == new
    with pytest.raises(ValueError, match="no end marker"):
        render_blocks(
            "<!-- generated: core.rejects.RejectCode -->\nx\n"
            "<!-- generated: core.rejects.RejectCode -->\ny\n<!-- end generated -->"
        )
