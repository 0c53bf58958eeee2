"""A command never writes over a file it reads, and a file nested too deep to parse is a clear
error: an outside pass of the forty-sixth session replaced a training recording with an ONNX
model (`neighbours --out` = a `--data` recording), the rule authority's private key with a
signed rule set (`rules sign --out` = `--key`), a recording with a PNG through a symbolic link
(`scenes show --sheet`), wording files with a corpus or a markdown section, each with exit 0;
and a config or template file of 100,000 nested brackets ended in a RecursionError traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ruledrive.cli import main as cli

ROOT = Path(__file__).parents[2]
MODEL = ROOT / "models" / "ruledrive-default.onnx"
JUNK = b"what the command must not overwrite\n"


def _junk(path: Path) -> Path:
    path.write_bytes(JUNK)
    return path


def test_neighbours_does_not_write_its_model_over_a_recording(tmp_path: Path) -> None:
    rec = _junk(tmp_path / "train.mcap")
    assert cli(["neighbours", str(MODEL), "--data", str(rec), "--out", str(rec)]) == 2
    assert rec.read_bytes() == JUNK


@pytest.mark.parametrize("over", ["key", "ruleset"])
def test_rules_sign_does_not_write_over_its_key_or_rule_set(tmp_path: Path, over: str) -> None:
    assert cli(["rules", "keygen", "--out", str(tmp_path / "keys")]) == 0
    key, ruleset = tmp_path / "keys" / "rule-authority.key", tmp_path / "rules.json"
    ruleset.write_text(
        json.dumps({"vehicle_id": "car-1", "version": "v1", "issued_at_ns": 5, "rules": ["Stop"]})
    )
    before = {p: p.read_bytes() for p in (key, ruleset)}
    out = key if over == "key" else ruleset
    assert cli(["rules", "sign", str(ruleset), "--key", str(key), "--out", str(out)]) == 2
    assert {p: p.read_bytes() for p in (key, ruleset)} == before


def test_rule_corpus_does_not_write_over_a_wording_file(tmp_path: Path) -> None:
    written = tmp_path / "mine.yaml"
    shutil.copy(ROOT / "training" / "written" / "writer-a.yaml", written)
    before = written.read_bytes()
    assert (
        cli(["rule-corpus", "--out", str(written), "--sets", "2", "--written", str(written)]) == 2
    )
    assert written.read_bytes() == before


def test_bench_wording_does_not_append_its_report_to_the_templates(tmp_path: Path) -> None:
    templates = tmp_path / "wording.yaml"
    shutil.copy(ROOT / "docs" / "examples" / "wordings.yaml", templates)
    before = templates.read_bytes()
    args = ["bench", "wording", "--model", str(MODEL), "--templates", str(templates)]
    assert cli([*args, "--scenes", "50", "--output", str(templates)]) == 2
    assert templates.read_bytes() == before


def test_a_contact_sheet_is_not_written_over_its_recording_through_a_link(
    tmp_path: Path,
) -> None:
    rec = _junk(tmp_path / "drive.mcap")
    link = tmp_path / "sheet.png"
    link.symlink_to(rec)
    assert cli(["scenes", "show", str(rec), "--sheet", str(link)]) == 2
    assert rec.read_bytes() == JUNK and link.is_symlink()


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_file_nested_too_deep_is_a_configuration_error(
    tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = tmp_path / f"deep{suffix}"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    out = str(tmp_path / "out")
    assert cli(["train", "--data", str(tmp_path), "--out", out, "--config", str(deep)]) == 2
    assert "cannot read config" in capsys.readouterr().err
    assert cli(["bench", "wording", "--model", str(MODEL), "--templates", str(deep)]) == 2
    assert "cannot read templates" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["record", "--out", "x.mcap", "--duration-s", "1e300"],
        ["replay", "x.mcap", "--wait-node-s", "1e10"],
    ],
)
def test_a_finite_but_huge_amount_is_a_usage_error(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(args) == 2
    assert "must be a number within 0..1e+09" in capsys.readouterr().err


@pytest.mark.parametrize("taken", ["report.json", "confusion_test.png"])
def test_evaluate_refuses_an_output_name_taken_by_a_directory_before_evaluating(
    tmp_path: Path, taken: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ev"
    (out / taken).mkdir(parents=True)
    missing = str(tmp_path / "no-such-recording.mcap")  # refused before the data is looked at
    assert cli(["evaluate", str(MODEL), "--data", missing, "--out", str(out)]) == 2
    assert f"{taken} is a directory" in capsys.readouterr().err
