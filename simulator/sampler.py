"""Sampling rule sets and scenes so that the decision needs both the picture and the text.

* :func:`sample_rule_set` draws 0-5 catalogue rules (decision-relevant kinds plus distractors,
  random order) for a road with ``n_lanes`` lanes.
* :func:`sample_scene` draws a scene that the oracle decides as ``target`` under a given rule set:
  it proposes a scene built around one *cause* of that decision (a red light in the right-turn
  lane, a lead vehicle, waiting pedestrians, a speed just above the text's limit, ...) and keeps
  it only if :func:`simulator.oracle.decide` agrees (rejection with a cap). Causes are chosen so
  that text and picture both matter: e.g. waiting pedestrians appear with and without a yield
  rule, speeds are drawn around the text's limit.
* Ambiguity margins keep labels learnable from a 160x96 picture: speeds never lie within
  +-3 km/h of a limit named in the rule set, stop lines never within 12-18 m (amber "close" is
  <= 15 m), lead vehicles never within 35-45 m (binding below 40 m).

All randomness is a ``random.Random`` passed in, so a seed fixes the result.
"""

from __future__ import annotations

import random

from bus.schema import DecisionLabel
from simulator.oracle import closed_lane_index, decide
from simulator.rules import (
    DISTRACTOR_LIMITS,
    HOURS,
    SCHOOL_LIMITS,
    SPEED_LIMITS,
    TEMPLATES,
    Rule,
    phrasings,
)
from simulator.scene import Scene

__all__ = ["SPEED_MARGIN_KPH", "nuisance", "sample_rule_set", "sample_scene"]

D = DecisionLabel
SPEED_MARGIN_KPH = 3.0
N_COLOURS = 8  # car body colours the renderer knows


def _rule(rng: random.Random, kind: str, variant: str, held_out: bool, **params: object) -> Rule:
    pool = phrasings(kind, variant, held_out)
    proto = Rule(kind, variant, **params, phrasing=pool[0])  # type: ignore[arg-type]
    return proto.with_phrasing(rng.choice(pool))


def _lane_closed(rng: random.Random, n_lanes: int, held_out: bool) -> Rule:
    if rng.random() < 0.5:
        lane = rng.choice(
            ("left", "right", "centre") if n_lanes == 3 or rng.random() < 0.1 else ("left", "right")
        )
        merge = {"left": "right", "right": "left"}.get(lane) or rng.choice(("left", "right"))
        return _rule(rng, "lane_closed", "named", held_out, lane=lane, merge=merge)
    # 10 %: a lane that does not exist on this road (the rule then does not apply).
    num = n_lanes + 1 if n_lanes == 2 and rng.random() < 0.1 else rng.randint(1, n_lanes)
    if num == 1:
        merge = "right"
    elif num >= n_lanes:
        merge = "left"
    else:
        merge = rng.choice(("left", "right"))
    return _rule(rng, "lane_closed", "numbered", held_out, lane=str(num), merge=merge)


def _distractor(rng: random.Random, held_out: bool) -> Rule:
    i = rng.choice(phrasings("distractor", "", held_out))
    needs_limit = "{limit}" in TEMPLATES[("distractor", "")][i].text
    return Rule(
        "distractor", "", limit=rng.choice(DISTRACTOR_LIMITS) if needs_limit else None, phrasing=i
    )


def sample_rule_set(rng: random.Random, n_lanes: int, held_out: bool = False) -> tuple[Rule, ...]:
    """0-5 rules; with ``held_out`` every rule uses a held-out phrasing and the set is non-empty."""
    if not held_out and rng.random() < 0.07:
        return ()
    rules: list[Rule] = []
    if rng.random() < 0.3:
        rules.append(_rule(rng, "speed_limit", "", held_out, limit=rng.choice(SPEED_LIMITS)))
    if rng.random() < 0.3:
        rules.append(
            _rule(
                rng,
                "school_zone",
                "",
                held_out,
                limit=rng.choice(SCHOOL_LIMITS),
                hours=rng.choice(("day", "always")),
            )
        )
    if rng.random() < 0.45:
        rules.append(
            _rule(rng, "overtaking", "prohibited" if rng.random() < 0.7 else "permitted", held_out)
        )
    if rng.random() < 0.3:
        rules.append(_lane_closed(rng, n_lanes, held_out))
    if rng.random() < 0.35:
        rules.append(
            _rule(
                rng, "amber", "always_stop" if rng.random() < 0.6 else "proceed_if_close", held_out
            )
        )
    if rng.random() < 0.35:
        rules.append(_rule(rng, "yield_pedestrians", "", held_out))
    if rng.random() < 0.35:
        rules.append(
            _rule(
                rng, "turn_on_red", "permitted" if rng.random() < 0.65 else "prohibited", held_out
            )
        )
    if rng.random() < 0.3:
        rules.append(_rule(rng, "bus_lane", "", held_out, hours=rng.choice(tuple(HOURS))))
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        rules.append(_distractor(rng, held_out))
    rng.shuffle(rules)
    rules = rules[:5]
    if not rules and held_out:
        rules.append(_distractor(rng, held_out))
    return tuple(rules)


def nuisance(rng: random.Random) -> dict[str, object]:
    """Pixel-only variation; none of it may hide a decision-relevant feature."""
    return {
        "pitch_px": round(rng.uniform(-8, 8), 2),
        "blur": round(rng.choice((0.0, 0.0, rng.uniform(0.3, 1.6))), 2),
        "noise": round(rng.uniform(0, 9), 2),
        "rain": round(rng.choice((0.0, 0.0, 0.0, rng.uniform(0.2, 1.0))), 2),
        "jpeg_quality": rng.randint(55, 92),
        "lead_colour": rng.randrange(N_COLOURS),
        "side_colours": (rng.randrange(N_COLOURS), rng.randrange(N_COLOURS)),
        "scenery": rng.randrange(1 << 16),
        "noise_seed": rng.randrange(1 << 31),
    }


def _limits(rules: tuple[Rule, ...]) -> list[int]:
    return [r.limit for r in rules if r.kind in ("speed_limit", "school_zone") and r.limit]


def _speed(rng: random.Random, rules: tuple[Rule, ...], mode: str) -> float:
    """A speed clear of every limit in the text; ``mode`` 'over' / 'under' the lowest limit."""
    limits = _limits(rules)
    # "Over" means over a limit that binds the car; margins keep clear of every limit named,
    # including those for other vehicles (a coach limit the car may exceed).
    lowest = min(_limits(tuple(r for r in rules if r.binds_car)) or limits or [0])
    for _ in range(50):
        if limits and mode in ("over", "under") and rng.random() < 0.85:
            lim = lowest if mode == "over" or rng.random() < 0.7 else rng.choice(limits)
            off = rng.uniform(SPEED_MARGIN_KPH + 1, 30)
            v = lim + off if mode == "over" else lim - off
        else:
            v = rng.uniform(0, 130)
        v = round(min(max(v, 0.0), 130.0), 1)
        if all(abs(v - lim) > SPEED_MARGIN_KPH for lim in limits):
            return v
    return 0.0


def _stop_line(rng: random.Random, close: bool | None = None) -> float:
    if close is None:
        close = rng.random() < 0.4
    return round(rng.uniform(5, 12) if close else rng.uniform(18, 60), 1)


def _lead(rng: random.Random, near: bool) -> float:
    return round(rng.uniform(8, 35) if near else rng.uniform(45, 80), 1)


# Causes per decision, as weights by repetition. Causes only the picture can settle (pedestrian
# on the road, obstacle, plain red) are kept rarer than causes whose decision the text can flip
# (red in the right-turn lane, close amber, lead vehicle, lane closures, bus lanes, speed), so
# an image-only model cannot come near a fused one (see docs/world.md, "Sampling").
CAUSES: dict[DecisionLabel, tuple[str, ...]] = {
    D.STOP: (
        "pedestrian",
        "obstacle_blocked",
        "red",
        "red_rightmost",
        "red_rightmost",
        "amber_far",
        "amber_close",
        "amber_close",
        "amber_close",
    ),
    D.YIELD: ("red_rightmost", "waiting", "waiting"),
    D.CHANGE_LANE_LEFT: (
        "obstacle",
        "lane_closed",
        "lane_closed",
        "bus_lane",
        "bus_lane",
        "lead",
        "lead",
        "lead",
    ),
    D.CHANGE_LANE_RIGHT: ("obstacle", "lane_closed", "lane_closed", "lane_closed"),
    D.SLOW_DOWN: ("lead", "lead", "speed", "speed", "speed", "lane_closed", "bus_lane"),
    D.PROCEED: ("clear", "amber_close", "waiting", "lead_far", "school", "clear"),
}


def _propose(
    rng: random.Random,
    cause: str,
    target: DecisionLabel,
    rules: tuple[Rule, ...],
    n_lanes: int,
    time_of_day: str,
) -> Scene:
    f: dict[str, object] = {
        "n_lanes": n_lanes,
        "ego_lane": rng.randrange(n_lanes),
        "time_of_day": time_of_day,
        "light": "none",
        "school_zone_sign": rng.random() < 0.15,
        "lane_closed_sign": rng.random() < 0.05,
    }
    limits = [
        r.limit for r in rules if r.kind == "speed_limit" and r.limit is not None and r.binds_car
    ]
    if limits and rng.random() < 0.5:
        f["speed_sign"] = min(limits)
    elif rng.random() < 0.15:
        f["speed_sign"] = rng.choice(SPEED_LIMITS)
    if rng.random() < 0.25:
        f["light"] = "green"
    if rng.random() < 0.2:
        f["lead_vehicle_m"] = _lead(rng, near=False)
    speed_mode = "under" if target != D.SLOW_DOWN else "any"

    if cause == "pedestrian":
        f["pedestrians"] = "on_road"
    elif cause in ("obstacle", "obstacle_blocked"):
        f["obstacle"] = rng.choice(("cones", "stopped_car"))
        f["obstacle_m"] = round(rng.uniform(10, 32), 1)
        f["lead_vehicle_m"] = None
        if target == D.CHANGE_LANE_RIGHT:
            f["ego_lane"] = rng.randrange(n_lanes - 1)
            f["left_vehicle"] = f["ego_lane"] != 0
    elif cause in ("red", "red_rightmost"):
        f["light"] = "red"
        if cause == "red_rightmost":
            f["ego_lane"] = n_lanes - 1
    elif cause in ("amber_far", "amber_close"):
        f["light"] = "amber"
        f["stop_line_m"] = _stop_line(rng, close=cause == "amber_close")
    elif cause == "waiting":
        f["pedestrians"] = "waiting"
    elif cause == "lane_closed":
        closed = [
            r
            for r in rules
            if r.kind == "lane_closed" and closed_lane_index(r, n_lanes) is not None
        ]
        if closed:
            r = rng.choice(closed)
            f["ego_lane"] = closed_lane_index(r, n_lanes)
    elif cause == "bus_lane":
        f["ego_lane"] = n_lanes - 1
    elif cause == "lead":
        f["lead_vehicle_m"] = _lead(rng, near=True)
    elif cause == "speed":
        speed_mode = "over"
        if any(r.kind == "school_zone" for r in rules) and rng.random() < 0.5:
            f["school_zone_sign"] = True
    elif cause == "school":
        f["school_zone_sign"] = True
    if f["light"] != "none" and "stop_line_m" not in f:
        f["stop_line_m"] = _stop_line(rng)
    peds = f.get("pedestrians", "none") != "none"
    if peds or rng.random() < 0.2:
        f["crosswalk"] = True
        sl = f.get("stop_line_m")
        if isinstance(sl, float) and peds and sl > 26:
            # Pedestrians must stay >= 40 px tall: keep the junction near.
            sl = f["stop_line_m"] = round(rng.uniform(18, 26), 1)
        f["crosswalk_m"] = round(sl + 3.0 if isinstance(sl, float) else rng.uniform(8, 28), 1)
    el = int(f["ego_lane"])  # type: ignore[call-overload]
    if el > 0 and "left_vehicle" not in f:
        f["left_vehicle"] = rng.random() < 0.35
    if el < n_lanes - 1:
        f["right_vehicle"] = rng.random() < 0.35
    f["speed_kph"] = _speed(rng, rules, speed_mode)
    f.update(nuisance(rng))
    return Scene(**f)  # type: ignore[arg-type]


TRIES_PER_CAUSE = 8
# Causes whose decision no rule in the catalogue can change.
IMAGE_ONLY_CAUSES = frozenset({"pedestrian", "obstacle", "obstacle_blocked", "red", "amber_far"})
IMAGE_ONLY_CAUSE_P = 0.5


def sample_scene(
    rng: random.Random,
    target: DecisionLabel,
    rules: tuple[Rule, ...],
    n_lanes: int,
    time_of_day: str,
    max_tries: int = 40,
) -> Scene | None:
    """A scene decided as ``target`` under ``rules``, or None if none was found in the cap.

    A cause is drawn once (by its weight) and given several proposals before the next cause is
    drawn from those left. Redrawing the cause on every rejection would favour the causes that
    succeed whatever the rules say (obstacles, pedestrians on the road): the picture alone would
    then decide most frames, which is exactly what the world must not allow.
    """
    causes = list(CAUSES[target])
    if rng.random() >= IMAGE_ONLY_CAUSE_P:
        # Half the time, only causes the text can flip are tried; if none fits this rule set,
        # the planner moves on to another decision rather than falling back on the picture.
        causes = [c for c in causes if c not in IMAGE_ONLY_CAUSES] or causes
    tries = 0
    while causes and tries < max_tries:
        cause = rng.choice(causes)
        for _ in range(TRIES_PER_CAUSE):
            tries += 1
            s = _propose(rng, cause, target, rules, n_lanes, time_of_day)
            if decide(s, rules)[0] == target:
                return s
        causes = [c for c in causes if c != cause]
    return None
