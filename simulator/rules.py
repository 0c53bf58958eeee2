"""The traffic-rule catalogue: rule kinds, their phrasings, and text <-> :class:`Rule`.

A rule set is 0-5 rule strings; the text is what the model sees and is authoritative. Each
(kind, variant) has several phrasings; those marked ``held_out`` never appear in the
train/val/test splits and are used only by the ``heldout-phrasing`` split, so evaluation can tell
whether the text encoder learned meaning rather than memorised sentences.

Numbers are written as plain digits (the tokenizer, ``perception.text.tokenize``, keeps digit runs
as tokens), so "Speed limit 50 km/h" -> ["speed", "limit", "50", "km", "h"].
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import cache

from core.errors import DataError

__all__ = [
    "catalogue_words",
    "CAR_SCOPES",
    "HOURS",
    "KINDS",
    "LANE_NAMES",
    "LANE_NUMBERS",
    "SCHOOL_LIMITS",
    "SCOPES",
    "SIDES",
    "SPEED_LIMITS",
    "TEMPLATES",
    "Phrasing",
    "Rule",
    "make_rule",
    "parse_rule",
    "parse_rules",
    "phrasings",
]

SPEED_LIMITS = tuple(range(30, 121, 10))
SCHOOL_LIMITS = (20, 30, 40)
DISTRACTOR_LIMITS = (40, 50, 60, 70, 80)
# Hours a time-limited rule can name, and the times of day (scene.TIMES_OF_DAY) they cover.
HOURS = {
    "day": ("7am to 5pm", ("day",)),
    "extended": ("7am to 8pm", ("day", "dusk")),
    "always": ("at all times", ("day", "dusk", "night")),
}
LANE_NAMES = ("left", "centre", "right")
# Numbered lanes: "1".."3" counted from the left (the catalogue's only form), "r1".."r3" counted
# from the right (rule language only: "the second lane from the right" is "r2" on any road).
LANE_NUMBERS = ("1", "2", "3", "r1", "r2", "r3")  # catalogue: the first three
SIDES = ("left", "right")
# Which vehicles a rule binds. The ego vehicle is a car: only CAR_SCOPES bind it. The catalogue
# only writes "all"; scoped rules come from the rule language (simulator.language).
SCOPES = ("all", "cars", "trucks", "buses", "coaches", "cyclists", "motorcycles")
CAR_SCOPES = frozenset({"all", "cars"})


@dataclass(frozen=True)
class Phrasing:
    text: str  # str.format template: {limit} {hours} {lane} {merge}
    held_out: bool = False


def _p(*texts: str, held: int = 1) -> tuple[Phrasing, ...]:
    """The last ``held`` texts are held out."""
    n = len(texts)
    return tuple(Phrasing(t, i >= n - held) for i, t in enumerate(texts))


TEMPLATES: dict[tuple[str, str], tuple[Phrasing, ...]] = {
    ("speed_limit", ""): _p(
        "Speed limit {limit} km/h",
        "Maximum speed: {limit} km/h",
        "Do not exceed {limit} km/h",
        "Limit {limit} km/h on this road",
        "The posted limit here is {limit} km/h",
        "Keep below {limit} km/h",
        held=2,
    ),
    ("school_zone", ""): _p(
        "School zone: {limit} km/h {hours}",
        "School zone limit {limit} km/h {hours}",
        "Reduce to {limit} km/h in school zones {hours}",
        "Where the school zone sign is shown: maximum {limit} km/h {hours}",
        "Near schools do not exceed {limit} km/h {hours}",
    ),
    ("overtaking", "prohibited"): _p(
        "No overtaking",
        "Overtaking prohibited",
        "Do not overtake",
        "Overtaking is not allowed on this road",
        "Passing other vehicles is forbidden",
    ),
    ("overtaking", "permitted"): _p(
        "Overtaking permitted",
        "Overtaking allowed",
        "You may overtake",
        "Passing is allowed when safe",
        "Passing slower vehicles is permitted",
    ),
    ("lane_closed", "named"): _p(
        "{lane} lane closed ahead, merge {merge}",
        "{lane} lane closed, merge {merge}",
        "Roadworks: {lane} lane closed, merge {merge}",
        "The {lane} lane is shut ahead, move {merge}",
    ),
    ("lane_closed", "numbered"): _p(
        "Lane {lane} closed, merge {merge}",
        "Lane {lane} closed ahead: merge {merge}",
        "Roadworks in lane {lane}, merge {merge}",
        "Lane {lane} is blocked ahead, move {merge}",
    ),
    ("amber", "always_stop"): _p(
        "Always stop on amber",
        "Stop on amber",
        "Amber means stop",
        "Do not pass on amber",
        "An amber signal requires stopping",
    ),
    ("amber", "proceed_if_close"): _p(
        "Proceed on amber if within 15 m of the stop line",
        "On amber, continue if within 15 m of the stop line",
        "Amber: proceed when closer than 15 m to the stop line",
        "Drive on at amber when the stop line is within 15 m",
        "If the stop line is within 15 m on amber, carry on",
    ),
    ("yield_pedestrians", ""): _p(
        "Yield to pedestrians waiting at crosswalks",
        "Give way to pedestrians waiting to cross",
        "Let waiting pedestrians cross first",
        "Yield at crosswalks when people are waiting",
        "Pedestrians at the kerb have priority at crosswalks",
    ),
    ("turn_on_red", "permitted"): _p(
        "Right turn on red permitted after a full stop",
        "Right on red allowed after stopping",
        "You may turn right on red after a full stop",
        "Turning right at a red light is allowed after stopping",
    ),
    ("turn_on_red", "prohibited"): _p(
        "No turn on red",
        "No right turn on red",
        "Turning on red is prohibited",
        "Right turns at a red light are forbidden",
    ),
    ("bus_lane", ""): _p(
        "Right lane is a bus lane {hours}",
        "Bus lane in the right lane {hours}",
        "Buses only in the right lane {hours}",
        "The rightmost lane is reserved for buses {hours}",
    ),
    # Distractors never change the decision; they look like real rules on purpose so the text
    # encoder must learn which words matter ("trucks", "parking") rather than keywords alone.
    ("distractor", ""): _p(
        "Trucks over 7.5 t: no overtaking",
        "Trucks: maximum {limit} km/h",
        "No parking on weekdays 8am to 6pm",
        "Bicycles use the cycle lane",
        "Horn use prohibited near the hospital",
        "Buses: maximum {limit} km/h",
        "No stopping on the bridge",
        "Use dipped headlights in the tunnel",
        "Trailers: do not overtake on the hill",
        "Loading bay in use 6am to 10am",
        "Vehicles over 3.5 t: maximum {limit} km/h",
        "Motorcycles: no overtaking in the tunnel",
        "No U turns at the junction",
        held=3,
    ),
}

KINDS = tuple(dict.fromkeys(k for k, _ in TEMPLATES))


@dataclass(frozen=True)
class Rule:
    """One rule: its meaning (kind, variant, parameters) and which phrasing renders it.

    ``lane`` is "left"/"centre"/"right" (variant "named") or "1".."3" counted from the left,
    "r1".."r3" counted from the right (variant "numbered"); ``merge`` is "left"/"right";
    ``hours`` is a key of :data:`HOURS`; ``scope`` (one of :data:`SCOPES`) says which vehicles
    the rule binds: a rule whose scope excludes cars does not bind the ego car.
    """

    kind: str
    variant: str = ""
    limit: int | None = None
    hours: str | None = None
    lane: str | None = None
    merge: str | None = None
    phrasing: int = 0
    scope: str = "all"

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def binds_car(self) -> bool:
        """Whether the rule binds the ego vehicle (a car): its scope includes cars."""
        return self.scope in CAR_SCOPES

    @property
    def in_catalogue(self) -> bool:
        """Whether a catalogue phrasing can say this rule (no scope, no lane from the right)."""
        return self.scope == "all" and self.lane not in LANE_NUMBERS[3:]

    @property
    def held_out(self) -> bool:
        return TEMPLATES[(self.kind, self.variant)][self.phrasing].held_out

    @property
    def text(self) -> str:
        """The catalogue sentence; DataError for a rule only the rule language can say."""
        if not self.in_catalogue:
            raise DataError(
                f"rule {self.kind!r} (scope {self.scope!r}, lane {self.lane!r}) has no catalogue "
                "phrasing; render it with simulator.language"
            )
        tpl = TEMPLATES[(self.kind, self.variant)][self.phrasing].text
        hours = HOURS[self.hours][0] if self.hours else ""
        out = tpl.format(limit=self.limit, hours=hours, lane=self.lane, merge=self.merge)
        return out[0].upper() + out[1:]

    def with_phrasing(self, phrasing: int) -> Rule:
        return dataclasses.replace(self, phrasing=phrasing)


def make_rule(kind: str, variant: str = "", **params: object) -> Rule:
    """Build a rule, raising DataError naming the problem for an unknown kind or bad parameter."""
    if kind not in KINDS:
        raise DataError(f"unknown rule kind {kind!r} (known: {', '.join(KINDS)})")
    try:
        return Rule(kind, variant, **params)  # type: ignore[arg-type]
    except TypeError as exc:
        raise DataError(f"rule {kind!r}: {exc}") from exc


def phrasings(kind: str, variant: str = "", held_out: bool | None = None) -> list[int]:
    """Indices of the phrasings of (kind, variant); ``held_out`` filters (None = all)."""
    if (kind, variant) not in TEMPLATES:
        raise DataError(f"unknown rule kind {kind!r} / variant {variant!r}")
    return [
        i
        for i, p in enumerate(TEMPLATES[(kind, variant)])
        if held_out is None or p.held_out == held_out
    ]


def _validate(r: Rule) -> None:
    if (r.kind, r.variant) not in TEMPLATES:
        raise DataError(f"unknown rule kind {r.kind!r} / variant {r.variant!r}")
    tpls = TEMPLATES[(r.kind, r.variant)]
    if not 0 <= r.phrasing < len(tpls):
        raise DataError(f"rule {r.kind!r}: phrasing {r.phrasing} outside 0..{len(tpls) - 1}")
    tpl = tpls[r.phrasing].text
    needs = {name for name in ("limit", "hours", "lane", "merge") if "{" + name + "}" in tpl}
    for name in ("limit", "hours", "lane", "merge"):
        if (getattr(r, name) is not None) != (name in needs):
            raise DataError(
                f"rule {r.kind!r} phrasing {r.phrasing}: {name} "
                f"{'missing' if name in needs else 'not used'}"
            )
    if r.limit is not None and not 5 <= r.limit <= 130:
        raise DataError(f"rule {r.kind!r}: limit {r.limit} km/h outside 5..130")
    if r.hours is not None and r.hours not in HOURS:
        raise DataError(f"rule {r.kind!r}: hours {r.hours!r} not in {sorted(HOURS)}")
    if r.merge is not None and r.merge not in SIDES:
        raise DataError(f"rule {r.kind!r}: merge side {r.merge!r} not left/right")
    if r.lane is not None:
        ok = LANE_NAMES if r.variant == "named" else LANE_NUMBERS
        if r.lane not in ok:
            raise DataError(f"rule {r.kind!r}: lane {r.lane!r} not in {ok}")
    if r.scope not in SCOPES:
        raise DataError(f"rule {r.kind!r}: scope {r.scope!r} not in {SCOPES}")


_FIELD_RE = {
    "limit": r"(?P<limit>\d{1,3})",
    "hours": "(?P<hours>" + "|".join(re.escape(v[0]) for v in HOURS.values()) + ")",
    "lane": r"(?P<lane>left|centre|right|\d)",
    "merge": r"(?P<merge>left|right)",
}


@cache
def _patterns() -> list[tuple[re.Pattern[str], str, str, int]]:
    out = []
    for (kind, variant), tpls in TEMPLATES.items():
        for i, p in enumerate(tpls):
            rx = re.escape(p.text)
            for name, sub in _FIELD_RE.items():
                rx = rx.replace(re.escape("{" + name + "}"), sub)
            out.append((re.compile(rx + r"\Z", re.IGNORECASE), kind, variant, i))
    return out


def parse_rule(text: str) -> Rule:
    """Map a catalogue sentence back to its Rule; DataError if it is not in the catalogue."""
    clean = " ".join(text.split())
    for rx, kind, variant, i in _patterns():
        m = rx.match(clean)
        if not m:
            continue
        g = m.groupdict()
        hours = next((k for k, v in HOURS.items() if g.get("hours") == v[0]), None)
        return Rule(
            kind,
            variant,
            limit=int(g["limit"]) if g.get("limit") else None,
            hours=hours,
            lane=g["lane"].lower() if g.get("lane") else None,
            merge=g["merge"].lower() if g.get("merge") else None,
            phrasing=i,
        )
    raise DataError(f"rule text {text!r} is not in the rule catalogue (unknown rule kind)")


def parse_rules(texts: tuple[str, ...] | list[str]) -> tuple[Rule, ...]:
    return tuple(parse_rule(t) for t in texts)


_WORD_RE = re.compile(r"[a-z]+|\d+")


def catalogue_words(include_held_out: bool = False) -> list[str]:
    """Surface words of the catalogue's rule phrasings and of the values they are filled with."""
    texts = [p.text for ps in TEMPLATES.values() for p in ps if include_held_out or not p.held_out]
    texts += [h for h, _ in HOURS.values()] + list(LANE_NAMES) + list(SIDES)
    words = {w for t in texts for w in _WORD_RE.findall(re.sub(r"\{\w+\}", " ", t.lower()))}
    return sorted(words)
