"""What a rule writes, against what the model read it as: the lane numbers of a lane closure
(:func:`lane_unwritten`) and an exception clause in a rule read as binding nobody
(:func:`excepted_not_binding`).

A rule's reading names the lane it closes (``rule_lane``: the centre lane, or the Nth lane from
the left or from the right; MODEL_SPEC.rule_lanes). The rule language numbers lanes and gives no
distances, so the reader learned that a number in a lane closure is the lane's: an outside probe
(forty-seventh session) found "Left lane closed for 2 km, merge right" read as closing lane 2,
"Lane 2 closed for 3 km" as lane 3 and 左侧车道封闭3公里 as the third lane from the right, at
0.9-1.0, and the car drove on in the closed lane with ``valid=true``. :func:`lane_unwritten`
says when a reading names a lane number the rule does not write as a lane; the node does not act
on such a reading (``rules_not_understood``), as for a speed limit the rule does not write
(perception.readcheck.limit_unwritten).
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

from core.errors import ModelError
from perception.rule_encoder import normalise
from perception.spec import MODEL_SPEC

__all__ = [
    "LANE_KINDS",
    "as_read",
    "excepted_not_binding",
    "exception_clause",
    "lane_numbers",
    "lane_unwritten",
    "without_exceptions",
    "written_lane",
    "written_merge",
]

# Rule kinds whose reading names a lane.
LANE_KINDS = ("lane_closed",)
# Numbers written as a lane's name: after "lane(s)" or "ln" ("lane 2", "lane no. 2", "lanes 1 and
# 2", "Lane II", "lane two", "LN 2"), as an ordinal ("2nd", "second"), with 第 (第二条, 第2) or
# 号 (2号车道), or after 车道 (车道二; 車道 too). A number elsewhere is not a lane's: "for 2 km",
# "2 lanes remain open", "exit 4", "7-9 am", "M25", "封闭至12月31日".
_LANE_NUM = r"(?:\d+(?![.,]\d)|one|two|three|four|five|I{1,3}|IV)"
# A unit after the number: a quantity, not a lane ("the left lane 0.5 km ahead", "lane 2 km").
_NOT_UNIT = (
    r"(?!\s*(?:k?m\b|kilomet|met(?:re|er)|mi\b|miles?\b|ft\b|feet\b|yards?\b|h\b|hrs?\b|"
    r"hours?\b|mins?\b|minutes?\b|days?\b|weeks?\b|%|t\b|tonnes?\b))"
)
_EN_LANE = re.compile(
    r"\b(?:lanes?|ln|lns)\s*(?:no\.?|number|#)?\s*("
    + _LANE_NUM
    + r"(?:\s*(?:,|and|&|or|-|–|to)\s*"
    + _LANE_NUM
    + r")*)\b"
    + _NOT_UNIT,
    re.I,
)
# ... or before a singular "lane" ("the two lane", "number-two lane"), or after "number".
_EN_LANE_BEFORE = re.compile(
    r"\b(" + _LANE_NUM + r")[\s-]+(?:lane|ln)\b|\bnumber[\s-]*(" + _LANE_NUM + r")\b", re.I
)
_EN_ORDINAL = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b|\b(first|second|third|fourth|fifth)\b", re.I)
_ZH_NUM = r"([一二三四五六七八九]|\d+|I{1,3}|IV)"
_ZH_LANE = re.compile(
    r"第\s*"
    + _ZH_NUM
    + r"|"
    + _ZH_NUM
    + r"\s*号\s*[车車]道|[车車]道\s*"
    # one numeral right after 车道, not the start of a time or a range (车道21:00—5:00封闭)
    + r"([一二三四五六七八九]|[1-9]|I{1,3}|IV)"
    + r"(?![\d:：.\-–—~至到点时])",
    re.I,
)
_VALUES = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5,
    "i": 1, "ii": 2, "iii": 3, "iv": 4,
    "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
}  # fmt: skip
# Any number at all, in digits, English words or Chinese numerals: where a misread lane number
# can come from when the rule writes none as a lane's.
_ANY_NUMBER = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|"
    r"thirty|forty|fifty|hundred|thousand|half|first|second|third)\b|[一二两三四五六七八九十百千万半]",
    re.I,
)
# The centre lane named: a centre word up to four words before "lane" ("the centre lane", "the
# middle two-way lane", "CTR LANE", "C lane") or after it ("the lane in the middle", "the lane
# down the centre"); 中间/中央/正中/居中/当中 up to six characters before 车道 or 道 (居中那条车道,
# 当中的车道, 中间道), and 中车道.
_CENTRE = re.compile(
    r"\b(?:cent(?:re|er|ral)|middle|mid|ctr|c)\b[\s()-]*(?:[\w()-]+\s+){0,4}?(?:lanes?|ln)\b"
    r"|\b(?:lanes?|ln)\b(?:\s+[\w-]+){0,3}?\s+(?:cent(?:re|er)|middle)\b"
    r"|中[车車]?道|(?:当中|中[间間]|中央|正中|居中|中部)[^，,。；;]{0,6}?[车車]?道"
    r"|[车車]道[^，,。；;]{0,4}?(?:中[间間]|中央|居中)",
    re.I,
)


def as_read(text: str) -> str:
    """A rule's text as the model reads it (rule_encoder.normalise), in NFKC form (full-width
    digits and letters as ASCII, Ⅲ as III): what the checks of its wording compare the reading
    with (also perception.readcheck.written_speeds)."""
    return unicodedata.normalize("NFKC", normalise(text))


def lane_numbers(text: str) -> set[int]:
    """The numbers a rule writes as a lane's name (see the patterns above): "Lane 2 closed for
    3 km, merge one lane left" -> {2, 1}; "左侧车道封闭3公里" -> set(); "第二条车道关闭" -> {2};
    "Lane II closed" -> {2}; "lanes 1 and 2 closed" -> {1, 2}."""
    t = as_read(text)
    got: set[int] = set()
    for m in _EN_LANE.finditer(t):
        got |= {_value(x) for x in re.findall(_LANE_NUM, m.group(1), re.I)}
    got |= {_value(a or b) for a, b in _EN_LANE_BEFORE.findall(t)}
    got |= {_value(a or b) for a, b in _EN_ORDINAL.findall(t)}
    got |= {_value(next(g for g in m.groups() if g)) for m in _ZH_LANE.finditer(t)}
    return got


def _value(token: str) -> int:
    return int(token) if token.isdigit() else _VALUES[token.lower()]


def lane_unwritten(text: str, rule_class: str, lane: np.ndarray) -> bool:
    """Whether a rule read as a lane closure names a lane it does not write: the read lane is
    the Nth from one side (L/R N) and N is not among :func:`lane_numbers`, while the rule
    names another lane by number, or (N >= 2) it writes some other number the reading could
    have come from ("for 2 km", "for three hours", "for 2 weeks", 三百米); or the read lane is
    the centre lane and the rule does not name a centre lane ("Starting 800 m ahead, the left
    lane is closed" was read as closing the centre lane). The first lane from either side is
    also the leftmost or rightmost, which a rule names without a number ("Left lane closed for
    2 km" read as L1 is not flagged; a left/right mix-up is not caught). On
    every lane closure of the rule language and of the wording files, read as the lane it
    names, it flags none (tests/perception/test_written.py). ``lane``: its rule_lane reading
    (softmax over "none" and MODEL_SPEC.rule_lanes)."""
    if rule_class not in LANE_KINDS:
        return False
    names = ("none", *MODEL_SPEC.rule_lanes)
    if np.shape(lane)[-1] != len(names):
        raise ModelError(
            f"the model reads {np.shape(lane)[-1]} lanes, this node knows {len(names)} "
            "(MODEL_SPEC.rule_lanes and none)"
        )
    read = names[int(np.argmax(lane))]
    t = as_read(text)
    if read == "C":
        return _CENTRE.search(t) is None
    if read == "none":
        return False
    n, written = int(read[1:]), lane_numbers(text)
    if n in written:
        return False
    return bool(written) or (n >= 2 and _ANY_NUMBER.search(t) is not None)


# Who an exception can be about: road users (not places: "except at bus stops", "except on the
# climbing lane").
_WHO_EN = (
    r"(?:vehicles?|cars?|bus(?:es)?(?!\s*(?:stops?|stations?|lanes?|bays?))|coaches?|trucks?|"
    r"lorr(?:y|ies)|hgvs?|lgvs?|vans?|taxis?|cabs?|motorcycl\w*|motorbikes?|mopeds?|scooters?|"
    r"bicycles?|bikes?|cyclists?|tractors?|trailers?|ambulances?|police|fire\s+engines?|"
    r"emergency|escorts?|residents?|permit\s+holders?|deliver\w*|goods|traffic|drivers?)"
)
_WHO_ZH = r"(?:[车車](?!站|道|位)|公交|客运|货运|摩托|警|救护|消防|出租|驾驶人|司机|行人|居民)"
_SPAN = r"[^，,。；;：:]"
# A class of road users, not road users at large (vehicles, traffic, drivers, 车辆).
_CLASS_EN = (
    r"(?:bus(?:es)?|coaches?|trucks?|lorr(?:y|ies)|hgvs?|lgvs?|vans?|taxis?|cabs?|motorcycl\w*|"
    r"motorbikes?|mopeds?|scooters?|bicycles?|bikes?|cyclists?|tractors?|ambulances?|police|"
    r"fire\s+engines?|emergency|residents?|permit\s+holders?|deliver\w*|goods\s+vehicles?)"
)
_CLASS_ZH = (
    r"(?:公交|公共汽车|客车|客运|货车|货运|卡车|出租|摩托|自行车|非机动车|救护|消防|警|特种|工程|校车|"
    r"环卫|执行任务)"
)
# An exception clause that names road users: "except (for) buses", "other than emergency
# vehicles", "apart from", "save for", "aside from", "excluding", "exempt(ion)", "unless you
# drive a ...", "buses excepted", "buses are not subject to / not bound by this"; 除公交车外,
# 除了…, 除非…, …车辆除外, 不包括/不含/不适用于…, 公交车不受此限 / 不在此限 / 不受本标志限制 /
# 不适用本标志.
_EXCEPTION = re.compile(
    r"\b(?:except(?:ing|ions?)?|other than|apart from|save for|aside from|excluding|"
    r"exempt(?:ed|ions?)?|unless|not applicable to|does not apply to)\b"
    + _SPAN
    + r"{0,40}?\b"
    + _WHO_EN
    + r"|\b"
    + _WHO_EN
    + _SPAN
    + r"{0,20}?\b(?:excepted|exempt(?:ed)?)\b"
    # "not subject to" / "not bound by" names an exception only after a class of road users
    # ("Buses are not subject to this limit"; "Drivers are not bound by this sign" binds nobody)
    + r"|\b"
    + _CLASS_EN
    + _SPAN
    + r"{0,20}?\bnot\s+(?:subject\s+to|bound\s+by)\b"
    + r"|除(?:了|非)?"
    + _SPAN
    + r"{0,15}?"
    + _WHO_ZH
    + _SPAN
    + r"{0,12}?(?:以外|之外|外)|除(?:了|非)"
    + _SPAN
    + r"{0,15}?"
    + _WHO_ZH
    + r"|"
    + _WHO_ZH
    + _SPAN
    + r"{0,10}?(?:除外|例外)|"
    + _CLASS_ZH
    + _SPAN
    + r"{0,10}?(?:不受此限|不在此限|不受本\w{0,4}?限|不适用本)"
    + r"|(?:不包括|不含|不适用于|不适用)"
    + _SPAN
    + r"{0,15}?"
    + _WHO_ZH,
    re.I,
)
NOT_BINDING = "not_binding"
_CONDITION = re.compile(r"unless\b|除非", re.I)


def exception_clause(text: str) -> bool:
    """Whether a rule has an exception clause that names road users (see the pattern above)."""
    return _EXCEPTION.search(as_read(text)) is not None


def without_exceptions(text: str) -> tuple[str, bool]:
    """A rule as read (:func:`as_read`) with its exception clauses (see the pattern above) cut
    out, and whether it had one: "Except for buses, no overtaking" -> (", no overtaking",
    True). A condition ("unless", 除非: "No turn on red unless the vehicle has stopped") is
    kept: it is not a list of road users the rule leaves out but the rule's own condition."""
    t = as_read(text)
    cut = _EXCEPTION.sub(lambda m: m.group(0) if _CONDITION.match(m.group(0)) else " ", t)
    return cut, cut != t


def excepted_not_binding(text: str, rule_class: str) -> bool:
    """Whether a rule read as binding nobody (``not_binding``) has an exception clause that
    names road users (:data:`_EXCEPTION`; "except at bus stops" is about a place). The rule
    language has no exceptions (a rule binds the vehicles of its scope), so the reader took the
    vehicles an exception names for the rule's scope: an outside probe (forty-seventh session)
    found "Right turn on red permitted after a stop, for all vehicles except trucks over 7.5 t"
    and "Except for buses, ... the speed limit is 50 km/h" read as binding nobody at 0.9-1.0,
    valid=true, the car ignoring the limit. A rule that excepts some vehicles binds the others,
    so the node does not act on that reading (``rules_not_understood``); one that excepts the
    car itself ("No entry except cars"), or whose own scope leaves the car out besides ("Trucks
    only: no overtaking, except tractors"), is flagged too (safe, not right). Readings of other
    classes are not checked: the bus lane ("except buses, no vehicle may use the right lane")
    is an exception the reader was taught. No training text of the rule language has such a
    clause, and no text of it that binds nobody (tests/perception/test_written.py)."""
    return rule_class == NOT_BINDING and exception_clause(text)


# The lane a lane closure names and the side it sends traffic to, where the words say so
# unmistakably (:func:`written_lane`, :func:`written_merge`). The reader took side words from the
# wrong phrase: 右侧车道禁止通行，所有车辆须向左汇入 ("the right lane is closed, merge left") was
# read as closing the left lane with a merge to the right, at 0.97-0.98 (an outside probe,
# forty-eighth session), and the car drove on in the closed lane.
_ORD_EN = r"(\d|one|two|three|first|second|third|1st|2nd|3rd)"
_SIDE_COUNT_EN = re.compile(
    r"\b(?:lane\s+(?:no\.?\s*|number\s+)?" + _ORD_EN + r"|" + _ORD_EN + r"\s+lane)\s+"
    r"(?:\(?\s*)?(?:counting\s+|counted\s+|as\s+counted\s+)?from\s+(?:the\s+)?(left|right)\b",
    re.I,
)
_SIDE_COUNT_ZH = re.compile(
    r"(?:从|由|自)?(左|右)(?:起|数|侧起|边起|往[左右]数|向[左右]数|到[左右]数)\s*第?\s*"
    r"([一二三123])\s*条?\s*(?:[车車]?道)"
)
# A lane named by its side or as the centre one, not the lane traffic is sent to ("merge into
# the left lane", 向左侧车道并线) nor a turning lane (右转车道).
_TARGET_EN = (
    r"(?<!into the )(?<!to the )(?<!onto the )(?<!use the )(?<!towards the )(?<!toward the )"
    # ... nor a lane named from another ("the lane just right of the leftmost lane")
    r"(?<!of the )(?<!beside the )(?<!from the )(?<!than the )"
)
_NAMED_EN = re.compile(
    _TARGET_EN
    + r"\b(?:(?:far|extreme)[\s-]+)?(left|right)(?:most|-most|[\s-]*hand)?\s+lane\b(?!s)"
    + r"|"
    + _TARGET_EN
    + r"\b(?:cent(?:re|er)|middle|central)\s+lane\b(?!s)()"
    # "the lane on the (far) right"
    + r"|(?<!into the )(?<!to the )(?<!onto the )(?<!use the )\blane\s+on\s+the\s+"
    + r"(?:far\s+|extreme\s+)?(left|right)\b(?![\s-]*hand)",
    re.I,
)
_NAMED_ZH = re.compile(
    r"(?<![向往朝靠入至到进])(?<!驶入)(?<!汇入)(?<!并入)最?(左|右)(?:侧|边的?|手边?)?(?:的|那条)?[车車]道"
    r"(?![旁边右左相隔])"
    r"|(?<![向往朝靠入至到进])(?:中间|中央|正中间?|居中)的?(?:那条)?[车車]道()(?![旁边右左相隔])"
)
_MERGE_EN = re.compile(
    r"\b(?:merge|merging|move|moving|change\s+lanes?|switch|keep|get|shift|bear|stay|go|steer"
    r"|pull|filter)\b(?:\s+(?:over|across|into|to|toward|towards|onto|on|the|your|a|an|one|lanes?))*"
    r"\s+(left|right)\b",
    re.I,
)
_MERGE_ZH = re.compile(
    r"(?<!从[左右])(?:向|往|朝|靠|改向|驶向|驶入|汇入|并入)\s*(左|右)(?!\s*[数起])"
)
_SIDES = {"左": "left", "右": "right", "left": "left", "right": "right"}
_ORD_VALUES = {**_VALUES, "1st": 1, "2nd": 2, "3rd": 3}


def _ordinal(token: str) -> int:
    return int(token) if token.isdigit() else _ORD_VALUES[token.lower()]


def written_lane(text: str) -> str | None:
    """The lane a rule names (one of MODEL_SPEC.rule_lanes) where every lane it names by side,
    by a count from a side or as the centre lane is that one: "Lane 2 from the right closed"
    -> "R2"; "右侧车道禁止通行，须向左汇入" -> "R1"; 左起第一车道 -> "L1"; "Centre lane closed" ->
    "C"; None where it names none so ("Lane 2 closed": which side lane 2 is counted from is a
    convention) or several."""
    t = as_read(text)
    got: set[str] = set()
    for m in _SIDE_COUNT_EN.finditer(t):
        got.add(f"{_SIDES[m.group(3).lower()][0].upper()}{_ordinal(m.group(1) or m.group(2))}")
    for m in _SIDE_COUNT_ZH.finditer(t):
        got.add(f"{_SIDES[m.group(1)][0].upper()}{_ordinal(m.group(2))}")
    rest = _SIDE_COUNT_ZH.sub(" ", _SIDE_COUNT_EN.sub(" ", t))
    for pattern in (_NAMED_EN, _NAMED_ZH):
        for m in pattern.finditer(rest):
            side = next((g for g in m.groups() if g), None)
            got.add("C" if side is None else f"{_SIDES[side.lower()][0].upper()}1")
    lanes = set(MODEL_SPEC.rule_lanes)
    return got.pop() if len(got) == 1 and got <= lanes else None


def written_merge(text: str) -> str | None:
    """The side ("left" or "right") a rule sends traffic to, where every merge it writes says
    that side: "Left lane closed, merge right" -> "right"; 请提前靠右并道 -> "right"; None where
    it writes none or both."""
    t = as_read(text)
    got = {_SIDES[m.group(1).lower()] for m in _MERGE_EN.finditer(t)}
    got |= {_SIDES[m.group(1)] for m in _MERGE_ZH.finditer(t)}
    return got.pop() if len(got) == 1 else None
