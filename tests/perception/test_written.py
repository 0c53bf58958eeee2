"""Readings the rule's own words contradict are not acted on (perception.written, applied by the
node and by evaluation through perception.readcheck.reading_unwritten).

An outside probe (forty-seventh session): the rule language gives no distances, so the reader
took any number in a lane closure for the lane's: "Left lane closed for 2 km, merge right" was
read as closing lane 2 and the car drove on in the closed lane, valid=true. It has no
exceptions either, so "Speed limit 50 km/h, buses excepted" was read as binding nobody."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from perception.spec import MODEL_SPEC
from perception.written import (
    as_read,
    excepted_not_binding,
    exception_clause,
    lane_numbers,
    lane_unwritten,
    written_lane,
    written_merge,
)
from ruledrive.bench_wording import load_templates
from ruledrive.written_corpus import KINDS, WRITTEN_DIR, load_written
from simulator.language.ruleset import render_rule
from simulator.plan import plan_split
from simulator.rules import LANE_NAMES, LANE_NUMBERS, SIDES, Rule
from training.ruleparams import _LANES, RULE_PARAMS

ROOT = Path(__file__).resolve().parents[2]
LANES = ("none", *MODEL_SPEC.rule_lanes)


def reading(lane: str) -> np.ndarray:
    return np.eye(len(LANES))[LANES.index(lane)]


def test_the_lanes_the_node_checks_are_the_lanes_training_reads() -> None:
    """The order is the shipped model's: its rule_lane output was trained on the sorted lane
    names (a reorder would silently change what every lane reading means)."""
    assert LANES == ("none", "C", "L1", "L2", "L3", "R1", "R2", "R3")
    assert RULE_PARAMS["rule_lane"] == ("none", *sorted(set(_LANES.values())))


@pytest.mark.parametrize(
    ("text", "read", "unwritten"),
    [
        ("Left lane closed for 2 km, merge right", "L2", True),  # the distance read as the lane
        ("Left lane closed in 3 km, merge right", "L3", True),
        ("Closure of the left-most lane 0.5 km ahead; merge to the right", "L2", True),
        ("Left lane closed 500 m ahead, merge right", "L2", True),
        ("Lane 2 closed for 3 km, merge left", "L3", True),
        ("Lane 2 closed, merge left", "L3", True),  # another number than the one written
        ("Lane 3 closed for 1 km, merge left", "L1", True),
        ("左侧车道封闭3公里，请向右并线", "R3", True),
        ("前方2公里左侧车道封闭，请向右并线", "L2", True),
        ("Left lane closed for 2 km, merge right", "L1", False),  # read right
        ("Lane 2 closed for 3 km, merge left", "L2", False),
        ("The 2nd lane from the left is closed 7-17 h", "L2", False),
        ("The second lane from the right is closed", "R2", False),
        ("LANE TWO CLOSED, MERGE LEFT", "L2", False),
        ("Lane II closed, merge left", "L2", False),
        ("第二条车道封闭2公里，请向左并线", "L2", False),
        ("车道三（自右起）封闭，请向左变道", "R3", False),
        ("前方500米第Ⅲ车道封闭", "L3", False),
        ("The lane just right of the leftmost lane is closed", "L2", False),  # no number at all
        ("Right lane closed, merge left", "R1", False),
        ("Centre lane closed for 2 km", "C", False),  # no number to read
        ("The lane in the middle is closed", "C", False),
        ("中间车道封闭，请向左并线", "C", False),
        ("前方施工 中间的行车线封闭 请向左并线", "C", False),  # 行车线, a lane (probe 17)
        ("Starting 800 m ahead, the left lane is closed, merge right", "C", True),  # no centre
        ("前方八百米左侧车道关闭，请提前向右变道", "C", True),
        ("The left lane will stay closed for three hours, merge right", "L3", True),
        ("左侧车道施工封闭三百米", "L3", True),
        ("Left lane closed for four hundred metres", "L2", True),
        ("Left lane closed for 2 km", "none", False),
        # a review: quantities in other forms, and numbers that name no lane
        ("前方2km左侧车道封闭，请向右并线", "L2", True),
        ("Left lane closed for 2,000 m, merge right", "R2", True),
        ("Left lane closed for 2 weeks, merge right", "L2", True),
        ("Left lane closed for a 2-km stretch, merge right", "L2", True),
        ("Right lane closed for 3 days, merge left", "R3", True),
        ("Left lane closed in the city centre, merge right", "C", True),
        ("左侧车道施工中，请向右并线", "C", True),
        ("前方500m左侧车道封闭，请向右并线", "L1", False),
        ("Right lane closed near exit 4 on I-95 until May 5, 7-9 am", "R1", False),
        ("Right lane closed, speed limit 60 kph, 2 lanes remain open", "R1", False),
        ("Left lane of the M25 closed at junction 12", "L1", False),
        ("右侧车道7-9点封闭至12月31日，限速60", "R1", False),
        ("G15高速左侧车道22-6时封闭，保留两车道通行（3天）", "L1", False),
        ("The middle one of the three lanes is closed", "C", False),
        ("中間車道封閉，請向左併線", "C", False),
        ("最左边车道21:00—次日5:00封闭　向左并线", "L1", False),  # a time, not lane 21
    ],
)
def test_lane_unwritten_compares_the_reading_with_the_lane_numbers(
    text: str, read: str, unwritten: bool
) -> None:
    assert lane_unwritten(text, "lane_closed", reading(read)) is unwritten
    assert not lane_unwritten(text, "speed_limit", reading(read))  # only lane closures


def test_lane_numbers_leave_quantities_out() -> None:
    assert lane_numbers("Lane 2 closed for 3 km, merge one lane left") == {2, 1}
    assert lane_numbers("The left-most lane 0.5 km ahead, the number-two lane") == {2}
    assert lane_numbers("左侧车道封闭3公里，前方500米") == set()
    assert lane_numbers("Lane 1 closed 7:00-17:00, 50% of traffic, 7.5 t") == {1}
    assert lane_numbers("Lanes 1 and 2 closed; 2 lanes remain open near exit 4, M25") == {1, 2}
    assert lane_numbers("右侧车道7-9点封闭，保留两车道通行（3天），G15高速") == set()
    assert lane_numbers("左起第二条车道、3号车道、车道一、LN 2 closed, the 3rd lane") == {1, 2, 3}
    with pytest.raises(Exception, match="lanes"):
        lane_unwritten("Lane 2 closed", "lane_closed", np.ones(3))


def test_no_lane_closure_of_the_rule_language_read_right_is_flagged() -> None:
    """Every construction of both languages, training and held-out families, every lane and
    merge side, read as the lane it names: none flagged."""
    rng, texts = random.Random(3), []
    for variant, lanes in (("named", LANE_NAMES), ("numbered", LANE_NUMBERS)):
        for lane in lanes:
            for merge in SIDES:
                rule = Rule("lane_closed", variant, lane=lane, merge=merge)
                for lang in ("en", "zh"):
                    for held in (False, True):
                        for _ in range(40):
                            t = render_rule(rule, lang, rng, held)
                            texts.append((t.text, _LANES[lane]))
    assert len({t for t, _ in texts}) > 1500
    assert not [t for t, lane in texts if lane_unwritten(t, "lane_closed", reading(lane))]


def test_no_lane_closure_of_the_wording_files_read_right_is_flagged() -> None:
    """Every lane closure template of the evaluation probes and the written training wording,
    with every lane it can name (the slot's key is the lane) and both merge sides."""
    files = sorted((ROOT / "docs" / "examples").glob("wordings*.yaml"))
    files.append(ROOT / "docs" / "experiments" / "probe13-fresh.yaml")  # its lanes are legit
    tmpl = [load_templates(p, KINDS) for p in files]
    tmpl += [load_written(p) for p in sorted(WRITTEN_DIR.glob("*.yaml"))]
    flagged, n = [], 0
    for t in tmpl:
        for lang, kinds in t.rules.items():
            slots = t.slots.get(lang, {})
            for template in kinds.get("lane_closed", []):
                for key, names in slots.get("lane", {}).items():
                    for name, merge in ((x, m) for x in names for m in slots["merge"]["left"]):
                        text = template.format(
                            lane=name, Lane=name[:1].upper() + name[1:], merge=merge, limit=""
                        )
                        n += 1
                        if lane_unwritten(text, "lane_closed", reading(_LANES[key])):
                            flagged.append(text)
    assert n > 5000 and not flagged[:5]


@pytest.fixture(scope="module")
def decide() -> Callable[[str, float], Any]:
    """The node's decision path (Decider) on the shipped model, one golden frame."""
    from bus.recording_reader import read_samples
    from bus.schema import RuleSet
    from policy.decider import Decider
    from policy.model import PolicyModel
    from tests.policy.test_decider import header

    model = PolicyModel.load(ROOT / "models/ruledrive-default.onnx", "cpu")
    frame = next(iter(read_samples([ROOT / "tests/golden/drive.mcap"], require_labels=False)))

    def run(text: str, speed: float) -> Any:
        rs = RuleSet(vehicle_id="car-1", version="v", issued_at_ns=time.time_ns(), rules=[text])
        return Decider(model, "n").step(header(speed=speed), frame.jpeg, rs)

    return run


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("Left lane closed for 2 km, merge right", True),
        ("Lane 2 closed for 3 km, merge left", True),
        ("左侧车道封闭3公里，请向右并线", True),
        ("Left lane closed, merge right", False),
        ("左侧车道封闭，请向右并线", False),
    ],
)
def test_the_node_does_not_act_on_a_lane_the_rule_does_not_write(
    decide: Callable[[str, float], Any], text: str, flagged: bool
) -> None:
    """The shipped model reads the distances above as the lane's number, and the node answers
    rules_not_understood naming the rule (a model that reads them right fails this test: then
    say so in docs/training.md and drop the case)."""
    d = decide(text, 50.0)
    if flagged:
        assert (d.valid, d.reason, d.unread_rules) == (False, "rules_not_understood", [0])
    else:
        assert 0 not in d.unread_rules


@pytest.mark.parametrize(
    ("text", "clause"),
    [
        (
            "Right turn on red permitted after a stop, for all vehicles except trucks over 7.5 t",
            True,
        ),
        ("Speed limit 50 km/h, buses excepted", True),
        ("Other than buses, no vehicle may overtake", True),
        ("Apart from cyclists, all traffic must yield to pedestrians", True),
        ("No overtaking unless the vehicle ahead is a tractor", True),
        ("EXCLUDING EMERGENCY VEHICLES: NO OVERTAKING", True),
        ("除执行任务的救护车外，限速50公里/小时", True),
        ("红灯右转（停车后）允许，7.5吨以上货车除外", True),
        ("除了公交车，其他车辆禁止驶入最右侧车道", True),
        ("Speed limit 50 km/h", False),
        ("Trucks over 7.5 t: no overtaking", False),  # a scope, not an exception
        ("解除禁止超车", False),  # 解除: "lift"
        ("出发前请清除车窗积雪", False),  # 清除: "clear"
        ("限速50公里，违者罚款", False),
        # a review: exceptions of places, words with 除 that are no exception, more forms
        ("Trucks over 7.5 t: no overtaking, except on the climbing lane", False),
        ("Buses only: no stopping except at bus stops", False),
        ("Stop at amber unless within 15 m of the stop line", False),  # the amber rule
        ("除夕期间外地货车禁止进城", False),  # 除夕: New Year's Eve
        ("道路除冰作业外侧车道封闭", False),  # 除冰: de-icing; 外侧: the outer lane
        ("除此以外，禁止超车", False),
        ("With the exemption of buses, speed limit 50 km/h", True),
        ("Speed limit 50 km/h; does not apply to buses", True),
        ("除非是救护车，所有车辆禁止超车", True),
        ("限速50公里，本规定不适用于摩托车", True),
        # worded as the road users not being subject to the rule (forty-eighth session)
        ("Speed limit 50 km/h; buses are not subject to this limit", True),
        ("No overtaking. Emergency vehicles are not bound by this rule", True),
        ("限速50公里/小时，公交车不受此限", True),
        ("禁止超车，执行任务的警车不在此限", True),
        ("红灯禁止右转，非机动车不受本标志限制", True),
        ("本路段超车不受限制", False),  # the held-out permission, not an exception
        # road users at large not subject to a rule: it binds nobody, no exception (a review)
        ("Drivers are not bound by this sign", False),
        ("Traffic is not subject to any restriction here", False),
        ("车辆不受此限", False),
        ("所有车辆不受本标志限制", False),
    ],
)
def test_exception_clauses_in_both_languages(text: str, clause: bool) -> None:
    assert exception_clause(text) is clause
    assert excepted_not_binding(text, "not_binding") is clause
    assert not excepted_not_binding(text, "speed_limit")  # other readings are not checked


@pytest.mark.parametrize("split", ["train", "test", "heldout-phrasing"])
def test_no_rule_of_the_rule_language_that_binds_nobody_has_an_exception_clause(
    split: str,
) -> None:
    """Every rule text of a split, both languages: the check can flag no reading of a rule
    that truly binds nobody (its flags are all on misreadings), and no training text has an
    exception clause at all. Held-out amber wording does ("stop unless within 15 m"): read as
    binding nobody, it is misread anyway."""
    from simulator.oracle import rule_class

    plan = plan_split(split, 3000, seed=5, language="bilingual")
    texts = [(t.text, rule_class(t.rule)) for rs in plan.rule_texts for t in rs]
    assert len(texts) > 1000 and any(c == "not_binding" for _, c in texts)
    assert not [t for t, c in texts if excepted_not_binding(t, c)][:5]
    if split == "train":
        assert not [t for t, _ in texts if exception_clause(t)][:5]


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("Speed limit 50 km/h, buses excepted", True),
        ("除执行任务的救护车外，限速50公里/小时", True),
        ("限速50公里/小时，公交车不受此限", True),
        ("Speed limit 50 km/h; buses are not subject to this limit", True),
        ("Except for buses, no vehicle may drive in the rightmost lane", False),  # bus lane
        ("Speed limit 50 km/h", False),
    ],
)
def test_the_node_does_not_act_on_an_exception_read_as_binding_nobody(
    decide: Callable[[str, float], Any], text: str, flagged: bool
) -> None:
    """The shipped model reads the first four as binding nobody (not_binding) at 0.95-1.00."""
    d = decide(text, 70.0)
    if flagged:
        assert (d.valid, d.reason, d.unread_rules) == (False, "rules_not_understood", [0])
    else:
        assert 0 not in d.unread_rules


@pytest.mark.parametrize(
    ("traditional", "simplified"),
    [
        ("紅燈禁止右轉", "红灯禁止右转"),
        ("本路段禁止超車", "本路段禁止超车"),
        ("車讓人，違者罰款", "车让人,违者罚款"),
        ("左側車道封閉，請向右併線", "左侧车道封闭,请向右并线"),
        ("學校區域7時至17時限速30", "学校区域7时至17时限速30"),
    ],
)
def test_the_checks_read_traditional_characters_as_simplified(
    traditional: str, simplified: str
) -> None:
    """Signs in Taiwan and Hong Kong write traditional characters, which the checks'
    simplified patterns did not read (a blind probe: 最左側車道施工封閉 請往右行駛 read as
    closing another lane, valid=true): every check reads them as the simplified rule."""
    from perception.binding import bound_topics, names_school
    from perception.polarity import POLAR_KINDS, written_polarity

    assert as_read(traditional) == simplified
    assert bound_topics(traditional) == bound_topics(simplified)
    assert names_school(traditional) == names_school(simplified)
    for kind in POLAR_KINDS:
        assert written_polarity(traditional, kind) == written_polarity(simplified, kind)
    assert (written_lane(traditional), written_merge(traditional)) == (
        written_lane(simplified),
        written_merge(simplified),
    )
    assert as_read("Right turn on red") == "Right turn on red"  # other scripts unchanged
