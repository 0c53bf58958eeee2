"""Bilingual rule sets: symbolic rules (with scopes) -> rendered text, plus not-understood rules.

:func:`sample_language_rule_set` draws the same rule kinds as the catalogue sampler
(:func:`simulator.sampler.sample_rule_set`) plus rules for other vehicles (scope), lanes counted
from the right, and with some probability one rule nobody can read; then renders each rule in
English, Chinese, or (mixed sets) either. :func:`rule_records` is the per-rule metadata that goes
into a frame's scene record: kind, scope, language, families, class, and whether the frame is
targeted by the rule.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.errors import DataError
from simulator.language.lexicon_en import LEXICON as EN
from simulator.language.lexicon_zh import LEXICON as ZH
from simulator.language.negatives import sample_negative
from simulator.language.render import Lexicon, render_with
from simulator.oracle import rule_class, targeted_rules
from simulator.rules import HOURS, SCHOOL_LIMITS, SPEED_LIMITS, Rule
from simulator.scene import Scene

__all__ = [
    "LANGUAGES",
    "LEXICONS",
    "NEGATIVE_P",
    "RuleText",
    "render_rule",
    "rule_corpus",
    "rule_records",
    "sample_language_rule_set",
    "understood_rules",
]

LEXICONS: dict[str, Lexicon] = {"en": EN, "zh": ZH}
LANGUAGES = tuple(LEXICONS)
NEGATIVE_P = 0.12  # share of rule sets holding one rule that cannot be read
SCOPED_P = 0.3  # share of rule sets holding one rule for other vehicles
CARS_SCOPE_P = 0.1  # a binding rule that names cars explicitly
# Language of a rule set: all English, all Chinese, or each rule drawn (mixed).
LANGUAGE_MIX = (("en", 0.4), ("zh", 0.4), ("mixed", 0.2))
DISTRACTOR_PHRASING = 2  # a catalogue distractor without parameters: the symbolic stand-in


@dataclass(frozen=True)
class RuleText:
    """One rule as sent: its text, and what it means (``rule``; None = cannot be understood)."""

    text: str
    lang: str
    construction: str  # construction id, or the negative's family id
    families: tuple[str, ...]
    held_out: bool
    rule: Rule | None

    @property
    def understood(self) -> bool:
        return self.rule is not None


def render_rule(rule: Rule, lang: str, rng: random.Random, held: bool = False) -> RuleText:
    """Render ``rule`` in ``lang`` ("en"/"zh"); ``held`` draws held-out families (see render)."""
    lex = LEXICONS.get(lang)
    if lex is None:
        raise DataError(f"rule language {lang!r} is not one of {', '.join(LANGUAGES)}")
    r = render_with(lex, rule, rng, held)
    return RuleText(r.text, lang, r.construction, r.families, r.held_out, rule)


def _car_scope(rng: random.Random) -> str:
    return "cars" if rng.random() < CARS_SCOPE_P else "all"


def _lane_closed(rng: random.Random, n_lanes: int) -> Rule:
    u = rng.random()
    if u < 0.4:
        lane = rng.choice(("left", "right", "centre") if n_lanes == 3 else ("left", "right"))
        merge = {"left": "right", "right": "left"}.get(lane) or rng.choice(("left", "right"))
        return Rule("lane_closed", "named", lane=lane, merge=merge)
    # 10 %: a lane this road does not have (the rule then does not apply).
    k = n_lanes + 1 if n_lanes == 2 and rng.random() < 0.1 else rng.randint(1, n_lanes)
    from_right = u >= 0.75
    first, last = ("left", "right") if from_right else ("right", "left")
    merge = first if k == 1 else last if k >= n_lanes else rng.choice(("left", "right"))
    return Rule("lane_closed", "numbered", lane=f"r{k}" if from_right else str(k), merge=merge)


def _scoped(rng: random.Random) -> Rule:
    """A rule for vehicles other than cars: it must never change the car's decision."""
    u = rng.random()
    if u < 0.45:
        scope = rng.choice(("trucks", "buses", "coaches", "motorcycles"))
        return Rule("speed_limit", limit=rng.choice(SPEED_LIMITS[:6]), scope=scope)
    if u < 0.75:
        return Rule("overtaking", "prohibited", scope=rng.choice(("trucks", "buses", "coaches")))
    if u < 0.9:
        return Rule("turn_on_red", "permitted", scope="cyclists")
    return Rule("turn_on_red", "prohibited", scope=rng.choice(("trucks", "coaches")))


def _symbolic(rng: random.Random, n_lanes: int, held_out: bool) -> list[Rule]:
    if not held_out and rng.random() < 0.07:
        return []
    rules: list[Rule] = []
    if rng.random() < 0.3:
        rules.append(Rule("speed_limit", limit=rng.choice(SPEED_LIMITS), scope=_car_scope(rng)))
    if rng.random() < 0.3:
        hours = rng.choice(("day", "always"))
        rules.append(Rule("school_zone", limit=rng.choice(SCHOOL_LIMITS), hours=hours))
    if rng.random() < 0.45:
        variant = "prohibited" if rng.random() < 0.7 else "permitted"
        rules.append(Rule("overtaking", variant, scope=_car_scope(rng)))
    if rng.random() < 0.3:
        rules.append(_lane_closed(rng, n_lanes))
    if rng.random() < 0.35:
        rules.append(Rule("amber", "always_stop" if rng.random() < 0.6 else "proceed_if_close"))
    if rng.random() < 0.35:
        rules.append(Rule("yield_pedestrians"))
    if rng.random() < 0.35:
        variant = "permitted" if rng.random() < 0.65 else "prohibited"
        rules.append(Rule("turn_on_red", variant, scope=_car_scope(rng)))
    if rng.random() < 0.3:
        rules.append(Rule("bus_lane", hours=rng.choice(tuple(HOURS))))
    if rng.random() < SCOPED_P:
        rules.append(_scoped(rng))
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        rules.append(Rule("distractor", phrasing=DISTRACTOR_PHRASING))
    rng.shuffle(rules)
    rules = rules[:5]
    if not rules and held_out:
        rules.append(Rule("distractor", phrasing=DISTRACTOR_PHRASING))
    return rules


def sample_language_rule_set(
    rng: random.Random, n_lanes: int, held_out: bool = False, negatives: str = "train"
) -> tuple[RuleText, ...]:
    """0-5 rendered rules for a road with ``n_lanes`` lanes.

    ``held_out``: every understood rule uses at least one held-out family (and the set is not
    empty); otherwise only training families. ``negatives`` names the pool ("train" / "test")
    a not-understood rule is drawn from.
    """
    rules = _symbolic(rng, n_lanes, held_out)
    u, mix = rng.random(), "mixed"
    for name, p in LANGUAGE_MIX:
        if u < p:
            mix = name
            break
        u -= p
    out = [
        render_rule(r, mix if mix != "mixed" else rng.choice(LANGUAGES), rng, held_out)
        for r in rules
    ]
    if rng.random() < NEGATIVE_P:
        text, lang, family = sample_negative(rng, negatives)
        if len(out) >= 5:  # keep within MAX_RULES
            out.pop(rng.randrange(len(out)))
        out.insert(
            rng.randrange(len(out) + 1), RuleText(text, lang, family, (family,), False, None)
        )
    return tuple(out)


def understood_rules(texts: tuple[RuleText, ...]) -> tuple[Rule, ...]:
    """The symbolic rules the oracle decides with: not-understood rules are absent."""
    return tuple(t.rule for t in texts if t.rule is not None)


def _meaning(t: RuleText) -> dict[str, Any]:
    """One rule's meaning and wording as the scene record and the rule corpus carry it."""
    r = t.rule
    return {
        "text": t.text,
        "lang": t.lang,
        "construction": t.construction,
        "families": list(t.families),
        "held_out": t.held_out,
        "understood": r is not None,
        "class": rule_class(r),
        "rule": None
        if r is None
        else {
            "kind": r.kind,
            "variant": r.variant,
            "scope": r.scope,
            "limit": r.limit,
            "hours": r.hours,
            "lane": r.lane,
            "merge": r.merge,
        },
    }


def rule_records(texts: tuple[RuleText, ...], scene: Scene) -> list[dict[str, Any]]:
    """Per rule of a frame's rule set (in the order sent): meaning, wording, class, targeted."""
    targeted = targeted_rules(scene, [t.rule for t in texts])
    out = []
    for i, (t, tgt) in enumerate(zip(texts, targeted, strict=True)):
        rec = {"index": i, **_meaning(t)}
        rule = rec.pop("rule")  # after "targeted": the recordings' key order
        out.append({**rec, "targeted": tgt, "rule": rule})
    return out


def rule_corpus(n_sets: int, seed: int) -> Iterator[dict[str, Any]]:
    """Rule texts without frames, for the reader (``ruledrive rule-corpus``): the rules of
    ``n_sets`` rule sets drawn as the training splits draw them (training families only, the
    training pool of rules nobody can read), each with its meaning as :func:`rule_records`
    gives it, less the frame-dependent ``index`` and ``targeted``."""
    if n_sets <= 0:
        raise DataError(f"the rule corpus needs a positive number of rule sets, got {n_sets}")
    rng = random.Random(seed)
    for _ in range(n_sets):
        for t in sample_language_rule_set(rng, rng.choice((2, 3)), False, "train"):
            yield _meaning(t)
