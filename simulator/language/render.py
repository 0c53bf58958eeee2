"""The composition engine: a symbolic :class:`~simulator.rules.Rule` -> one sentence.

A language is a :class:`Lexicon`: *concepts* (overtake, prohibited, amber, closed ...), each with
*members* (synonym families: overtake / pass / go past), each member with surface forms per part
of speech; *constructions* per (kind, variant), templates such as ``"No {overtake:n} zone"`` or
``"{subj} {mustnot} {overtake:v}"``; scope *wrappers* (``"{scope}: {body}"``) for rules that bind
only some vehicles; and *parameter formatters* (``{limit}``, ``{hours}``, ``{lane}``, ...) that
write numbers, time windows and lane references, choosing their own format families.

A slot ``{name}`` or ``{name:pos}`` names a formatter or a concept; a concept's member is drawn
once per sentence (so one sentence never mixes "overtake" and "pass"). Forms may hold slots
themselves (``"merge {side}"``). Every construction, wrapper and member has a *family id*
(``en.o.no_zone``, ``zh.prohib.yanjin``); a family is held out as a whole: with ``held=False``
only training families are drawn, with ``held=True`` every sentence uses at least one held-out
family. Rendering costs a few ``rng.choice`` calls and one regex pass per template.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from core.errors import DataError
from simulator.rules import Rule

__all__ = [
    "Construction",
    "Ctx",
    "Lexicon",
    "Rendered",
    "concepts",
    "constructions",
    "render_with",
]

SLOT_RE = re.compile(r"\{(\w+)(?::(\w+))?\}")
HELD_PREFER_P = 0.5  # held-out split: chance a slot draws among its held-out members first
MAX_TRIES = 60

Forms = Mapping[str, tuple[str, ...]]  # part of speech ("" = default) -> surface forms


@dataclass(frozen=True)
class Construction:
    """One template for (kind, variant); ``variant=None`` fits every variant of ``kind``.

    Wrappers use kind ``"scope"`` and the slots ``{body}`` and ``{scope}``; a wrapper with
    variant ``"any"`` may also name "all vehicles", one with ``None`` only narrower scopes.
    """

    id: str
    kind: str
    variant: str | None
    template: str
    held_out: bool = False


Formatter = Callable[["Ctx", str], str]


@dataclass
class Lexicon:
    """Everything one language needs; ``held_members`` are ``concept.member`` names."""

    lang: str
    concepts: Mapping[str, Mapping[str, Forms]]
    constructions: tuple[Construction, ...]
    wrappers: tuple[Construction, ...]
    held_members: frozenset[str]
    params: Mapping[str, Formatter]
    capitalise: bool = True
    held_out: frozenset[str] = field(init=False)
    by_kind: dict[tuple[str, str], list[Construction]] = field(init=False)

    def __post_init__(self) -> None:
        for name in self.held_members:
            concept, _, member = name.partition(".")
            if member not in self.concepts.get(concept, {}):
                raise DataError(f"{self.lang}: held-out member {name!r} is not in the lexicon")
        held = {f"{self.lang}.{m}" for m in self.held_members}
        held |= {c.id for c in self.constructions + self.wrappers if c.held_out}
        self.held_out = frozenset(held)
        self.by_kind = {}
        for c in self.constructions:
            self.by_kind.setdefault((c.kind, c.variant or "*"), []).append(c)

    def family(self, concept: str, member: str) -> str:
        return f"{self.lang}.{concept}.{member}"

    def for_rule(self, kind: str, variant: str) -> list[Construction]:
        out = self.by_kind.get((kind, variant), []) + self.by_kind.get((kind, "*"), [])
        if not out:
            raise DataError(f"{self.lang}: no construction for rule {kind!r} / {variant!r}")
        return out


def concepts(
    spec: Mapping[str, Mapping[str, str | Mapping[str, str]]],
) -> dict[str, dict[str, Forms]]:
    """Compact lexicon notation: ``{"closed": {"shut": "shut|shut off"}}`` for one part of
    speech, ``{"overtake": {"pass": {"n": "passing", "v": "pass other vehicles"}}}`` for several.
    ``|`` separates free variants within a member; an empty variant is allowed ("" = omitted)."""
    out: dict[str, dict[str, Forms]] = {}
    for concept, members in spec.items():
        out[concept] = {}
        for member, forms in members.items():
            by_pos = {"": forms} if isinstance(forms, str) else dict(forms)
            out[concept][member] = {pos: tuple(f.split("|")) for pos, f in by_pos.items()}
    return out


def constructions(
    lang: str, kind: str, variant: str | None, *items: tuple[str, str], held: tuple[str, ...] = ()
) -> list[Construction]:
    """Constructions of one (kind, variant) from ``(id, template)`` pairs; ids get the language
    prefix (``"o.no"`` -> ``"en.o.no"``), and those in ``held`` are held out."""
    return [Construction(f"{lang}.{cid}", kind, variant, tpl, cid in held) for cid, tpl in items]


class Ctx:
    """One sentence being rendered: the rule, the draws made so far, the families used."""

    def __init__(self, lex: Lexicon, rule: Rule, rng: random.Random, held: bool) -> None:
        self.lex, self.rule, self.rng, self.held = lex, rule, rng, held
        self.chosen: dict[str, str] = {}
        self.families: list[str] = []
        self.body = ""

    def member(self, concept: str, pos: str = "") -> str:
        """The member of ``concept`` this sentence uses (drawn on first use)."""
        if concept in self.chosen:
            return self.chosen[concept]
        lex = self.lex
        try:
            table = lex.concepts[concept]
        except KeyError:
            raise DataError(f"{lex.lang}: unknown concept or slot {{{concept}}}") from None
        members = [m for m, forms in table.items() if pos in forms]
        held = [m for m in members if lex.family(concept, m) in lex.held_out]
        if not self.held:
            members = [m for m in members if m not in held]
        elif held and self.rng.random() < HELD_PREFER_P:
            members = held
        if not members:
            raise DataError(f"{lex.lang}: concept {concept!r} has no usable member for {pos!r}")
        m = self.rng.choice(members)
        self.chosen[concept] = m
        self.families.append(lex.family(concept, m))
        return m

    def word(self, concept: str, pos: str = "") -> str:
        """A surface form of this sentence's member of ``concept``, its own slots filled."""
        forms = self.lex.concepts[concept][self.member(concept, pos)]
        return self.expand(self.rng.choice(forms.get(pos) or next(iter(forms.values()))))

    def expand(self, text: str) -> str:
        return SLOT_RE.sub(self._slot, text) if "{" in text else text

    def _slot(self, m: re.Match[str]) -> str:
        name, pos = m.group(1), m.group(2) or ""
        if name == "body":
            return self.body
        fmt = self.lex.params.get(name)
        return fmt(self, pos) if fmt is not None else self.word(name, pos)


@dataclass(frozen=True)
class Rendered:
    text: str
    construction: str
    families: tuple[str, ...]
    held_out: bool


_SPACES = re.compile(r"\s+")
_SPACE_PUNCT = re.compile(r"\s+([,.:;)])")


def _tidy(text: str, capitalise: bool) -> str:
    text = _SPACE_PUNCT.sub(r"\1", _SPACES.sub(" ", text)).strip()
    if capitalise and text:
        text = text[0].upper() + text[1:]
    return text


def render_with(
    lex: Lexicon, rule: Rule, rng: random.Random, held: bool = False, wrap_all_p: float = 0.15
) -> Rendered:
    """Render ``rule`` in ``lex``'s language.

    ``held=False``: training families only. ``held=True``: any family, and the sentence uses at
    least one held-out family (drawn again until it does; DataError if a kind cannot).
    A rule that binds only some vehicles names them: by a ``{subj}`` slot when the construction
    has one, else by a scope wrapper; an all-vehicles rule is wrapped ("All vehicles: ...")
    with probability ``wrap_all_p``.
    """
    pool = [c for c in lex.for_rule(rule.kind, rule.variant) if held or not c.held_out]
    wrappers = [
        w
        for w in lex.wrappers
        if (held or not w.held_out) and (rule.scope != "all" or w.variant == "any")
    ]
    for _ in range(MAX_TRIES):
        ctx = Ctx(lex, rule, rng, held)
        c = rng.choice(pool)
        text = ctx.expand(c.template)
        ids = [c.id]
        has_subj = "{subj" in c.template
        scoped = rule.scope != "all" and not has_subj
        if rule.kind != "distractor" and (
            scoped or (not has_subj and rule.scope == "all" and rng.random() < wrap_all_p)
        ):
            w = rng.choice(wrappers)
            ctx.body = text
            text = ctx.expand(w.template)
            ids.append(w.id)
        families = tuple(ids + ctx.families)
        is_held = any(f in lex.held_out for f in families)
        if is_held == held:
            return Rendered(_tidy(text, lex.capitalise), c.id, families, is_held)
    raise DataError(f"{lex.lang}: no held-out family renders rule {rule.kind!r} / {rule.variant!r}")
