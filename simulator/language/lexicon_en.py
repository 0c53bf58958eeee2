"""English: synonym families, constructions, scope wrappers and parameter formats.

Family ids are ``en.<concept>.<member>`` for words and formats, and the construction ids below
(``en.o.no_zone``). Held-out families (:data:`HELD`, constructions with ``held_out=True``) are used
only by the held-out split; see docs/world.md, "Rule language".
"""

from __future__ import annotations

from functools import partial

from simulator.language.render import Ctx, Lexicon, concepts, constructions

__all__ = ["LEXICON", "number_words"]

# fmt: off
_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
         "nineteen"]
# fmt: on
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_ORD = {1: "first", 2: "second", 3: "third"}
SPANS = {"day": (7, 17), "extended": (7, 20)}  # simulator.rules.HOURS, as clock hours


def number_words(n: int) -> str:
    """0..199 in words: 50 -> "fifty", 110 -> "one hundred and ten"."""
    if n >= 100:
        rest = n - 100
        return "one hundred" + (f" and {number_words(rest)}" if rest else "")
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")


_PROHIB = {
    "prohibited": "prohibited",
    "forbidden": "forbidden",
    "not_permitted": "not permitted",
    "banned": "banned",
    "not_allowed": "not allowed",
    "illegal": "illegal",
    "disallowed": "disallowed",
    "barred": "barred",
    "outlawed": "outlawed",
}

_DACT = {  # member -> (after "do not", a noun phrase, after "refrain from")
    "horn": ("sound the horn|use the horn", "horn use|use of the horn", "sounding the horn"),
    "park": ("park|leave your vehicle", "parking", "parking"),
    "phone": (
        "use a hand-held phone|text at the wheel",
        "hand-held phone use",
        "using a hand-held phone",
    ),
    "smoke": ("smoke", "smoking", "smoking"),
    "idle": ("leave the engine running|idle the engine", "engine idling", "idling the engine"),
    "beam": ("use full beam|use high beams", "full beam|high beams", "using full beam"),
    "tow": ("tow a caravan|tow a trailer", "towing", "towing"),
    "camp": ("sleep in the vehicle|camp overnight", "overnight camping", "camping overnight"),
    "wash": ("wash cars", "car washing", "washing cars"),
    "music": ("play loud music", "loud music", "playing loud music"),
    "feed": ("feed the animals", "feeding animals", "feeding the animals"),
    "unload": ("unload goods", "unloading", "unloading goods"),
    "rubbish": ("dump rubbish", "dumping rubbish|fly-tipping", "dumping rubbish"),
    "drone": ("fly drones", "drone flying", "flying drones"),
    "fireworks": ("let off fireworks", "fireworks", "letting off fireworks"),
}

C = concepts(
    {
        # --- modality and negation ---
        "prohib": _PROHIB,
        # The members of "prohib" that are not negated, for "is not {banned}" (never "not not
        # permitted"); a held-out member is held out in both concepts (HELD).
        "banned": {m: f for m, f in _PROHIB.items() if not f.startswith("not ")},
        "mustnot": {
            "must_not": "must not",
            "may_not": "may not",
            "not_allowed_to": "are not allowed to|are not permitted to",
            "shall_not": "shall not",
            "cannot": "cannot|are not to",
        },
        "permit": {
            "permitted": "permitted",
            "allowed": "allowed",
            "authorised": "authorised",
            "legal": "legal",
            "lawful": "lawful",
            "permissible": "permissible",
        },
        "may": {
            "may": "may",
            "can": "can",
            "allowed_to": "are allowed to|are permitted to",
            "legally": "may legally|can legally",
        },
        "here": {"here": "| on this road| here| on this stretch| on this section| from this point"},
        # --- actions and things ---
        "overtake": {
            "overtake": {
                "n": "overtaking",
                "v": "overtake|overtake other vehicles",
                "zone": "overtaking",
            },
            "pass": {"n": "passing", "v": "pass|pass other vehicles", "zone": "passing"},
            "go_past": {"n": "going past other vehicles", "v": "go past other vehicles"},
            "get_past": {
                "n": "getting past slower vehicles",
                "v": "get past slower vehicles|get past slower traffic",
            },
        },
        "stop": {
            "stop": {"v": "stop|come to a stop", "ing": "stopping"},
            "halt": {"v": "halt|come to a halt", "ing": "halting"},
            "standstill": {"v": "come to a standstill", "ing": "coming to a standstill"},
            "pull_up": {"v": "pull up|stop the vehicle", "ing": "pulling up"},
            "bring": {
                "v": "bring the vehicle to a stop",
                "ing": "bringing the vehicle to a stop",
            },
            "rest": {"v": "come to rest|stop completely", "ing": "coming to rest"},
        },
        "amber": {
            "amber": {
                "adj": "amber",
                "light": "an amber light|an amber signal|an amber traffic light",
            },
            "yellow": {"adj": "yellow", "light": "a yellow light|a yellow signal"},
            "orange": {"adj": "orange", "light": "an orange light"},
            "caution": {"adj": "caution", "light": "a caution light|a caution signal"},
            "steady": {
                "adj": "steady amber|steady yellow",
                "light": "a steady amber light|a steady yellow light",
            },
        },
        "proceed": {
            "proceed": {"v": "proceed", "ing": "proceeding"},
            "continue": {"v": "continue|carry on", "ing": "continuing"},
            "go_ahead": {"v": "go ahead|keep going", "ing": "going ahead"},
            "drive_through": {"v": "drive through", "ing": "driving through"},
        },
        "yield": {
            "yield": "yield to",
            "give_way": "give way to",
            "stop_for": "stop for",
            "make_way": "make way for",
        },
        "ped": {
            "pedestrians": "pedestrians",
            "people": "people on foot",
            "walkers": "walkers",
            "on_foot": "road users on foot|persons on foot",
        },
        "cross": {
            "crosswalk": "crosswalks|a crosswalk",
            "crossing": "pedestrian crossings|crossings|a pedestrian crossing",
            "zebra": "zebra crossings",
            "marked": "marked crossings|marked crosswalks",
        },
        "closed": {
            "closed": "closed|closed to traffic",
            "shut": "shut|shut off",
            "blocked": "blocked",
            "out_of_use": "out of use",
            "coned": "coned off",
            "unavailable": "unavailable|not available",
            "obstructed": "obstructed|barricaded",
        },
        "merge": {
            "merge": "merge {side}|merge to the {side}",
            "move": "move {side}|move to the {side}",
            "change": "change lanes to the {side}|switch to the {side} lane",
            "keep": "keep {side}",
            "move_over": "move over to the {side}|move across to the {side}",
            "get_over": "get over to the {side}|shift to the {side}",
            "bear": "bear {side}|stay {side}",
        },
        "speed": {
            "limit": "speed limit",
            "maximum": "maximum speed|max speed|maximum permitted speed",
            "top": "top speed",
            "cap": "speed cap",
            "bare": "limit",
        },
        "red": {
            "red": {"n": "red", "light": "a red light|a red signal"},
            "steady_red": {"n": "steady red", "light": "a steady red light"},
        },
        "turn": {
            "right_turn": {
                "v": "turn right",
                "n": "right turn|right turns",
                "no": "right turn|turn",
                "ing": "turning right",
            },
            "make_right": {
                "v": "make a right turn",
                "n": "right-hand turn|right-hand turns",
                "no": "right-hand turn",
                "ing": "making a right turn|making right turns",
            },
        },
        "after": {
            "after": "| after a full stop| after stopping",
            "once": "| once stopped| after a complete stop",
        },
        "rlane": {
            "right": "right lane|right-hand lane",
            "rightmost": "rightmost lane|far-right lane",
            "kerb": "kerbside lane",
            "right_side": "lane on the right|lane furthest right",
        },
        "bus": {
            "bus_lane": "bus lane",
            "bus_only": "bus-only lane",
            "transit": "transit lane",
            "dedicated": "dedicated bus lane|reserved bus lane",
        },
        # --- formats ---
        "num": {"digits": "d", "words": "w"},
        "unit": {
            "kmh": "km/h",
            "kph": "kph|kmh",
            "none": "",
            "spelled": "kilometres per hour|kilometers per hour",
            "km_per": "km per hour|km/hr",
        },
        "dist_unit": {"m": "m", "metres": "metres|meters"},
        "time": {
            "ampm": "{a}am to {b}pm|{a} am - {b} pm|{a}am-{b}pm",
            "clock": "{A}:00-{B}:00|{A}:00–{B}:00|{A}:00 to {B}:00",
            "hrange": "{a24}-{b24} h|{a24}-{b24}h",
            "between": "between {a}am and {b}pm|between {A}:00 and {B}:00",
            "from_until": "from {a} a.m. until {b} p.m.",
            "hrs": "{a24}-{b24} hrs|{A}:00-{B}:00 hrs",
        },
        "always": {
            "all_times": "at all times",
            "all_day": "all day|24 hours a day",
            "round": "around the clock|24/7",
            "any_time": "at any time|day and night",
        },
        "days": {
            "none": "",
            "school_days": "on school days",
            "weekdays": "on weekdays|Mon-Fri",
            "mon_fri": "Monday to Friday|Mon to Fri",
        },
        "lane_named": {
            "name": {
                "left": "left lane",
                "centre": "centre lane|center lane",
                "right": "right lane",
            },
            "position": {
                "left": "leftmost lane",
                "centre": "middle lane",
                "right": "rightmost lane",
            },
            "hand": {"left": "left-hand lane", "right": "right-hand lane"},
            "far": {"left": "far-left lane", "right": "far-right lane"},
        },
        "lane_num": {
            "number": "lane {k}",
            "ordinal": "{ord} lane from the left|{ord} lane counting from the left",
            "number_no": "lane no. {k}",
            "number_word": "lane number {k}",
            "lhs": "{ord} lane from the left-hand side|{ord} lane from the left edge",
        },
        "lane_right": {
            "ordinal": "{ord} lane from the right|{ord} lane counting from the right",
            "rhs": "{ord} lane from the right-hand side|{ord} lane from the right edge",
        },
        # --- who a rule binds ---
        "subj_all": {
            "vehicles": "vehicles|all vehicles",
            "drivers": "drivers|motorists",
            "you": "you",
            "road_users": "road users|all road users",
        },
        "scope_all": {"all": "all vehicles|all motor vehicles", "traffic": "all traffic"},
        "scope_cars": {"cars": "cars|passenger cars|private cars"},
        "scope_trucks": {
            "trucks": "trucks over 7.5 t|trucks above 7.5 tonnes",
            "lorries": "lorries over 7.5 t",
            "goods": "goods vehicles over 7.5 t|HGVs over 7.5 t",
        },
        "scope_buses": {"buses": "buses", "public": "public buses|service buses"},
        "scope_coaches": {"coaches": "coaches|touring coaches", "long": "long-distance coaches"},
        "scope_cyclists": {
            "cyclists": "cyclists|bicycles",
            "riders": "bicycle riders|people riding bicycles",
        },
        "scope_motorcycles": {
            "motorcycles": "motorcycles|motorcyclists",
            "motorbikes": "motorbikes|motorbike riders",
        },
        # --- rules about something else, composed (twenty-second session) ---
        # What a driver may be told not to do, where no decision of this world turns on it:
        # v = after "do not", n = a noun phrase ("No {dact:n}"), g = after "refrain from".
        "dact": {m: {"v": v, "n": n, "g": g} for m, (v, n, g) in _DACT.items()},
        # What a driver may be told to do, where no decision of this world turns on it.
        "dobl": {
            "belt": "wear a seat belt|fasten seat belts",
            "dipped": "use dipped headlights|switch on the headlights",
            "engine_off": "switch off the engine|turn off the engine",
            "dogs": "keep dogs on a lead",
            "helmet": "wear a helmet",
            "ticket": "have a ticket ready|display a parking ticket",
            "valuables": "lock the vehicle|take valuables along",
            "licence": "carry a driving licence",
            "mirrors": "fold in the mirrors",
        },
        "dsubj": {"drivers": "drivers|motorists", "visitors": "visitors|customers"},
        # Where, for a rule about something else ("" = nowhere named).
        "dplace": {
            "none": "",
            "here": "here|in this area",
            "tunnel": "in the tunnel",
            "hospital": "near the hospital",
            "car_park": "in the car park|in this car park",
            "shops": "outside the shops",
            "residential": "in residential streets",
            "station": "at the petrol station|on the forecourt",
            "services": "at the service area",
            "night": "at night",
            "ferry": "on the ferry|on the car deck",
            "depot": "in the depot yard",
        },
    }
)

# fmt: off
HELD = frozenset({
    "prohib.forbidden", "banned.forbidden", "mustnot.shall_not", "permit.authorised",
    "overtake.go_past", "stop.standstill", "amber.orange", "proceed.go_ahead", "yield.stop_for",
    "ped.walkers", "cross.zebra", "closed.out_of_use", "merge.keep", "speed.top", "rlane.kerb",
    "bus.transit", "unit.spelled", "time.from_until", "always.round", "lane_named.hand",
    "lane_num.number_no", "scope_trucks.lorries", "dact.drone", "dact.fireworks",
    "dobl.licence", "dobl.mirrors", "dplace.ferry", "dplace.depot",
})
# fmt: on


def _limit(ctx: Ctx, pos: str) -> str:
    n = ctx.rule.limit if pos != "dist" else 15
    assert n is not None
    num = _num(ctx, n)
    unit = ctx.word("dist_unit") if pos == "dist" else ctx.word("unit")
    return f"{num} {unit}" if unit else num


def _hours(ctx: Ctx, pos: str) -> str:
    hours = ctx.rule.hours
    days = ctx.word("days")
    if hours == "always":
        when = ctx.word("always")
    else:
        a, b = SPANS[hours or "day"]
        form = ctx.rng.choice(ctx.lex.concepts["time"][ctx.member("time")][""])
        when = form.format(a=a, b=b - 12, A=f"{a:02d}", B=f"{b:02d}", a24=a, b24=b)
    return f"{days} {when}".strip()


def _num(ctx: Ctx, n: int) -> str:
    return number_words(n) if ctx.member("num") == "words" else str(n)


def _lane(ctx: Ctx, pos: str) -> str:
    lane = ctx.rule.lane or "left"
    if ctx.rule.variant == "named":
        m = ctx.member("lane_named", lane)
        text = ctx.rng.choice(ctx.lex.concepts["lane_named"][m][lane])
    else:
        text = ctx.word("lane_right" if lane.startswith("r") else "lane_num")
    if pos == "def" and not text.startswith("lane"):
        return "the " + text
    return text


PARAMS = {
    "limit": _limit,
    "dist": lambda ctx, pos: _limit(ctx, "dist"),
    "hours": _hours,
    "lane": _lane,
    "side": lambda ctx, pos: ctx.rule.merge or "left",
    "ord": lambda ctx, pos: _ORD[int((ctx.rule.lane or "1").lstrip("r"))],
    "k": lambda ctx, pos: _num(ctx, int((ctx.rule.lane or "1").lstrip("r"))),
    "subj": lambda ctx, pos: ctx.word(
        "subj_all" if ctx.rule.scope == "all" else f"scope_{ctx.rule.scope}"
    ),
    "scope": lambda ctx, pos: ctx.word(f"scope_{ctx.rule.scope}"),
}

_c = partial(constructions, "en")

_COMPOSED = (
    ("dc.no", "No {dact:n} {dplace}"),
    ("dc.prohib", "{dact:n} {prohib} {dplace}"),
    ("dc.is", "{dact:n} is {banned} {dplace}"),
    ("dc.donot", "Do not {dact:v} {dplace}"),
    ("dc.please", "Please do not {dact:v} {dplace}"),
    ("dc.subj", "{dsubj} {mustnot} {dact:v} {dplace}"),
    ("dc.must", "{dsubj} must {dobl} {dplace}"),
    ("dc.please_do", "Please {dobl} {dplace}"),
    ("dc.refrain", "Kindly refrain from {dact:g} {dplace}"),
    ("dc.remember", "Remember to {dobl} {dplace}"),
)

CONSTRUCTIONS = (
    *_c(
        "speed_limit",
        "",
        ("s.sign", "{speed} {limit}"),
        ("s.colon", "{speed}: {limit}"),
        ("s.max", "Max {limit}"),
        ("s.exceed", "Do not exceed {limit}{here}"),
        ("s.subj", "{subj} {mustnot} drive faster than {limit}"),
        ("s.is", "The {speed} is {limit}{here}"),
        ("s.post", "{limit} {speed}"),
        ("s.no_faster", "No faster than {limit}"),
        ("s.offence", "It is an offence to exceed {limit}{here}"),
        ("s.over", "Speeds over {limit} are {prohib}"),
        ("s.drive_at", "Drive at {limit} or less{here}"),
        # Tenth-session wording check (docs/training.md): "never" and "{subj} may not exceed"
        # were met by speed rules nowhere in training.
        ("s.never", "Never exceed {limit}{here}"),
        ("s.subj_exceed", "{subj} {mustnot} exceed {limit}{here}"),
        ("s.keep", "Keep your speed to {limit} or below{here}"),
        held=("s.post", "s.no_faster", "s.keep"),
    ),
    *_c(
        "school_zone",
        "",
        ("z.colon", "School zone: {limit} {hours}"),
        ("z.max", "School zone, max {limit} {hours}"),
        ("z.hours_first", "{hours}: {limit} in the school zone"),
        ("z.near", "Near schools {subj} {mustnot} exceed {limit} {hours}"),
        ("z.reduce", "Reduce speed to {limit} in school zones {hours}"),
        ("z.sign", "Where the school zone sign is shown, {speed} {limit} {hours}"),
        ("z.school", "School zone {hours}: {speed} {limit}"),
        ("z.slow", "Slow to {limit} in the school zone {hours}"),
        ("z.subj", "{subj} {mustnot} exceed {limit} in the school zone {hours}"),
        held=("z.sign",),
    ),
    *_c(
        "overtaking",
        "prohibited",
        ("o.no", "No {overtake:n}"),
        ("o.no_zone", "No {overtake:zone} zone"),
        ("o.terse", "{overtake:n} {prohib}"),
        ("o.is", "{overtake:n} is {prohib}{here}"),
        ("o.do_not", "Do not {overtake:v}{here}"),
        ("o.subj", "{subj} {mustnot} {overtake:v}{here}"),
        ("o.no_longer", "{overtake:n} is no longer {permit}"),
        ("o.never", "Never {overtake:v}{here}"),
        ("o.offence", "It is an offence to {overtake:v}{here}"),
        ("o.colon", "{overtake:n}: {prohib}"),
        ("o.colon_not", "{overtake:n}: not {permit}"),
        ("o.attempt", "Do not attempt to {overtake:v}{here}"),
        # Tenth round: "never" now trains with turn on red (u.never), which makes o.never
        # easier; o.refrain is held out beside it so the split keeps an unseen construction.
        ("o.refrain", "Refrain from {overtake:n}{here}"),
        held=("o.never", "o.refrain"),
    ),
    *_c(
        "overtaking",
        "permitted",
        ("p.terse", "{overtake:n} {permit}"),
        ("p.is", "{overtake:n} is {permit}{here}"),
        ("p.may", "{subj} {may} {overtake:v}{here}"),
        ("p.end", "End of no {overtake:zone} zone"),
        ("p.no_longer", "{overtake:n} is no longer {banned}"),
        ("p.when_safe", "{overtake:n} is {permit} when safe"),
        ("p.free", "{subj} are free to {overtake:v}"),
        ("p.colon", "{overtake:n}: {permit}"),
        ("p.lifted", "{overtake:zone} ban lifted"),
        ("p.it_is", "It is {permit} to {overtake:v}{here}"),
        ("p.not", "{overtake:n} is not {banned}{here}"),
        held=("p.free",),
    ),
    *_c(
        "lane_closed",
        None,
        ("l.sign", "{lane} {closed}, {merge}"),
        ("l.ahead", "{lane:def} is {closed} ahead, {merge}"),
        ("l.works", "Roadworks: {lane} {closed}, {merge}"),
        ("l.merge_first", "{merge}: {lane:def} is {closed}"),
        ("l.closure", "{lane} closure ahead, {merge}"),
        ("l.because", "{merge} because {lane:def} is {closed}"),
        ("l.please", "{lane:def} is {closed}. Please {merge}"),
        ("l.ahead_colon", "Ahead: {lane} {closed}, {merge}"),
        ("l.must", "{subj} must {merge}: {lane:def} is {closed}"),
        # Merge clause first, then the lane (ninth round: the eighth round's reader took the
        # side or the lane from the wrong clause of l.must when both name a side).
        ("l.merge_ahead", "{merge}, {lane:def} is {closed} ahead"),
        ("l.should", "{subj} should {merge} as {lane:def} is {closed}"),
        held=("l.because",),
    ),
    *_c(
        "amber",
        "always_stop",
        ("a.always", "Always {stop:v} on {amber:adj}"),
        ("a.on", "{stop:v} on {amber:adj}"),
        ("a.means", "{amber:adj} means {stop:v}"),
        ("a.subj", "{subj} must {stop:v} when the light is {amber:adj}"),
        ("a.no_proceed", "Do not {proceed:v} on {amber:adj}"),
        ("a.prohib", "{proceed:ing} on {amber:adj} is {prohib}"),
        ("a.requires", "{amber:light} requires {stop:ing}"),
        ("a.even", "{stop:v} on {amber:adj} even when close to the stop line"),
        ("a.when", "When the light turns {amber:adj}, {stop:v}"),
        ("a.colon", "{amber:adj}: {stop:v}"),
        ("a.not_permit", "{proceed:ing} on {amber:adj} is not {permit}"),
        ("a.must_at", "You must {stop:v} at {amber:light}"),
        ("a.no_longer", "{proceed:ing} on {amber:adj} is no longer {permit}"),
        held=("a.requires", "a.even"),
    ),
    *_c(
        "amber",
        "proceed_if_close",
        ("c.proceed", "{proceed:v} on {amber:adj} if within {dist} of the stop line"),
        ("c.on", "On {amber:adj}, {proceed:v} if within {dist} of the stop line"),
        ("c.colon", "{amber:adj}: {proceed:v} when closer than {dist} to the stop line"),
        (
            "c.may",
            "{subj} {may} {proceed:v} on {amber:adj} when less than {dist} from the stop line",
        ),
        ("c.if_first", "If the stop line is within {dist} on {amber:adj}, {proceed:v}"),
        ("c.unless", "On {amber:adj}, {stop:v} unless within {dist} of the stop line"),
        ("c.within", "Within {dist} of the stop line, {proceed:v} on {amber:adj}"),
        ("c.you_may", "On {amber:adj} you {may} {proceed:v} if within {dist} of the stop line"),
        ("c.less", "{amber:adj}: {proceed:v} if less than {dist} from the stop line"),
        (
            "c.no_longer",
            "{proceed:ing} on {amber:adj} within {dist} of the stop line is no longer {banned}",
        ),
        ("c.not", "{proceed:ing} on {amber:adj} within {dist} of the stop line is not {banned}"),
        held=("c.if_first", "c.unless"),
    ),
    *_c(
        "yield_pedestrians",
        "",
        ("y.at", "{yield} {ped} waiting at {cross}"),
        ("y.waiting", "{yield} {ped} waiting to cross"),
        ("y.let", "Let waiting {ped} cross first"),
        ("y.subj", "{subj} must {yield} {ped} waiting at {cross}"),
        ("y.front", "At {cross}, {yield} waiting {ped}"),
        ("y.priority", "{ped} waiting at {cross} have priority"),
        ("y.when", "When {ped} wait at {cross}, {yield} them"),
        ("y.must_let", "{subj} must let waiting {ped} cross"),
        ("y.always", "Always {yield} {ped} waiting to cross"),
        held=("y.priority",),
    ),
    *_c(
        "turn_on_red",
        "permitted",
        ("t.sign", "{turn:n} on {red:n} {permit}{after}"),
        ("t.may", "{subj} {may} {turn:v} on {red:light}{after}"),
        ("t.right_on_red", "Right on {red:n} {permit}{after}"),
        ("t.is", "{turn:ing} at {red:light} is {permit}{after}"),
        ("t.no_longer", "{turn:ing} on {red:n} is no longer {banned}"),
        ("t.colon", "{turn:n} on {red:n}: {permit}{after}"),
        ("t.after_first", "After stopping, {subj} {may} {turn:v} on {red:light}"),
        ("t.it_is", "It is {permit} to {turn:v} on {red:n}{after}"),
        ("t.not", "{turn:ing} on {red:n} is not {banned}{after}"),
        ("t.lifted", "{turn:no} on {red:n} ban lifted"),
        ("t.end", "End of no {turn:no} on {red:n}"),
        held=("t.no_longer",),
    ),
    *_c(
        "turn_on_red",
        "prohibited",
        ("u.no", "No {turn:no} on {red:n}"),
        ("u.is", "{turn:ing} on {red:n} is {prohib}"),
        ("u.terse", "{turn:n} on {red:n} {prohib}"),
        ("u.subj", "{subj} {mustnot} {turn:v} on {red:light}"),
        ("u.no_longer", "{turn:ing} on {red:n} is no longer {permit}"),
        ("u.wait", "Do not {turn:v} while the light is {red:n}"),
        ("u.colon", "{turn:n} on {red:n}: {prohib}"),
        ("u.offence", "It is an offence to {turn:v} on {red:light}"),
        ("u.not", "{turn:n} not {permit} on {red:n}"),
        # Tenth round: the wording check read "Never turn right on red" as a permission.
        ("u.never", "Never {turn:v} on {red:n}"),
        ("u.never_at", "Never {turn:v} at {red:light}"),
        ("u.refrain", "Refrain from {turn:ing} on {red:n}"),
        held=("u.wait", "u.refrain"),
    ),
    *_c(
        "bus_lane",
        "",
        ("b.is", "The {rlane} is a {bus} {hours}"),
        ("b.in", "{bus} in the {rlane} {hours}"),
        ("b.only", "Buses only in the {rlane} {hours}"),
        ("b.reserved", "The {rlane} is reserved for buses {hours}"),
        ("b.hours_first", "{hours}: {rlane} for buses only"),
        ("b.no_cars", "{hours}, cars must not use the {rlane}"),
        ("b.colon", "{rlane}: {bus} {hours}"),
        ("b.use", "Only buses may use the {rlane} {hours}"),
        ("b.for_buses", "{hours}, the {rlane} is for buses only"),
        held=("b.no_cars",),
    ),
    *_c(
        "distractor",
        "",
        ("d.parking", "No parking on weekdays 8am to 6pm"),
        ("d.parking2", "Parking {prohib} outside the shops"),
        ("d.horn", "Horn use {prohib} near the hospital"),
        ("d.tunnel", "Use dipped headlights in the tunnel"),
        ("d.bridge", "No stopping on the bridge"),
        ("d.cycle", "Bicycles use the cycle lane"),
        ("d.uturn", "No U-turns at the junction"),
        ("d.loading", "Loading bay in use 6am to 10am"),
        ("d.litter", "Do not throw litter from vehicles"),
        ("d.chains", "Snow chains required in winter"),
        ("d.seatbelt", "Seat belts must be worn"),
        ("d.phone", "No hand-held phones while driving"),
        ("d.towaway", "Tow-away zone"),
        # More readable rules that bind no driving decision, so "a traffic rule about something
        # else" is a broad class (not_binding), not a short list; held-out ones stay unseen.
        ("d.smoking", "No smoking in the vehicle"),
        ("d.drink", "Never drink and drive"),
        ("d.helmet", "Motorcyclists must wear helmets"),
        ("d.toll", "Toll plaza ahead, have your ticket ready"),
        ("d.idle", "Switch off your engine when parked"),
        ("d.overload", "Do not overload your vehicle"),
        ("d.fog", "Use fog lights only in fog"),
        ("d.hazard", "Switch on hazard lights if you break down"),
        ("d.beam", "Full beam {prohib} in built-up areas"),
        ("d.rest", "Take a break every two hours"),
        ("d.residents", "Residents' parking only"),
        ("d.caravan", "No caravans in the car park"),
        ("d.pets", "Keep dogs on a lead in the rest area"),
        ("d.paydisplay", "Pay and display parking 9am to 5pm"),
        ("d.camera", "CCTV in operation"),
        ("d.emissions", "Low emission zone: older diesels pay a charge"),
        # Equipment, weather and vehicle care: rules a driver must follow that decide nothing
        # here (a round-6 seed read the held-out "Snow chains required in winter" as not
        # understood; these make "required equipment" a kind the training has seen).
        ("d.winter_tyres", "Winter tyres required from November to March"),
        ("d.triangle", "Carry a warning triangle in the vehicle"),
        ("d.rain_lights", "Headlights on when it rains"),
        ("d.ice", "Clear ice and snow from all windows before driving"),
        ("d.vest", "A reflective vest must be worn when leaving a broken-down vehicle"),
        ("d.child_seat", "Children under 12 must use a child seat"),
        ("d.permit", "Parking for permit holders only"),
        ("d.roof", "Secure roof loads before setting off"),
        ("d.firstaid", "Carry a first-aid kit"),
        ("d.tyre_pressure", "Check tyre pressure regularly"),
        ("d.studs", "Studded tyres {prohib} in summer"),
        ("d.noise", "Avoid unnecessary engine noise at night"),
        ("d.spare", "A spare wheel must be carried"),
        ("d.trailer", "Trailers must display a rear number plate"),
        ("d.defrost", "Demist the windscreen before you set off"),
        ("d.wipers", "Use windscreen wipers in rain or snow"),
        held=("d.litter", "d.chains", "d.spare", "d.trailer", "d.defrost", "d.wipers"),
    ),
    # Composed rules about something else (an action or obligation, a place, who is told, the
    # binding rules' own modality families), all held out: the held-out split's distractors are
    # families of sentences, not six fixed ones. Not in training: trained on, they left 1.7x
    # more held-out errors answered valid=true on two paired seeds (docs/training.md,
    # "Fourteenth round").
    *_c("distractor", "", *_COMPOSED, held=tuple(cid for cid, _ in _COMPOSED)),
)

# Variant "any": also names "all vehicles" explicitly; None: only for rules binding some vehicles.
WRAPPERS = _c("scope", "any", ("w.colon", "{scope}: {body}"), ("w.paren", "{body} ({scope})")) + _c(
    "scope",
    None,
    ("w.for", "{body} for {scope}"),
    ("w.comma_only", "{body}, {scope} only"),
    ("w.only", "{body} ({scope} only)"),
    ("w.applies", "{body}. Applies to {scope}"),
    held=("w.applies",),
)

LEXICON = Lexicon("en", C, tuple(CONSTRUCTIONS), tuple(WRAPPERS), HELD, PARAMS)
