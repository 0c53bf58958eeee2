"""``ruledrive rules explain`` (policy.explain): each rule's verdict is what the node does with
it. Through the node's decision path (Decider, the shipped model, the golden drive's first 40
frames): a rule said not understood is named in every decision, one said understood in none,
and a decision refused for a contradiction names only rules said to conflict. Then the command:
its JSON, --strict, and bad input ending in one line."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bus.schema import RuleSet
from policy.explain import VERDICTS, RuleReading, explain
from policy.fallback import Reason
from policy.model import PolicyModel
from ruledrive.cli import main

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models/ruledrive-default.onnx"

GIBBERISH = "blorf quandle vex trimbo"
CYRILLIC = "Обгон запрещён"
# The shipped model reads this held-out permission ("overtaking is not restricted") as the ban
# at 0.99; its words write the permission, so the reading check holds it (docs/training.md).
MISREAD = "超车不受限制"
SETS = [
    (GIBBERISH, CYRILLIC, MISREAD, "Max 50 km/h", "右转车辆须礼让行人"),
    ("No overtaking", "Overtaking permitted", "School zone: 30 km/h, 7am to 5pm"),
    ("左侧车道封闭，请向右并线", "No honking", "x" * 200),
]


@pytest.fixture(scope="module")
def model() -> PolicyModel:
    return PolicyModel.load(MODEL, "cpu")


@pytest.fixture(scope="module")
def frames() -> list[Any]:
    from bus.recording_reader import read_samples

    return list(read_samples([ROOT / "tests/golden/drive.mcap"], require_labels=False))[:40]


@pytest.fixture(scope="module")
def decide(model: PolicyModel, frames: list[Any]) -> Callable[[tuple[str, ...]], list[Any]]:
    from policy.decider import Decider
    from tests.policy.test_decider import header

    def run(texts: tuple[str, ...]) -> list[Any]:
        rs = RuleSet(vehicle_id="car-1", version="v", issued_at_ns=time.time_ns(), rules=[*texts])
        decider = Decider(model, "n")
        return [decider.step(header(speed=40.0), f.jpeg, rs) for f in frames]

    return run


@pytest.mark.parametrize("texts", SETS)
def test_each_verdict_is_what_the_node_does(
    model: PolicyModel, decide: Callable[[tuple[str, ...]], list[Any]], texts: tuple[str, ...]
) -> None:
    readings = explain(model, texts)
    assert [r.index for r in readings] == list(range(len(texts)))
    assert all(r.verdict in VERDICTS and r.text == t for r, t in zip(readings, texts, strict=True))
    verdict = {r.index: r.verdict for r in readings}
    got = decide(texts)
    not_understood = {i for i, v in verdict.items() if v == "not_understood"}
    for d in got:
        named = set(d.unread_rules)
        if not_understood:
            assert d.reason == Reason.RULES_NOT_UNDERSTOOD or not d.valid
            assert not_understood <= named
        assert not any(verdict[i] == "understood" for i in named), (d.reason, named, verdict)
        if d.reason == Reason.RULES_CONFLICT:
            assert all(verdict[i] == "conflict" for i in named)
        if d.reason == Reason.RULES_NOT_UNDERSTOOD:
            assert all(verdict[i] in ("not_understood", "checked") for i in named)


def _by_text(readings: list[RuleReading]) -> dict[str, RuleReading]:
    return {r.text: r for r in readings}


def test_what_each_rule_is_read_as(model: PolicyModel) -> None:
    """The shipped model's readings of the sets above, with the reasons a rule author needs."""
    got = _by_text([r for texts in SETS for r in explain(model, texts)])
    assert got[GIBBERISH].verdict == "not_understood"
    assert got[CYRILLIC].verdict == "not_understood"
    assert "another script" in got[CYRILLIC].why[0]
    assert got["x" * 200].verdict == "not_understood"
    assert got[MISREAD].verdict == "checked"
    assert "its words write overtaking:permitted" in got[MISREAD].why
    limit = got["Max 50 km/h"]
    assert (limit.verdict, limit.read_as, limit.params) == (
        "understood",
        "speed_limit",
        {"limit_kph": "50"},
    )
    school = got["School zone: 30 km/h, 7am to 5pm"]
    assert (school.read_as, school.params) == ("school_zone", {"limit_kph": "30", "hours": "day"})
    lane = got["左侧车道封闭，请向右并线"]
    assert (lane.read_as, lane.params) == ("lane_closed", {"lane": "L1", "merge": "right"})
    for text, other in (("No overtaking", 1), ("Overtaking permitted", 0)):
        assert got[text].verdict == "conflict"
        assert got[text].why == (f"rule {other} is read as {got[SETS[1][other]].read_as}",)
    assert got["No honking"].read_as == "not_binding"


def test_the_command_json_and_strict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rs = tmp_path / "rs.json"
    rs.write_text(
        json.dumps({"vehicle_id": "car-1", "version": "v1", "issued_at_ns": 5, "rules": SETS[0]})
    )
    assert main(["rules", "explain", str(rs), "--json", "--model", str(MODEL)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == list(SETS[0])
    assert rows[0]["verdict"] == "not_understood"
    assert main(["rules", "explain", str(rs), "--strict", "--model", str(MODEL)]) == 3
    out = capsys.readouterr().out
    assert "rule 2  checked" in out and "its words write overtaking:permitted" in out
    ok = ["rules", "explain", "--text", "Max 50 km/h", "--text", "右转车辆须礼让行人"]
    assert main([*ok, "--strict", "--model", str(MODEL)]) == 0


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["--text", "Stop"], 2, "not both"),  # with the file
        ([], 2, "give a RuleSet JSON file or --text"),
        (["--text", ""], 1, "at least 1 character"),
        (["--text", "x" * 201], 1, "at most 200 characters"),
        ([f"--text=r{i}" for i in range(6)], 1, "at most 5 items"),
        (["--text", "Stop", "--model", "/nonexistent/model.onnx"], 1, "model.onnx"),
    ],
)
def test_bad_input_ends_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, says: str
) -> None:
    rs = tmp_path / "rs.json"
    rs.write_text(json.dumps({"vehicle_id": "c", "version": "v", "issued_at_ns": 1, "rules": []}))
    args = ["rules", "explain", *([str(rs)] if says == "not both" else []), *argv]
    assert main(args) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and says in lines[0], err


def test_a_rule_set_file_that_is_not_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "rs.json"
    bad.write_text('{"rules": "Stop"')
    assert main(["rules", "explain", str(bad)]) == 1
    assert "is not a valid rule set" in capsys.readouterr().err
    assert main(["rules", "explain", str(tmp_path / "missing.json")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_a_rule_set_in_traditional_characters_is_read_as_in_simplified(
    model: PolicyModel,
) -> None:
    """Taiwan's and Hong Kong's signs: the node reads them as it reads the simplified text
    (perception.rule_encoder.normalise), so they get the simplified text's readings."""
    traditional = (
        "第一車道封閉，請向右併線",
        "紅燈時准許右轉",
        "黃燈亮時，距停止線15米以內可繼續通行",
    )
    simplified = (
        "第一车道封闭，请向右并线",
        "红灯时准许右转",
        "黄灯亮时，距停止线15米以内可继续通行",
    )
    got = [(r.read_as, r.probability, r.params, r.verdict) for r in explain(model, traditional)]
    want = [(r.read_as, r.probability, r.params, r.verdict) for r in explain(model, simplified)]
    assert got == want
    assert [g[0] for g in got] == ["lane_closed", "turn_on_red:permitted", "amber:proceed_if_close"]
