from __future__ import annotations

from pathlib import Path

from ruledrive.benchdoc import append_row, write_section


def test_sections_are_replaced_in_place_and_others_kept(tmp_path: Path) -> None:
    doc = tmp_path / "b.md"
    write_section(doc, "Node", "old node figures")
    write_section(doc, "Training", "training figures")
    write_section(doc, "Node", "new node figures")
    text = doc.read_text()
    assert "old node" not in text and "new node figures" in text and "training figures" in text
    assert text.index("## Node") < text.index("## Training")  # position kept


def test_append_row_keeps_history_and_creates_header_once(tmp_path: Path) -> None:
    doc = tmp_path / "b.md"
    write_section(doc, "Other", "x")
    intro = "what it measures\n\n| a |\n|---|"
    append_row(doc, "Gen", intro, "| 1 |")
    append_row(doc, "Gen", intro, "| 2 |")
    text = doc.read_text()
    assert text.count("| a |") == 1 and "| 1 |\n| 2 |" in text and "## Other" in text


def test_missing_doc_is_created_with_a_title(tmp_path: Path) -> None:
    doc = tmp_path / "none.md"
    write_section(doc, "Node", "x")
    assert doc.read_text().startswith("# Benchmarks\n\n## Node\n\nx")
