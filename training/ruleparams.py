"""What each rule says, beyond its class: the parameters the per-rule heads learn to read.

The decision model reads each rule into a small symbolic form (its class, plus the speed limit,
the hours, the lane and the merge side it names) and decides from that form, not from the
wording: a rule worded in a way training never saw is decided right as soon as it is *read*
right, and the per-rule heads say how sure the reading is. The labels come from the generator's
per-rule scene record (``rule_meta[i]["rule"]``); recordings without it train no parameter.

Each parameter is a small vocabulary whose first entry, ``none``, means the rule names no such
thing. A value outside the vocabulary (a limit the world never generates) is not trained on.
"""

from __future__ import annotations

from typing import Any

from perception.spec import MODEL_SPEC

__all__ = [
    "EGO_LANE_OUTPUT",
    "HOURS_ACTIVE",
    "LANE_SPECS",
    "RULE_PARAMS",
    "SCHOOL_SIGN_OUTPUT",
    "TIMES_OF_DAY",
    "TIME_OUTPUT",
    "ego_lane_labels",
    "param_labels",
    "scene_labels",
]

_LANES = {
    # What the text names, not which lane it is on this road: counted from the left ("L"), from
    # the right ("R"), or the centre lane, which only a three-lane road has.
    "left": "L1",
    "1": "L1",
    "2": "L2",
    "3": "L3",
    "right": "R1",
    "r1": "R1",
    "r2": "R2",
    "r3": "R3",
    "centre": "C",
}

# Output name -> vocabulary. The names are the training model's auxiliary outputs.
RULE_PARAMS: dict[str, tuple[str, ...]] = {
    "rule_limit": ("none", *(str(v) for v in MODEL_SPEC.rule_limits[1:])),
    "rule_hours": ("none", *MODEL_SPEC.rule_hours),
    "rule_lane": ("none", *MODEL_SPEC.rule_lanes),
    "rule_merge": ("none", *MODEL_SPEC.rule_merges),
}
# The lanes a rule can name (rule_lane without "none"). The frame side of the model learns, per
# lane named, whether it is the ego lane on the road the frame shows (:func:`ego_lane_labels`).
LANE_SPECS: tuple[str, ...] = RULE_PARAMS["rule_lane"][1:]
EGO_LANE_OUTPUT = "ego_lane"  # the training model's output for it (not exported)
# What else the frame side reads from the picture, trained from the scene record: the time of
# day (which says whether a rule's hours are in force) and whether a school-zone sign is up.
TIMES_OF_DAY: tuple[str, ...] = ("day", "dusk", "night")
TIME_OUTPUT, SCHOOL_SIGN_OUTPUT = "time_of_day", "school_sign"
# rule_hours -> the times of day those hours cover (the world's simulator.rules.HOURS; a test
# keeps the two equal); "none" (a rule that names no hours) is in force at every time.
HOURS_ACTIVE: dict[str, tuple[str, ...]] = {
    "none": TIMES_OF_DAY,
    "day": ("day",),
    "extended": ("day", "dusk"),
    "always": TIMES_OF_DAY,
}
_FIELDS = {"rule_limit": "limit", "rule_hours": "hours", "rule_lane": "lane", "rule_merge": "merge"}


def _value(name: str, raw: Any) -> str | None:
    if raw is None:
        return "none"
    if name == "rule_lane":
        return _LANES.get(str(raw))
    return str(raw)


def param_labels(meta: Any) -> list[int]:
    """One rule's scene record -> an index per :data:`RULE_PARAMS` entry (-1 = not trained on:
    no record, a rule nobody can read, or a value outside the vocabulary)."""
    rule = meta.get("rule") if isinstance(meta, dict) else None
    if not isinstance(rule, dict):
        return [-1] * len(RULE_PARAMS)
    out = []
    for name, vocab in RULE_PARAMS.items():
        v = _value(name, rule.get(_FIELDS[name]))
        out.append(vocab.index(v) if v in vocab else -1)
    return out


def _lane_index(spec: str, n_lanes: int) -> int | None:
    """0-based index (from the left) of the lane ``spec`` names on a road of ``n_lanes``, or None
    where the road has no such lane (the oracle's ``closed_lane_index``, on the spec names)."""
    if spec == "C":
        return 1 if n_lanes == 3 else None
    k = int(spec[1:])
    if k > n_lanes:
        return None
    return k - 1 if spec[0] == "L" else n_lanes - k


def ego_lane_labels(scene: Any) -> list[int]:
    """A frame's scene record -> per :data:`LANE_SPECS` entry, 1 if that lane is the ego lane on
    this road, else 0 (all -1 = unknown, not trained on: no scene record, or a malformed one)."""
    d = scene if isinstance(scene, dict) else {}
    n, ego = d.get("n_lanes"), d.get("ego_lane")
    if type(n) is not int or type(ego) is not int or not 0 <= ego < n:  # bool is not a count
        return [-1] * len(LANE_SPECS)
    return [int(_lane_index(spec, n) == ego) for spec in LANE_SPECS]


def scene_labels(scene: Any) -> list[int]:
    """A frame's scene record -> the frame-side labels: :func:`ego_lane_labels`, then the index
    of its time of day in :data:`TIMES_OF_DAY`, then 1/0 for a school-zone sign (-1 = unknown)."""
    d = scene if isinstance(scene, dict) else {}
    tod = d.get("time_of_day")
    sign = d.get("school_zone_sign")
    return [
        *ego_lane_labels(scene),
        TIMES_OF_DAY.index(tod) if tod in TIMES_OF_DAY else -1,
        int(sign) if isinstance(sign, bool) else -1,
    ]
