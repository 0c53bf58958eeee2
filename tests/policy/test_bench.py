"""The benchmark's pieces that do not need minutes: frames and the docs section rewrite."""

from __future__ import annotations

from pathlib import Path

from perception.image import preprocess_jpeg
from policy.bench import _write_section, synthetic_frames


def test_synthetic_frames_decode() -> None:
    frames = synthetic_frames(3)
    assert len(set(frames)) == 3
    assert preprocess_jpeg(frames[0]).shape == (96, 160, 3)


def test_write_section_touches_only_node(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(
        "# Benchmarks\n\n## Training\nkeep me\n\n## Node\nold\n\n## Simulator\nkeep too\n"
    )
    _write_section(doc, "## Node\n\nnew\n")
    text = doc.read_text()
    assert "old" not in text and "new" in text
    assert "## Training\nkeep me" in text and "## Simulator\nkeep too" in text
    empty = tmp_path / "none.md"
    _write_section(empty, "## Node\n\nx\n")
    assert empty.read_text().startswith("# Benchmarks\n\n## Node")
