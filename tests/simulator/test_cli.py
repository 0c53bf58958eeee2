"""`ruledrive generate`, `scenes show` and `bench generate` end to end (small sizes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ruledrive.cli import main


def test_generate_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "generate",
            "--out",
            str(tmp_path),
            "--scenes",
            "60",
            "--seed",
            "3",
            "--split",
            "heldout-phrasing",
            "--no-progress",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "another rule set changes" in out and "YIELD" in out
    summary = json.loads((tmp_path / "heldout-phrasing.json").read_text())
    assert summary["frames"] == 60 and summary["seed"] == 3
    sheet = tmp_path / "sheet.png"
    assert (
        main(
            [
                "scenes",
                "show",
                str(tmp_path / "heldout-phrasing.mcap"),
                "--sheet",
                str(sheet),
                "--n",
                "4",
            ]
        )
        == 0
    )
    assert sheet.stat().st_size > 10_000
    assert '"samples": 60' in capsys.readouterr().out


def test_bad_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--out", str(tmp_path), "--scenes", "0"]) == 2
    assert "argument --scenes: must be a whole number >= 1, got 0" in capsys.readouterr().err
    bad = tmp_path / "x.mcap"
    bad.write_bytes(b"garbage")
    assert main(["scenes", "show", str(bad)]) == 1
    assert "x.mcap" in capsys.readouterr().err


def test_bench_appends_only_its_section(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Inference\n\nkeep me\n")
    for _ in range(2):
        assert main(["bench", "generate", "--scenes", "40", "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert "keep me" in text and text.count("## Scene generation") == 1
    assert text.count("| 40 |") == 2


def test_progress_bar_uses_rich_not_tqdm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    from simulator.generate import generate

    monkeypatch.setitem(sys.modules, "tqdm", None)  # tqdm is no dependency: importing it fails
    summary = generate(tmp_path, "test", 12, seed=1, workers=1, progress=True, fusion_samples=50)
    assert summary["frames"] == 12
    assert capsys.readouterr().out == ""  # the bar goes to stderr, beside the logs


@pytest.mark.parametrize("taken", ["train.mcap", "train.json"])
def test_a_directory_where_a_split_file_goes_is_refused_before_any_work(
    tmp_path: Path, taken: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An outside pass: a directory named train.json failed the summary's rename after the new
    recording had replaced the old one, with a traceback; the split was left half replaced."""
    out = tmp_path / "data"
    assert main(["generate", "--out", str(out), "--scenes", "2", "--no-progress"]) == 0
    before = (out / "train.mcap").read_bytes(), (out / "train.json").read_bytes()
    (out / taken).unlink()
    (out / taken).mkdir()
    args = ["generate", "--out", str(out), "--scenes", "3", "--seed", "5", "--no-progress"]
    assert main(args) != 0
    err = capsys.readouterr().err
    assert "is a directory" in err and "Traceback" not in err
    kept = "train.json" if taken == "train.mcap" else "train.mcap"
    assert (out / kept).read_bytes() == before[kept == "train.json"]
    assert not list(out.glob(".train.*.tmp"))
