"""The rule language's generator: every family renders, numbers/hours/lanes say what the rule
means (read back with the tables below, written independently of the lexicons), held-out
families stay out of training renders, negatives differ between training and test."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from bus.schema import MAX_RULE_CHARS
from core.errors import DataError
from simulator.language import (
    LEXICONS,
    POOLS,
    RuleText,
    held_out_families,
    render_rule,
    sample_language_rule_set,
    sample_negative,
)
from simulator.language.render import SLOT_RE, Ctx
from simulator.oracle import closed_lane_index
from simulator.rules import SCHOOL_LIMITS, SCOPES, SPEED_LIMITS, Rule

# --- every rule meaning the language must say ---------------------------------------------
SCOPED_KINDS = {("speed_limit", ""), ("overtaking", "prohibited"), ("overtaking", "permitted")}
SCOPED_KINDS |= {("turn_on_red", "permitted"), ("turn_on_red", "prohibited")}


def _meanings() -> list[Rule]:
    rules = [Rule("speed_limit", limit=n) for n in SPEED_LIMITS]
    rules += [
        Rule("school_zone", limit=n, hours=h) for n in SCHOOL_LIMITS for h in ("day", "always")
    ]
    for v in ("prohibited", "permitted"):
        rules += [Rule("overtaking", v), Rule("turn_on_red", v)]
    for lane, merge in (("left", "right"), ("centre", "left"), ("right", "left")):
        rules.append(Rule("lane_closed", "named", lane=lane, merge=merge))
    for lane in ("1", "2", "3", "r1", "r2", "r3"):
        rules.append(Rule("lane_closed", "numbered", lane=lane, merge="left"))
    rules += [Rule("amber", "always_stop"), Rule("amber", "proceed_if_close")]
    rules += [Rule("yield_pedestrians"), Rule("distractor", phrasing=2)]
    rules += [Rule("bus_lane", hours=h) for h in ("day", "extended", "always")]
    for kind, variant in sorted(SCOPED_KINDS):
        base = Rule(kind, variant, limit=60 if kind == "speed_limit" else None)
        rules += [Rule(kind, variant, limit=base.limit, scope=s) for s in SCOPES if s != "all"]
    return rules


MEANINGS = _meanings()


def _renders(lang: str, held: bool, n: int = 25) -> list[tuple[Rule, RuleText]]:
    """``n`` renders per meaning; a (kind, variant) said by only one meaning (amber, distractor
    ...) gets 16 n, so each of its constructions (up to ~40, the distractors) is drawn with near
    certainty (a given one is missed with probability ~5e-5)."""
    rng = random.Random(f"{lang}-{held}")
    per_kind = Counter((r.kind, r.variant) for r in MEANINGS)
    return [
        (r, render_rule(r, lang, rng, held))
        for r in MEANINGS
        for _ in range(n * (16 if per_kind[(r.kind, r.variant)] == 1 else 1))
    ]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_family_renders_and_training_renders_hold_none_out(lang: str) -> None:
    lex = LEXICONS[lang]
    seen: set[str] = set()
    held_seen: Counter[tuple[str, str]] = Counter()
    for _, t in _renders(lang, held=False):
        assert not t.held_out and not set(t.families) & lex.held_out, t
        assert "{" not in t.text and t.text.strip() == t.text and 0 < len(t.text) <= MAX_RULE_CHARS
        seen |= set(t.families)
    for rule, t in _renders(lang, held=True):
        assert t.held_out and set(t.families) & lex.held_out, t
        held_seen[(rule.kind, rule.variant)] += 1
        seen |= set(t.families)
    every = {c.id for c in lex.constructions + lex.wrappers}
    every |= {lex.family(c, m) for c, members in lex.concepts.items() for m in members}
    assert every - seen == set(), "families never rendered"
    # Every (kind, variant) can be said with a held-out family, so the held-out split covers it.
    kinds = {(r.kind, r.variant) for r in MEANINGS}
    assert set(held_seen) == kinds


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_construction_fills_every_slot(lang: str) -> None:
    lex = LEXICONS[lang]
    rng = random.Random(0)
    for c in lex.constructions:
        for rule in MEANINGS:
            if rule.kind == c.kind and (c.variant is None or c.variant == rule.variant):
                text = Ctx(lex, rule, rng, held=True).expand(c.template)
                assert "{" not in text and "}" not in text, (c.id, text)


def test_rendering_is_deterministic_per_seed() -> None:
    def draw(seed: int) -> list[str]:
        rng = random.Random(seed)
        return [t.text for _ in range(40) for t in sample_language_rule_set(rng, 3)]

    assert draw(5) == draw(5)
    assert draw(5) != draw(6)


def test_held_out_families_exist_in_both_languages() -> None:
    held = held_out_families()
    for lang, lex in LEXICONS.items():
        members = {lex.family(c, m) for c, ms in lex.concepts.items() for m in ms}
        cons = {c.id for c in lex.constructions}
        # whole synonym families and whole constructions, in each language
        assert len(held & members) >= 15 and len(held & cons) >= 10, lang
        assert all(f.startswith(f"{lang}.") for f in lex.held_out)


def test_unknown_language_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="rule language 'de'"):
        render_rule(Rule("yield_pedestrians"), "de", random.Random(0))


def test_catalogue_text_refuses_rules_only_the_language_can_say() -> None:
    with pytest.raises(DataError, match="no catalogue phrasing"):
        _ = Rule("speed_limit", limit=40, scope="coaches").text
    with pytest.raises(DataError, match="no catalogue phrasing"):
        _ = Rule("lane_closed", "numbered", lane="r2", merge="left").text
    with pytest.raises(DataError, match="scope"):
        Rule("speed_limit", limit=40, scope="tractors")
    assert Rule("lane_closed", "named", lane="right", merge="left").text  # "right" is a name


# --- reading numbers, hours and lanes back, with tables of the test's own --------------------
# fmt: off
EN_NUM = {w: i for i, w in enumerate((
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen"))}
EN_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
           "eighty": 80, "ninety": 90}
# fmt: on
ZH_DIGIT = dict(zip("零一二三四五六七八九", range(10), strict=True))


def en_numbers(text: str) -> list[int]:
    """Digit runs and number words (fifty-five, one hundred and ten) in order."""
    out: list[int] = []
    cur: int | None = None
    for tok in re.findall(r"\d+|[a-z]+", text.lower().replace("-", " ")):
        if tok.isdigit():
            out.append(int(tok))
        elif tok in EN_NUM or tok in EN_TENS:
            cur = (cur or 0) + EN_NUM.get(tok, EN_TENS.get(tok, 0))
        elif tok == "hundred" and cur is not None:
            cur *= 100
        elif tok == "and" and cur is not None:
            continue
        elif cur is not None:
            out.append(cur)
            cur = None
    return out if cur is None else [*out, cur]


def zh_value(run: str) -> int:
    if run.isdigit():
        return int(run)
    total, cur = 0, 0
    for ch in run:
        if ch == "百":
            total, cur = total + (cur or 1) * 100, 0
        elif ch == "十":
            total, cur = total + (cur or 1) * 10, 0
        else:
            cur = ZH_DIGIT[ch]
    return total + cur


def zh_numbers(text: str) -> list[int]:
    text = text.replace("周一至周五", "").replace("7.5吨", "")  # weekdays, truck weight
    return [zh_value(r) for r in re.findall(r"\d+|[零一二三四五六七八九十百]+", text)]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_speed_limits_read_back(lang: str) -> None:
    rng = random.Random(1)
    read = en_numbers if lang == "en" else zh_numbers
    for limit in SPEED_LIMITS:
        for _ in range(30):
            t = render_rule(Rule("speed_limit", limit=limit), lang, rng)
            assert read(t.text) == [limit], t.text


def _hours_of(lang: str, text: str, limit: int | None) -> tuple[int, int] | None:
    text = text.replace(":00", "")
    if lang == "en":
        nums = en_numbers(re.sub(r"24 hours|24/7", "", text))
        pm = bool(re.search(r"\d\s*(pm|p\.m\.)", text))
    else:
        nums = zh_numbers(text.replace("24小时", ""))
        pm = "下午" in text or "晚上" in text
    if limit is not None:
        nums.remove(limit)
    if not nums:
        return None
    assert len(nums) == 2, text
    a, b = nums
    return a, b + 12 if pm else b


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_time_windows_read_back(lang: str) -> None:
    rng = random.Random(2)
    want = {"day": (7, 17), "extended": (7, 20), "always": None}
    always_words = ["all times", "all day", "24 hours", "around the clock", "24/7"]
    always_words += ["any time", "day and night", "全天", "全时段", "24小时", "全日"]
    for held in (False, True):
        for hours, span in want.items():
            rules = [Rule("bus_lane", hours=hours)]
            if hours != "extended":
                rules.append(Rule("school_zone", limit=30, hours=hours))
            for rule in rules:
                for _ in range(30):
                    t = render_rule(rule, lang, rng, held)
                    assert _hours_of(lang, t.text, rule.limit) == span, t.text
                    if span is None:
                        assert any(w in t.text.lower() for w in always_words), t.text


ORD = {"first": 1, "second": 2, "third": 3, "一": 1, "二": 2, "三": 3}


def _lane_of(lang: str, text: str, n_lanes: int) -> tuple[int, str]:
    """(1-based lane from the left, merge side) read from a lane-closure sentence."""
    if lang == "en":
        t = text.lower()
        side = re.search(
            r"(?:merge|move over|move across|move|keep|change lanes|switch|get over|shift|bear"
            r"|stay)"
            r"(?: to)?(?: the)? "
            r"(left|right)",
            t,
        )
        t = re.sub(r"switch to the (left|right) lane", "", t)
        if m := re.search(r"(first|second|third) lane (?:counting )?from the (left|right)", t):
            k = ORD[m.group(1)]
            lane = k if m.group(2) == "left" else n_lanes - k + 1
        elif m := re.search(r"lane (?:no\. |number )?(\d|one|two|three)\b", t):
            lane = int(m.group(1)) if m.group(1).isdigit() else EN_NUM[m.group(1)]
        elif re.search(r"\b(left|leftmost|left-hand) lane", t):
            lane = 1
        elif re.search(r"\b(right|rightmost|right-hand) lane", t):
            lane = n_lanes
        else:
            assert re.search(r"(centre|center|middle) lane", t), text
            lane = 2
    else:
        side = re.search(r"[向靠](左|右)", text)
        if m := re.search(r"(左起|从?左数|右起|从?右数)第(.)条车道", text):
            k = ORD[m.group(2)]
            lane = k if "左" in m.group(1) else n_lanes - k + 1
        elif m := re.search(r"第(\d|[一二三])条?车道|(\d|[一二三])号车道", text):
            g = m.group(1) or m.group(2)
            lane = int(g) if g.isdigit() else ORD[g]
        elif re.search(r"最左|左侧车道|左车道", text):
            lane = 1
        elif re.search(r"最右|右侧车道|右车道", text):
            lane = n_lanes
        else:
            assert re.search(r"中间|正中|中央", text), text
            lane = 2
    assert side, text
    s = side.group(1)
    return lane, {"左": "left", "右": "right"}.get(s, s)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_lane_references_read_back(lang: str) -> None:
    rng = random.Random(3)
    for held in (False, True):
        for rule in MEANINGS:
            if rule.kind != "lane_closed":
                continue
            for merge in ("left", "right"):
                r = Rule("lane_closed", rule.variant, lane=rule.lane, merge=merge)
                for _ in range(20):
                    text = render_rule(r, lang, rng, held).text
                    lane, side = _lane_of(lang, text, 3)
                    assert (lane - 1, side) == (closed_lane_index(r, 3), merge), text


def test_scoped_rules_name_their_vehicles() -> None:
    names = {
        "cars": ("car", "小型汽车", "小型车", "小型客车", "小客车", "轿车"),
        "trucks": ("7.5 t", "7.5吨"),
        "buses": ("bus", "公交车", "公共汽车"),
        "coaches": ("coach", "客车"),
        "cyclists": ("cyclist", "bicycle", "自行车", "非机动车"),
        "motorcycles": ("motorcycl", "motorbike", "摩托车"),
    }
    rng = random.Random(4)
    for rule in MEANINGS:
        if rule.scope == "all":
            continue
        for lang in ("en", "zh"):
            for _ in range(15):
                text = render_rule(rule, lang, rng).text
                assert any(n in text.lower() for n in names[rule.scope]), (rule.scope, text)


# --- not understood -------------------------------------------------------------------------
def test_training_and_test_negatives_differ() -> None:
    rng = random.Random(5)
    draws = {pool: [sample_negative(rng, pool) for _ in range(3000)] for pool in POOLS}
    texts = {pool: {t for t, _, _ in d} for pool, d in draws.items()}
    families = {pool: {f for _, _, f in d} for pool, d in draws.items()}
    assert texts["train"] & texts["test"] == set()
    assert families["train"] & families["test"] == set()
    assert families["train"] == set(POOLS["train"]) and families["test"] == set(POOLS["test"])
    langs = {pool: {lang for _, lang, _ in d} for pool, d in draws.items()}
    assert {"de", "fr"} <= langs["train"] and not {"es", "ru", "ja"} & langs["train"]
    assert {"es", "ru", "ja"} <= langs["test"] and not {"de", "fr"} & langs["test"]
    for d in draws.values():
        assert all(0 < len(t) <= MAX_RULE_CHARS and t.strip() for t, _, _ in d)
    with pytest.raises(DataError, match="negative pool"):
        sample_negative(rng, "heldout")


def test_negatives_are_not_rule_text() -> None:
    """No negative is a sentence the generator writes for a rule."""
    rendered = {
        t.text
        for lang in ("en", "zh")
        for held in (False, True)
        for _, t in _renders(lang, held, 5)
    }
    rng = random.Random(6)
    negs = {sample_negative(rng, pool)[0] for pool in POOLS for _ in range(2000)}
    assert rendered & negs == set()


def _unslotted(template: str) -> str:
    """A template with its slots ({concept}, {param}) blanked out."""
    return SLOT_RE.sub(" ", template)


def _en_words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z]+", text)}


def _held_only_words(lang: str) -> set[str]:
    """Words (English) or strings (Chinese) that only held-out synonym families write: a
    training text holding one teaches the model what that word means before the held-out
    split tests it."""
    lex = LEXICONS[lang]
    train: list[str] = []
    held: list[str] = []
    for concept, members in lex.concepts.items():
        for member, forms in members.items():
            variants = [_unslotted(v) for alts in forms.values() for v in alts]
            (held if f"{concept}.{member}" in lex.held_members else train).extend(variants)
    # Construction words count as training words (a held-out construction's own wording, as
    # "Never overtake", is new syntax; its words may well appear elsewhere).
    train += [_unslotted(c.template) for c in (*lex.constructions, *lex.wrappers)]
    if lang == "en":
        stop = {"a", "an", "the", "of", "to", "on", "in", "at", "is", "are", "be", "no", "for"}
        seen = set().union(*map(_en_words, train))
        return set().union(*map(_en_words, held)) - seen - stop
    fragments = {f for t in held for f in re.split(r"[\s\W\d]+", t) if len(f) >= 2}
    return {f for f in fragments if not any(f in t for t in train)}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_training_negatives_and_distractors_do_not_use_held_out_words(lang: str) -> None:
    """A held-out family tests whether the model reads a word it never saw as what it means.
    If the only training text with that word is a rule nobody can read ("Arrêt obligatoire au
    feu orange", once) or a distractor, training teaches the opposite: the seventh and eighth
    rounds' models read held-out "Come to a standstill on orange" as not understood, and
    "... out of use. Please keep right" badly, after "Keep this medicine out of reach of
    children" (an off-topic training negative)."""
    held_only = _held_only_words(lang)
    assert held_only  # not vacuous: every lexicon holds out words of its own
    from simulator.language.negatives import _FIXED

    texts = [s for fam, (_, sents) in _FIXED.items() if fam.startswith("neg.train.") for s in sents]
    texts += [
        _unslotted(c.template)
        for c in LEXICONS[lang].constructions
        if c.kind == "distractor" and not c.held_out
    ]
    if lang == "en":
        bad = {t: hit for t in texts if (hit := _en_words(t) & held_only)}
    else:
        bad = {t: hit for t in texts if (hit := {w for w in held_only if w in t})}
    assert bad == {}
