"""`generate`, `rule-corpus` and `scenes show`: a bad flag is refused in one line before any
work, and an interrupted or failed run leaves the files of an earlier run as they were, with no
temporary beside them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import simulator.generate as gen
from bus.recording_reader import read_samples
from core.errors import ConfigError, DataError
from ruledrive.cli import main
from simulator.sheet import pick_diverse

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "drive.mcap"


def one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("ruledrive")]
    assert len(lines) == 1, err
    return lines[0]


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def interrupt_after(real: Any, n: int) -> Any:
    """``real`` (a generator function) that raises KeyboardInterrupt after ``n`` items: Ctrl-C
    in the middle of the work, at the same place every run."""

    def wrapped(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for k, item in enumerate(real(*args, **kwargs)):
            if k == n:
                raise KeyboardInterrupt
            yield item

    return wrapped


# -- generate: an interrupted run over an earlier split -------------------------------------------


@pytest.fixture
def earlier_split(tmp_path: Path) -> Path:
    out = tmp_path / "data"
    gen.generate(out, "train", 30, seed=1, workers=1, progress=False, fusion_samples=20)
    return out


def test_interrupted_generate_keeps_the_earlier_split(
    earlier_split: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(earlier_split)
    assert set(before) == {"train.mcap", "train.json"}
    monkeypatch.setattr(gen, "render_plan", interrupt_after(gen.render_plan, 20))
    argv = ["generate", "--out", str(earlier_split), "--scenes", "300", "--workers", "1"]
    argv += ["--rule-language", "bilingual", "--no-progress"]
    assert main(argv) == 130
    assert snapshot(earlier_split) == before  # the old split, whole, and no temporary


def test_generate_stopped_by_sigterm_cleans_up_as_ctrl_c_does(
    earlier_split: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM (a job scheduler, `kill`) stops generate the way Ctrl-C does: the earlier split
    stays whole and the half-written temporary goes (it once stayed, up to 148 MB)."""
    import os
    import signal

    before = snapshot(earlier_split)
    real = gen.render_plan

    def terminated_after(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for i, item in enumerate(real(*args, **kwargs)):
            if i == 20:
                os.kill(os.getpid(), signal.SIGTERM)
            yield item

    monkeypatch.setattr(gen, "render_plan", terminated_after)
    handler = signal.getsignal(signal.SIGTERM)
    argv = ["generate", "--out", str(earlier_split), "--scenes", "300", "--workers", "1"]
    assert main([*argv, "--rule-language", "bilingual", "--no-progress"]) == 130
    assert snapshot(earlier_split) == before
    assert signal.getsignal(signal.SIGTERM) == handler  # the command's own handler is undone


def test_failed_generate_keeps_the_earlier_split(
    earlier_split: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(earlier_split)

    def broken(*args: Any, **kwargs: Any) -> dict[str, float]:
        raise DataError("fusion failed")

    monkeypatch.setattr(gen, "fusion_figures", broken)  # after every frame is written
    with pytest.raises(DataError, match="fusion failed"):
        gen.generate(earlier_split, "train", 40, seed=2, workers=1, progress=False)
    assert snapshot(earlier_split) == before


def test_generate_replaces_the_split_when_it_completes(earlier_split: Path) -> None:
    gen.generate(earlier_split, "train", 12, seed=3, workers=1, progress=False, fusion_samples=5)
    assert set(snapshot(earlier_split)) == {"train.mcap", "train.json"}
    assert len(list(read_samples(earlier_split / "train.mcap"))) == 12


def test_generate_refuses_an_empty_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "--out", "", "--scenes", "5", "--no-progress"]) == 2
    assert "argument --out: must not be empty" in one_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match="--out"):
        gen.generate("", "train", 5, seed=0, workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "command",
    [["generate", "--out", "o", "--scenes", "5"], ["bench", "generate", "--scenes", "5"]],
)
def test_workers_are_bounded(
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--workers", "65"]) == 2
    assert "--workers: must be a whole number <= 64, got 65 (allowed: 1..64)" in one_line(
        capsys.readouterr().err
    )


def test_generate_refuses_too_many_workers_itself(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="1..64"):
        gen.generate(tmp_path, "train", 5, seed=0, workers=10_000, progress=False)
    assert list(tmp_path.iterdir()) == []


# -- rule-corpus -----------------------------------------------------------------------------------


def test_interrupted_rule_corpus_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text("the earlier corpus\n")
    monkeypatch.setattr(gen, "rule_corpus", interrupt_after(gen.rule_corpus, 50))
    assert main(["rule-corpus", "--out", str(path), "--sets", "400"]) == 130
    assert snapshot(tmp_path) == {"corpus.jsonl": b"the earlier corpus\n"}


def test_rule_corpus_refuses_a_directory_before_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_work(*args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        raise AssertionError("drew rule sets for an --out it cannot write")

    monkeypatch.setattr(gen, "rule_corpus", no_work)
    assert main(["rule-corpus", "--out", str(tmp_path), "--sets", "10"]) == 2
    assert "is a directory" in one_line(capsys.readouterr().err)
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert main(["rule-corpus", "--out", str(blocked / "c.jsonl"), "--sets", "10"]) == 2
    assert "cannot write there" in one_line(capsys.readouterr().err)
    assert main(["rule-corpus", "--out", "", "--sets", "10"]) == 2
    assert "argument --out: must not be empty" in one_line(capsys.readouterr().err)
    assert snapshot(tmp_path) == {"a-file": b""}


@pytest.mark.timeout(30)  # unbounded, the draw of a trillion sets runs for days
def test_rule_corpus_sets_are_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c.jsonl"
    assert main(["rule-corpus", "--out", str(out), "--sets", "1000000000000"]) == 2
    assert "--sets: must be a whole number <= 1000000, got 1000000000000" in one_line(
        capsys.readouterr().err
    )
    with pytest.raises(ConfigError, match="1..1000000"):
        gen.write_rule_corpus(out, 10**12, 1)
    assert list(tmp_path.iterdir()) == []


# -- scenes show --sheet ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["s.txt", "sheet", "adir"])
def test_sheet_path_is_checked_before_the_summary(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "adir").mkdir()
    assert main(["scenes", "show", str(GOLDEN), "--sheet", str(tmp_path / name)]) == 2
    captured = capsys.readouterr()
    assert "--sheet" in one_line(captured.err)
    assert captured.out == ""  # refused before reading the recording
    assert [p.name for p in tmp_path.iterdir()] == ["adir"]


def test_sheet_under_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_text("")
    assert main(["scenes", "show", str(GOLDEN), "--sheet", str(tmp_path / "f/s.png")]) == 2
    assert "is not a directory" in one_line(capsys.readouterr().err)


def test_sheet_in_jpeg_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "new" / "s.jpg"
    assert main(["scenes", "show", str(GOLDEN), "--sheet", str(out), "--n", "3"]) == 0
    assert out.read_bytes()[:2] == b"\xff\xd8"


def test_sheet_frames_are_bounded(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["scenes", "show", str(GOLDEN), "--sheet", "s.png", "--n", "1000000000000"]
    assert main(argv) == 2
    err = one_line(capsys.readouterr().err)
    assert "--n: must be a whole number <= 256, got 1000000000000 (allowed: 1..256)" in err


@pytest.mark.timeout(20)  # unbounded, it loops over range(n) for ever
def test_pick_diverse_stops_when_the_samples_run_out() -> None:
    samples = list(read_samples(GOLDEN))
    picked = pick_diverse(samples, 10**12)
    assert sorted(map(id, picked)) == sorted(map(id, samples))
    first = pick_diverse(samples, 11)  # one of each of the 11 reasons
    assert len({s.reason for s in first}) == 11
