"""The decisions a rule read as binding nobody names for the car.

A rule read as ``not_binding`` is one the decision ignores: right for a rule of another road
user ("Trucks over 7.5 t: no overtaking") or about something no driving decision turns on
("No honking"), wrong for a rule that binds the car. An outside probe (forty-eighth session,
docs/examples/wordings-probe15.yaml) found rules of the car read as binding nobody at 0.94-1.00
with ``valid=true``: 车让人，违者罚款 ("cars give way to people; violators fined", a yield rule:
the car drove on past people on the crossing on 49 frames), "Fleet drivers: under no
circumstances overtake on the mountain pass section" (it overtook), "All pool cars: do not go
above 70 km/h" and 车队通知：本线路全程限速70km/h (it kept its speed).

:func:`bound_topics` says which decisions of the car a rule's words name unmistakably when it
names no road user but cars and drivers: giving way to pedestrians, an amber light, overtaking,
a right turn on red. The reading check then asks, for such a rule read as binding nobody,
whether reading it as each class of those topics would decide the frame otherwise
(perception.readcheck.binding_alternatives; a written speed limit in digits is one more such
topic, read there), and answers ``rules_not_understood`` where it would, never a changed
decision. A rule of another road user ("Trucks: no overtaking", 货车禁止超车, "Vehicles over
3.5 t: maximum 60 km/h") is left to the reader: its words name who it binds.
"""

from __future__ import annotations

import functools
import re

from perception.written import as_read

__all__ = ["TOPIC_CLASSES", "bound_topics", "names_other_users"]

# The classes a rule of each topic can be read as (both polarities, both amber rules): the check
# asks each, since which one the rule writes is the reader's to say.
TOPIC_CLASSES: dict[str, tuple[str, ...]] = {
    "yield_pedestrians": ("yield_pedestrians",),
    "amber": ("amber:always_stop", "amber:proceed_if_close"),
    "overtaking": ("overtaking:prohibited", "overtaking:permitted"),
    "turn_on_red": ("turn_on_red:prohibited", "turn_on_red:permitted"),
}

# Each topic named unmistakably: a word with no other sense on a road sign.
_TOPICS: dict[str, re.Pattern[str]] = {
    "yield_pedestrians": re.compile(
        # give way / yield / stop / slow down ... for pedestrians or people on a crossing
        r"\b(?:give\s+way|giving\s+way|yield\w*|stop\w*|slow\w*\s+down|wait\w*)\b[^.;:!?]{0,30}?"
        r"\b(?:pedestrians?|people|persons?|walkers|foot\s+traffic|children)\b"
        r"|\bpedestrians?\b[^.;:!?]{0,30}?\b(?:priority|right[\s-]+of[\s-]+way|go\s+first|first)\b"
        r"|\blet\s+(?:the\s+)?(?:pedestrians?|people|walkers)\s+(?:cross|go|pass)\b"
        # 车让人, 让行人, 礼让行人, 避让行人, 让人先行, 行人优先, 行人先行
        r"|让\s*(?:行\s*)?人|礼让|避让行人|行人\s*(?:优先|先行|先过)",
        re.I,
    ),
    "amber": re.compile(
        r"\b(?:amber|yellow)\s+(?:traffic\s+)?(?:lights?|signals?|lamps?|phases?)\b"
        r"|\bon\s+(?:an?\s+)?(?:amber|yellow)\b|\b(?:amber|yellow)\s+means\b"
        r"|黄\s*灯|黄色\s*(?:信号|交通)?\s*灯|黄色信号",
        re.I,
    ),
    "overtaking": re.compile(
        r"\bovertak\w*|\bno[\s-]+passing\b|\bpass(?:ing)?\s+(?:other|slower|the\s+vehicle|"
        r"vehicles|cars)\b|超\s*车|超越前",
        re.I,
    ),
    "turn_on_red": re.compile(
        r"\b(?:right\s+turns?|turn\w*\s+right|right)\b[^.;:!?]{0,30}?\bred\b"
        r"|\bred\b[^.;:!?]{0,30}?\b(?:right\s+turns?|turn\w*\s+right)\b"
        r"|红\s*灯[^，。；：！？]{0,10}?右\s*[转拐]|右\s*[转拐][^，。；：！？]{0,10}?红\s*灯",
        re.I,
    ),
}

# Road users other than a car (and a rule's own object, pedestrians, aside): a rule that names
# one may truly bind nobody the car is, so its reading is the reader's to judge ("Trucks over
# 7.5 t: no overtaking", 货车禁止超车, "Vehicles over 3.5 t: maximum 60 km/h", 大型车辆).
_OTHER_USERS = re.compile(
    r"\b(?:trucks?|lorr(?:y|ies)|hgvs?|lgvs?|goods|freight|vans?|bus(?:es)?|coach(?:es)?"
    r"|cycl\w*|bicycl\w*|bikes?|motor(?:cycl|bik)\w*|mopeds?|scooters?|tractors?|trailers?"
    r"|caravans?|campers?|taxis?|cabs?|ambulances?|police|emergency|fire\s+engines?|learners?"
    r"|heavy|large\s+vehicles?|tonnes?|tons?|\d+(?:\.\d+)?\s*t)\b"
    r"|货|卡车|客车|客运|公交|公共汽车|大巴|大车|大型|中型|重型|摩托|自行车|非机动车|电动车|三轮"
    r"|拖拉机|挂车|出租|救护|消防|警|特种|工程|教练|校车|危险品|吨",
    re.I,
)


def names_other_users(text: str) -> bool:
    """Whether a rule names a road user other than a car (or pedestrians, the object of a yield
    rule): its reading as binding nobody may be right."""
    return _OTHER_USERS.search(as_read(text)) is not None


@functools.lru_cache(maxsize=8192)
def bound_topics(text: str) -> tuple[str, ...]:
    """The topics (keys of :data:`TOPIC_CLASSES`) a rule names unmistakably, in that order,
    where it names no road user other than a car (:func:`names_other_users`); () otherwise.
    "车让人，违者罚款" -> ("yield_pedestrians",); "Fleet drivers: never overtake" ->
    ("overtaking",); "Trucks: no overtaking" -> (); "No honking" -> (). Cached: evaluation asks
    it of the same rule on every frame of its set."""
    t = as_read(text)
    if _OTHER_USERS.search(t):
        return ()
    return tuple(k for k, pattern in _TOPICS.items() if pattern.search(t))
