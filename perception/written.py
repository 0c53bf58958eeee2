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
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "1st": 1, "2nd": 2, "3rd": 3,
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
    r"|中[车車]?道|(?:当中|中[间間]|中央|正中|居中|中部)[^，,。；;]{0,6}?(?:[车車]?道|行?[车車]线)"
    r"|(?:[车車]道|行[车車]线)[^，,。；;]{0,4}?(?:中[间間]|中央|居中)",
    re.I,
)


def as_read(text: str) -> str:
    """A rule's text as the model reads it (rule_encoder.normalise: traditional Chinese
    characters already simplified), in NFKC form (full-width digits and letters as ASCII, Ⅲ as
    III): what the checks of its wording compare the reading with (also
    perception.readcheck.written_speeds)."""
    return unicodedata.normalize("NFKC", normalise(text))


# Sign abbreviations of lanes, sides and closures ("LH lane clsd ahd, mrg rt", "Ln2 closed ->
# merge R", "2nd ln from rt"), spelled out for the lane checks: the reader misread them (blind
# probes, 47th session), and the lane checks did not read them either.
_ABBREVIATIONS = (
    (re.compile(r"\b(?:lft|lt)\b|\bL(?=\s*(?:lane|ln)\b)|(?<=\bfrom\s)L\b|(?<=\bmerge\s)L\b"
                r"|(?<=\bmrg\s)L\b", re.I), "left"),
    (re.compile(r"\b(?:rt|rgt|rght)\b(?!\.?\s*\d)|\bR(?=\s*(?:lane|ln)\b)|(?<=\bfrom\s)R\b|(?<=\bmerge\s)R\b"
                r"|(?<=\bmrg\s)R\b", re.I), "right"),
    (re.compile(r"\bLH(?=\s*(?:lane|ln)\b)", re.I), "left-hand"),
    (re.compile(r"\bRH(?=\s*(?:lane|ln)\b)", re.I), "right-hand"),
    (re.compile(r"\b(?:ctr|cntr|mid)\b|\bC(?=\s*(?:lane|ln)\b)", re.I), "centre"),
    (re.compile(r"\bclsd\b", re.I), "closed"),
    (re.compile(r"\bmrg\b", re.I), "merge"),
    (re.compile(r"\bahd\b", re.I), "ahead"),
    (re.compile(r"\bln(?=\s|\d|$|[^\w])", re.I), "lane "),
    (re.compile(r"\blns\b", re.I), "lanes"),
)  # fmt: skip


# A lane one may not drive into is the barred one, not the one traffic is sent to (禁止驶入最左侧
# 车道, 全日小型汽车不能驶入右车道): said as 占用 ("occupy"), which the lane patterns read as
# the closed lane.
_NO_ENTRY_ZH = re.compile(
    r"(不能|不得|禁止|不要|不许|不准|严禁|请勿|切勿|勿|不可)([^，。；：！？,]{0,6}?)"
    r"(?:驶入|进入|驶进|开进|开入)"
)


# A lane named by a letter of a place, not a side: "Terminal C lane", "Gate L lane".
_LETTER_PLACE = re.compile(
    r"\b(?:terminal|gate|exit|lot|zone|pier|row|bay|level|deck|block|section|area|platform"
    r"|dock|door|entrance|stand|concourse|wing|car\s+park)\s+[A-Z]\b",
    re.I,
)


def _lanes_read(text: str) -> str:
    """:func:`as_read`, with the sign abbreviations of lanes and sides spelled out and a lane
    barred to entry said as one barred to use (禁止驶入 as 禁止占用)."""
    t = _NO_ENTRY_ZH.sub(r"\1\2占用", as_read(text))
    if _LETTER_PLACE.search(t):
        t = _LETTER_PLACE.sub(" ", t)
    for pattern, word in _ABBREVIATIONS:
        t = pattern.sub(word, t)
    return t


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
_ORD_EN = r"(\d|one|two|three|first|second|third|1st|2nd|3rd|I{1,3})"
_SIDE_COUNT_EN = re.compile(
    r"\b(?:lane\s+(?:no\.?\s*|number\s+)?" + _ORD_EN + r"|" + _ORD_EN + r"\s+lane)\s+"
    r"(?:\(?\s*)?(?:counting\s+|counted\s+|as\s+counted\s+)?from\s+(?:the\s+)?(left|right)\b",
    re.I,
)
# 由左向右第二条 / 自右向左第1车道 (no 数) count from a side too.
_SIDE_COUNT_ZH = re.compile(
    r"(?:从|由|自)?(左|右)(?:起|数|侧起|边起|边数|侧数|[往向到至][左右]数?)\s*第?\s*"
    r"([一二三123])\s*条?\s*(?:[车車]?道)"
)
_TARGET_EN = (
    r"(?<!into the )(?<!to the )(?<!onto the )(?<!use the )(?<!towards the )(?<!toward the )"
    r"(?<!of the )(?<!beside the )(?<!from the )(?<!than the )"
)
# "left-centre lane" / "right center lane" (the inner lanes of four) are no centre lane.
_NAMED_EN = re.compile(
    _TARGET_EN
    + r"\b(?:(?:far|extreme)[\s-]+)?(left|right)(?:most|-most|[\s-]*hand)?\s+lane\b(?!s)"
    + r"|"
    + _TARGET_EN
    + r"(?<!left[\s-])(?<!right[\s-])(?<!left-hand )(?<!right-hand )"
    + r"\b(?:cent(?:re|er)|middle|central)\s+lane\b(?!s)()"
    + r"|(?<!into the )(?<!to the )(?<!onto the )(?<!use the )\blane\s+on\s+the\s+"
    + r"(?:far\s+|extreme\s+)?(left|right)\b(?![\s-]*hand)",
    re.I,
)
# What stands before a named lane that makes it a lane traffic goes to / uses, or a
# lane named from another one (the regex lookbehinds need "the" and miss "into the far left
# lane", "use left lane", "via the left lane", "the lane next to left lane", "second-from-left").
_BEFORE_NOT_CLOSED_EN = re.compile(
    r"(?:\b(?:into|to|onto|use|using|toward|towards|(?<!out\s)(?<!use\s)(?<!closure\s)(?<!closing\s)of|"
    r"beside|from|than|via|through|along|within|join|joining|enter|entering|except|but|only|keep|"
    r"stay|inside|outside|next\s+to|adjacent\s+to)\s+(?:the\s+|a\s+)?"
    r"|\b(?:second|2nd|third|3rd|next)(?:[\s-]+(?:from|to))?[\s-]+(?:the\s+)?"
    r"|\b(?:inner|outer|inside|outside|innermost)[\s-]+)"
    r"(?:(?:far|extreme|adjacent|open|remaining|available|neighbou?ring|next|free|nearest|other)"
    r"[\s-]+)?$",
    re.I,
)
# A named lane is the closed one only where a closure predicate follows it in its clause
# (or precedes it: "Closed: right lane", "closure of the left lane"), with no "open", "use",
# "while", "except" between ("right lane remains open", "Only the right lane is open").
_CLOSED_EN = (
    r"(?:clos(?:ed|ure|ures|ing|es)|blocked|blockage|shut|shuts|ends|ending|obstructed|not\s+open|"
    r"out\s+of\s+(?:use|service)|coned\s+off|unavailable|not\s+(?:be\s+)?available|off\s+limits|"
    r"not\s+in\s+use|will\s+close|to\s+close|taken\s+out|prohibited|no\s+longer\s+(?:possible|open)|"
    r"not\s+open|cannot\s+be\s+used|not\s+permitted|barricaded|cordoned|coned|impassable|"
    r"blocked\s+off|fenced\s+off|sealed\s+off)\b"
)
# The predicate may follow in the same sentence (commas allowed: "the first lane from the left,
# it's shut further on"), with no "open"/"use"/"except"/"only" nor another lane between ("the
# lane" / "it" refer back: "...: the lane is closed" stays a sentence break).
_AFTER_CLOSED_EN = re.compile(
    r"(?:(?!\b(?:open|opened|reopen\w*|use|using|whereas|but|except|only|other|remaining|"
    r"lifted|cleared|ended)\b"
    r"|(?<!the\s)(?<!this\s)(?<!that\s)\blanes?\b)[^.;!?:])*?\b" + _CLOSED_EN,
    re.I,
)
_NEGATED_EN = re.compile(r"\b(?:not|n't|no|never|cannot)\b[^,.;:]{0,25}$", re.I)
_BEFORE_CLOSED_EN = re.compile(
    r"\b(?:clos(?:ed|ure|ures|ing|e|es)|block(?:ed|ing|age)?|shut(?:ting)?|vacate|get\s+out\s+of|"
    r"leave|use\s+of)(?:\s+ahead)?\s*[:(]?\s*(?:(?:of|on|in)\s+)?(?:the\s+)?"
    r"(?:(?:far|extreme|outermost|outer)[\s-]+)?$",
    re.I,
)
_NAMED_ZH = re.compile(
    # 左右车道 / 左右侧车道 (both sides; 左右 after a distance is "about"); 方向/双向
    # before the side is the direction of travel, not a target (进京方向右侧车道封闭), while 对向
    # is the other carriageway; 邻/道/带/栏 before it name a lane from another.
    r"(?<![往朝靠入至到进邻道带栏])(?<!(?<![方双单雙單])向)(?<!驶入)(?<!汇入)(?<!并入)"
    r"最?(?:(?<!右)(左)|(?<!左)(右))(?:侧|边的?|手边?)?(?:的|那条)?[车車]道"
    r"(?![旁边右左相隔两外])"
    r"|(?<![向往朝靠入至到进])(?:中间|中央|正中间?|居中)的?(?:那条)?[车車]道()(?![旁边右左相隔两外])"
)
# A closure predicate after the lane in its clause, with no 可/正常/外/其余 between,
# and no 除/仅/只/开放/保留 before it in the clause.
_AFTER_CLOSED_ZH = re.compile(
    r"(?:(?!可|正常|外|其余|其他|以外|(?<![不再])开放|恢复|(?<![该此本这])[车車]道)[^。；;！!？?：:])*?"
    r"(?:封|关闭|禁止通行|禁行|禁止驶入|禁止进入|暂停通行|停止通行|不能通行|无法通行|不可通行|"
    r"不得通行|不准通行|施工|占道|占用|维修|养护|事故|障碍|抛洒|故障|断行|阻断|不通|关停|停用|"
    r"管制|(?<!拥)堵|走不了|不得行驶|closed|blocked|不得继续通行|不能走|不是开放|不再?开放|暂停使用|"
    r"停止使用|围|受阻|不能使用|无法使用|禁止使用|關閉)"
)
_BEFORE_NOT_CLOSED_ZH = re.compile(r"(?:除|仅|只|开放|保留)[^，,。；;！!？?：:]*$")
_BEFORE_CLOSED_ZH = re.compile(
    r"(?:封闭|关闭|封道)(?:\d+条[车車]道)?\s*[：:（(]\s*$|已?(?:封闭|关闭|封閉|關閉)的\s*$"
    r"|(?:不能|不得|禁止|不要|不许|不准|严禁|请勿|切勿|勿|不可)[^，。；：！？,]{0,6}?占用\s*$"
)
# A merge that is forbidden, one of two sides, "keep the right lane clear", "right
# of way".
_MERGE_EN = re.compile(
    r"(?<!\bnot\s)(?<!n't\s)(?<!\bnever\s)(?<!\bno\s)(?<!\bavoid\s)"
    r"\b(?:merge|merging|move|moving|change\s+lanes?|switch|keep|get|shift|bear|stay|go|steer"
    r"|pull|filter)\b(?:\s+(?:over|across|into|to|toward|towards|onto|on|the|your|a|an|one|lanes?))*"
    r"\s+(left|right)\b"
    r"(?!\s*(?:/|or\b|and\b)\s*(?:to\s+the\s+)?(?:left|right)\b)"
    r"(?![\s-]*(?:hand\s+)?lanes?\s+(?:clear|free|empty)\b)(?!\s+of\s+way)",
    re.I,
)
# 禁止/不得/请勿/切勿 向右变道 is no merge; 向左右两侧 / 向左、右 is both sides; 方向/
# 对向/双向/转向 + side and 往 + a place name (往右安门方向, 开往左家庄) are no merge, nor 向左转
# (a turn); 由左向右 / 自右向左 count lanes.
_MERGE_ZH = re.compile(
    r"(?<![从由自][左右])(?<!禁止)(?<!不得)(?<!严禁)(?<!请勿)(?<!切勿)(?<!不要)(?<!不准)(?<!不能)"
    r"(?<!不可)(?<!避免)(?<!勿)(?<!禁)(?<![左右][、/或和及与])(?<!或者)"
    r"(?:(?<![方对双单對雙單转轉导導走去相志意风倾动面指纵横])向|(?<!开)(?<![^提]前)往|朝|靠|改向|驶向|驶入|汇入|并入)"
    r"\s*(左|右)(?!\s*[数起])(?!\s*(?:[、/或和及与]|或者)?\s*[向往朝靠]?\s*[左右])"
    r"(?=\s*(?:[侧側边邊面手前方一依逐]|[变變并併汇匯换換移偏靠绕繞避改行驶駛走让讓分合]|[，,。；;！!）)]|$))"
)
# Two sides coordinated before one "lane": "left and right lane", 左侧和右侧车道.
_BOTH_SIDES = re.compile(
    r"\b(?:left|right|cent(?:re|er)|middle)(?:[\s-]*hand)?\s*(?:and|or|&|/)\s*(?:the\s+)?"
    r"(?:left|right|cent(?:re|er)|middle)[\s-]*(?:hand\s+)?lanes?\b"
    r"|[左右中](?:侧|边|间)?\s*(?:和|及|与|、|或|以及)\s*最?[左右中](?:侧|边|间)?的?[车車]道",
    re.I,
)
_SIDES = {"左": "left", "右": "right", "left": "left", "right": "right"}
# A lane number written with no side ("右起第1车道和第2车道", "Lane 1 from the right and lane
# 2 closed") is another lane: the text names several.
_UNSIDED_NUM = re.compile(
    r"\blanes?\s*(?:no\.?|number|#)?\s*(?:\d|one|two|three|four|I{1,3}\b|IV\b)"
    r"|\b(?:\d(?:st|nd|rd|th)|first|second|third|fourth)\s+lanes?\b"
    r"|第\s*[一二三四五六七八九\d]+\s*条?\s*[车車]?道|[一二三四五六七八九\d]+\s*号\s*[车車]道",
    re.I,
)


def _sent_to_en(before: str) -> bool:
    """Whether what stands before an English lane name makes it a lane traffic is sent to, uses
    or keeps, or one named from another (and no negation or closure word makes it the closed
    one: "No vehicle may use the left lane", "Closure of the left lane")."""
    return bool(
        _BEFORE_NOT_CLOSED_EN.search(before)
        and not (_NEGATED_EN.search(before) or _BEFORE_CLOSED_EN.search(before))
    )


def _closed_here(t: str, start: int, end: int, zh: bool) -> bool:
    before, after = t[:start], t[end:]
    if zh:
        if _BEFORE_NOT_CLOSED_ZH.search(before):
            return False
        return bool(_AFTER_CLOSED_ZH.match(after) or _BEFORE_CLOSED_ZH.search(before))
    if _sent_to_en(before):
        return False
    return bool(_BEFORE_CLOSED_EN.search(before) or _AFTER_CLOSED_EN.match(after))


def written_lane(text: str) -> str | None:
    """The lane a rule closes (one of MODEL_SPEC.rule_lanes) where every lane it names by side,
    by a count from a side or as the centre lane is that one and a closure is said of it:
    "Lane 2 from the right closed" -> "R2"; "右侧车道禁止通行，须向左汇入" -> "R1"; 左起第一车道封闭
    -> "L1"; "Centre lane closed" -> "C". None where it names none so ("Lane 2 closed": which
    side lane 2 is counted from is a convention), several ("Left and right lanes closed"), or
    one traffic is sent to, uses or keeps open ("Lane closure ahead, use left lane", 仅开放右侧
    车道, 进京方向右侧车道 is a direction of travel: see the patterns above)."""
    t = _lanes_read(text)
    got: set[str] = set()
    closed: set[str] = set()
    for pattern in (_SIDE_COUNT_EN, _SIDE_COUNT_ZH):
        for m in pattern.finditer(t):
            if pattern is _SIDE_COUNT_EN:
                lane = f"{_SIDES[m.group(3).lower()][0].upper()}{_value(m.group(1) or m.group(2))}"
            else:
                lane = f"{_SIDES[m.group(1)][0].upper()}{_value(m.group(2))}"
            zh = pattern is _SIDE_COUNT_ZH
            if not zh and _sent_to_en(t[: m.start()]):
                continue  # a lane traffic is sent to ("merge into the second lane from the right")
            if zh and re.search(r"(?:驶入|汇入|并入|[向往朝靠入至到进])\s*$", t[: m.start()]):
                continue
            got.add(lane)
            if _closed_here(t, m.start(), m.end(), zh):
                closed.add(lane)
    rest = _SIDE_COUNT_ZH.sub(" ", _SIDE_COUNT_EN.sub(" ", t))
    if _UNSIDED_NUM.search(rest) or _BOTH_SIDES.search(rest):
        return None
    for pattern in (_NAMED_EN, _NAMED_ZH):
        for m in pattern.finditer(rest):
            zh = pattern is _NAMED_ZH
            if not zh and _sent_to_en(rest[: m.start()]):
                continue
            side = next((g for g in m.groups() if g), None)
            lane = "C" if side is None else f"{_SIDES[side.lower()][0].upper()}1"
            got.add(lane)
            if _closed_here(rest, m.start(), m.end(), zh):
                closed.add(lane)
    lanes = set(MODEL_SPEC.rule_lanes)
    return got.pop() if len(got) == 1 and got <= lanes and got == closed else None


# A merge denied or only a general habit earlier in its clause ("Do not attempt to move into the
# right lane", "drivers are asked not to pull into the left lane", "Avoid the temptation to
# switch left", "keep left unless overtaking"; 请勿将车辆驶入左侧车道) is no merge (the second
# review of the fifty-first session).
_MERGE_DENIED_EN = re.compile(
    r"\b(?:not|n['’]t|never|no|avoid\w*|without|refrain\w*|unless)\b[^.;:!?,]*$", re.I
)
_MERGE_DENIED_ZH = re.compile(r"(?:不|勿|禁止|严禁|别|避免|切勿|请勿|不得|不要)[^，。；：！？,]*$")


def written_merge(text: str) -> str | None:
    """The side ("left" or "right") a rule sends traffic to, where every merge it writes says
    that side: "Left lane closed, merge right" -> "right"; 请提前靠右并道 -> "right". None where
    it writes none, both ("merge left or right", 向左右两侧分流) or forbids one ("Do not merge
    right", 禁止向右变道), and for 向/往 that is no merge (进京方向, 往右安门, 向左转)."""
    t = _lanes_read(text)
    got = {
        _SIDES[m.group(1).lower()]
        for m in _MERGE_EN.finditer(t)
        if not _MERGE_DENIED_EN.search(t[: m.start()])
    }
    got |= {
        _SIDES[m.group(1)]
        for m in _MERGE_ZH.finditer(t)
        if not _MERGE_DENIED_ZH.search(t[: m.start()])
    }
    return got.pop() if len(got) == 1 else None


# The hours a school zone or a bus lane writes, as the reading names them (simulator.rules.HOURS:
# "day" 7:00-17:00, "extended" 7:00-20:00, "always"). The reader misread "always" said as "24/7",
# "around the clock", "Mon to Fri 24/7" for the day only (held-out school zones answered
# valid=true at dusk: the car kept its speed), and a window with the school zone's
# "from 7 a.m. until 8 p.m." (fifty-first session).
HOUR_KINDS = ("school_zone", "bus_lane")
_ALWAYS = re.compile(
    r"\b(?:24\s*/\s*7|(?<!within\s)(?<!in\s)24[\s-]*(?:hours?|hrs?|h)\b(?:\s+a\s+day)?"
    r"|a?round[\s-]+the[\s-]+clock|(?:at\s+)?all\s+times|all\s+(?:day\s+and\s+night|the\s+time)"
    r"|day\s+and\s+night|at\s+any\s*time(?:\s+of\s+(?:the\s+)?day(?:\s+or\s+night)?)?"
    r"|non[\s-]?stop)\b"
    # 全天 / 全日 / 24小时 but not 全日制 (a full-time school), 全天候监控 (cameras all day)
    r"|(?:全天候?|全日|24\s*小时|二十四小时)(?!制|\s*(?:监控|抓拍|执法|监测|巡逻|开放|营业|值守))"
    r"|整天|昼夜|全时段?|不分时段|不限时[段间]|任何时[间段候]|(?:每天|每日)?\s*24\s*h\b",
    re.I,
)
_EN_TIME = (
    r"(\d{1,2})(?:[:.h]?(\d{2}))?\s*(a\.?\s?m\.?|p\.?\s?m\.?|hrs?\b|hours\b|h\b|o['’]clock"
    r"|in\s+the\s+(?:morning|afternoon|evening)|at\s+night)?"
)
_EN_WINDOW = re.compile(
    r"(?<![\d:.,/])"
    + _EN_TIME
    + r"\s*(?:-|–|—|~|to|until|till|til|through|thru)\s*"
    + _EN_TIME
    + r"(?![\d:/]|\s*(?:k?m\b|km|kph|mph|t\b|tonnes?|%|lanes?))",
    re.I,
)
# "between 7 am and 5 pm", "between 07:00 and 20:00"
_EN_BETWEEN = re.compile(
    r"\bbetween\s+" + _EN_TIME + r"\s*(?:and|&)\s*" + _EN_TIME + r"(?![\d:/])", re.I
)
_ZH_PART = r"(早上|早晨|清晨|上午|中午|下午|傍晚|晚上|夜间|夜里)?"
_ZH_HOUR = r"(\d{1,2}|[零一二两三四五六七八九十]{1,3})"
_ZH_TIME = _ZH_PART + r"\s*" + _ZH_HOUR + r"\s*(?:[:：]\s*\d{2}|[点时](?:\s*\d{1,2}\s*分|整|半)?)?"
_ZH_WINDOW = re.compile(
    r"(?<![\d:.])"
    + _ZH_TIME
    + r"\s*(?:至|到|-|—|–|~|～|－)\s*"
    + _ZH_TIME
    + r"(?![\d:：]|\s*(?:公里|千米|米|吨|km))"
)
# 早7晚5 / 早七晚八 / 早7点晚8点: a morning hour, then an evening one
_ZH_MORNING_EVENING = re.compile(
    r"(?:早上?|上午)\s*" + _ZH_HOUR + r"\s*[点时]?\s*[至到\-—~～]?\s*(?:晚上?|下午)\s*" + _ZH_HOUR
)
_ZH_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
              "八": 8, "九": 9}  # fmt: skip
_PM = ("下午", "傍晚", "晚上", "夜间", "夜里")


def _zh_hour(token: str) -> int:
    """An hour in digits or Chinese numerals (七, 十七, 二十); 99 for anything else."""
    if token.isdigit():
        return int(token)
    m = re.fullmatch(r"([一二两三四五六七八九]?)(十?)([一二三四五六七八九]?)", token)
    if not m or not token or (m.group(1) and m.group(3) and not m.group(2)):
        return 99
    tens, ten, ones = m.groups()
    if not ten:
        return _ZH_DIGITS[ones or tens]
    return _ZH_DIGITS.get(tens, 1) * 10 + (_ZH_DIGITS[ones] if ones else 0)


def _window(start: int, end: int) -> str:
    return {(7, 17): "day", (7, 20): "extended", (0, 24): "always", (0, 0): "always"}.get(
        (start, end), "other"
    )


def _pm(suffix: str | None) -> bool:
    s = (suffix or "").lower()
    return s.startswith("p") or any(w in s for w in ("afternoon", "evening", "night"))


def written_hours(text: str) -> str | None:
    """The hours ("day", "extended" or "always") a rule writes, where everything it writes of
    its hours says that one: "Mon to Fri 24/7" and 全天 -> "always"; "from 7 a.m. until 8 p.m."
    and 早上7点至晚上8点 -> "extended"; "07:00-17:00" and 七点到十七点 -> "day". None where it
    writes none, several, or a window the reading cannot name ("8am to 6pm")."""
    t = as_read(text)
    got: set[str] = set()
    if _ALWAYS.search(t):
        got.add("always")
    for m in (*_EN_WINDOW.finditer(t), *_EN_BETWEEN.finditer(t)):
        h1, m1, s1, h2, m2, s2 = m.groups()
        start, end = int(h1), int(h2)
        if start == 0 and (end, m2) == (23, "59") and not (m1 and int(m1)):
            got.add("always")  # 00:00-23:59
            continue
        if (m1 and int(m1)) or (m2 and int(m2)) or start > 24 or end > 24:
            got.add("other")
            continue
        start += 12 if _pm(s1) and start < 12 else 0
        end += 12 if (_pm(s2) or (not s2 and end < start)) and end < 12 else 0
        got.add(_window(start, end))
    for m in _ZH_MORNING_EVENING.finditer(t):
        start, end = _zh_hour(m.group(1)), _zh_hour(m.group(2))
        got.add(_window(start, end + 12 if end < 12 else end))
    for m in _ZH_WINDOW.finditer(_ZH_MORNING_EVENING.sub(" ", t)):
        p1, h1, p2, h2 = m.groups()
        start, end = _zh_hour(h1), _zh_hour(h2)
        if start == 0 and end == 23 and re.search(r"23\s*[:：]\s*59", m.group(0)):
            got.add("always")  # 0:00-23:59
            continue
        start += 12 if p1 in _PM and start < 12 else 0
        end += 12 if (p2 in _PM or (p2 is None and end < start)) and end < 12 else 0
        got.add(_window(start, end))
    return got.pop() if len(got) == 1 and "other" not in got else None
