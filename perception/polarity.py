"""The polarity a rule writes by composing negations, against the polarity it was read as.

The reader learned a permission or a prohibition from words, not from how negations compose:
an outside probe (forty-seventh session, docs/examples/wordings-probe10.yaml) found "a ban
denied" read as a ban and "a permission denied twice" read as a permission at 0.9-1.0, with
``valid=true``: the car kept behind on a road where overtaking was allowed, or overtook where
it was not. :func:`polarity_unwritten` counts the negative elements of the clause that names
the action (overtaking, a turn on red) and, when two or more compose there, says whether the
reading's polarity is the other one than their parity gives. The node does not act on such a
reading (``rules_not_understood``), as for a limit or a lane the rule does not write
(perception.readcheck.reading_unwritten).

What counts as a negative element: a negator (not, no, never, nothing, nobody; 不, 没, 无, 非,
未, 勿, 别), a word that forbids or restricts (prohibited, banned, illegal, prevent, refrain,
offence, restriction; 禁, 限制), a word that ends or lifts a restriction ("End of ...", lifted,
cancelled, revoked; 解除, 取消, 结束), a denial of a statement (untrue; 并非 counts by its 非),
a rhetorical "who says" (谁说, 难道), and the action's own opposite where the rule writes it
(waiting for green instead of turning on red, staying behind instead of overtaking).

Only two or more elements in one clause are checked: with none or one the reader reads the
polarity from words, and the count of a single clause can miss a negation in another ("Turning
right on red? Not here."). One element decides where the rule has an exception clause that
names road users (perception.written.without_exceptions; cut out before counting): the rule
language has no exceptions, and the reader took 除…外 for a negation (除警车外，所有车辆禁止超车
read as a permission at 0.97). A condition ("unless", 除非) is not cut and does not count.

So the check is quiet, not exhaustive: it flags readings that a composition of negations
contradicts, and says nothing where the clause does not compose two.
Amber rules (stop or go on, near the line) are not checked: their parity is conditional.
"""

from __future__ import annotations

import re

from perception.written import without_exceptions

__all__ = ["POLAR_KINDS", "negative_elements", "polarity_unwritten", "written_polarity"]

# Rule kinds whose reading is a polarity, and the topic a clause must name to decide it.
POLAR_KINDS = ("overtaking", "turn_on_red")
_TOPIC = {
    "overtaking": re.compile(
        r"\bovertak\w*|\bpass(?:ing|es|ed)?\b|\b(?:go|going|get|getting|went|drive|driving)\s+"
        r"(?:past|by|around)\b|\b(?:stay|stays|remain|remains|keep|keeps)\s+(?:\w+\s+)?behind\b"
        r"|跟(?:在|随)[^，。；]{0,8}?后|超(?![过過]?\s*[\d一二三四五六七八九十百]|速|[过過](?:限|最高|规定))",
        re.I,
    ),
    "turn_on_red": re.compile(r"\bturn\w*|\bright\s+on\s+red\b|右转|右拐|[转轉]弯|红灯右", re.I),
}
# One clause: a negation's scope ends at a clause mark, at a space between Chinese characters
# (a sign's lines) and where the script changes (a bilingual sign says its rule twice: "No
# overtaking 禁止超车" is one prohibition, not two negations).
_CLAUSE = re.compile(
    r"[,;:.!?，。；：！？、…]+|\s[-–—]+\s|——|(?<=[\u3400-\u9fff])\s+(?=[\u3400-\u9fff])"
    r"|(?<=[A-Za-z])\s*(?=[\u3400-\u9fff])|(?<=[\u3400-\u9fff])\s*(?=[A-Za-z])"
)
# A restriction named twice: "no-overtaking restriction", "no passing zone ban", 禁止超车的限制
# are one restriction (lifted or ended, a permission).
_SAME_RESTRICTION = re.compile(
    r"(\bno[- ](?:overtaking|passing|right[- ]turns?|turns?)(?:[- ]on[- ]red)?(?:[- ]zone)?)"
    r"[- ]+(?:restrictions?|bans?|prohibitions?|rules?)\b"
    r"|(禁止?(?:超车|超越|右转)(?:的)?)限制",
    re.I,
)

# English negative elements, each counted once where it occurs.
_EN = re.compile(
    r"\b(?:not|no|never|none|nobody|nothing|neither|nor|nowhere|cannot)\b"
    r"|n['’]t\b"
    # "illegal", "unlawful" as a predicate ("not illegal"), not before the action ("No illegal
    # overtaking" is one prohibition)
    r"|\b(?:illegal|unlawful)(?:ly)?\b(?!\s+(?:overtak|pass|turn|right|u-turn))"
    r"|\b(?:prohibit\w*|forbid\w*|ban|bans|banned|banning|disallow\w*"
    r"|barred|bars|outlaw\w*|impermissible|prevent\w*|refrain\w*|offen[cs]es?|restrict\w*"
    r"|untrue|lifted|cancel\w*|revok\w*|repeal\w*|rescind\w*|ended|ends)\b"
    # "End of ..." as a sign opens its clause; "stops/keeps you from"
    r"|^\s*end\b|\b(?:stop|stops|keep|keeps)\b[^,;:.!?]{0,25}?\bfrom\b"
    r"|\bwho\s+(?:says|said)\b"
    # the action's opposite: waiting for green, staying behind
    r"|\bwait\w*\s+(?:for|until)\s+(?:the\s+)?(?:light\s+(?:turns?|is|goes)\s+)?green\b"
    r"|\b(?:stay|stays|remain|remains|keep|keeps)\s+(?:\w+\s+)?behind\b",
    re.I,
)
# Chinese: a negator character (not inside the words below, which do not negate), a word that
# forbids, restricts, ends or lifts, a rhetorical question, and waiting for green.
_ZH_NOT_NEGATION = re.compile(
    r"不同|不论|不管|不仅|不但|不久|不断|不少|不远|不足|不止|无论|除非|非常|非机动车|是非|未来"
    r"|毫无疑问|无关|并且|不良"
)
_ZH = re.compile(
    r"禁|限制|取消|解除|结束|谁说|难道|等(?:待|候)?绿灯|跟(?:在|随)[^，。；]{0,8}?后"
    # breaking the law as a predicate (并不违法, 不违反任何规定), not before the action
    # (禁止违规超车 is one prohibition)
    r"|违(?:法|反|规|章)(?!\s*(?:超|右转|右拐|转弯))"
    r"|[不没沒无無非未勿别別莫]"
)


def negative_elements(clause: str) -> int:
    """How many negative elements a clause writes (see the module's docstring): "It is not
    true that overtaking is banned" -> 2; 没有不能超车的规定 -> 2; "No overtaking" -> 1."""
    if not clause.strip():
        return 0
    t = _SAME_RESTRICTION.sub(lambda m: m.group(1) or m.group(2), clause)
    t = _ZH_NOT_NEGATION.sub(" ", t)
    return len(_EN.findall(t)) + len(_ZH.findall(t))


def written_polarity(text: str, kind: str) -> str | None:
    """The polarity ("permitted" or "prohibited") that the clauses naming the action of
    ``kind`` (one of :data:`POLAR_KINDS`) compose from two or more negative elements, or None
    when no clause composes two, or when clauses naming the action with one or more negative
    elements disagree ("It's not that I don't want you to overtake; overtaking is banned")."""
    topic = _TOPIC[kind]
    composed: set[str] = set()
    single: set[str] = set()
    text, excepted = without_exceptions(text)
    for clause in _CLAUSE.split(text):
        if not topic.search(clause):
            continue
        n = negative_elements(clause)
        if n:
            (composed if n >= 2 or excepted else single).add("prohibited" if n % 2 else "permitted")
    got = composed | single
    return got.pop() if composed and len(got) == 1 else None


def polarity_unwritten(text: str, rule_class: str) -> bool:
    """Whether a rule read as ``rule_class`` (``overtaking:permitted`` and the like) was read as
    the other polarity than the negations that compose in its text give (:func:`
    written_polarity`): "Nothing prohibits overtaking here" read as a prohibition. Readings of
    other kinds are not checked. No rule text of the rule language read right is flagged, in
    either language, training or held-out families (tests/perception/test_polarity.py)."""
    kind, _, polarity = rule_class.partition(":")
    if kind not in POLAR_KINDS or polarity not in ("permitted", "prohibited"):
        return False
    written = written_polarity(text, kind)
    return written is not None and written != polarity
