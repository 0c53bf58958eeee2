"""A lane closure read with another lane or merge side than its words name is not acted on
where the written ones decide the frame otherwise (perception.written.written_lane /
written_merge, applied through the reading check: perception.readcheck.lane_alternatives).

An outside probe (forty-eighth session) found 右侧车道禁止通行，所有车辆须向左汇入相邻车道 ("the
right lane is closed, merge left") read as closing the left lane with a merge to the right at
0.97, valid=true: the car drove on in the closed lane."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from perception.readcheck import lane_alternatives, reading_unwritten
from perception.spec import MODEL_SPEC
from perception.written import written_lane, written_merge
from ruledrive.bench_wording import load_templates
from ruledrive.written_corpus import KINDS, WRITTEN_DIR, load_written

ROOT = Path(__file__).resolve().parents[2]
# The rule language's lanes (simulator.rules.Rule.lane) as the reading names them.
LANES = {
    "left": "L1", "1": "L1", "2": "L2", "3": "L3",
    "right": "R1", "r1": "R1", "r2": "R2", "r3": "R3", "centre": "C",
}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "lane", "merge"),
    [
        ("右侧车道禁止通行，所有车辆须向左汇入相邻车道。", "R1", "left"),
        ("从右往左数第2条车道禁止通行，所有车辆须向左汇入", "R2", "left"),
        ("前方从右往左数第2条车道封闭，请提前靠右并道。", "R2", "right"),
        ("左起第一车道封闭，请向右并道", "L1", "right"),
        ("中间车道关闭，向左变道", "C", "left"),
        ("Left lane closed, merge right", "L1", "right"),
        ("Lane 2 from the right closed, merge left", "R2", "left"),
        ("The 2nd lane counting from the left is closed; switch to the right lane", "L2", "right"),
        ("Crash scene: the far-right lane not open. Merge into the left-hand lanes", "R1", "left"),
        ("The middle lane is shut; move to the right", "C", "right"),
        ("The 2nd lane from right is shut until further notice, merge left", "R2", "left"),
        ("The lane on the right is shut: merge to the left", "R1", "left"),
        ("右车道封闭施工，请往左改道通行", "R1", "left"),
        # sign abbreviations, Roman numerals and traditional characters (fifty-first session)
        ("RT LN CLSD AHD MRG LT", "R1", "left"),
        ("Lft ln closed, mrg rt", "L1", "right"),
        ("LN 2 from R closed - merge L", "R2", "left"),
        ("Ctr ln clsd, merge R", "C", "right"),
        ("Lane III counting from the left closed, merge right", "L3", "right"),
        ("右側車道封閉，請向左併線", "R1", "left"),
        ("左數第二條車道關閉 請靠右行駛", "L2", "right"),
        ("L plates: no overtaking", None, None),
        # a lane one may not drive into is the barred one, not a lane traffic is sent to
        ("禁止驶入最左侧车道，请向右并线", "L1", "right"),
        ("全日小型汽车不能驶入右车道", "R1", None),
        ("左侧车道封闭，请驶入右侧车道", "L1", "right"),
        # a merge denied earlier in its clause is none; "Rt 9" is a route; "Terminal C" a place
        ("请勿将车辆驶入左侧车道，该车道已封闭", "L1", None),
        ("前方施工，严禁车辆驶入右侧车道", "R1", None),
        ("Right lane closed. Do not attempt to move into the right lane", "R1", None),
        ("Right lane closed at exit 12. Stay on Rt 9", "R1", None),
        ("Terminal C lane closed, use Terminal B", None, None),
        # a number with no side is a convention, not written; the lane merged into is no
        # closed lane; a lane named from another is not read here
        ("Lane 2 closed, keep left", None, "left"),
        ("Merge into the left lane", None, "left"),
        ("Merge into the lane on the left", None, "left"),
        ("请向右侧车道并线", None, "right"),
        ("The lane just right of the leftmost lane is closed, move to your left", None, "left"),
        ("Left lane and right lane closed, use the centre lane", None, None),
        ("", None, None),
    ],
)
def test_written_lane_and_merge(text: str, lane: str | None, merge: str | None) -> None:
    assert (written_lane(text), written_merge(text)) == (lane, merge)


def _readings(lane: str, merge: str) -> list[np.ndarray]:
    """A rule's parameter readings [1, K] in MODEL_SPEC.rule_param_layers order, sure of
    ``lane`` and ``merge``."""
    out = []
    for layer in MODEL_SPEC.rule_param_layers:
        names = {
            "rule_limit": ("none", *MODEL_SPEC.rule_limits[1:]),
            "rule_hours": ("none", "day", "extended", "always"),
            "rule_lane": ("none", *MODEL_SPEC.rule_lanes),
            "rule_merge": ("none", *MODEL_SPEC.rule_merges),
        }[layer]
        p = np.zeros((1, len(names)), np.float32)
        p[0, names.index({"rule_lane": lane, "rule_merge": merge}.get(layer, "none"))] = 1
        out.append(p)
    return out


@pytest.mark.parametrize(
    ("text", "lane", "merge", "asked"),
    [
        ("Left lane closed ahead", "L1", "left", "right"),  # a blind review's, read so at 1.00
        ("右侧车道封闭", "R1", "right", "left"),
        ("Left lane closed ahead", "L1", "right", None),  # read towards the open lanes
        ("Lane 2 closed", "L2", "left", None),  # not an outermost lane: either side has one
        ("Centre lane closed", "C", "left", None),
    ],
)
def test_an_unwritten_merge_read_towards_no_lane_is_asked_as_the_other_side(
    text: str, lane: str, merge: str, asked: str | None
) -> None:
    """A closure that writes no merge side, read as merging towards the outside of a closed
    outermost lane (where no lane is), is asked as merging the other way."""
    assert written_merge(text) is None
    merges = ("none", *MODEL_SPEC.rule_merges)
    got = lane_alternatives(
        (text,), np.array([1]), ("not_binding", "lane_closed"), _readings(lane, merge)
    )
    want = [] if asked is None else [(0, "lane_closed", {"rule_merge": merges.index(asked)})]
    assert got == want


def test_the_lane_and_side_asked_of_a_misread_closure() -> None:
    classes = ("not_binding", "lane_closed")
    text = "右侧车道禁止通行，所有车辆须向左汇入相邻车道。"
    lanes = ("none", *MODEL_SPEC.rule_lanes)
    got = lane_alternatives((text,), np.array([1]), classes, _readings("L1", "right"))
    assert got == [(0, "lane_closed", {"rule_lane": lanes.index("R1"), "rule_merge": 1})]
    # read as written: nothing asked; read as binding nobody: not this check's
    assert lane_alternatives((text,), np.array([1]), classes, _readings("R1", "left")) == []
    assert lane_alternatives((text,), np.array([0]), classes, _readings("L1", "right")) == []
    # the reading check off: flagged outright
    params = [p[0] for p in _readings("L1", "right")]
    assert reading_unwritten(text, "lane_closed", params, check_off=True)
    assert not reading_unwritten(text, "lane_closed", params, check_off=False)
    right = [p[0] for p in _readings("R1", "left")]
    assert not reading_unwritten(text, "lane_closed", right, check_off=True)


@pytest.mark.parametrize("split", ["train", "heldout-phrasing"])  # test: training families
def test_every_closure_of_the_rule_language_is_written_as_its_lane_and_side(split: str) -> None:
    """Every lane closure of a split, both languages: where the words are read, they give the
    rule's own lane and side, so no closure read right is ever asked another."""
    from simulator.oracle import rule_class
    from simulator.plan import plan_split

    plan = plan_split(split, 20000, seed=5, language="bilingual")
    rules = {
        (t.text, t.rule.lane, t.rule.merge)
        for rs in plan.rule_texts
        for t in rs
        if rule_class(t.rule) == "lane_closed"
    }
    assert len(rules) > 400
    wrong = [
        (text, lane, merge)
        for text, lane, merge in rules
        if written_lane(text) not in (None, LANES[str(lane)])
        or written_merge(text) not in (None, merge)
    ]
    assert not wrong[:5]
    assert sum(written_lane(t) is not None for t, _, _ in rules) > len(rules) / 2
    assert all(written_merge(t) is not None for t, _, _ in rules)


def test_every_closure_of_the_wording_files_is_written_as_its_lane_and_side() -> None:
    """Every lane-closure template of the probes and the written training wording, rendered
    with every rendering of every lane and side: the words give its own lane and side or
    none (the relative "the lane just right of the leftmost lane" of probe 6 gives none)."""
    files = sorted((ROOT / "docs" / "examples").glob("wordings*.yaml"))
    templates = [load_templates(p, KINDS) for p in files]
    templates += [load_written(p) for p in sorted(WRITTEN_DIR.glob("*.yaml"))]
    n, wrong = 0, []
    for t in templates:
        for lang, kinds in t.rules.items():
            slots = t.slots.get(lang, {})
            for tpl in kinds.get("lane_closed", []):
                for lane, lane_texts in slots.get("lane", {}).items():
                    for merge, merge_texts in slots.get("merge", {}).items():
                        for a in lane_texts:
                            for b in merge_texts:
                                text = (
                                    tpl.replace("{Lane}", a[:1].upper() + a[1:])
                                    .replace("{lane}", a)
                                    .replace("{merge}", b)
                                )
                                n += 1
                                if written_lane(text) not in (None, LANES[lane]) or written_merge(
                                    text
                                ) not in (None, merge):
                                    wrong.append(text)
    assert n > 20000
    assert not wrong[:5]


def test_the_rule_corpus_is_written_as_its_lane_and_side() -> None:
    """The committed corpus sample's closures too, when the recipe's corpus is there (the
    same check as above over every training family)."""
    corpus = ROOT / "runs" / "v2" / "data" / "rule-corpus.jsonl"
    if not corpus.exists():
        pytest.skip("no rule corpus here (ruledrive rule-corpus writes it)")
    rows = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines()]
    rules = {
        (r["text"], r["rule"]["lane"], r["rule"]["merge"])
        for r in rows
        if r["class"] == "lane_closed"
    }
    wrong = [
        t
        for t, lane, merge in rules
        if written_lane(t) not in (None, LANES[lane]) or written_merge(t) not in (None, merge)
    ]
    assert not wrong[:5]


@pytest.mark.parametrize(
    "text",
    [
        "右侧车道禁止通行，所有车辆须向左汇入相邻车道。",
        "前方从右往左数第2条车道封闭，请提前靠右并道。",
    ],
)
def test_the_node_does_not_act_on_a_misread_closure_where_the_written_lane_decides(
    node: Callable[..., Any], text: str
) -> None:
    """The shipped model reads each with the left lane closed and a merge to the right (the
    first) or lane 2 from the left (the second). On the frames where the closure as written
    decides otherwise, the node answers rules_not_understood naming it; elsewhere it decides,
    valid."""
    read, got = node(text)
    assert read == "lane_closed"
    lane, merge = written_lane(text), written_merge(text)
    written = {
        ("R1", "left"): "Right lane closed, merge left",
        ("R2", "right"): "Lane 2 from the right is closed, merge right",
    }[(lane, merge)]
    read_w, right = node(written)
    assert read_w == "lane_closed"
    flagged = [0 in d.unread_rules for d in got]
    assert sum(flagged) >= 2
    for d, r, f in zip(got, right, flagged, strict=True):
        if f:
            assert (d.valid, d.reason) == (False, "rules_not_understood")
        else:
            assert d.valid and d.decision == r.decision


def test_a_closure_read_as_written_is_acted_on(node: Callable[..., Any]) -> None:
    for text in ("Left lane closed, merge right", "左侧车道封闭，请向右并道"):
        read, got = node(text)
        assert read == "lane_closed"
        assert not any(0 in d.unread_rules for d in got), text


def _wrong(got: str | None, truth: Any) -> bool:
    """An extraction that is not the truth (None, never wrong, is always safe)."""
    return got is not None and got not in (truth if isinstance(truth, tuple) else (truth,))


def test_the_review_corpus_of_lane_closures() -> None:
    """The forty-ninth session's adversarial corpus (tests/perception/data/review49_lanes.py):
    lanes traffic is sent to, uses or keeps open, lanes named from another, both sides,
    forbidden merges, 方向/对向 and place names. No wrong lane and at most the one known wrong
    merge (a borderline "keep right" for turning traffic); the texts written after the fixes
    keep their two known misses."""
    from tests.perception.data.review49_lanes import EN, HELD, ZH

    rows = [*EN, *ZH]
    assert len(rows) > 300
    wrong = {t for t, lane, merge in rows if _wrong(written_lane(t), lane)}
    wrong |= {t for t, lane, merge in rows if _wrong(written_merge(t), merge)}
    assert len(wrong) <= 1, sorted(wrong)
    held = {t for t, lane, merge in HELD if _wrong(written_lane(t), lane)}
    held |= {t for t, lane, merge in HELD if _wrong(written_merge(t), merge)}
    assert len(held) <= 2, sorted(held)
    # ... and still reads most closures that say their lane and side
    lanes = [(t, lane) for t, lane, _ in rows if isinstance(lane, str)]
    assert sum(written_lane(t) == lane for t, lane in lanes) >= 0.7 * len(lanes)
