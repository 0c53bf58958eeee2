"""A rule read as binding nobody whose words name a decision of the car is not acted on where
that decision would decide the frame (perception.binding, applied through the reading check:
perception.readcheck.binding_alternatives).

An outside probe (forty-eighth session) found 车让人，违者罚款 (give way to people; violators
fined), "Fleet drivers: under no circumstances overtake" and 车队通知：本线路全程限速70km/h read
as binding nobody at 0.94-1.00, valid=true: the car drove on past people on the crossing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from perception.binding import bound_topics, names_other_users
from perception.readcheck import binding_alternatives, reading_unwritten
from perception.spec import MODEL_SPEC
from ruledrive.bench_wording import load_templates
from ruledrive.written_corpus import KINDS, WRITTEN_DIR, load_written

ROOT = Path(__file__).resolve().parents[2]
CLASSES = (
    "not_understood",
    "not_binding",
    "speed_limit",
    "yield_pedestrians",
    "amber:always_stop",
    "amber:proceed_if_close",
    "overtaking:prohibited",
    "overtaking:permitted",
    "turn_on_red:prohibited",
    "turn_on_red:permitted",
)


@pytest.mark.parametrize(
    ("text", "topics"),
    [
        ("车让人，违者罚款。", ("yield_pedestrians",)),
        ("Company cars must give way to people on the crossing", ("yield_pedestrians",)),
        ("Pedestrians have right of way here", ("yield_pedestrians",)),
        ("请礼让斑马线上的行人", ("yield_pedestrians",)),
        ("Staff: stop on amber, every time", ("amber",)),
        ("黄灯亮时请停车", ("amber",)),
        ("Fleet drivers: under no circumstances overtake", ("overtaking",)),
        ("车队规定：山区路段一律不准超车", ("overtaking",)),
        ("Right turn on red only after a full stop", ("turn_on_red",)),
        ("红灯时可以右转", ("turn_on_red",)),
        # other road users named: the reading "binds nobody" may be right
        ("Trucks: no overtaking", ()),
        ("货车禁止超车", ()),
        ("Vehicles over 3.5 t: stop on amber", ()),
        ("Cyclists give way to pedestrians", ()),
        ("大型车辆红灯禁止右转", ()),
        ("Buses: right turn on red permitted", ()),
        # the car named beside them as bound too (fifty-first session: read as binding nobody
        # at 0.99-1.00 in a probe, the car overtook / kept its speed)
        (
            "Overtaking prohibited — this applies to cars as well as trucks over 7.5 t",
            ("overtaking",),
        ),
        # a clause of the car's own beside another's is left to the reader
        ("Cars may turn right on red after stopping; trucks over 7.5 t may not", ()),
        ("货车禁止超车，小汽车也禁止超车", ("overtaking",)),
        ("All vehicles except cars: no overtaking", ("overtaking",)),  # no other user named
        ("Trucks: no overtaking, except cars", ()),
        # no decision of the car named
        ("No honking", ()),
        ("禁止鸣笛，违者罚款", ()),
        ("Pedestrians must wait for the green man", ()),
        ("Yellow box junction ahead", ()),
        ("Mountain pass closed in winter", ()),
        ("", ()),
    ],
)
def test_bound_topics(text: str, topics: tuple[str, ...]) -> None:
    assert bound_topics(text) == topics


def _read_as_binding_nobody(text: str) -> list[tuple[int, str, dict[str, int] | None]]:
    return binding_alternatives((text,), np.array([CLASSES.index("not_binding")]), CLASSES)


def test_the_classes_asked_of_a_rule_read_as_binding_nobody() -> None:
    limit = {"rule_limit": MODEL_SPEC.rule_limits.index(30)}
    assert _read_as_binding_nobody("车让人，违者罚款。") == [(0, "yield_pedestrians", None)]
    assert _read_as_binding_nobody("Pool cars: max 30 km/h on site") == [(0, "speed_limit", limit)]
    assert _read_as_binding_nobody("车队通知：全程限速30km/h，禁止超车") == [
        (0, "overtaking:prohibited", None),
        (0, "overtaking:permitted", None),
        (0, "speed_limit", limit),
    ]
    # the car named beside another road user as bound too
    for text in (
        "Trucks and cars alike must not exceed 30 km/h",
        "不论货车还是小汽车，一律限速30km/h",
    ):
        assert _read_as_binding_nobody(text) == [(0, "speed_limit", limit)], text
    # a speed the model cannot read, another unit, two speeds, another road user: none
    for text in ("Max 35 km/h", "Max 30 mph", "Max 50 km/h or 80 km/h", "货车限速30"):
        assert _read_as_binding_nobody(text) == [], text
    # a rule read as anything else is not asked
    top = np.array([CLASSES.index("speed_limit")])
    assert binding_alternatives(("车让人",), top, CLASSES) == []


@pytest.mark.parametrize("split", ["train", "heldout-phrasing"])
def test_no_rule_of_the_rule_language_that_binds_nobody_is_checked(split: str) -> None:
    """Every rule text of a split that truly binds nobody (rules of other road users, rules
    about other things), both languages, read as binding nobody: none is asked another class."""
    from simulator.oracle import rule_class
    from simulator.plan import plan_split

    plan = plan_split(split, 20000, seed=5, language="bilingual")
    texts = {t.text for rs in plan.rule_texts for t in rs if rule_class(t.rule) == "not_binding"}
    assert len(texts) > 600
    assert not [t for t in sorted(texts) if _read_as_binding_nobody(t)][:5]
    # ... and the check does see the rule language's rules of the car
    binding = {t.text for rs in plan.rule_texts for t in rs if rule_class(t.rule) != "not_binding"}
    assert sum(bool(_read_as_binding_nobody(t)) for t in binding) > 500


def test_no_sentence_of_the_wording_files_that_binds_nobody_is_checked() -> None:
    """The written wording's sentences that bind no car (mountain passes, other road users,
    letting traffic pass) and every probe's, read as binding nobody: none is asked."""
    files = sorted((ROOT / "docs" / "examples").glob("wordings*.yaml"))
    tmpl = [load_templates(p, KINDS) for p in files]
    tmpl += [load_written(p) for p in sorted(WRITTEN_DIR.glob("*.yaml"))]
    texts = [text for t in tmpl for lst in t.not_binding.values() for text in lst]
    assert len(texts) > 500
    assert not [t for t in texts if _read_as_binding_nobody(t)][:5]


def test_other_road_users() -> None:
    assert names_other_users("HGVs: no overtaking") and names_other_users("7.5t以上货车")
    assert not names_other_users("Give way to pedestrians")
    assert not names_other_users("All cars: no overtaking")


CONTROL = "No honking"  # read as binding nobody, rightly: the frames as if there were no rule


@pytest.mark.parametrize(
    ("text", "reads_right"),
    [
        ("车让人，违者罚款。", "礼让行人"),
        ("Pool cars max 30 km/h on site", "Max 30 km/h"),
        ("车队通知：本线路全程限速30km/h，严禁超速，违者按规处理。", "Max 30 km/h"),
    ],
)
def test_the_node_does_not_act_on_binding_nobody_where_the_rule_decides(
    node: Callable[..., Any], text: str, reads_right: str
) -> None:
    """The shipped model reads each as binding nobody at 0.98-1.00. On the frames where the
    rule read right would decide otherwise than no rule, the node answers
    rules_not_understood naming it; elsewhere it decides as with no rule, valid."""
    read, got = node(text)
    assert read == "not_binding"
    _, right = node(reads_right)
    _, none = node(CONTROL)
    decisive = [p.decision != q.decision for p, q in zip(right, none, strict=True)]
    assert 2 <= sum(decisive) <= 30
    for d, q, flag in zip(got, none, decisive, strict=True):
        if flag:
            assert (d.valid, d.reason, d.unread_rules) == (False, "rules_not_understood", [0])
        else:
            assert 0 not in d.unread_rules and d.decision == q.decision


@pytest.mark.parametrize(
    "text", ["Trucks: maximum 30 km/h", "货车限速30公里", "禁止鸣笛，违者罚款"]
)
def test_a_rule_that_binds_nobody_read_so_is_acted_on(node: Callable[..., Any], text: str) -> None:
    read, got = node(text)
    assert read == "not_binding"
    assert not any(0 in d.unread_rules for d in got)


def test_with_the_reading_check_off_it_is_never_acted_on(node: Callable[..., Any]) -> None:
    _, got = node("车让人，违者罚款。", 0.0)
    flagged = (False, "rules_not_understood", [0])
    assert all((d.valid, d.reason, d.unread_rules) == flagged for d in got)
    params = [np.ones(n) / n for n in (len(MODEL_SPEC.rule_limits), 4, 8, 3)]
    assert not reading_unwritten("No honking", "not_binding", params, check_off=True)
