"""``ruledrive bench wording``: template files are checked, rules are re-worded with their own
parameters, and the check tells a right wording from a wrong one on the shipped model."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from core.errors import ConfigError
from ruledrive.bench_wording import load_templates, targeted_jobs
from ruledrive.cli import main as cli_main
from tests.training.recordings import rule_set, write_recording

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs/examples/wordings.yaml"
KINDS = (
    "amber:always_stop",
    "bus_lane",
    "lane_closed",
    "not_binding",
    "not_understood",
    "speed_limit",
    "turn_on_red:permitted",
    "turn_on_red:prohibited",
)
LANES = """
    lane: {left: [the left lane], centre: [the middle lane], right: [the right lane],
           "1": [lane one], "2": [lane two], "3": [lane three], r1: [the rightmost lane],
           r2: [the second lane from the right], r3: [the third lane from the right]}
    merge: {left: [left], right: [right]}
"""


@pytest.fixture(scope="module")
def model_kinds() -> tuple[str, ...]:
    from policy.model import PolicyModel

    return PolicyModel.load(ROOT / "models/ruledrive-default.onnx").meta.rule_classes


def _file(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "w.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_the_example_file_covers_every_kind_in_both_languages(
    model_kinds: tuple[str, ...],
) -> None:
    t = load_templates(EXAMPLE, model_kinds)
    worded = {k for k in model_kinds if k not in ("not_binding", "not_understood")}
    assert set(t.rules) == {"en", "zh"}
    assert set(t.rules["en"]) == set(t.rules["zh"]) == worded


def test_a_rule_is_rendered_with_its_own_parameters(tmp_path: Path) -> None:
    t = load_templates(
        _file(
            tmp_path,
            "en:\n  slots:" + LANES + "  rules:\n"
            "    lane_closed: ['{Lane} is shut, go {merge}']\n"
            "    speed_limit: ['Top speed {limit} km/h']\n",
        ),
        KINDS,
    )
    rng = random.Random(0)
    rule = {"lane": "r2", "merge": "left", "limit": None}
    assert (
        t.render("en", "lane_closed", rule, rng)
        == "The second lane from the right is shut, go left"
    )
    assert t.render("en", "speed_limit", {"limit": 70}, rng) == "Top speed 70 km/h"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("en:\n  rules:\n    speed_limit: ['No speeding']\n", "names exactly ['limit']"),
        ("en:\n  rules:\n    overtaking:prohibited: ['No passing']\n", "unknown rule kind"),
        ("en:\n  rules:\n    turn_on_red:prohibited: ['No {x} on red']\n", "names ['x']"),
        ("en:\n  rules:\n    lane_closed: ['{lane} shut, go {merge}']\n", "needs slots"),
        ("en:\n  rules:\n    speed_limit: []\n", "non-empty list"),
        ("en:\n  rules:\n    speed_limit: ['  ']\n", "an empty string"),
        ("en:\n  rules:\n    speed_limit: ['Max {limit']\n", "template"),
        ("en:\n  rules:\n    speed_limit: ['Max {limit:>999999999}']\n", "without a format"),
        ("en:\n  rules:\n    speed_limit: ['Max {limit!r}']\n", "without a format"),
        ("en:\n  slots:\n    lane: {left: [x]}\n  rules: {}\n", "needs exactly the values"),
        ("en:\n  slots:\n    colour: {}\n  rules: {}\n", "expected some of"),
        ("en:\n  rule: {}\n", "expected 'rules:'"),
        ("- a list\n", "mapping of language"),
        ("en: [unclosed\n", "cannot read templates"),
        (
            "en:\n  rules:\n    speed_limit: ['" + "x" * 200 + " {limit}']\n",
            "201 characters besides its slots; a rule on the bus has at most 200",
        ),
    ],
)
def test_a_bad_template_file_is_refused_with_its_place(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_templates(_file(tmp_path, text), KINDS)


def test_a_template_a_long_slot_value_pushes_past_the_rule_limit_is_refused(
    tmp_path: Path, model_kinds: tuple[str, ...]
) -> None:
    """199 characters besides its slot fit; the lane slot's value makes the rule longer than
    a rule set may carry: a ConfigError naming the template, not a validation traceback."""
    from bus.recording_reader import read_samples
    from simulator.generate import generate

    long = "x" * 180
    t = load_templates(
        _file(tmp_path, "en:\n  slots:" + LANES + "  rules:\n    lane_closed: ['" + long
              + " {Lane} shut, go {merge}']\n"),
        model_kinds,
    )  # fmt: skip
    generate(tmp_path / "d", "test", 120, 5, progress=False, rule_language="bilingual")
    samples = list(read_samples(sorted((tmp_path / "d").glob("*.mcap"))))
    with pytest.raises(ConfigError, match="en lane_closed template renders a rule of"):
        targeted_jobs(samples, t, seed=1)


def test_only_targeted_rules_of_readable_frames_are_reworded(
    tmp_path: Path, model_kinds: tuple[str, ...]
) -> None:
    from bus.recording_reader import read_samples
    from simulator.generate import generate

    generate(tmp_path / "d", "test", 120, 5, progress=False, rule_language="bilingual")
    samples = list(read_samples(sorted((tmp_path / "d").glob("*.mcap"))))
    t = load_templates(EXAMPLE, model_kinds)
    reworded = 0
    for s in samples:
        jobs, keys = targeted_jobs([s], t, seed=1)
        if not all(m["understood"] for m in s.scene["rule_meta"]):
            assert not jobs  # flagging such a frame is right, whatever the wording
        for job, (kind, lang, label, text) in zip(jobs, keys, strict=True):
            assert label == s.label and lang in ("en", "zh")
            pairs = zip(s.rules, job.rules.rules, strict=True)
            changed = [i for i, (a, b) in enumerate(pairs) if a != b]
            assert len(changed) == 1 and job.rules.rules[changed[0]] == text
            meta = s.scene["rule_meta"][changed[0]]
            assert meta["targeted"] and meta["class"] == kind and meta["rule"]["scope"] == "all"
            reworded += 1
    assert reworded > 0


@pytest.mark.slow
def test_the_check_tells_a_right_wording_from_an_inverted_one(tmp_path: Path) -> None:
    """A wording that says the opposite of the rule must score low, a plain one high: the check
    measures reading, not only that frames went through. --seen-in counts the renderings that a
    training recording holds verbatim (here one of the two texts)."""
    seen_text = "Right turn on red permitted after a full stop"
    templates = _file(
        tmp_path,
        "en:\n  rules:\n"
        f"    turn_on_red:prohibited: ['{seen_text}']\n"
        f"    turn_on_red:permitted: ['{seen_text}']\n"
        "    amber:always_stop: ['Stop on amber']\n",
    )
    training = write_recording(
        tmp_path / "train.mcap", rule_set(rules=["No overtaking", seen_text, "Stop on yellow"])
    )
    doc = tmp_path / "bench.md"
    rc = cli_main(
        [
            "bench",
            "wording",
            "--templates",
            str(templates),
            "--scenes",
            "600",
            "--output",
            str(doc),
            "--fail-under",
            "0.5",
            "--seen-in",
            str(training),
        ]
    )
    text = doc.read_text()
    rows = dict(
        (m[0], float(m[1]))
        for m in re.findall(r"^\| (turn_on_red:\w+) \| en \| \d+ \| ([\d.]+)% \|", text, re.M)
    )
    assert rows["turn_on_red:permitted"] >= 90 and rows["turn_on_red:prohibited"] <= 20
    seen = dict(re.findall(r"^\| ([\w:]+) \| en \| \d+ \|.* ([\d.]+)% \|$", text, re.M))
    assert seen == {
        "turn_on_red:permitted": "100.0",
        "turn_on_red:prohibited": "100.0",
        "amber:always_stop": "0.0",
    }, text
    assert f"among the 3 rule texts of {training}: {seen_text}" in text
    # The totals add up the kinds' frames: every frame is right, flagged or wrong.
    (n, right, flagged, wrong) = map(
        int,
        re.search(
            r"In all \(every kind\): en (\d+) frames, (\d+) right, (\d+) flagged, \*\*(\d+) wrong",
            text,
        ).groups(),
    )
    kinds_n = sum(int(x) for x in re.findall(r"^\| [\w:]+ \| en \| (\d+) \|", text, re.M))
    assert n == kinds_n == right + flagged + wrong and wrong > 0  # the inverted kind is wrong
    assert rc == 1  # the inverted kind is under --fail-under
    assert "Command: `ruledrive bench wording" in text and "read as" in text
    # Each worst rendering says what the node answered the frames it got wrong: a decision it
    # acted on (valid) or the fallback it gave, with counts that cover those frames.
    worst = re.findall(r"^\| (\d+)% \| (\d+) \| [\w:]+ \| .+ \| .+ \| (.+) \|$", text, re.M)
    assert worst
    for _, n_frames, said in worst:
        counts = [int(c) for c in re.findall(r" x(\d+)", said)]
        assert 0 < sum(counts) <= int(n_frames), said
    assert any("(valid)" in said for _, _, said in worst)  # the inverted kind acts wrongly


def test_bad_flags_and_missing_data_are_clear(tmp_path: Path, capsys) -> None:
    assert cli_main(["bench", "wording", "--templates", str(tmp_path / "none.yaml")]) == 2
    assert "cannot read templates" in capsys.readouterr().err
    rc = cli_main(
        ["bench", "wording", "--templates", str(EXAMPLE), "--data", str(tmp_path / "nowhere")]
    )
    assert rc == 2 and "no recordings" in capsys.readouterr().err
    assert cli_main(["bench", "wording", "--templates", str(EXAMPLE), "--fail-under", "2"]) == 2
    rc = cli_main(
        ["bench", "wording", "--templates", str(EXAMPLE), "--seen-in", str(tmp_path / "nowhere")]
    )
    assert rc == 2 and "--seen-in: no recordings" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--seed", "-1", ">= 0, got -1 (allowed: 0..4294967295)"),
        ("--seed", str(2**32), "<= 4294967295, got 4294967296"),
        ("--scenes", "0", ">= 1, got 0 (allowed: 1..100000)"),
        ("--scenes", "1000000000", "<= 100000, got 1000000000"),
        ("--show", "1001", "<= 1000, got 1001"),
    ],
)
def test_numeric_flags_are_bounded_at_parse_time(
    flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "wording", "--templates", str(EXAMPLE), "--scenes", "20", "--no-write"]
    assert cli_main([*argv, f"{flag}={value}"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"argument {flag}: must be a whole number {message}" in err
