"""The polarity a rule writes by composing negations, against the polarity it was read as.

The reader learned a permission or a prohibition from words, not from how negations compose:
an outside probe (forty-seventh session, docs/examples/wordings-probe10.yaml) found "a ban
denied" read as a ban and "a permission denied twice" read as a permission at 0.9-1.0, with
``valid=true``: the car kept behind on a road where overtaking was allowed, or overtook where
it was not. :func:`polarity_unwritten` counts the negative elements of the clause that names
the action (overtaking, a right turn on red) and says whether the reading's polarity is the
other one than their parity gives; :func:`written_class` gives the class the rule writes. The
node checks that class as an alternative reading and answers ``rules_not_understood`` on the
frames it would decide otherwise.

What counts as a negative element: a negator (not, no, never, nothing, nobody; 不, 没, 无, 非,
未, 勿, 别), a word that forbids or restricts (prohibited, banned, illegal, prevent, refrain,
offence, restriction; 禁, 限制), a word that ends or lifts a restriction ("End of ...", lifted,
cancelled, revoked; 解除, 取消, 结束), a denial of a statement (untrue; 并非 counts by its 非),
a rhetorical "who says" (谁说, 难道), and a negated obligation to do the action's opposite
("need not wait for green", "not required to stay behind", 无需等待绿灯: two elements).

Two or more elements in one clause decide. One element, or none with a permission word in the
clause ("may", 可), decides only where nothing can change the count: no condition ("unless",
"after", 除非, 方可), number, warning, penalty or symbol anywhere in the rule, no negation in a
clause that does not name the action ("Turning right on red? Not here."), no action that is the
rule's without a negation (stop, wait, 停), and the clauses agree. A clause that names another
action beside this one decides nothing ("No overtaking no speeding"). An exception clause that
names road users (perception.written.without_exceptions) is cut out before counting: the reader
took 除…外 for a negation (除警车外，所有车辆禁止超车 read as a permission at 0.97).

So the check is quiet, not exhaustive: it says nothing where the count could mislead, and a
wrong count costs a flag on the frames the polarity decides (the reading check's alternative,
perception.readcheck.read_rule_set), never a changed decision. Amber rules (stop or go on,
near the line) are not checked: their parity is conditional.
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
# One clause: a negation's scope ends at a clause mark, and where the script changes (a
# bilingual sign says its rule twice: "No overtaking (禁止超车)" is one prohibition, not two
# negations). A space or a line break between Chinese characters (a sign's lines) is marked as a
# clause break before the rule is read: reading it (rule_encoder.normalise) removes those spaces.
_CLAUSE = re.compile(
    r"[,;:.!?，。；：！？、…]+|\s[-–—]+\s|——|\bbut\b|\bhowever\b|但是?|不过|然而"
    # two negated actions side by side are two clauses ("Do not overtake and do not pass")
    r"|\b(?:and|or)\s+(?=(?:do\s+not|don['’]t|never|no|not)\b)|(?:和|及|并且|而且)(?=[禁不严勿])"
    r"|(?<=[A-Za-z])[^A-Za-z\u3400-\u9fff]*(?=[\u3400-\u9fff])"
    r"|(?<=[\u3400-\u9fff])[^A-Za-z\u3400-\u9fff]*(?=[A-Za-z])"
)
_HAN_GAP = re.compile(r"(?<=[\u3400-\u9fff])\s+(?=[\u3400-\u9fff])|[\r\n]+")
# A restriction named twice: "no-overtaking restriction", "no passing zone ban", 禁止超车的限制
# are one restriction (lifted or ended, a permission).
_SAME_RESTRICTION = re.compile(
    r"(\bno[- ](?:overtaking|passing|right[- ]turns?|turns?)(?:[- ]on[- ]red)?(?:[- ]zone)?)"
    r"[- ]+(?:restrictions?|bans?|prohibitions?|rules?)\b"
    r"|(禁止?(?:超车|超越|右转)(?:的)?)限制",
    re.I,
)
# A negated obligation to do the action's opposite: a permission, two elements ("You need not
# wait for green to turn right", "not required to stay behind", 无需等待绿灯, 不必一直跟在慢车后面).
# The opposite alone ("wait for green", 等绿灯) is not counted: "No right turn on red, wait for
# green" restates the ban.
_NOT_OPPOSITE_EN = re.compile(
    r"(?:\b(?:not|never|no\s+need)\b|n['’]t\b)(?:\s+[\w'’]+){0,4}?\s+(?:wait\w*\s+(?:for|until)\s+"
    r"(?:the\s+)?(?:light\s+(?:turns?|is|goes)\s+)?green|(?:stay|remain|keep)\w*\s+(?:\w+\s+)?"
    r"behind)\b",
    re.I,
)
_NOT_OPPOSITE_ZH = re.compile(
    r"(?:不必|无需|无须|不用|不需要?|没必要)[^，。；]{0,6}?(?:等(?:待|候)?绿灯|跟(?:在|随)[^，。；]{0,8}?后)"
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
    r"|ended|ends)\b"
    # "End of ..." as a sign opens its clause; "stops/keeps you from"
    r"|^\s*end\b|\b(?:stop|stops|keep|keeps)\b[^,;:.!?]{0,25}?\bfrom\b"
    r"|\bwho\s+(?:says|said)\b"
    # "without restriction": the restriction denied (it counts too)
    r"|\bwithout\s+(?:any\s+)?(?=restrict|limit|ban|prohibit)",
    re.I,
)
# Chinese: a negator character (not inside the words below, which do not negate), a word that
# forbids, restricts, ends or lifts, and a rhetorical question.
_ZH_NOT_NEGATION = re.compile(
    r"不同|不论|不管|不仅|不但|不久|不断|不少|不远|不足|不止|无论|除非|非常|非机动车|是非|未来|未经"
    r"|毫无疑问|无关|并且|不良|特别|分别|类别|级别|识别|区别"
    # breaking the law before the action: one prohibition (严禁非法超车, 禁止违规超车)
    r"|(?:非法|违法|违规|违章)(?=\s*(?:超|右转|右拐|转弯))"
)
_ZH = re.compile(
    r"禁|限制|管制|取消|解除|结束|撤销|废止|暂停|谁说|难道"
    # breaking the law as a predicate: 并不违法, 不违反任何规定, 并非非法
    r"|违(?:法|反|规|章)|非法"
    r"|[不没沒无無非未勿别別莫]"
)
# Words that bring the action's scope to an end or give a purpose: what follows is not the
# action's negation ("No overtaking until the end of the restriction", "to prevent accidents").
_SCOPE_END = re.compile(
    r"\b(?:until|till|to\s+(?:prevent|avoid)|so\s+as\s+to|in\s+order\s+to)\b.*", re.I
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
    pairs = len(_NOT_OPPOSITE_EN.findall(t)) + len(_NOT_OPPOSITE_ZH.findall(t))
    t = _SCOPE_END.sub(" ", _NOT_OPPOSITE_ZH.sub(" ", _NOT_OPPOSITE_EN.sub(" ", t)))
    return 2 * pairs + len(_EN.findall(t)) + len(_ZH.findall(t))


# Where one element or none cannot decide, anywhere in the rule: a condition (a single negation
# may be the condition's: "No turn on red unless stopped" permits a turn after a stop), a
# number ("Overtakes allowed: zero", 红灯右转：0次允许), a warning or a penalty (the rule's
# force without a negation: "Overtaking is punishable", 超车扣分), or a symbol (🚫超车).
_CONDITION = re.compile(
    r"\b(?:unless|only|provided|until|if|when|whenever|where|once|while|as long as|after|before"
    r"|even|means?|between|green|danger\w*|unsafe|hazard\w*|fines?|fined|penal\w*|punish\w*"
    r"|against|offen[cs]e)\b|意味|即"
    r"|除非|只有|只要|否则|方可|才|如|若|之前|以前|等到|直到|绿灯|未经|危险|罚|扣分|处罚|违者"
    r"|\d|\bzero\b|\bnil\b|零|〇"
    r"|[^\w\s,;:.!?，。；：！？、…'’\"“”()（）\-–—/]",
    re.I,
)
# ... or an action that can be the rule's without a negation ("右转车辆红灯停": stop at red, a
# prohibition of the turn; "Give way to overtaking traffic").
_ACTS = {
    "overtaking": re.compile(r"\b(?:stay|keep|remain|give\s+way|yield|wait)\b|让|等|跟", re.I),
    "turn_on_red": re.compile(r"\b(?:stop\w*|halt\w*|wait\w*|stay|remain)\b|停|等|候", re.I),
}
# ... or another action beside the topic in one clause: its negation is not the topic's ("No
# overtaking no speeding", 禁止红灯右转禁止掉头). A clause that names one decides nothing.
_OTHER_ACTION = {
    "overtaking": re.compile(
        # (not "stops you from": a negation of the topic)
        r"\b(?:speed\w*|u-?turns?|turn\w*|park\w*|stop\w*(?![^,;.]{0,25}\bfrom\b)|horn|hoot\w*"
        r"|honk\w*|entry|enter\w*"
        r"|revers\w*|tailgat\w*|lane\s+chang\w*|chang\w*\s+lanes?|overload\w*)\b"
        r"|超速|超载|掉头|调头|停车|停放|鸣笛|鸣喇叭|驶入|进入|倒车|右转|左转|转弯|变道|压线|占道",
        re.I,
    ),
    "turn_on_red": re.compile(
        r"\b(?:u-?turns?|left\s+turns?|turn\w*\s+left|overtak\w*|speed\w*|park\w*|horn|entry|"
        r"enter\w*|revers\w*)\b|掉头|调头|左转|超车|超速|停放|鸣笛|驶入|进入|倒车|直行",
        re.I,
    ),
}
# The permission written out, for a clause with no negative element to decide: a clause that
# only names the action ("Overtaking lane closed", 超车扣分) says nothing of its polarity.
_PERMISSION = re.compile(
    r"\b(?:permit\w*|allow\w*|may|can|free\s+to|legal\w*|lawful\w*|authori[sz]ed|permissible)\b"
    r"|允许|可以|准许|可|准予|能",
    re.I,
)


def written_polarity(text: str, kind: str) -> str | None:
    """The polarity ("permitted" or "prohibited") that the clauses naming the action of
    ``kind`` (one of :data:`POLAR_KINDS`) write, or None when nothing decides. A clause
    that composes two or more negative elements decides. Where none does, one element (or
    none, with a permission word) decides only if nothing can change the count: no condition,
    number, warning, penalty or symbol in the rule, no negation in a clause that does not name
    the action, no action that is the rule's without a negation (stop, wait). An exception
    clause that names road users is cut out first. Clauses that disagree, or a clause that
    names another action beside this one, decide nothing ("It's not that I don't want you to
    overtake; overtaking is banned"; "No overtaking no speeding")."""
    topic, other = _TOPIC[kind], _OTHER_ACTION[kind]
    composed: set[str] = set()
    single: set[str] = set()
    bare: set[str] = set()  # clauses with no negative element that write the permission
    text, _ = without_exceptions(_HAN_GAP.sub("；", text))
    elsewhere = 0  # negative elements in clauses that do not name the action
    for clause in _CLAUSE.split(text):
        n = negative_elements(clause)
        if not topic.search(clause):
            elsewhere += n
            continue
        if other.search(clause):
            return None
        parity = "prohibited" if n % 2 else "permitted"
        if n >= 2:
            composed.add(parity)
        elif n:
            single.add(parity)
        elif _PERMISSION.search(clause):
            bare.add(parity)
    if composed:
        got = composed | single
        return got.pop() if len(got) == 1 else None
    if elsewhere or _CONDITION.search(text) or _ACTS[kind].search(text):
        return None
    got = single | bare
    return got.pop() if len(got) == 1 else None


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
