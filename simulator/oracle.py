"""The oracle: the one correct decision for a scene under a rule set, with its reason.

Priorities (the first that applies wins)::

  1. pedestrian on the road                    -> STOP               hazard:pedestrian_on_road
  2. obstacle in the ego lane                  -> CHANGE_LANE_LEFT if the left lane exists and is
                                                  free, else CHANGE_LANE_RIGHT if the right lane
                                                  exists and is free, else STOP  hazard:obstacle
                                                  (avoiding an obstacle is not overtaking)
  3. red light   -> YIELD if a turn-on-red-permitted rule and ego in the rightmost (right-turn)
                    lane (rule:turn_on_red), else STOP (light:red)
     amber light -> STOP with an always-stop rule (rule:amber_stop); otherwise STOP when the stop
                    line is farther than 15 m (light:amber_far); close: no binding, go on
  4. pedestrians waiting at a crosswalk + yield rule -> YIELD      rule:yield_pedestrians
  5. ego lane closed -> change lane toward the stated merge side (SLOW_DOWN if that lane is
                        occupied or missing)                           rule:lane_closed
     active bus lane and ego in the rightmost lane -> CHANGE_LANE_LEFT (SLOW_DOWN if occupied)
                                                                        rule:bus_lane
  6. lead vehicle nearer than 40 m -> CHANGE_LANE_LEFT if overtaking is allowed (no prohibiting
                        rule) and the left lane exists and is free (traffic:overtake), else
                        SLOW_DOWN (rule:no_overtaking / traffic:lead_vehicle)
  7. speed above the lowest applicable limit -> SLOW_DOWN  rule:speed_limit / rule:school_zone
  8. PROCEED                                                            default

Several rules of one kind: the most restrictive applies (lowest limit, "no overtaking" wins,
"always stop on amber" wins). Without a yield rule, waiting pedestrians do not bind (local rule).
A rule whose scope excludes cars ("Coaches: maximum 40 km/h") does not bind the ego car and is
ignored, like a distractor.

:func:`targeted_rules` says, per rule, whether the frame's decision depends on reading that rule
right; :func:`rule_class` is the label a rule-understanding head learns for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from bus.schema import DecisionLabel
from simulator.rules import HOURS, Rule, parse_rule
from simulator.scene import CLOSE_STOP_LINE_M, LEAD_BINDING_M, Scene

__all__ = [
    "NOT_BINDING",
    "NOT_UNDERSTOOD",
    "RULE_CLASSES",
    "applicable_limit",
    "closed_lane_index",
    "decide",
    "decide_texts",
    "misreadings",
    "rule_class",
    "targeted_rules",
]

D = DecisionLabel
NOT_BINDING, NOT_UNDERSTOOD = "not_binding", "not_understood"
# Kinds whose variants mean opposite things; the class of such a rule is "kind:variant".
# lane_closed's variants (named / numbered) are two ways to name a lane, one meaning.
_OPPOSITES = {
    ("overtaking", "prohibited"): "permitted",
    ("overtaking", "permitted"): "prohibited",
    ("amber", "always_stop"): "proceed_if_close",
    ("amber", "proceed_if_close"): "always_stop",
    ("turn_on_red", "permitted"): "prohibited",
    ("turn_on_red", "prohibited"): "permitted",
}
RULE_CLASSES = (
    "speed_limit",
    "school_zone",
    "overtaking:prohibited",
    "overtaking:permitted",
    "lane_closed",
    "amber:always_stop",
    "amber:proceed_if_close",
    "yield_pedestrians",
    "turn_on_red:permitted",
    "turn_on_red:prohibited",
    "bus_lane",
    NOT_BINDING,
    NOT_UNDERSTOOD,
)


def closed_lane_index(rule: Rule, n_lanes: int) -> int | None:
    """0-based index of the lane a lane_closed rule names, or None if no such lane here."""
    lane = rule.lane
    if lane == "left":
        return 0
    if lane == "right":
        return n_lanes - 1
    if lane == "centre":
        return 1 if n_lanes == 3 else None
    if lane is not None and lane.isdigit() and 1 <= int(lane) <= n_lanes:
        return int(lane) - 1
    if (
        lane is not None
        and lane[:1] == "r"
        and lane[1:].isdigit()
        and 1 <= int(lane[1:]) <= n_lanes
    ):
        return n_lanes - int(lane[1:])  # counted from the right
    return None


def _active(hours: str | None, time_of_day: str) -> bool:
    return hours is not None and time_of_day in HOURS[hours][1]


def applicable_limit(scene: Scene, rules: Iterable[Rule]) -> tuple[int, str] | None:
    """The lowest speed limit that applies here, with the rule kind that set it."""
    best: tuple[int, str] | None = None
    for r in rules:
        school = r.kind == "school_zone" and scene.school_zone_sign
        if r.kind == "speed_limit" or (school and _active(r.hours, scene.time_of_day)):
            assert r.limit is not None
            if best is None or r.limit < best[0]:
                best = (r.limit, r.kind)
    return best


def _lane_change(scene: Scene, side: str, reason: str) -> tuple[DecisionLabel, str]:
    """Change toward ``side``; SLOW_DOWN when that lane is occupied or does not exist."""
    if side == "left":
        ok = scene.has_left_lane and not scene.left_vehicle
        return (D.CHANGE_LANE_LEFT if ok else D.SLOW_DOWN), reason
    ok = scene.has_right_lane and not scene.right_vehicle
    return (D.CHANGE_LANE_RIGHT if ok else D.SLOW_DOWN), reason


def decide(scene: Scene, rules: Iterable[Rule]) -> tuple[DecisionLabel, str]:
    """The correct decision and a reason code (see the module docstring for the priorities)."""
    rules = tuple(r for r in rules if r.binds_car)
    kinds = {(r.kind, r.variant) for r in rules}

    # 1-2: hazards, whatever the rules say.
    if scene.pedestrians == "on_road":
        return D.STOP, "hazard:pedestrian_on_road"
    if scene.obstacle != "none":
        if scene.has_left_lane and not scene.left_vehicle:
            return D.CHANGE_LANE_LEFT, "hazard:obstacle"
        if scene.has_right_lane and not scene.right_vehicle:
            return D.CHANGE_LANE_RIGHT, "hazard:obstacle"
        return D.STOP, "hazard:obstacle"

    # 3: signals.
    if scene.light == "red":
        if (
            ("turn_on_red", "permitted") in kinds
            and ("turn_on_red", "prohibited") not in kinds
            and scene.rightmost
        ):
            return D.YIELD, "rule:turn_on_red"
        return D.STOP, "light:red"
    if scene.light == "amber":
        if ("amber", "always_stop") in kinds:
            return D.STOP, "rule:amber_stop"
        assert scene.stop_line_m is not None
        if scene.stop_line_m > CLOSE_STOP_LINE_M:
            return D.STOP, "light:amber_far"

    # 4: waiting pedestrians bind only under a yield rule.
    if scene.pedestrians == "waiting" and ("yield_pedestrians", "") in kinds:
        return D.YIELD, "rule:yield_pedestrians"

    # 5: lane rules.
    for r in rules:
        if r.kind == "lane_closed" and closed_lane_index(r, scene.n_lanes) == scene.ego_lane:
            assert r.merge is not None
            return _lane_change(scene, r.merge, "rule:lane_closed")
    if scene.rightmost and any(
        r.kind == "bus_lane" and _active(r.hours, scene.time_of_day) for r in rules
    ):
        return _lane_change(scene, "left", "rule:bus_lane")

    # 6: lead vehicle.
    if scene.lead_vehicle_m is not None and scene.lead_vehicle_m < LEAD_BINDING_M:
        if ("overtaking", "prohibited") in kinds:
            return D.SLOW_DOWN, "rule:no_overtaking"
        if scene.has_left_lane and not scene.left_vehicle:
            return D.CHANGE_LANE_LEFT, "traffic:overtake"
        return D.SLOW_DOWN, "traffic:lead_vehicle"

    # 7: speed.
    limit = applicable_limit(scene, rules)
    if limit is not None and scene.speed_kph > limit[0]:
        return D.SLOW_DOWN, f"rule:{limit[1]}"

    return D.PROCEED, "default"


def rule_class(rule: Rule | None) -> str:
    """The rule-understanding label of a rule: one of :data:`RULE_CLASSES`.

    ``None`` stands for a rule that cannot be read (unsupported language, gibberish, off-topic);
    a distractor or a rule whose scope excludes cars is :data:`NOT_BINDING`.
    """
    if rule is None:
        return NOT_UNDERSTOOD
    if rule.kind == "distractor" or not rule.binds_car:
        return NOT_BINDING
    if (rule.kind, rule.variant) in _OPPOSITES:
        return f"{rule.kind}:{rule.variant}"
    return rule.kind


def misreadings(rule: Rule) -> list[Rule | None]:
    """The ways a reader can get ``rule`` wrong: miss it (None), flip an opposing variant
    (prohibited <-> permitted, always stop <-> proceed if close), or apply a rule for other
    vehicles to the car (scope widened to all). A distractor has no symbolic misreading."""
    if rule.kind == "distractor":
        return []
    out: list[Rule | None] = [None]
    flip = _OPPOSITES.get((rule.kind, rule.variant))
    if flip is not None:
        out.append(dataclasses.replace(rule, variant=flip))
    if not rule.binds_car:
        out.append(dataclasses.replace(rule, scope="all"))
    return out


def targeted_rules(scene: Scene, rules: Sequence[Rule | None]) -> list[bool]:
    """Per rule: is this frame TARGETED by it, i.e. does the oracle's decision change when that
    one rule is read wrongly (any of :func:`misreadings`) and the others right?

    ``None`` entries (rules not understood) are absent for the oracle and never targeted; they
    keep their place so the answer lines up with the rule set as sent.
    """
    present = [r for r in rules if r is not None]
    want = decide(scene, present)[0]
    out = []
    for i, rule in enumerate(rules):
        if rule is None:
            out.append(False)
            continue
        others = [r for j, r in enumerate(rules) if j != i and r is not None]
        out.append(
            any(
                decide(scene, others + ([] if m is None else [m]))[0] != want
                for m in misreadings(rule)
            )
        )
    return out


def decide_texts(scene: Scene, texts: Iterable[str]) -> tuple[DecisionLabel, str]:
    """:func:`decide` on rule sentences (parsed with the catalogue; unknown text -> DataError)."""
    return decide(scene, [parse_rule(t) for t in texts])
