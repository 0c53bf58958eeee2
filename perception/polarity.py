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

from perception.written import as_read, without_exceptions

__all__ = [
    "POLAR_KINDS",
    "negative_elements",
    "polarity_unwritten",
    "written_class",
    "written_polarity",
]

# Rule kinds whose reading is a polarity, and the topic a clause must name to decide it.
POLAR_KINDS = ("overtaking", "turn_on_red")
_TOPIC = {
    "overtaking": re.compile(
        r"\bovertak\w*|\bpass(?:ing|es|ed)?\b|\b(?:go|going|get|getting|went|drive|driving)\s+"
        r"(?:past|by|around)\b|\b(?:stay|stays|remain|remains|keep|keeps)\s+(?:\w+\s+)?behind\b"
        r"|跟(?:在|随)[^，。；]{0,8}?后"
        # 超 for overtaking, not in 超速 (speeding), 超载 (overloading) and the like, nor 超过 a
        # number
        r"|超(?![过過]?\s*[\d一二三四五六七八九十百]|速|载|高|宽|限|员|标|长|重|市|[过過](?:限|最高|规定))",
        re.I,
    ),
    # a right turn or a turn on red, not a U-turn or a left turn
    "turn_on_red": re.compile(
        r"\bturn\w*\s+(?:right|on\s+red)|\bright(?:-hand)?[\s-]+turn|\bright\s+on\s+red\b"
        r"|右转|右拐|红灯右",
        re.I,
    ),
}
# The action named unmistakably, for a rule read as binding nobody: "pass" is also a mountain
# pass and letting traffic pass.
_NAMED = {
    "overtaking": re.compile(r"\bovertak\w*|\bno[- ]passing\b|超车|超越", re.I),
    "turn_on_red": _TOPIC["turn_on_red"],
}
# One clause: a negation's scope ends at a clause mark, at a space between Chinese characters
# (a sign's lines) and where the script changes (a bilingual sign says its rule twice: "No
# overtaking 禁止超车" is one prohibition, not two negations).
_CLAUSE = re.compile(
    r"[,;:.!?，。；：！？、…]+|\s[-–—]+\s|——|(?<=[\u3400-\u9fff])\s+(?=[\u3400-\u9fff])"
    r"|\bbut\b|\bhowever\b|但是?|不过|然而"
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
    r"|\b(?:prohibit\w*|forbid\w*|ban|bans|banned|banning|disallow\w*|embargo\w*"
    r"|barred|bars|outlaw\w*|impermissible|prevent\w*|refrain\w*|offen[cs]es?|restrict\w*"
    r"|untrue|lifted|cancel\w*|revok\w*|repeal\w*|rescind\w*|withdrawn|withdraw\w*|suspend\w*"
    r"|ended|ends"
    # a penalty or a danger: what is not to be done
    r"|fines|fined|a\s+fine|penalt\w*|danger\w*|unsafe|hazard\w*)\b"
    # "End of ..." as a sign opens its clause; "stops/keeps you from"
    r"|^\s*end\b|\b(?:stop|stops|keep|keeps)\b[^,;:.!?]{0,25}?\bfrom\b"
    r"|\bwho\s+(?:says|said)\b"
    # "without restriction": the restriction denied (it counts too)
    r"|\bwithout\s+(?:any\s+)?(?=restrict|limit|ban|prohibit)"
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
    r"禁|限制|管制|取消|解除|结束|撤销|废止|暂停|谁说|难道|罚|危险|等(?:待|候)?绿灯|跟(?:在|随)[^，。；]{0,8}?后"
    # breaking the law as a predicate (并不违法, 不违反任何规定), not before the action
    # (禁止违规超车 is one prohibition)
    r"|违(?:法|反|规|章)(?!\s*(?:超|右转|右拐|转弯))"
    r"|[不没沒无無非未勿别別莫]"
)


# The name of a sign that ends or starts a restriction: a place, not a negation ("between this
# sign and the end-of-restriction sign").
_SIGN_NAME = re.compile(r"\b(?:end|start)[- ]of[- ][\w-]+\s+signs?\b", re.I)


def negative_elements(clause: str) -> int:
    """How many negative elements a clause writes (see the module's docstring): "It is not
    true that overtaking is banned" -> 2; 没有不能超车的规定 -> 2; "No overtaking" -> 1."""
    if not clause.strip():
        return 0
    t = _SAME_RESTRICTION.sub(lambda m: m.group(1) or m.group(2), _SIGN_NAME.sub(" ", clause))
    t = _ZH_NOT_NEGATION.sub(" ", t)
    return len(_EN.findall(t)) + len(_ZH.findall(t))


# A condition anywhere in the rule: a single negation may be the condition's ("No turn on red
# unless stopped" permits a turn after a stop), so one element decides nothing.
_CONDITION = re.compile(
    r"\b(?:unless|only|provided|until|if|when|whenever|where|once|while|as long as|after|before"
    r"|even|means?|between|green)\b|意味|即"
    r"|除非|只有|只要|否则|方可|才|如果|若|之前|以前|等到|直到|绿灯"
    # ... or a number: "Overtakes allowed: zero", 红灯右转：0次允许
    r"|\d|\bzero\b|\bnil\b|零|〇",
    re.I,
)
SINGLE = True
# ... or an action that can be the rule's without a negation ("右转车辆红灯停": stop at red, a
# prohibition of the turn; "Give way to overtaking traffic").
_ACTS = {
    "overtaking": re.compile(r"\b(?:stay|keep|remain|give\s+way|yield|wait)\b|让|等|跟", re.I),
    "turn_on_red": re.compile(r"\b(?:stop\w*|halt\w*|wait\w*|stay|remain)\b|停|等|候", re.I),
}


def written_polarity(text: str, kind: str) -> str | None:
    """The polarity ("permitted" or "prohibited") that the clauses naming the action of
    ``kind`` (one of :data:`POLAR_KINDS`) compose from two or more negative elements, or None
    when no clause composes two, or when clauses naming the action with one or more negative
    elements disagree ("It's not that I don't want you to overtake; overtaking is banned")."""
    topic = _TOPIC[kind]
    composed: set[str] = set()
    single: set[str] = set()
    bare: set[str] = set()  # topic clauses without a negative element
    text, excepted = without_exceptions(text)
    elsewhere = 0  # negative elements in clauses that do not name the action
    for clause in _CLAUSE.split(text):
        n = negative_elements(clause)
        if not topic.search(clause):
            elsewhere += n
            continue
        parity = "prohibited" if n % 2 else "permitted"
        (composed if n >= 2 else single if n else bare).add(parity)
    if composed:
        got = composed | single
        return got.pop() if len(got) == 1 else None
    if excepted or (
        SINGLE and not elsewhere and not _CONDITION.search(text) and not _ACTS[kind].search(text)
    ):
        got = single | (bare if SINGLE else set())
        return got.pop() if len(got) == 1 and (single or not excepted) else None
    return None


# Road users other than a car that a rule can be for: a rule that names one may truly bind
# nobody the car is ("Trucks over 7.5 t: overtaking no longer banned").
_OTHER_USERS = re.compile(
    r"\b(?:trucks?|lorr(?:y|ies)|hgvs?|lgvs?|goods\s+vehicles?|vans?|bus(?:es)?|coach(?:es)?"
    r"|cycl\w*|bicycl\w*|bikes?|motor(?:cycl|bik)\w*|mopeds?|scooters?|tractors?|trailers?"
    r"|taxis?|cabs?|ambulances?|police|emergency|fire\s+engines?|pedestrians?|learners?"
    r"|tonnes?|\d+(?:\.\d+)?\s*t)\b"
    r"|货车|货运|卡车|客车|客运|公交|公共汽车|大巴|大车|摩托|自行车|非机动车|电动车|三轮|拖拉机|出租"
    r"|救护|消防|警车"
    r"|特种|工程车|教练车|行人|吨",
    re.I,
)


def written_class(text: str, rule_class: str) -> str | None:
    """The class (``overtaking:permitted`` and the like) the negations of a rule write, where
    its reading ``rule_class`` is another: the other polarity of a permission or a
    prohibition (:func:`written_polarity`); or, for a rule read as binding nobody
    (``not_binding``) that names overtaking or a turn on red and no road user but cars
    (:data:`_OTHER_USERS`), the polarity it writes ("No rule forbids a right turn on red here"
    was read as binding nobody at 0.97). None where the reading agrees or nothing decides."""
    kind, _, polarity = rule_class.partition(":")
    if kind in POLAR_KINDS and polarity in ("permitted", "prohibited"):
        written = written_polarity(text, kind)
        return None if written in (None, polarity) else f"{kind}:{written}"
    if rule_class != "not_binding" or _OTHER_USERS.search(as_read(text)):
        return None
    found = {
        f"{k}:{w}"
        for k in POLAR_KINDS
        if _NAMED[k].search(as_read(text)) and (w := written_polarity(text, k)) is not None
    }
    return found.pop() if len(found) == 1 else None


def polarity_unwritten(text: str, rule_class: str) -> bool:
    """Whether a rule read as ``rule_class`` (``overtaking:permitted`` and the like) was read as
    the other polarity than the negations that compose in its text give (:func:`
    written_polarity`): "Nothing prohibits overtaking here" read as a prohibition. Readings of
    other kinds are not checked. No rule text of the rule language read right is flagged, in
    either language, training or held-out families (tests/perception/test_polarity.py)."""
    return written_class(text, rule_class) is not None
