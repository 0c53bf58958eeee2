"""A school zone or a bus lane read with other hours than its words write is not acted on where
the written hours decide the frame otherwise (perception.written.written_hours, applied through
the reading check: perception.readcheck.hours_alternatives; fifty-first session).

Held-out school zones said "Mon to Fri 24/7" or "on weekdays 24/7" were read as in force by day
only (0.56-0.68), and the car kept its speed at dusk with valid=true; a bus lane "from 7 a.m.
until 8 p.m." was read as a day-time one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from perception.readcheck import hours_alternatives, reading_unwritten
from perception.spec import MODEL_SPEC
from perception.written import written_hours
from ruledrive.bench_wording import load_templates
from ruledrive.written_corpus import KINDS, WRITTEN_DIR, load_written

ROOT = Path(__file__).resolve().parents[2]
HOURS = ("none", *MODEL_SPEC.rule_hours)


@pytest.mark.parametrize(
    ("text", "hours"),
    [
        ("Near schools motorists shall not exceed 20 kmh Mon to Fri 24/7", "always"),
        ("School zone: 25 mph, around the clock", "always"),
        ("Bus lane in force at any time of day or night", "always"),
        ("全天候小型汽车不要驶入最右边的车道", "always"),
        ("学校区域每日0时至24时限速30", "always"),
        ("On school days from 7 a.m. until 8 p.m., cars must not use the lane", "extended"),
        ("Bus lane 0700-2000 Mon-Sat", "extended"),
        ("早上7点至晚上8点为公交专用道", "extended"),
        ("School zone 30 km/h 7am to 5pm", "day"),
        ("School zone 30 km/h 07:00–17:00", "day"),
        ("七点到十七点学校区域限速30", "day"),
        ("上午7点到下午5点", "day"),
        # the second review (fifty-first session): "between ... and", 早7晚5, 0:00-23:59, and
        # "always" words of something else (cameras, patrols, penalties, a full-time school)
        ("School zone 40 km/h between 7 am and 8 pm", "extended"),
        ("Bus lane Mon-Sat between 07:00 and 17:00. CCTV enforcement 24/7", None),
        ("School zone 40 km/h from 7 in the morning till 5 in the afternoon", "day"),
        ("学校路段 早7晚5 限速30", "day"),
        ("公交专用道 早七晚八", "extended"),
        ("Bus lane 0:00-23:59 daily", "always"),
        ("公交专用道 不限时段", "always"),
        ("School zone 40 km/h between 7 am and 5 pm. Always expect children", "day"),
        ("Bus lane between 7am and 5pm; permanent camera site", "day"),
        ("Bus lane Mon-Fri peak hours only. Penalty notices issued within 24 hours", None),
        ("全日制学校路段 上学时段限速30", None),
        ("公交专用道 早7点至晚8点 全天监控抓拍", "extended"),
        # none written, another window, several, a range of speeds or lanes
        ("School zone 30 km/h", None),
        ("School zone 30 km/h 8am to 6pm", None),
        ("Bus lane 7-10 and 16-19", None),
        ("Bus lane 7am to 5pm; at all times on Sundays", None),
        ("Speed limit 30-50 km/h", None),
        ("Lanes 2-3 closed", None),
        ("", None),
    ],
)
def test_written_hours(text: str, hours: str | None) -> None:
    assert written_hours(text) == hours


def _hours(name: str) -> list[np.ndarray]:
    """A rule's parameter readings [1, K] in MODEL_SPEC.rule_param_layers order, sure of the
    hours ``name``, a 20 km/h limit and no lane."""
    sure = {"rule_hours": HOURS.index(name), "rule_limit": MODEL_SPEC.rule_limits.index(20)}
    sizes = {
        "rule_limit": len(MODEL_SPEC.rule_limits),
        "rule_hours": len(HOURS),
        "rule_lane": 1 + len(MODEL_SPEC.rule_lanes),
        "rule_merge": 1 + len(MODEL_SPEC.rule_merges),
    }
    out = []
    for layer in MODEL_SPEC.rule_param_layers:
        p = np.zeros((1, sizes[layer]), np.float32)
        p[0, sure.get(layer, 0)] = 1
        out.append(p)
    return out


def test_the_hours_asked_of_a_misread_school_zone_or_bus_lane() -> None:
    classes = ("speed_limit", "school_zone", "bus_lane")
    text = "School zone 20 km/h Mon to Fri 24/7"
    for read in ("school_zone", "bus_lane"):
        top = np.array([classes.index(read)])
        assert hours_alternatives((text,), top, classes, _hours("day")) == [
            (0, read, {"rule_hours": HOURS.index("always")})
        ]
        # read as written, or nothing written: nothing to ask
        assert hours_alternatives((text,), top, classes, _hours("always")) == []
        assert hours_alternatives(("School zone 20",), top, classes, _hours("day")) == []
    # another kind has no hours to ask
    top = np.array([classes.index("speed_limit")])
    assert hours_alternatives((text,), top, classes, _hours("day")) == []
    with pytest.raises(Exception, match="hours"):
        hours_alternatives((text,), np.array([1]), classes, [np.ones((1, 2))] * 4)


def test_with_the_check_off_misread_hours_are_not_understood() -> None:
    text = "School zone 20 km/h Mon to Fri 24/7"
    day = [p[0] for p in _hours("day")]
    assert reading_unwritten(text, "school_zone", day, check_off=True)
    assert not reading_unwritten(text, "school_zone", [p[0] for p in _hours("always")], True)
    assert not reading_unwritten(text, "school_zone", day)  # the check's alternative instead


def _rendered() -> list[tuple[str, str]]:
    """Every school zone and bus lane of the rule language (three splits) and of the probes'
    and the written wording's templates with every rendering of their hours: (text, hours)."""
    from simulator.oracle import rule_class
    from simulator.plan import plan_split

    rows = set()
    for split in ("train", "heldout-phrasing", "test"):
        plan = plan_split(split, 8000, seed=5, language="bilingual")
        for rs in plan.rule_texts:
            for t in rs:
                if rule_class(t.rule) in ("school_zone", "bus_lane") and t.rule.hours:
                    rows.add((t.text, t.rule.hours))
    files = sorted((ROOT / "docs" / "examples").glob("wordings*.yaml"))
    tmpl = [load_templates(p, KINDS) for p in files]
    tmpl += [load_written(p) for p in sorted(WRITTEN_DIR.glob("*.yaml"))]
    for t in tmpl:
        for lang, kinds in t.rules.items():
            for kind in ("school_zone", "bus_lane"):
                for tpl in kinds.get(kind, []):
                    for hours, texts in t.slots.get(lang, {}).get("hours", {}).items():
                        for x in texts:
                            text = tpl.replace("{hours}", x).replace("{limit}", "30")
                            rows.add((text.replace("{Hours}", x[:1].upper() + x[1:]), hours))
    return sorted(rows)


def test_no_school_zone_or_bus_lane_of_the_rule_language_or_the_wording_files_is_misread() -> None:
    """The words give each its own hours or none: the check never asks a rule read right."""
    rows = _rendered()
    assert len(rows) > 5000
    wrong = [(t, h, written_hours(t)) for t, h in rows if written_hours(t) not in (None, h)]
    assert not wrong[:5]
    assert sum(written_hours(t) == h for t, h in rows) > 0.7 * len(rows)


@pytest.mark.parametrize(
    ("text", "reads_right"),
    [
        ("School zone: twenty on weekdays 24/7", "School zone: 20 km/h at all times"),
        (
            "Near schools motorists shall not exceed 20 kmh Mon to Fri 24/7",
            "School zone: 20 km/h at all times",
        ),
    ],
)
def test_the_node_does_not_act_on_misread_hours(
    node: Callable[..., Any], text: str, reads_right: str
) -> None:
    """Each is read as a school zone in force by day only. On the frames where the school
    zone in force at all times decides otherwise, the node answers rules_not_understood
    naming it; it acts as that school zone everywhere else."""
    read, got = node(text)
    assert read == "school_zone"
    _, right = node(reads_right)
    differs = 0
    for d, r in zip(got, right, strict=True):
        if d.valid:
            assert d.decision == r.decision
        else:
            differs += 1
            assert d.unread_rules == [0]
    assert differs >= 1
