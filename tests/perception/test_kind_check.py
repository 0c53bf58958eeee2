"""A reading of a kind the rule's words rule out is not acted on where the kind they write
would decide the frame otherwise (perception.readcheck.kind_alternatives; fifty-first session):

- a rule that bars the car from a lane (perception.binding.barred_lane), read as neither a bus
  lane nor a lane closure: the held-out bus-lane wording "At all times, cars must not use the
  kerbside lane" was read as binding nobody at 0.95 and 全天小型汽车不得驶入外侧车道 as no
  overtaking at 0.97, answered valid=true while the car stayed in the lane;
- a rule read as a school zone that names no school, pupil or child
  (perception.binding.names_school): a school zone binds only by a school sign, in its hours,
  and "The Borough Council (Speed Limits) Order 2026: ... exceeding 30 km/h" (a blind probe,
  docs/examples/wordings-probe19.yaml) was read as one at 0.99: the car kept its speed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from perception.binding import (
    amber_condition,
    amber_proceeds,
    barred_lane,
    names_bus_lane,
    names_school,
    others_first,
)
from perception.readcheck import kind_alternatives, reading_unwritten
from perception.spec import MODEL_SPEC
from ruledrive.bench_wording import load_templates
from ruledrive.written_corpus import KINDS, WRITTEN_DIR, load_written

ROOT = Path(__file__).resolve().parents[2]
CLASSES = (
    "not_understood",
    "not_binding",
    "speed_limit",
    "school_zone",
    "bus_lane",
    "lane_closed",
    "overtaking:prohibited",
    "overtaking:permitted",
    "amber:always_stop",
    "amber:proceed_if_close",
    "yield_pedestrians",
    "turn_on_red:prohibited",
    "turn_on_red:permitted",
)
LANES = [("bus_lane", None), ("lane_closed", None)]


def _asked(text: str, read: str) -> list[tuple[str, Any]]:
    top = np.array([CLASSES.index(read)])
    return [(c, p) for _, c, p in kind_alternatives((text,), top, CLASSES)]


@pytest.mark.parametrize(
    "text",
    [
        "At all times, cars must not use the kerbside lane",
        "Cars may not drive in the nearside lane at any time",
        "Private cars must keep out of the right-hand lane 7am to 7pm",
        "No cars in the right lane 7-19",
        "You may not be in the right lane between 7 and 19",
        "Right lane: no cars, Mon-Fri",
        "7时至19时小型汽车禁止驶入最右侧车道",
        "全天小型汽车不得驶入外侧车道",
        "禁止在应急车道行驶",
        "最右侧车道早7点至晚7点禁止小型汽车驶入",
        "Cars prohibited in lane 3 from 7am to 8pm",
        "No entry to the kerb lane for cars, 7-20",
        "Lane 3: no private cars at any time",
        "外側車道 小型車禁行",
        "汽車禁止佔用慢車道",
    ],
)
def test_a_lane_barred_to_the_car(text: str) -> None:
    assert barred_lane(text)
    for read in ("not_binding", "overtaking:prohibited", "speed_limit"):
        assert _asked(text, read) == LANES, read
    # a school zone that names no school is also asked as a speed limit
    assert _asked(text, "school_zone") == [*LANES, ("speed_limit", None)]
    # read as a lane of its own kind: nothing to ask
    assert _asked(text, "bus_lane") == _asked(text, "lane_closed") == []


@pytest.mark.parametrize(
    "text",
    [
        "Trucks must not use the left lane",  # another road user
        "Delivery vehicles must not use the right lane between 7 and 10 am",
        "Vehicles over 4.2 m high must not use the right lane - low bridge",
        "Pedestrians must not enter the traffic lanes",
        "严禁行人进入机动车道",
        "Do not use a phone when changing lanes",  # no lane named
        "Never cut into a lane without signalling",
        "超车后请勿长时间占用超车道",  # the overtaking lane
        "Overtaking lane 1 km ahead",  # a distance, not lane 1
        "Passing lane 2 miles",
        "货车禁止驶入最左侧车道",
        "No parking in the right lane",  # not driving in it
        "Do not stop in the right lane",
        "Do not change lanes",
        "Overtaking lane ends",
        "机动车不得驶入人行道",  # not a lane
        "Do not enter the junction unless your exit is clear",
        "",
    ],
)
def test_not_a_lane_barred_to_the_car(text: str) -> None:
    assert not barred_lane(text)
    assert _asked(text, "not_binding") == []


def test_a_school_zone_reading_of_a_rule_that_names_no_school_is_asked_as_a_speed_limit() -> None:
    order = "The Borough Council (Speed Limits) Order 2026: no person shall exceed 30 km/h."
    assert _asked(order, "school_zone") == [("speed_limit", None)]
    assert _asked("本路段限速30公里", "school_zone") == [("speed_limit", None)]
    for text in (
        "School zone: 30 km/h 7am to 5pm",
        "Slow to 30 near schools on school days",
        "30 km/h when children are present",
        "学校区域7时至17时限速30",
        "校园周边全天限速30",
        "中小学门前路段上下学时段限速30",
        "Preschool zone: 20 km/h, 7am-5pm",
        "Daycare centre ahead: 30 km/h",
        "Crossing guard on duty: 30 km/h",
        "國小前 限速30公里",
        "幼稚園附近 限速30",
        "注意小朋友 前方限速30",
    ):
        assert names_school(text), text
        assert _asked(text, "school_zone") == [], text
    # a speed limit read as one is not asked
    assert _asked(order, "speed_limit") == []
    # places named for a school or children that are none
    for text in (
        "Children's Hospital zone: maximum 30 km/h",
        "驾校路段限速40",
        "校场路全线限速50",
        "School bus drivers: maximum speed 40 km/h",
        "校车驾驶人应遵守限速40公里的规定",
    ):
        # a school bus driver's rule binds nobody the car is either (others_first)
        asked = [("speed_limit", None)] + (
            [("not_binding", None)] if text.startswith(("School bus", "校车")) else []
        )
        assert _asked(text, "school_zone") == asked, text


@pytest.mark.parametrize(
    ("text", "condition"),
    [
        ("On amber, stop unless within 15 m of the stop line", True),
        ("Amber: if you are too close to stop safely, go on", True),
        ("黄灯亮时距停止线15米以内的车辆可以通过，其余车辆一律停车", True),
        ("黄灯时除非距停止线0.015公里以内，否则应停车", True),
        ("On amber, stop at the line regardless of your distance from it", False),
        ("Amber: stop at any distance from the stop line, 0 m included", False),
        ("Going ahead on orange is no longer legal", False),
        ("黄灯亮时，无论距离远近都必须停车", False),
        ("Always stop on amber", False),
        ("Stop on amber even when close to the stop line", "even"),
        ("黄灯亮时即使接近停止线也须停车", "even"),
    ],
)
def test_an_amber_rule_read_as_proceed_if_close_that_writes_no_closeness(
    text: str, condition: bool | str
) -> None:
    """Read as proceed if close, a rule that writes no closeness is asked as always stop; read
    as always stop, one that lets the car go on when close is asked as proceed if close, and
    one that says "even when close" is not."""
    assert amber_condition(text) is bool(condition)
    asked = [] if condition else [("amber:always_stop", None)]
    assert _asked(text, "amber:proceed_if_close") == asked
    assert amber_proceeds(text) is (condition is True)
    asked = [("amber:proceed_if_close", None)] if condition is True else []
    assert _asked(text, "amber:always_stop") == asked


def test_a_rule_read_as_another_kind_than_the_decisions_its_words_name() -> None:
    """Overtaking read as a speed limit ("No overtaking on this 100 % of the road", 1.00 in a
    probe: the car overtook), a right turn on red read as no overtaking: each class of what the
    words name is asked. A rule read as one of them, as binding nobody (binding_alternatives
    asks those) or as not understood, or whose words name another road user, is not."""
    both = [("overtaking:prohibited", None), ("overtaking:permitted", None)]
    assert _asked("No overtaking on this 100 % of the road", "speed_limit") == both
    assert _asked("No overtaking on this stretch of road", "speed_limit") == both[:1]
    # where the words write a ban, only the ban is asked; else both polarities
    assert _asked("红灯时禁止右转", "overtaking:prohibited") == [("turn_on_red:prohibited", None)]
    assert _asked("红灯时右转", "overtaking:prohibited") == [
        ("turn_on_red:prohibited", None),
        ("turn_on_red:permitted", None),
    ]
    assert _asked("No overtaking on this 100 % of the road", "overtaking:permitted") == []
    assert _asked("No overtaking on this 100 % of the road", "not_binding") == []
    assert _asked("No overtaking on this 100 % of the road", "not_understood") == []
    # a rule of trucks read as the car's is asked as binding nobody (others_first), not as the
    # car's overtaking
    assert _asked("Trucks: no overtaking", "speed_limit") == [("not_binding", None)]


@pytest.mark.parametrize(
    ("text", "others"),
    [
        ("Trucks must stop on amber", True),
        ("Motorcycles only: no overtaking", True),
        ("Buses may turn right on red", True),
        ("Vehicles over 3.5 t: maximum 40 km/h", True),
        ("Emergency vehicles may exceed the posted speed limit", True),
        ("大货车红灯禁止右转", True),
        ("本路段禁止货车通行", True),
        ("公交车红灯可右转", True),
        ("Do not overtake trucks", False),
        ("Give way to buses pulling out", False),
        ("When a school bus stops, do not overtake", False),
        ("校车停靠时禁止超车", False),
        ("货车以外的机动车限速60公里", False),
        ("货车限速60，小型客车限速80", False),
        ("Trucks and cars: no overtaking", False),
        ("Except for trucks over 7.5 t, vehicles may overtake here", False),
        ("Only police vehicles may overtake here; all other vehicles must not", False),
        ("教练：这里红灯允许右转", False),
        ("No overtaking", False),
    ],
)
def test_a_rule_of_another_road_user_read_as_the_car_s_is_asked_as_binding_nobody(
    text: str, others: bool
) -> None:
    """A blind review's "Trucks must stop on amber" was read as the car's always-stop at 1.00,
    and "Buses may turn right on red" as the car's permission."""
    assert others_first(text) is others
    for read in ("amber:always_stop", "turn_on_red:permitted", "overtaking:prohibited"):
        assert (("not_binding", None) in _asked(text, read)) is others, read
    for read in ("not_binding", "yield_pedestrians", "bus_lane"):
        assert ("not_binding", None) not in _asked(text, read)


@pytest.mark.parametrize(
    "text",
    ["Bus and taxi lane, private cars prohibited", "Bus/cycle lane 7am-7pm", "公交及出租车专用道"],
)
def test_a_bus_lane_shared_with_others_is_a_bus_lane(text: str) -> None:
    """A blind review's "Bus and taxi lane, private cars prohibited" was read as binding
    nobody at 0.99."""
    assert names_bus_lane(text)
    assert _asked(text, "not_binding") == [("bus_lane", None)]
    assert _asked(text, "bus_lane") == []


def test_a_bus_lane_named_and_read_as_another_kind_is_asked_as_a_bus_lane() -> None:
    """ "BUS ONLY LANE. Violators will be fined" and 公交专用道 24小时 were read as binding nobody
    at 1.00 (a natural-text review): a bus lane in force binds the car to keep out of it."""
    for text in (
        "BUS ONLY LANE. Violators will be fined",
        "公交专用道 24小时 违者罚款",
        "巴士專線 全日",
    ):
        assert names_bus_lane(text), text
        assert _asked(text, "not_binding") == [("bus_lane", None)], text
        assert _asked(text, "bus_lane") == _asked(text, "lane_closed") == []
    for text in ("Bus lane ends", "公交专用道结束", "No parking"):
        assert not names_bus_lane(text), text
        assert _asked(text, "not_binding") == [], text


def test_with_the_check_off_such_a_reading_is_not_understood() -> None:
    params = [np.ones(n) / n for n in (len(MODEL_SPEC.rule_limits), 4, 8, 3)]
    assert reading_unwritten("Cars must not use the right lane", "not_binding", params, True)
    assert reading_unwritten("Slow down here on weekdays", "school_zone", params, True)
    assert not reading_unwritten("Slow down near the school", "school_zone", params, True)
    assert not reading_unwritten("Cars must not use the right lane", "bus_lane", params, True)
    # every kind the check asks: an amber proceed-if-close that writes no distance, and a
    # reading of another kind than the decision the words name
    assert reading_unwritten("Always stop on amber", "amber:proceed_if_close", params, True)
    assert reading_unwritten("Overtaking is prohibited", "yield_pedestrians", params, True)
    assert not reading_unwritten("Overtaking is prohibited", "overtaking:prohibited", params, True)
    # with the check on, these are its alternatives instead, asked frame by frame
    assert not reading_unwritten("Cars must not use the right lane", "not_binding", params)


@pytest.mark.parametrize("split", ["train", "heldout-phrasing"])
def test_no_rule_of_the_rule_language_read_right_is_asked(split: str) -> None:
    """Every rule text of the rule language read as its own class is asked nothing: no rule
    but a bus lane or a lane closure bars a lane, every school zone names a school and every
    amber "proceed if close" writes its distance. And
    the check does see the held-out split's lane bans of the car."""
    from simulator.oracle import rule_class
    from simulator.plan import plan_split

    plan = plan_split(split, 20000, seed=5, language="bilingual")
    rules = {(t.text, rule_class(t.rule)) for rs in plan.rule_texts for t in rs}
    assert len(rules) > 3000
    classes = {c for _, c in rules}
    assert {"bus_lane", "school_zone", "not_binding"} <= classes
    wrong = [
        (t, c)
        for t, c in sorted(rules)
        if t and c in CLASSES and c not in ("bus_lane", "lane_closed") and _asked(t, c)
    ]
    assert not wrong[:5]
    if split == "heldout-phrasing":  # its bus lanes said as "cars must not use the ... lane"
        assert any(barred_lane(t) for t, c in rules if c == "bus_lane")


def test_no_sentence_of_the_wording_files_read_right_is_asked() -> None:
    """The probes' and the written wording's sentences, each read as its own kind: none is
    asked (the school zones all name a school; no other kind bars a lane)."""
    files = sorted((ROOT / "docs" / "examples").glob("wordings*.yaml"))
    tmpl = [load_templates(p, KINDS) for p in files]
    tmpl += [load_written(p) for p in sorted(WRITTEN_DIR.glob("*.yaml"))]
    texts = [
        (text, kind)
        for t in tmpl
        for lang in t.rules.values()
        for kind, lst in lang.items()
        for text in lst
    ]
    assert len(texts) > 2000
    wrong = [
        (t, k)
        for t, k in texts
        if k in CLASSES and k not in ("bus_lane", "lane_closed") and _asked(t, k)
    ]
    assert not wrong[:5]


CONTROL = "No honking"  # read as binding nobody, rightly: the frames as if there were no rule


@pytest.mark.parametrize(
    ("text", "read_as", "reads_right"),
    [
        (
            "At all times, cars must not use the kerbside lane",
            "not_binding",
            "Bus lane at all times",
        ),
        ("全天小型汽车不得驶入外侧车道", "overtaking:prohibited", "全天最右侧车道为公交专用道"),
    ],
)
def test_the_node_does_not_act_on_a_kind_the_words_rule_out(
    node: Callable[..., Any], text: str, read_as: str, reads_right: str
) -> None:
    """Each is read as ``read_as`` by the shipped model; on the frames where the rule read as
    a bus lane would decide otherwise than that reading, the node answers
    rules_not_understood naming it."""
    read, got = node(text)
    assert read == read_as
    alone, plain = node(text, 0.0)
    _, right = node(reads_right)
    assert read == alone
    decisive = [d.decision != r.decision for d, r in zip(got, right, strict=True) if d.valid]
    assert not any(decisive)  # every frame the bus lane decides otherwise is refused
    assert any(not d.valid and d.unread_rules == [0] for d in got)
