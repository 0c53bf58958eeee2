"""Oracle unit tests: every rule kind and every priority."""

from __future__ import annotations

import pytest

from bus.schema import DecisionLabel as D
from core.errors import DataError
from simulator.oracle import decide, decide_texts
from simulator.rules import KINDS, TEMPLATES, Rule, make_rule, parse_rule
from simulator.scene import Scene

BASE = Scene(n_lanes=3, ego_lane=1, speed_kph=40.0)


def R(kind: str, variant: str = "", **kw: object) -> Rule:
    return make_rule(kind, variant, **kw)


NO_OVERTAKE = R("overtaking", "prohibited")
TOR = R("turn_on_red", "permitted")
NO_TOR = R("turn_on_red", "prohibited")
ALWAYS_STOP = R("amber", "always_stop")
AMBER_CLOSE = R("amber", "proceed_if_close")
YIELD = R("yield_pedestrians")


def test_default_proceeds() -> None:
    assert decide(BASE, []) == (D.PROCEED, "default")


def test_pedestrian_on_road_beats_everything() -> None:
    s = BASE.replace(
        crosswalk=True,
        crosswalk_m=12.0,
        pedestrians="on_road",
        light="red",
        stop_line_m=9.0,
        obstacle="cones",
    )
    assert decide(s, [TOR, YIELD]) == (D.STOP, "hazard:pedestrian_on_road")


@pytest.mark.parametrize(
    ("lane", "left", "right", "want"),
    [
        (1, False, False, D.CHANGE_LANE_LEFT),
        (1, True, False, D.CHANGE_LANE_RIGHT),
        (0, False, False, D.CHANGE_LANE_RIGHT),
        (1, True, True, D.STOP),
        (2, True, False, D.STOP),
    ],
)
def test_obstacle(lane: int, left: bool, right: bool, want: D) -> None:
    s = BASE.replace(ego_lane=lane, obstacle="stopped_car", left_vehicle=left, right_vehicle=right)
    # Avoiding an obstacle is not overtaking: a no-overtaking rule does not matter.
    assert decide(s, [NO_OVERTAKE]) == (want, "hazard:obstacle")


def test_red_and_turn_on_red() -> None:
    red = BASE.replace(light="red", stop_line_m=20.0)
    assert decide(red, [TOR]) == (D.STOP, "light:red")  # not in the right-turn lane
    right = red.replace(ego_lane=2)
    assert decide(right, [TOR]) == (D.YIELD, "rule:turn_on_red")
    assert decide(right, []) == (D.STOP, "light:red")
    assert decide(right, [NO_TOR]) == (D.STOP, "light:red")
    assert decide(right, [TOR, NO_TOR])[0] == D.STOP  # most restrictive wins


def test_amber() -> None:
    close = BASE.replace(light="amber", stop_line_m=10.0)
    far = close.replace(stop_line_m=30.0)
    assert decide(close, []) == (D.PROCEED, "default")
    assert decide(close, [AMBER_CLOSE]) == (D.PROCEED, "default")
    assert decide(close, [ALWAYS_STOP]) == (D.STOP, "rule:amber_stop")
    assert decide(close, [AMBER_CLOSE, ALWAYS_STOP])[0] == D.STOP
    assert decide(far, []) == (D.STOP, "light:amber_far")
    assert decide(far, [AMBER_CLOSE]) == (D.STOP, "light:amber_far")


def test_green_does_not_bind() -> None:
    assert decide(BASE.replace(light="green", stop_line_m=10.0), [ALWAYS_STOP])[0] == D.PROCEED


def test_waiting_pedestrians_need_the_yield_rule() -> None:
    s = BASE.replace(crosswalk=True, crosswalk_m=15.0, pedestrians="waiting")
    assert decide(s, []) == (D.PROCEED, "default")
    assert decide(s, [YIELD]) == (D.YIELD, "rule:yield_pedestrians")
    # Priority 3 before 4: a red light stops first.
    assert decide(s.replace(light="red", stop_line_m=12.0), [YIELD]) == (D.STOP, "light:red")


@pytest.mark.parametrize(
    ("rule", "n", "ego", "want"),
    [
        (R("lane_closed", "named", lane="left", merge="right"), 2, 0, D.CHANGE_LANE_RIGHT),
        (R("lane_closed", "named", lane="right", merge="left"), 3, 2, D.CHANGE_LANE_LEFT),
        (R("lane_closed", "named", lane="centre", merge="right"), 3, 1, D.CHANGE_LANE_RIGHT),
        (R("lane_closed", "numbered", lane="1", merge="right"), 3, 0, D.CHANGE_LANE_RIGHT),
        (R("lane_closed", "numbered", lane="2", merge="left"), 2, 1, D.CHANGE_LANE_LEFT),
    ],
)
def test_lane_closed(rule: Rule, n: int, ego: int, want: D) -> None:
    s = Scene(n_lanes=n, ego_lane=ego, speed_kph=30.0)
    assert decide(s, [rule]) == (want, "rule:lane_closed")
    side = "left_vehicle" if want == D.CHANGE_LANE_LEFT else "right_vehicle"
    assert decide(s.replace(**{side: True}), [rule]) == (D.SLOW_DOWN, "rule:lane_closed")


def test_lane_closed_elsewhere_or_missing_lane_does_not_apply() -> None:
    other = R("lane_closed", "named", lane="left", merge="right")
    assert decide(Scene(n_lanes=2, ego_lane=1), [other])[0] == D.PROCEED
    missing = R("lane_closed", "numbered", lane="3", merge="left")
    assert decide(Scene(n_lanes=2, ego_lane=1), [missing])[0] == D.PROCEED
    centre = R("lane_closed", "named", lane="centre", merge="left")
    assert decide(Scene(n_lanes=2, ego_lane=1), [centre])[0] == D.PROCEED


@pytest.mark.parametrize(
    ("hours", "tod", "active"),
    [
        ("day", "day", True),
        ("day", "dusk", False),
        ("extended", "dusk", True),
        ("extended", "night", False),
        ("always", "night", True),
    ],
)
def test_bus_lane(hours: str, tod: str, active: bool) -> None:
    rule = R("bus_lane", hours=hours)
    s = Scene(n_lanes=2, ego_lane=1, time_of_day=tod, speed_kph=30.0)
    want = (D.CHANGE_LANE_LEFT, "rule:bus_lane") if active else (D.PROCEED, "default")
    assert decide(s, [rule]) == want
    if active:
        assert decide(s.replace(left_vehicle=True), [rule]) == (D.SLOW_DOWN, "rule:bus_lane")
    assert decide(s.replace(ego_lane=0), [rule])[0] == D.PROCEED  # not in the bus lane


def test_lead_vehicle_and_overtaking() -> None:
    s = BASE.replace(lead_vehicle_m=20.0)
    assert decide(s, []) == (D.CHANGE_LANE_LEFT, "traffic:overtake")
    assert decide(s, [R("overtaking", "permitted")]) == (D.CHANGE_LANE_LEFT, "traffic:overtake")
    assert decide(s, [NO_OVERTAKE]) == (D.SLOW_DOWN, "rule:no_overtaking")
    assert decide(s, [R("overtaking", "permitted"), NO_OVERTAKE])[0] == D.SLOW_DOWN
    assert decide(s.replace(left_vehicle=True), []) == (D.SLOW_DOWN, "traffic:lead_vehicle")
    assert decide(s.replace(ego_lane=0), []) == (D.SLOW_DOWN, "traffic:lead_vehicle")
    assert decide(s.replace(lead_vehicle_m=60.0), [NO_OVERTAKE])[0] == D.PROCEED


def test_speed_limit_lowest_applies() -> None:
    s = BASE.replace(speed_kph=75.0)
    assert decide(s, [R("speed_limit", limit=80)])[0] == D.PROCEED
    assert decide(s, [R("speed_limit", limit=80), R("speed_limit", limit=60)]) == (
        D.SLOW_DOWN,
        "rule:speed_limit",
    )


def test_school_zone_needs_sign_and_hours() -> None:
    rule = R("school_zone", limit=30, hours="day")
    s = BASE.replace(speed_kph=45.0, school_zone_sign=True)
    assert decide(s, [rule]) == (D.SLOW_DOWN, "rule:school_zone")
    assert decide(s.replace(school_zone_sign=False), [rule])[0] == D.PROCEED
    assert decide(s.replace(time_of_day="night"), [rule])[0] == D.PROCEED
    always = R("school_zone", limit=30, hours="always")
    assert decide(s.replace(time_of_day="night"), [always])[0] == D.SLOW_DOWN


def test_priority_lane_rule_before_lead_before_speed() -> None:
    s = Scene(n_lanes=2, ego_lane=1, lead_vehicle_m=20.0, speed_kph=100.0)
    rules = [R("bus_lane", hours="always"), R("speed_limit", limit=50)]
    assert decide(s, rules) == (D.CHANGE_LANE_LEFT, "rule:bus_lane")
    assert decide(s, rules[1:]) == (D.CHANGE_LANE_LEFT, "traffic:overtake")
    assert decide(s.replace(lead_vehicle_m=None), rules[1:]) == (D.SLOW_DOWN, "rule:speed_limit")


def test_distractors_never_change_the_decision() -> None:
    s = BASE.replace(lead_vehicle_m=20.0, speed_kph=100.0)
    for i, p in enumerate(TEMPLATES[("distractor", "")]):
        rule = Rule("distractor", "", limit=60 if "{limit}" in p.text else None, phrasing=i)
        assert decide(s, [rule]) == decide(s, [])


def test_every_phrasing_round_trips_through_text() -> None:
    examples = {"limit": 50, "hours": "day", "lane": None, "merge": None}
    for (kind, variant), tpls in TEMPLATES.items():
        assert len(tpls) >= 4 and any(p.held_out for p in tpls), kind
        for i, p in enumerate(tpls):
            kw = {k: v for k, v in examples.items() if "{" + k + "}" in p.text}
            if "{lane}" in p.text:
                kw["lane"] = "left" if variant == "named" else "1"
                kw["merge"] = "right"
            rule = Rule(kind, variant, phrasing=i, **kw)  # type: ignore[arg-type]
            assert parse_rule(rule.text) == rule, rule.text
    assert set(KINDS) >= {
        "speed_limit",
        "school_zone",
        "overtaking",
        "lane_closed",
        "amber",
        "yield_pedestrians",
        "turn_on_red",
        "bus_lane",
        "distractor",
    }


def test_decide_texts_matches_decide() -> None:
    s = BASE.replace(lead_vehicle_m=20.0)
    assert decide_texts(s, ["No overtaking"]) == (D.SLOW_DOWN, "rule:no_overtaking")


def test_unknown_rule_kind_and_text() -> None:
    with pytest.raises(DataError, match="unknown rule kind 'teleport'"):
        make_rule("teleport")
    with pytest.raises(DataError, match="not in the rule catalogue"):
        parse_rule("Fly over the traffic")
    with pytest.raises(DataError, match="limit"):
        make_rule("speed_limit")


@pytest.mark.parametrize(
    "bad",
    [
        {"n_lanes": -1},
        {"n_lanes": 4},
        {"ego_lane": 3},
        {"light": "blue"},
        {"light": "red"},
        {"pedestrians": "waiting"},
        {"speed_kph": -5.0},
        {"ego_lane": 0, "left_vehicle": True},
    ],
)
def test_impossible_scene(bad: dict) -> None:
    with pytest.raises(DataError, match="impossible scene"):
        Scene(**bad)
