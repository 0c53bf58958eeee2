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
    "excepted_not_binding",
    "exception_clause",
    "lane_numbers",
    "lane_unwritten",
]

# Rule kinds whose reading names a lane.
LANE_KINDS = ("lane_closed",)
# A unit after a number that makes it a quantity, not a lane: a distance, a duration, a weight,
# a share, a speed, a time of day ("2 km", "500 m", "3公里", "7.5 t", "50%", "7 am", "7:00").
_UNIT = (
    r"\s*(?:k(?:m|ms|ilomet(?:re|er)s?)\b|m\b|met(?:re|er)s?\b|mi\b|miles?\b|yards?\b|ft\b|"
    r"feet\b|h\b|hrs?\b|hours?\b|mins?\b|minutes?\b|s\b|secs?\b|seconds?\b|t\b|tons?\b|"
    r"tonnes?\b|%|percent\b|per\s*cent\b|mph\b|am\b|a\.m\.|pm\b|p\.m\.|[:.]\d|"
    r"公里|千米|米|英里|小时|分钟|分|秒|吨|码|点|时)"
)
# A quantity in digits, in English number words ("three hours", "four hundred metres") or in
# Chinese numerals (三百米, 两公里, 三个小时).
_QUANTITY = re.compile(
    r"\d(?="
    + _UNIT
    + r")|\b(?:a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|"
    r"twenty|thirty|forty|fifty|hundred|thousand|half)(?=\s*(?:k(?:m|ms|ilomet(?:re|er)s?)\b|"
    r"met(?:re|er)s?\b|miles?\b|yards?\b|feet\b|hours?\b|minutes?\b|tonnes?\b))"
    r"|[零一二两三四五六七八九十百千万半]\s*(?:个)?\s*(?:公里|千米|米|英里|小时|分钟|吨|点)",
    re.I,
)
# Words that name the centre lane ("centre", "center", "central", "CTR", "C lane", "middle", "mid";
# 中间, 中央, 正中).
_CENTRE = re.compile(r"cent(?:re|er|ral)|\bctr\b|\bmid|\bC\s+lane|中", re.I)
# A number written as a count or a name of a lane: digits with no unit after them (an ordinal
# suffix is fine: "2nd"), the words one to three and first to third, Roman numerals after "lane"
# or around 车道, and Chinese numerals with 第 or 车道 (第二条车道, 二车道, 车道二).
_DIGITS = re.compile(r"(?<![\d.:])(\d+)(?:st|nd|rd|th)?(?![\d]|\.\d|" + _UNIT + ")", re.I)
_WORDS = {"one": 1, "two": 2, "three": 3, "first": 1, "second": 2, "third": 3}
_WORD = re.compile(r"\b(one|two|three|first|second|third)\b(?!" + _UNIT + ")", re.I)
_ROMAN = re.compile(
    r"\blanes?\s+(I{1,3})\b|第\s*(I{1,3})(?![A-Za-z])|(?<![A-Za-z])(I{1,3})\s*车道", re.I
)
_ZH_NUMERALS = {"一": 1, "二": 2, "两": 2, "三": 3, "1": 1, "2": 2, "3": 3}
_ZH = re.compile(
    r"第\s*([一二两三123])|([一二两三])\s*(?:条|号|根)?\s*车道|车道\s*([一二两三123])(?![0-9])"
)


def _text(text: str) -> str:
    return unicodedata.normalize("NFKC", normalise(text))


def lane_numbers(text: str) -> set[int]:
    """The numbers a rule writes that can count or name a lane (not quantities): "Lane 2
    closed for 3 km, merge one lane left" -> {2, 1}; "左侧车道封闭3公里" -> set();
    "第二条车道关闭" -> {2}; "Lane II closed" -> {2}."""
    t = _text(text)
    got = {int(m.group(1)) for m in _DIGITS.finditer(t)}
    got |= {_WORDS[m.group(1).lower()] for m in _WORD.finditer(t)}
    got |= {len(next(g for g in m.groups() if g)) for m in _ROMAN.finditer(t)}
    got |= {_ZH_NUMERALS[next(g for g in m.groups() if g)] for m in _ZH.finditer(t)}
    return got


def lane_unwritten(text: str, rule_class: str, lane: np.ndarray) -> bool:
    """Whether a rule read as a lane closure names a lane it does not write: the read lane is
    the Nth from one side (L/R N) and N is not among :func:`lane_numbers`, while the rule
    writes another lane number, or (N >= 2) a quantity the number could have come from ("for
    2 km", "for three hours", 三百米); or the read lane is the centre lane and no word of the
    rule names a centre ("Starting 800 m ahead, the left lane is closed" was read as closing
    the centre lane). The first lane from either side is also the leftmost or rightmost, which a
    rule names without a number ("Left lane closed for 2 km" read as L1 is not flagged). On
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
    if read == "C":
        return _CENTRE.search(_text(text)) is None
    if read == "none":
        return False
    n, written = int(read[1:]), lane_numbers(text)
    if n in written:
        return False
    return bool(written) or (n >= 2 and _QUANTITY.search(_text(text)) is not None)


# An exception clause: "except (for) buses", "buses excepted", "other than", "apart from",
# "save for", "aside from", "excluding", "exempt", "unless"; 除公交车外 / 除了 / …除外, 例外,
# 不包括, 不含 (not 解除 "lift", 清除 "clear" and the other verbs ending in 除).
_EXCEPTION = re.compile(
    r"\b(?:except(?:ing|ed|ions?)?|other than|apart from|save for|aside from|excluding|"
    r"exempt(?:ed)?|unless)\b"
    r"|除外|除了|(?<![解清消排拆删免废革扣剔切铲摒祛去根破开])除[^，,。；;：:\s]{1,15}?(?:以外|之外|外)"
    r"|例外|不包括|不含",
    re.I,
)
NOT_BINDING = "not_binding"


def exception_clause(text: str) -> bool:
    """Whether a rule has an exception clause (see the pattern above)."""
    return _EXCEPTION.search(_text(text)) is not None


def excepted_not_binding(text: str, rule_class: str) -> bool:
    """Whether a rule read as binding nobody (``not_binding``) has an exception clause. The rule
    language has no exceptions (a rule binds the vehicles of its scope), so the reader took the
    vehicles an exception names for the rule's scope: an outside probe (forty-seventh session)
    found "Right turn on red permitted after a stop, for all vehicles except trucks over 7.5 t"
    and "Except for buses, ... the speed limit is 50 km/h" read as binding nobody at 0.9-1.0,
    valid=true, the car ignoring the limit. A rule that excepts some vehicles binds the others,
    so the node does not act on that reading (``rules_not_understood``); one that excepts the
    car itself ("No entry except cars") is flagged too (safe). Readings of other classes are
    not checked: the bus lane ("except buses, no vehicle may use the right lane") and the amber
    rule ("stop unless within 15 m") are exceptions the reader was taught. No text of the rule
    language has an exception clause (tests/perception/test_written.py)."""
    return rule_class == NOT_BINDING and exception_clause(text)
