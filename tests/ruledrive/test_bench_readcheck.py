"""``ruledrive bench reading-check``: the threshold rule, and the command end to end on a small
generated split with the shipped model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ruledrive.bench_readcheck import choose_threshold, silent
from ruledrive.cli import main as cli

ROOT = Path(__file__).resolve().parents[2]


def _row(t: float, new: float, wrong: int, right: int) -> dict[str, float]:
    return {"threshold": t, "new": new, "wrong": wrong, "right": right, "errors_valid": 0}


def test_the_threshold_catches_most_errors_net_within_the_flag_budget() -> None:
    table = [
        _row(0.6, 0.000, 1, 0),
        _row(0.7, 0.002, 5, 2),
        _row(0.8, 0.004, 9, 3),  # best net gain within 0.5 %
        _row(0.9, 0.010, 30, 5),  # better, but flags too many frames
    ]
    assert choose_threshold(table, 0.005) == 0.8
    assert choose_threshold(table, 0.02) == 0.9
    # Nothing gains (right answers flagged as often as errors): the check stays off.
    assert choose_threshold([_row(0.8, 0.001, 2, 2), _row(0.9, 0.002, 2, 5)], 0.005) == 0.0


def test_silent_errors_split_into_misread_rules_and_the_rest() -> None:
    from types import SimpleNamespace

    import numpy as np

    names = ("not_binding", "overtaking:prohibited", "overtaking:permitted")
    # Frames: 0 right; 1 wrong, rule 0 read as prohibited (it says permitted); 2 wrong, every
    # rule read right; 3 wrong but flagged by the node; 4 wrong, caught by the check at τ.
    s = {
        "right": np.array([True, False, False, False, False]),
        "flagged": np.array([False, False, False, True, False]),
        "top": np.array([[0.99, 1], [0.99, 1], [0.99, 1], [0.99, 1], [0.5, 1]]),
        "changes": np.array([[False, False]] * 4 + [[True, False]]),
        "read": np.array([[1, -1], [1, 0], [0, -1], [1, -1], [2, -1]]),
        "decided": np.array([0, 2, 1, 1, 1]),
    }
    rule = SimpleNamespace(rules=("Overtaking: no restrictions", "Car wash closed"))
    data = SimpleNamespace(
        samples=[rule] * 5,
        rule_idx=np.array([[0, -1], [0, 1], [0, -1], [0, -1], [0, -1]]),
        rule_cls=np.array([[1, -1], [2, 0], [0, -1], [1, -1], [1, -1]]),
        labels=np.array([0, 0, 0, 0, 0]),
    )
    got = silent(s, data, names, 0.85)
    assert (got["errors"], got["misread_frames"]) == (2, 1)
    assert got["misreads"] == [
        (("Overtaking: no restrictions", "overtaking:permitted", "overtaking:prohibited"), 1)
    ]
    assert got["decisions"] == [(("PROCEED", "SLOW_DOWN"), 1)]


@pytest.mark.slow
def test_the_command_reports_every_threshold_and_refuses_a_model_without_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "test"
    argv = ["generate", "--out", str(data), "--scenes", "120", "--seed", "3", "--split", "test"]
    assert cli([*argv, "--rule-language", "bilingual"]) == 0
    capsys.readouterr()
    doc = tmp_path / "bench.md"
    model = str(ROOT / "models/ruledrive-default.onnx")
    args = ["bench", "reading-check", "--model", model, "--data", str(data)]
    assert (
        cli(
            [
                *args,
                "--choose-on",
                str(data),
                "--val-seed",
                "1",
                "--val-fraction",
                "0.5",
                "--output",
                str(doc),
            ]
        )
        == 0
    )
    text = doc.read_text()
    assert "## Reading check" in text and "Chosen τ:" in text
    assert "| 1 | " in text and "| 8 | " in text  # the cost of the check, batch 1 and 8
    # Through the head graph the reruns skip the image encoder: cheaper than the frame graph.
    for n in (1, 8):
        row = re.search(
            rf"^\| {n} \| [\d.]+ ms \| [\d.]+ ms \| ([\d.]+)x \| [\d.]+ ms \| ([\d.]+)x \|$",
            text,
            re.M,
        )
        assert row and float(row[1]) < float(row[2]), n
    for t in ("0.6", "0.8", "0.99"):
        assert f"| {t} |" in text
    # The silent errors at the node's τ are the table's "errors left valid" at that τ.
    found = re.search(r"errors left `valid=true` at τ 0.85: (\d+), of them (\d+) with", text)
    left = re.findall(r"^\| 0\.85 \| [\d.]+% \| \d+ \| \d+ \| (\d+) \|$", text, re.M)
    assert found and left and int(found[1]) == int(left[-1]) >= int(found[2])
    assert cli([*args, "--tau", "0.995", "--no-write"]) == 2  # above the grid: refused
    # The choice and the report never share a drive: their frame counts add up to the split's.
    counts = [
        int(line.split("(")[-1].split()[0]) for line in text.splitlines() if "frames):" in line
    ]
    assert len(counts) == 2 and sum(counts) == 120

    from tests.policy.fakemodel import build_fake_model

    fake = str(build_fake_model(tmp_path / "fake.onnx"))
    assert cli(["bench", "reading-check", "--model", fake, "--data", str(data), "--no-write"]) != 0
    assert "no reading graph" in capsys.readouterr().err
