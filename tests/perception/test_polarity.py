"""A permission or a prohibition that the rule's composed negations contradict is not acted on
(perception.polarity, applied by the node and by evaluation through
perception.readcheck.reading_unwritten).

An outside probe (forty-seventh session) found the reader taking polarity from words: "a ban
denied" ("No rule prevents overtaking here", 没有不能超车的规定) read as a ban, a doubly denied
permission read as a permission, at 0.9-1.0 with valid=true."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from perception.polarity import (
    negative_elements,
    polarity_unwritten,
    written_class,
    written_polarity,
)
from ruledrive.bench_wording import load_templates
from ruledrive.written_corpus import KINDS, WRITTEN_DIR, load_written
from simulator.language.ruleset import render_rule
from simulator.rules import SCOPES, Rule

ROOT = Path(__file__).resolve().parents[2]
POLAR = (
    "overtaking:permitted",
    "overtaking:prohibited",
    "turn_on_red:permitted",
    "turn_on_red:prohibited",
)


@pytest.mark.parametrize(
    ("clause", "n"),
    [
        ("Overtaking allowed", 0),
        ("No overtaking", 1),
        ("Drivers can't turn right on red", 1),
        ("No overtaking no passing", 2),  # two negations, no construction
        # a restriction denied, lifted or ended counts once, as one construction
        ("Nothing forbids passing on this road", 1),
        ("End of no-passing zone", 1),
        ("The no-overtaking restriction is lifted", 1),
        ("Turning right on red is not illegal", 1),
        ("You need not wait for the green light to turn right", 1),
        ("本路段没有超车限制", 1),
        ("红灯时右转并非被禁止", 1),
        ("禁止超车的限制到此解除", 1),
        ("在此超车并不违法", 1),
        ("You don't have to stay stuck behind lorries", 1),
        ("不必一直跟在慢车后面", 1),
        ("不同车型不论何时均禁止超车", 1),  # 不同, 不论 do not negate
        ("", 0),
    ],
)
def test_negative_elements(clause: str, n: int) -> None:
    assert negative_elements(clause) == n


@pytest.mark.parametrize(
    ("text", "kind", "polarity"),
    [
        # a restriction denied, lifted or ended, with no other negation: a permission
        ("Nothing forbids passing on this road", "overtaking", "permitted"),
        ("You need not wait until the light turns green to turn right", "turn_on_red", "permitted"),
        ("无任何规定禁止超车", "overtaking", "permitted"),
        ("右转无需等待绿灯", "turn_on_red", "permitted"),
        ("红灯时停车后右转并不违法", "turn_on_red", "permitted"),
        ("Nothing stops you from passing slower cars", "overtaking", "permitted"),
        ("End of no-overtaking zone", "overtaking", "permitted"),
        ("The ban on right turns on red has been lifted", "turn_on_red", "permitted"),
        ("No limit on overtaking on this stretch", "overtaking", "permitted"),
        ("Overtaking: not banned", "overtaking", "permitted"),  # the construction after a colon
        ("右转不受信号灯控制", "turn_on_red", "permitted"),
        # ... beside another negation, or lifted in the negative: not read here
        ("No driver is not barred from overtaking here", "overtaking", None),
        ("Overtaking ban not lifted", "overtaking", None),
        ("Is overtaking still banned here? No. The ban ended at the junction", "overtaking", None),
        # a negation of something else, a second negation, a state or a place: not read here
        ("No overtaking no passing", "overtaking", None),
        ("No overtaking no speeding", "overtaking", None),
        ("Do not overtake if you cannot see the road ahead", "overtaking", None),
        ("No overtaking in restricted visibility", "overtaking", None),
        ("No overtaking where the hard shoulder ends", "overtaking", None),
        ("Do not forget that overtaking is banned on this road", "overtaking", None),
        ("视线不清禁止超车", "overtaking", None),
        ("非紧急情况禁止超车", "overtaking", None),
        ("超车道结束禁止超车", "overtaking", None),
        ("警报解除前禁止超车", "overtaking", None),
        ("禁止红灯右转禁止掉头", "turn_on_red", None),
        ("禁止超车违法必究", "overtaking", None),
        # one negation of the action and nothing that could change it: a prohibition
        ("Overtaking is allowed nowhere on this road", "overtaking", "prohibited"),
        ("Overtaking is not permitted", "overtaking", "prohibited"),
        ("禁止超车", "overtaking", "prohibited"),
        ("No overtaking 禁止超车", "overtaking", "prohibited"),
        ("本路段禁止超车，违者罚款200元", "overtaking", "prohibited"),  # a penalty clause
        ("No overtaking. Offenders will be fined 100 euros", "overtaking", "prohibited"),
        ("禁止超车，注意安全", "overtaking", "prohibited"),
        ("No overtaking 7-9 am", "overtaking", None),  # a number of the rule's own
        ("No overtaking unless safe", "overtaking", None),
        ("超车时请勿占用应急车道", "overtaking", None),  # another action
        ("Overtaking no longer prohibited", "overtaking", "permitted"),
        ("本路段超车不限", "overtaking", "permitted"),
        ("本路段不限速，禁止超车", "overtaking", None),  # another clause's negation
        # no negation at all, the permission written, nothing that could change it
        ("Overtaking permitted", "overtaking", "permitted"),
        ("驾驶人可超过前方车辆", "overtaking", "permitted"),
        ("Overtaking lane closed", "overtaking", None),  # no permission word
        ("Overtaking is punishable", "overtaking", None),
        ("🚫超车", "overtaking", None),
        ("Right turn on red permitted after a full stop", "turn_on_red", None),  # after
        ("Overtakes allowed on this road: zero", "overtaking", None),  # a number
        ("Overtaking permitted for cars; trucks must not overtake", "overtaking", None),
        ("Overtaking allowed no parking", "overtaking", None),
        # an exception clause (the rule language has none) cut out, one prohibition left: the
        # reader took 除…外 for a negation
        ("除救护车外禁止红灯右转", "turn_on_red", "prohibited"),
        ("Except for police cars, no vehicle may overtake here", "overtaking", "prohibited"),
        ("除货车外，其他车辆可以超车", "overtaking", "permitted"),
        ("禁止超车解除（货车除外）", "overtaking", "permitted"),  # lifted, for the car too
        ("红灯时不得右转，除非车辆已经完全停下", "turn_on_red", None),  # a condition
        ("除货车外，红灯时如无行人可以右转", "turn_on_red", None),
        # the rule is about the other action
        ("Nothing forbids passing on this road", "turn_on_red", None),
        # a lifting denied or still to come is no lifting (the review of the split-polarity
        # reading, fiftieth session: each was read as a permission)
        ("禁止超车的规定目前尚未撤销", "overtaking", None),
        ("红灯右转的禁令还没有解除", "turn_on_red", None),
        ("本路口红灯右转限制将于下月取消", "turn_on_red", None),
        ("超车管制待解除", "overtaking", None),
        ("The overtaking ban hasn't been lifted yet", "overtaking", None),
        ("The ban on turning right on red won't be lifted", "turn_on_red", None),
        ("The no-overtaking restriction is expected to be lifted in May", "overtaking", None),
        ("The overtaking ban has been lifted", "overtaking", "permitted"),
        ("超车禁令已于昨日解除", "overtaking", "permitted"),
        # a permission under a condition, a place ahead, a rumour, a question or of the past is
        # still read as one: the words' permission is only ever a check (the split-polarity
        # reading settles on bans only), so it refuses a ban where it would decide otherwise
        ("Overtaking is no longer restricted once past the bridge", "overtaking", "permitted"),
        ("End of no overtaking zone 300 m ahead", "overtaking", "permitted"),
        ("超车不受限制，但夜间除外", "overtaking", "permitted"),
        ("网传此处红灯右转不违法，系谣言", "turn_on_red", "permitted"),
        ("Right turn on red not prohibited (all vehicles)", "turn_on_red", "permitted"),
        # not an offence: a permission (each was read as a ban)
        ("此路口红灯时右转不属于闯红灯", "turn_on_red", "permitted"),
        ("Passing slower vehicles here is not a violation", "overtaking", "permitted"),
        ("Overtaking on this stretch is no infringement of the rules", "overtaking", "permitted"),
        # an exception that names the car: the prohibition does not bind it
        ("除小型汽车外，本路段禁止超车", "overtaking", None),
        ("本路段禁止超车，私家车除外", "overtaking", None),
        ("No overtaking except for passenger cars", "overtaking", None),
        ("No overtaking, police cars excepted", "overtaking", "prohibited"),
        # the second review: a ban or permission no longer in force, encouragement, a ban of
        # the past, other road users, are read as neither (a permission in a question, a claim
        # or the past is still read: see above)
        ("The no-overtaking restriction on this road has expired", "overtaking", None),
        ("红灯右转禁令已经作废", "turn_on_red", None),
        ("允许红灯右转的规定已停止执行", "turn_on_red", None),
        ("Could I turn right on red here?", "turn_on_red", None),
        ("你觉得这里可以超车吗", "overtaking", "permitted"),
        ("Whoever told you overtaking is allowed here was wrong", "overtaking", "permitted"),
        ("Overtaking on this bridge was formerly permitted", "overtaking", "permitted"),
        ("这个路口以往禁止红灯右转", "turn_on_red", None),
        ("Don't hesitate to turn right on red at this corner", "turn_on_red", None),
        ("这段路超车没问题", "overtaking", None),
        ("Horse-drawn carriages: no overtaking", "overtaking", None),
        ("房车禁止超车", "overtaking", None),
        ("No overtaking for the next 2 km", "overtaking", None),
        ("本路段禁止超车", "overtaking", "prohibited"),
        # the third review: liftings and "no problem" in more words, the past, a translation
        ("The turn-on-red restriction has been eased at this junction", "turn_on_red", None),
        ("No-overtaking rule switched off for the weekend", "overtaking", None),
        ("本路段禁止超车的规定已放宽", "overtaking", None),
        ("在这个路口红灯右转不会被罚", "turn_on_red", None),
        ("Passing here is no big deal", "overtaking", None),
        ("Last year: no right turn on red at this junction", "turn_on_red", None),
        ("No overtaking (inactive)", "overtaking", None),
        ("在德国，红灯禁止右转", "turn_on_red", None),
        # 解禁 ("ban lifted") is a permission
        ("本路段超车已解禁", "overtaking", "permitted"),
        # leaving a ban's zone is its end (a blind review's 已驶出禁止超车路段, read as the ban at
        # 0.88); about to leave it, or entering it, is not
        ("已驶出禁止超车路段", "overtaking", "permitted"),
        ("You are now leaving the no overtaking zone", "overtaking", "permitted"),
        ("Now leaving no-passing zone", "overtaking", "permitted"),
        ("尚未驶出禁止超车路段", "overtaking", None),
        ("No overtaking zone ahead", "overtaking", "prohibited"),
        ("红灯右转今日起解禁", "turn_on_red", "permitted"),
    ],
)
def test_written_polarity(text: str, kind: str, polarity: str | None) -> None:
    assert written_polarity(text, kind) == polarity


def test_only_polar_readings_contradicted_by_the_text_are_flagged() -> None:
    text = "Nothing forbids passing on this road"
    assert polarity_unwritten(text, "overtaking:prohibited")
    assert not polarity_unwritten(text, "overtaking:permitted")
    for other in ("speed_limit", "not_binding", "amber:always_stop", "turn_on_red:prohibited"):
        assert not polarity_unwritten(text, other)


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("No rule forbids a right turn on red here", "turn_on_red:permitted"),
        ("右转无需等待绿灯", "turn_on_red:permitted"),
        ("禁止超车", None),  # a plain prohibition: binding nobody is the reader's to say
        # a rule for road users other than cars may truly bind nobody the car is
        ("Trucks over 7.5 t: overtaking is no longer banned", None),
        ("公共汽车不准超车", None),
        # other actions: a mountain pass, letting traffic pass, overloading, a U-turn
        ("Slow vehicles must pull in to let traffic pass", None),
        ("No U-turns at the junction", None),
        ("车辆不得超载", None),
        ("No parking", None),
    ],
)
def test_a_rule_read_as_binding_nobody_that_writes_a_polarity_for_cars(
    text: str, written: str | None
) -> None:
    assert written_class(text, "not_binding") == written


@pytest.mark.parametrize("split", ["train", "heldout-phrasing"])
def test_no_rule_of_the_rule_language_that_binds_nobody_is_given_a_polarity(split: str) -> None:
    """Every rule text of a split that truly binds nobody (rules for other road users, rules
    about other things), both languages: none is given a polarity to check."""
    from simulator.oracle import rule_class
    from simulator.plan import plan_split

    plan = plan_split(split, 20000, seed=5, language="bilingual")
    texts = {t.text for rs in plan.rule_texts for t in rs if rule_class(t.rule) == "not_binding"}
    assert len(texts) > 600
    assert not [t for t in sorted(texts) if written_class(t, "not_binding")][:5]


def test_no_polar_rule_of_the_rule_language_read_right_is_flagged() -> None:
    """Every overtaking and turn-on-red construction of both languages, training and held-out
    families, every scope, read as what it says: none flagged; and the rules whose
    negations compose ("End of no passing zone", 解除禁止超车, "not banned") are among them."""
    rng, composed, flagged, n = random.Random(11), 0, [], 0
    for cls in POLAR:
        kind, variant = cls.split(":")
        for scope in SCOPES:
            for lang in ("en", "zh"):
                for held in (False, True):
                    for _ in range(60):
                        t = render_rule(Rule(kind, variant, scope=scope), lang, rng, held).text
                        n += 1
                        composed += written_polarity(t, kind) == variant
                        if polarity_unwritten(t, cls):
                            flagged.append(t)
    assert n == 4 * 7 * 2 * 2 * 60 and composed > 1000
    assert not flagged[:5]


def test_no_polar_template_of_the_wording_files_read_right_is_flagged() -> None:
    """Every overtaking and turn-on-red template of the evaluation probes (outside wording,
    negations included) and of the written training wording, read as its own kind."""
    files = sorted((ROOT / "docs" / "examples").glob("wordings*.yaml"))
    files.append(ROOT / "docs" / "experiments" / "probe13-fresh.yaml")
    tmpl = [load_templates(p, KINDS) for p in files]
    tmpl += [load_written(p) for p in sorted(WRITTEN_DIR.glob("*.yaml"))]
    # the written wording's sentences that bind no car (mountain passes, letting traffic pass)
    binds_nobody = [text for t in tmpl for lst in t.not_binding.values() for text in lst]
    assert len(binds_nobody) > 500
    assert not [t for t in binds_nobody if written_class(t, "not_binding")][:5]
    texts = [
        (text, cls)
        for t in tmpl
        for kinds in t.rules.values()
        for cls in POLAR
        for text in kinds.get(cls, [])
    ]
    assert len(texts) > 500
    assert not [(t, c) for t, c in texts if polarity_unwritten(t, c)][:5]


CONTROLS = {  # a rule of each polarity the shipped model reads right
    "overtaking": ("Overtaking permitted", "No overtaking"),
    "turn_on_red": ("Right turn on red permitted after a full stop", "No right turn on red"),
}


@pytest.mark.parametrize(
    ("text", "misread", "kind"),
    [
        ("No law prevents drivers from overtaking here", "overtaking:prohibited", "overtaking"),
        ("本路段没有超车限制", "overtaking:prohibited", "overtaking"),
        ("除警车外，所有车辆禁止超车", "overtaking:permitted", "overtaking"),
        (
            "You need not wait until the light turns green to turn right",
            "turn_on_red:prohibited",
            "turn_on_red",
        ),
        ("右转无需等待绿灯", "turn_on_red:prohibited", "turn_on_red"),
        ("除特种车辆外，所有车辆禁止红灯右转", "turn_on_red:permitted", "turn_on_red"),
        # read as binding nobody, though it names no road user but cars
        ("本路口红灯右转不受限制", "not_binding", "turn_on_red"),
    ],
)
def test_the_node_does_not_act_on_a_polarity_the_negations_contradict_where_it_decides(
    node: Callable[..., Any], text: str, misread: str, kind: str
) -> None:
    """The shipped model reads each as another class than it says, at 0.86-1.00. On the
    frames where the two polarities decide differently (the controls, read right, tell which)
    the node answers rules_not_understood naming the rule; elsewhere it decides, valid."""
    read, got = node(text)
    assert read == misread
    _, permitted = node(CONTROLS[kind][0])
    _, prohibited = node(CONTROLS[kind][1])
    decisive = [p.decision != q.decision for p, q in zip(permitted, prohibited, strict=True)]
    assert 2 <= sum(decisive) <= 30
    for d, p, flag in zip(got, permitted, decisive, strict=True):
        if flag:
            assert (d.valid, d.reason, d.unread_rules) == (False, "rules_not_understood", [0])
        else:
            assert 0 not in d.unread_rules and d.decision == p.decision


def test_a_polarity_is_checked_beside_the_neighbour_readings_alternative(
    node: Callable[..., Any],
) -> None:
    """The neighbours overrule the reader on this rule (perception.neighbours) and the check
    has the reader's own reading as an alternative; the written polarity is checked beside it
    (it was skipped for a rule that had an alternative already, and the misread ban was acted
    on): rules_not_understood on every frame the two polarities decide differently."""
    read, got = node("红灯右转不受限制，请注意行人")
    assert read == "turn_on_red:prohibited"
    _, permitted = node(CONTROLS["turn_on_red"][0])
    _, prohibited = node(CONTROLS["turn_on_red"][1])
    decisive = [p.decision != q.decision for p, q in zip(permitted, prohibited, strict=True)]
    assert sum(decisive) >= 2
    assert all(d.unread_rules == [0] for d, f in zip(got, decisive, strict=True) if f)


def test_with_the_reading_check_off_a_contradicted_polarity_is_never_acted_on(
    node: Callable[..., Any],
) -> None:
    """Without the reading check (reading_check 0) there is no alternative to compare: the
    rule is answered rules_not_understood on every frame."""
    _, got = node("No law prevents drivers from overtaking here", 0.0)
    assert all(
        (d.valid, d.reason, d.unread_rules) == (False, "rules_not_understood", [0]) for d in got
    )
    _, plain = node("Overtaking permitted", 0.0)
    assert not any(0 in d.unread_rules for d in plain)


@pytest.mark.parametrize(
    "text", ["Overtaking is not prohibited", "Turning right on red is not illegal after a stop"]
)
def test_a_composed_polarity_read_right_is_acted_on(node: Callable[..., Any], text: str) -> None:
    read, got = node(text)
    assert read.endswith(":permitted")
    assert not any(0 in d.unread_rules for d in got)


@pytest.mark.parametrize(
    # a polarity the negations contradict; a rule of the car read as binding nobody
    # (perception.binding)
    "text",
    ["No law prevents drivers from overtaking here", "车让人，违者罚款。"],
)
def test_evaluation_flags_the_frames_the_node_flags(node: Callable[..., Any], text: str) -> None:
    """Evaluation (training.evaluate) counts a rule the reading check flags on the frames the
    node flags it, no more and no fewer, so the figures it reports are the node's."""
    import dataclasses

    import numpy as np

    from bus.recording_reader import read_samples
    from perception.rule_encoder import RuleEncoder
    from training.data import RuleTable, encode_samples
    from training.evaluate import OnnxPredictor, _flags, _with_sentence

    _, got = node(text)
    frames = list(read_samples([ROOT / "tests/golden/drive.mcap"], require_labels=False))[:40]
    samples = [dataclasses.replace(f, rules=(text,), speed_kph=40.0) for f in frames]
    predictor = OnnxPredictor(ROOT / "models/ruledrive-default.onnx")
    encoder = RuleEncoder.load(
        Path(predictor.encoder_dir), "cpu", cache_size=0, layer=predictor.encoder_layer
    )
    table = RuleTable.build([text], encoder)
    if getattr(predictor, "sentence_input", False):
        table.add_sentences()
    data = _with_sentence(predictor, encode_samples(samples, table, predictor.rule_classes))
    outs = data.predict(predictor.predict)
    unread = _flags(predictor, outs, data, np.arange(len(data)))["unread"][:, 0]
    assert 2 <= unread.sum() < len(unread)
    assert unread.tolist() == [0 in d.unread_rules for d in got]


def test_the_written_polarity_is_checked_beside_the_runner_up() -> None:
    """A rule read unsurely has its runner-up as an alternative; a polarity its words
    contradict adds the written one beside it, and replaces neither (a review found the
    runner-up dropped once the written polarity was added, so an unsure rule whose runner-up
    decides a frame was acted on)."""
    import numpy as np

    from perception.readcheck import read_rule_set

    class Reading:  # a reading graph whose features are the class readings themselves
        def run(self, outs: Any, feeds: dict[str, Any]) -> list[Any]:
            c = feeds["classes"]
            return [c.reshape(len(c), -1)]

    names = ("not_understood", "overtaking:permitted", "overtaking:prohibited", "speed_limit")
    classes = np.zeros((2, len(names)), np.float32)
    classes[0, 2], classes[0, 3] = 0.55, 0.45  # unsure: a ban, runner-up a speed limit
    classes[1, 1] = 1.0
    mask = np.zeros((2, 4), np.float32)
    mask[:, :2] = 1
    texts = ("Nothing forbids overtaking here", "Overtaking permitted")
    args = (Reading(), ("classes",), classes.reshape(-1), [classes], mask, 0.9, None, names, 0)
    _, _, alts, checked = read_rule_set(*args, None, texts)
    read_as = sorted(names[int(np.argmax(f.reshape(2, -1)[r]))] for r, f in alts)
    # the runner-up, the top class outright (readcheck.outright), the written polarity
    assert [r for r, _ in alts] == [0, 0, 0]
    assert read_as == ["overtaking:permitted", "overtaking:prohibited", "speed_limit"]
    assert checked == (0,)
    _, _, alts, _ = read_rule_set(*args, None, ())
    read_as = sorted(names[int(np.argmax(f.reshape(2, -1)[0]))] for _, f in alts)
    assert read_as == ["overtaking:prohibited", "speed_limit"]
