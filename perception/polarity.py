"""The polarity a rule writes by composing negations, against the polarity it was read as.

The reader learned a permission or a prohibition from words, not from how negations compose:
an outside probe (forty-seventh session, docs/examples/wordings-probe10.yaml) found "a ban
denied" read as a ban and "a permission denied twice" read as a permission at 0.9-1.0, with
``valid=true``: the car kept behind on a road where overtaking was allowed, or overtook where
it was not. :func:`written_class` gives the class a rule's words write where its reading is
another, and the node checks that class as an alternative reading: ``rules_not_understood`` on
the frames it would decide otherwise (perception.readcheck.read_rule_set), never a changed
decision; except where the reader itself is split between the two polarities (its top class
below the check's threshold, its runner-up the other polarity) and the words write the
prohibition: there the rule is read as the prohibition (perception.readcheck.agreed).

What it reads, per clause that names overtaking or a right turn on red:
- a permission written as a restriction denied, lifted or ended, matched as a whole
  construction: "not prohibited", "no longer banned", "no limit on", "no rule forbids",
  "nothing stops you from", "ban lifted", "End of no overtaking zone", "who says you can't",
  "need not wait for green"; 不禁止, 并未禁止, 不违法, 不受限制, 不受信号灯控制, 解除禁止,
  禁止超车路段结束, 谁说不能, 无需等待绿灯. It decides "permitted" when no other negation
  stands beside it and no clause naming the action writes one;
- a rule with no negation at all that writes the permission ("may", 可);
- one negation of the action in every clause that names it: a prohibition ("No overtaking",
  禁止超车), also once an exception clause that names road users is cut out (the reader took
  除…外 for a negation: 除警车外，所有车辆禁止超车 read as a permission at 0.97; 本路段禁止超车，
  违者罚款200元 read as a permission at 0.54, forty-ninth session).
A lifting denied or still to come (尚未解除, 即将取消, "hasn't been lifted", "will be lifted") is
no lifting; a ban or permission no longer in force ("is over", expired, 作废, 停止执行), a ban of
the past, and encouragement ("no problem", 别犹豫) are read as neither; "not a violation" and
不属于闯红灯 are permissions; a rule whose exception names the car itself (除小客车外，禁止超车) is
not read (two adversarial reviews of the split-polarity reading, fiftieth session). A
permission is read generously, under a condition, a question or a claim too: it is only ever a
check that refuses a ban where it would decide otherwise (perception.readcheck.agreed settles
a split reading on a ban only).
The last two decide only where nothing could change them: no condition ("unless", "after",
除非, 方可), number, warning or symbol in the rule, no negation in another clause, no action
that is the rule's without a negation (stop, wait, 停), and for the permission no penalty; a
prohibition's penalty clause (违者罚款200元, "Offenders will be fined") is its force, not a
condition. A clause that names another action beside this one decides nothing ("No overtaking
no speeding", 禁止红灯右转禁止掉头).

The first version counted negative words per clause and took their parity; a review of it on
479 realistic sign texts read right found 177 flagged ("No overtaking no passing", 视线不清禁止
超车, "Do not overtake if you cannot see the road ahead"): a second negation in a sign is far
more often another restriction, a condition or a state than a composition. Matching whole
constructions flags 1 of the 479 (小型汽车不受禁止超车限制 read as binding nobody, arguably a
permission for a car). It stays quiet, not exhaustive: a triple negation, a lifting in another
sentence (禁止超车：已解除), a permission with a condition, and every amber rule (its polarity is
conditional) are the reader's alone.
"""

from __future__ import annotations

import functools
import re

from perception.binding import CAR_EXCEPTED, names_other_users
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
# A permission written as a restriction denied, lifted or ended: the constructions that
# compose two negations into a permission, each matched whole, so that a second negation
# elsewhere in the sign ("No overtaking no passing", "视线不清禁止超车", "Do not overtake if you
# cannot see") is never taken for one. A second review found a count of negative words per
# clause (the first version of this module) flagging 177 of 479 realistic sign texts read right.
_PROHIB_EN = (
    r"(?:prohibit\w*|forbid\w*|ban|bans|banned|illegal|unlawful|restrict\w*|barred|disallowed|"
    r"outlawed|limit(?:s|ed)?|(?:an\s+)?offen[cs]e|against\s+the\s+(?:law|rules)|"
    r"(?:an?\s+)?(?:violation|infringement|breach)|unauthori[sz]ed)"
)
_AUX_EN = (
    r"(?:\s+(?:is|are|be|been|being|was|were|any|a|the|longer|more|this|that|such|legally|"
    r"currently|considered|deemed|at\s+all))*"
)
# Words that deny a lifting or put it in the future: "the ban has not been lifted", "will be
# lifted", 尚未解除, 即将取消, 待撤销 (an adversarial review of the split-polarity reading, fiftieth
# session: 超车禁令尚未取消 and "Right turn on red ban hasn't been lifted" were read as
# permissions).
_NOT_YET_ZH = r"尚|暂|未|没|沒|还|即将|将|待|拟|不|仍|计划|预计"
# ... and the characters that deny or defer a lifting word right before it (未解除, 将取消)
_NOT_YET_BEFORE = "未没沒将待拟有会"
_NOT_YET_EN = (
    r"(?![\w'’-]*n['’]t\b|(?:not|never|yet|soon|still|will|shall|would|could|may|might|to|be"
    r"|expected|planned|scheduled|going|set|due|about|pending|hardly)\b)"
)
_LIFTED_EN = (
    r"\bend\s+of\s+(?:the\s+)?(?:no[- ]\w+(?:[- ]on[- ]red)?(?:[- ](?:zone|section|restriction))?"
    r"|(?:overtaking|passing|turn\w*)\s+(?:ban|restriction|prohibition)s?)"
    r"|\b(?:ban|bans|prohibition|prohibitions|restriction|restrictions)\b"
    r"(?:\s+" + _NOT_YET_EN + r"[\w'’-]+){0,6}?\s+"
    r"(?:(?:has|have)\s+been\s+|is\s+|are\s+|was\s+|were\s+)?(?:lifted|ended|cancel+ed|revoked|"
    r"repealed|rescinded|withdrawn|suspended|removed)\b"
    r"|\bno[- ](?:overtaking|passing|right[- ]turns?|turns?)(?:[- ]on[- ]red)?[- ](?:zone|section|"
    r"restriction|rule|ban)s?\b(?:\s+" + _NOT_YET_EN + r"[\w'’-]+){0,6}?\s+"
    r"(?:ends|ended|lifted|cancel+ed|revoked|removed|withdrawn|suspended)\b"
    # leaving the zone of a ban: "You are now leaving the no overtaking zone"
    r"|\b(?:leaving|exiting|left|exited)\s+(?:the\s+)?no[- ](?:overtaking|passing|right[- ]turns?"
    r"|turns?)(?:[- ]on[- ]red)?[- ](?:zone|section|area|stretch)\b"
)
_PERMITS_EN = re.compile(
    # "not prohibited", "no longer banned", "isn't illegal", "no ban", "no limit on", "without
    # restriction"
    r"(?:\b(?:not|no|never|without)\b|n['’]t\b)" + _AUX_EN + r"\s+" + _PROHIB_EN + r"\b"
    # "no rule prevents", "nothing forbids", "nothing stops you from"
    r"|\b(?:nothing|nobody|no\s+(?:rule|law|regulation|sign|one|signs|rules|laws|regulations))\s+"
    r"(?:here\s+|now\s+)?(?:prevents?|forbids?|prohibits?|bans?|restricts?|stops?)\b"
    # "who says you can't"
    r"|\bwho\s+(?:says|said)\s+(?:you|drivers?|cars?|we|one)\s+(?:can['’]?t|cannot|may\s+not|"
    r"must\s+not|mustn['’]t|are\s+not\s+allowed)"
    # "it is not true that ... banned"
    r"|\bnot\s+(?:true|the\s+case)\s+that\b[^,;.]*\b" + _PROHIB_EN + r"\b"
    r"|" + _LIFTED_EN,
    re.I,
)
_PERMITS_ZH = re.compile(
    # 不禁止, 没有禁止, 并未禁止, 不再禁止, 不违法, 不受限制, 不受信号灯控制, 无任何限制
    r"(?:不|没有?|并未|并不|未|无|非|并非|不再)(?:被|再|曾|会|是|得|任何|算|属于?|构成)?"
    r"(?:禁|限制|管制|违法|违反|违章|违规|闯红灯|闯灯)"
    r"|不受[^，。；？！]{0,5}?(?:限制|控制|约束|管制|限)|(?:没有|无)[^，。；？！]{0,4}?(?:限制|禁令)"
    # 超车不限 ("overtaking unrestricted"), not 不限速 or 不限高 (no limit of something else)
    r"|不限(?![速高宽重长时行号])"
    # 解除禁止, 取消限制; 禁止超车路段结束, 禁令已取消, 限制到此解除
    # (not a lifting denied or still to come: 尚未解除, 并未取消, 没取消, 即将解除, 待解除)
    r"|(?<![" + _NOT_YET_BEFORE + r"不])解禁(?![前后时]|期间)"
    r"|(?<![" + _NOT_YET_BEFORE + r"])(?:解除|取消|撤销|废止)(?![前后时]|期间)[^，。；？！]{0,3}?"
    r"(?:禁|限制|管制)"
    r"|(?:禁止?|限制|管制|禁令)(?:(?!" + _NOT_YET_ZH + r")[^，。；？！]){0,8}?"
    r"(?<![" + _NOT_YET_BEFORE + r"])(?:解除|取消|撤销|废止|结束)(?![前后时]|期间)"
    # leaving the zone of a ban: 已驶出禁止超车路段, 离开禁止超车区域
    r"|(?<![" + _NOT_YET_BEFORE + r"])(?:驶出|驶离|离开|出了)[^，。；？！]{0,3}?(?:禁止?|限制)"
    r"[^，。；？！]{0,6}?(?:路段|区域|区间|地段|范围)"
    # 谁说不能, 并非不能, 不是不可以
    r"|谁说[^，。；？！]{0,6}?(?:不能|不可以?|不准|不许|不让|禁)"
    r"|(?:没有|无)(?:任何)?(?:规定|法规|规则|标志|条文)[^，。；？！]{0,2}?(?:禁|限制)"
    r"|(?:并非|不是|没说|没有说)[^，。；？！]{0,2}?(?:不能|不可以?|不准|不许|不行|不允许|禁)"
)
# A negated obligation to do the action's opposite: a permission ("You need not wait for green
# to turn right", "not required to stay behind", 无需等待绿灯, 不必一直跟在慢车后面).
_NOT_OPPOSITE_EN = re.compile(
    r"(?:\b(?:not|never|no\s+need)\b|n['’]t\b)(?:\s+[\w'’]+){0,4}?\s+(?:wait\w*\s+(?:for|until)\s+"
    r"(?:the\s+)?(?:light\s+(?:turns?|is|goes)\s+)?green|(?:stay|remain|keep)\w*\s+(?:\w+\s+)?"
    r"behind)\b",
    re.I,
)
_NOT_OPPOSITE_ZH = re.compile(
    r"(?:不必|无需|无须|不用|不需要?|没必要)[^，。；]{0,6}?(?:等(?:待|候)?绿灯|跟(?:在|随)[^，。；]{0,8}?后)"
)
# Any negation or restriction left: with one beside a permitting construction, or with no
# construction, the clause's polarity is not read here.
_NEGATION = re.compile(
    r"\b(?:not|no|never|none|nobody|nothing|neither|nor|nowhere|cannot|without|prohibit\w*|"
    r"forbid\w*|"
    r"ban|bans|banned|illegal\w*|unlawful\w*|restrict\w*|barred|disallow\w*|outlaw\w*|"
    r"prevent\w*|refrain\w*|offen[cs]es?|limit\w*|lifted|ended|ends|cancel\w*|revok\w*|end)\b"
    r"|n['’]t\b|[不没沒无無非未勿别別莫禁]|限制|管制|取消|解除|结束|撤销|违法|违章|违规",
    re.I,
)


# Words with a negator character that do not negate (不同 "different", 特别 "especially", 非常
# "very", 未来 "future", 非机动车 "non-motor vehicles", 别的 "other") and conditions that hold one
# (除非 "unless", 未经 "without").
_NOT_NEGATION = re.compile(
    r"不同|不论|不管|不仅|不但|不久|不断|不少|不远|不足|不止|无论|除非|非常|非机动车|是非|未来|未经"
    r"|毫无疑问|无关|不良|特别|分别|类别|级别|识别|区别|别的|\bno\.\s*\d"
)


def negative_elements(clause: str) -> int:
    """How many negations and restrictions a clause writes, a permitting construction (a
    restriction denied, lifted or ended) counted as one: "Overtaking is not banned" -> 1;
    "No overtaking no passing" -> 2; 本路段没有超车限制 -> 1; "Overtaking permitted" -> 0."""
    t, n = _permits(clause)
    return n + _negations(t)


def _negations(text: str) -> int:
    """How many negations and restrictions a text writes outside its permitting constructions
    (words such as 不同 and 特别 aside)."""
    return len(_NEGATION.findall(_NOT_NEGATION.sub(" ", text)))


def _read(text: str) -> str:
    """A rule as its clauses are split: as read (perception.written.as_read), with the sign
    lines that reading runs together (a space or line break between hanzi) marked first."""
    return as_read(_HAN_GAP.sub("；", text))


def _permits(clause: str) -> tuple[str, int]:
    """A clause with its permitting constructions cut out, and how many there were."""
    n = 0
    for pattern in (_NOT_OPPOSITE_EN, _NOT_OPPOSITE_ZH, _PERMITS_EN, _PERMITS_ZH):
        clause, k = pattern.subn(" ", clause)
        n += k
    return clause, n


# Where a rule without a permitting construction cannot be read here, anywhere in it: a
# condition (a single negation may be the condition's: "No turn on red unless stopped"
# permits a turn after a stop), a number ("Overtakes allowed: zero", 红灯右转：0次允许), a warning
# or a penalty (the rule's force without a negation: "Overtaking is punishable", 超车扣分), or a
# symbol (🚫超车).
_CONDITION = re.compile(
    r"\b(?:unless|only|provided|until|if|when|whenever|where|once|while|as long as|after|before"
    r"|even|means?|between|green|danger\w*|unsafe|hazard\w*|fines?|fined|penal\w*|punish\w*"
    r"|against|offen[cs]e)\b|意味|即"
    r"|除非|只有|只要|否则|方可|才|如|若|之前|以前|等到|直到|绿灯|未经|危险|罚|扣分|处罚|违者|时段|高峰"
    r"|工作日|期间|\d|\bzero\b|\bnil\b|零|〇"
    r"|[^\w\s,;:.!?，。；：！？、…'’\"“”()（）\-–—/]",
    re.I,
)
# A rule of the past, not of now ("Formerly: no overtaking", 这里过去禁止超车), a translation or a
# "whether": no ban is read from it (:data:`_NOT_A_BAN`; a permission is read generously).
_PAST = (
    r"\b(?:used\s+to|formerly|previously|back\s+in\s+the\s+day|once\s+was|in\s+the\s+past"
    r"|years?\s+ago|no\s+longer\s+the\s+case|historic(?:al)?|last\s+(?:year|month|week)"
    r"|translat\w*|whether)\b|原来|原先|过去|以往|一度|曾经|早些年|早年|当年|此前|翻译"
)
# ... or an action that can be the rule's without a negation ("右转车辆红灯停": stop at red, a
# prohibition of the turn; "Give way to overtaking traffic").
_ACTS = {
    "overtaking": re.compile(r"\b(?:stay|keep|remain|give\s+way|yield|wait)\b|让|等|跟", re.I),
    "turn_on_red": re.compile(r"\b(?:stop\w*|halt\w*|wait\w*|stay|remain)\b|停|等|候", re.I),
}
# ... or another action beside the topic in one clause: a clause that names one decides
# nothing ("Overtaking allowed, no parking" in one line; 红灯可以右转禁止掉头).
_OTHER_ACTION = {
    "overtaking": re.compile(
        r"\b(?:speed\w*|u-?turns?|turn\w*|park\w*|stop(?:s|ping)?(?![^,;.]{0,25}\bfrom\b)|horn|"
        r"hoot\w*|honk\w*|entry|enter\w*|revers\w*|tailgat\w*|lane\s+chang\w*|chang\w*\s+lanes?|"
        r"overload\w*|cut\w*\s+in|litter\w*)\b"
        r"|超速|超载|掉头|调头|停车|停放|禁停|鸣笛|禁鸣|鸣喇叭|驶入|进入|倒车|右转|左转|转弯|变道|并线|"
        r"加塞|逆行|越线|压线|占道|占用",
        re.I,
    ),
    "turn_on_red": re.compile(
        r"\b(?:u-?turns?|left\s+turns?|turn\w*\s+left|overtak\w*|speed\w*|park\w*|horn|honk\w*|"
        r"entry|enter\w*|revers\w*|block\w*)\b|掉头|调头|左转|超车|超速|停放|禁停|鸣笛|禁鸣|驶入|"
        r"进入|倒车|直行|变道|抢行",
        re.I,
    ),
}
# The permission written out, for a rule with no negation at all: a clause that only names
# the action ("Overtaking lane closed", 超车扣分) says nothing of its polarity.
_PERMISSION = re.compile(
    r"\b(?:permit\w*|allow\w*|may|can|free\s+to|legal\w*|lawful\w*|authori[sz]ed|permissible)\b"
    r"|允许|可以|准许|可|准予|能",
    re.I,
)
# A restriction lifted or a clause of its own that an exception cut can eat ("禁止超车解除（货车
# 除外）"): with one in the rule, its exception is not cut.
# Also a ban or a permission no longer in force, in words outside the permitting constructions
# ("The overtaking prohibition is over", "has expired", 已失效, 已停止执行; the second review of
# the split-polarity reading, fiftieth session): neither polarity is read from the rest.
_LIFTING = re.compile(
    r"解除|取消|撤销|废止|结束|废除|失效|作废|撤掉|拿掉|撤下|停止(?:执行|实施)|成为历史|过去式|已成过去"
    r"|过期|收回|撤回|暂停|中止|终止|叫停|下线|放宽|解禁|暂缓|作古|废弃"
    r"|\b(?:lifted|ended|ends|end|cancel\w*|revok\w*|over|expired?|scrapped|abolish\w*|dropped"
    r"|overturned|struck\s+down|taken\s+down|history|gone|thing\s+of\s+the\s+past|withdrawn"
    r"|suspended|rescinded|repealed|void|no\s+longer\s+(?:valid|in\s+force|applies)|waived"
    r"|relaxed|axed|deactivated|switched\s+off|undone|paused|eased|inactive|not\s+in\s+force)\b",
    re.I,
)


def _composed(text: str, kind: str) -> str | None:
    """The polarity the clauses naming the action of ``kind`` compose (see
    :func:`written_polarity`, which guards it), or None."""
    topic, other = _TOPIC[kind], _OTHER_ACTION[kind]
    text = _read(text)
    permitted = rest = named = False
    elsewhere = 0  # negations in clauses that do not name the action, constructions aside
    lifted_elsewhere = False  # "Overtaking: not banned", 红灯右转：不禁止
    for clause in _CLAUSE.split(text):
        cut, k = _permits(clause)
        n = _negations(cut)
        if not topic.search(clause):
            elsewhere += n
            lifted_elsewhere |= bool(k)
            continue
        named = True
        if other.search(cut):
            return None
        if k and n:
            return None  # a permitting construction beside another negation: not read here
        permitted |= bool(k)
        rest |= bool(n)
    if not named:
        return None
    if permitted or (lifted_elsewhere and not rest):
        # generous: a permission under a condition or a doubt is still read, since it is only
        # ever a check (perception.readcheck.agreed never settles a reading on a permission)
        return None if rest or elsewhere else "permitted"
    if rest:
        return _prohibition(text, kind)
    if (
        elsewhere
        or _CONDITION.search(text)
        or _ACTS[kind].search(text)
        or _LIFTING.search(text)  # a permission withdrawn (允许超车的规定已停止执行)
    ):
        return None
    has = any(topic.search(c) and _PERMISSION.search(c) for c in _CLAUSE.split(text))
    return "permitted" if has else None


def written_polarity(text: str, kind: str) -> str | None:
    """The polarity ("permitted" or "prohibited") the clauses naming the action of ``kind``
    (one of :data:`POLAR_KINDS`) write, or None when this module does not read it.
    "permitted": a clause writes a restriction denied, lifted or ended ("not prohibited", "no
    rule forbids", "ban lifted", "End of no overtaking zone", 不禁止, 不受限制, 解除禁止, "need not
    wait for green") with no other negation beside it, and no clause naming the action writes a
    negation otherwise. Where no clause does, a rule with no negation at all that writes the
    permission ("may", 可), or one whose exception clause (除…外, "except police cars") is cut out
    leaving one prohibition, decides only if nothing else can change it: no condition, number,
    warning, penalty or symbol, no action that is the rule's without a negation (stop, wait),
    no negation in another clause. A clause that names another action beside this one decides
    nothing ("No overtaking no speeding").

    Guards, from a second review (forty-ninth session, 326 adversarial texts): a rule that
    names another road user once its exceptions are cut (perception.binding.names_other_users:
    "Trucks: no overtaking") is not read here; a light or a restriction that does not bind the
    action ("Right turn not signal controlled", 右转不受灯控, 超车不再受限) is a permission where
    nothing else negates; a ban "until" its end (禁止超车直到限制结束) is not read; lanes named
    for overtaking (超车道, "No overtaking lane ahead") and being overtaken are no overtaking;
    "prohibited" is not read where the topic word has another sense ("Do not drive around the
    barrier", 请勿超出停止线), under a time, weather or past condition, an advisory ("Overtaking
    not advised", 不宜超车), a manner ("on the left", 实线), an action of obstructing or a lane
    use ("Do not impede overtaking vehicles", 右转车辆请勿占用公交车道), or beside a permission
    word that is not itself negated (红灯时，在不妨碍行人的情况下可以右转, the statute); and a
    turn-on-red "permitted" needs red written or a lifted restriction ("Right turns
    permitted" says nothing of red)."""
    t = as_read(text)
    if names_other_users(without_exceptions(text)[0]):
        return None
    if CAR_EXCEPTED.search(t):
        return None  # 除小客车外，禁止超车: the rule leaves the car out
    topic = _TOPIC[kind]
    if _NOT_CONTROLLED.search(t) and topic.search(t):
        rest = _NOT_CONTROLLED.sub(" ", t)
        lone = not _negations(_permits(rest)[0]) and not _CONDITION.search(rest)
        return "permitted" if lone else None
    if _UNTIL.search(t):
        return None
    stripped = _LANE_NOUN.sub(" lane ", text)
    verdict = _composed(stripped, kind)
    if verdict == "prohibited":
        read = as_read(stripped)
        if (
            not topic.search(_NOT_THE_ACTION[kind].sub(" ", read))
            or _EXTRA_CONDITION.search(read)
            or _MORE_ACTS[kind].search(read)
            or (kind == "overtaking" and _MANNER.search(read))
            or any(
                _unnegated_permission(c) for c in _CLAUSE.split(_read(stripped)) if topic.search(c)
            )
        ):
            return None
    red_unwritten = not _RED.search(t) and not _permits(_read(text))[1]
    if verdict == "permitted" and kind == "turn_on_red" and red_unwritten:
        return None
    return verdict


def _unnegated_permission(clause: str) -> bool:
    """Whether a clause writes a permission word that no negation governs ("allowed", 可以; not
    "not allowed", 不可以, 禁止…可)."""
    for m in _PERMISSION.finditer(clause):
        before, after = clause[: m.start()], clause[m.end() :]
        if _NEG_BEFORE.search(before) or _NOT_AFTER.match(after):
            continue
        if clause[m.start() : m.end() + 3].lower() == "cannot":
            continue
        return True
    return False


# The guards of written_polarity (the second review's fixes).
_NOT_THE_ACTION = {
    "overtaking": re.compile(
        r"\b(?:drive|driving|go|going|get|getting)\s+(?:around|past)\s+(?:the\s+|a\s+|this\s+)?"
        r"(?:lowered\s+)?(?:gates?|barriers?|barricades?|boom|sign|red|flashing|lights?|stop\s+line)"
        r"\w*|\bpass(?:ing)?\s+(?:beyond|through|under|this\s+point)\b|\bpasses\b"
        r"|\b(?:the|on\s+the)\s+pass\b|\bpass\s+not\b|超(?=出|时|大)|超过(?![前慢其]|[^，。；]{0,2}车)",
        re.I,
    ),
    "turn_on_red": re.compile(r"(?!)"),
}
_LANE_NOUN = re.compile(
    r"\b(?:overtaking|passing)\s+lanes?\b|\bbeing\s+(?:overtaken|passed)\b|超车道|被超车?", re.I
)
_RED = re.compile(r"\bred\b|红", re.I)
_NEG_BEFORE = re.compile(
    r"(?:\b(?:not|never|no\s+longer)\s+(?:be\s+|being\s+)?|n['’]t\s+(?:be\s+)?"
    # "no vehicle may", "nobody may", "no one is allowed"
    r"|\b(?:no|nobody|none|neither|nor)\s+(?:[\w-]+\s+){0,2}(?:is\s+|are\s+)?"
    r"|[不未没禁][^，。；\s]{0,2})$",
    re.I,
)
_NOT_AFTER = re.compile(r"\s*(?:not|nowhere)\b|n['’]t\b", re.I)
_EXTRA_CONDITION = re.compile(
    r"\b(?:night|fog\w*|rain\w*|wet|snow\w*|ic[ey]\w*|weekends?|weekdays?|holidays?"
    r"|school\s+(?:hours|days)|rush\s+hour|peak|events?|during|visibility|dark\w*|advis\w*"
    r"|recommend\w*|risk\w*|good\s+idea|used\s+to|was|were|remov\w*)\b"
    r"|夜间|夜晚|雨天|雨雪|雾天|雪天|下雪|冰雪|节假日|假日|周末|上下班|上学|放学|有行人时|时间"
    r"|不宜|不建议|不提倡|习惯|情况下|前提下|条件下|直至|为止|曾|原(?=禁)|拆除|撤除|放开|开放",
    re.I,
)
_MANNER = re.compile(
    r"\bon\s+the\s+(?:left|right|inside|nearside|offside|hard\s+shoulder|verge)\b|\bacross\b"
    r"|\bsolid\b|右侧|左侧|从右|从左|实线|应急车道|路肩",
    re.I,
)
_MORE_ACTS = {
    "overtaking": re.compile(
        r"\b(?:obstruct\w*|imped\w*|block\w*|hinder\w*|rac(?:e|ing)|accelerat\w*|speed\s+up)\b"
        r"|阻挡|妨碍|阻碍|加速|影响|急打方向",
        re.I,
    ),
    "turn_on_red": re.compile(
        r"\b(?:obstruct\w*|imped\w*|use|lanes?|kerb|curb|swing\w*|cut\w*)\b"
        r"|妨碍|影响|阻碍|占用|压线|压实线|借道|逆行|加塞|急转",
        re.I,
    ),
}
# A light or a restriction that does not bind the action: a permission.
_NOT_CONTROLLED = re.compile(
    r"\b(?:does|do|is|are)\s+not\s+(?:apply|applies|control|controlled|governed|subject)\b"
    r"|\bnot\s+(?:signal[\s-]+)?controlled\b|\bnot\s+governed\b|\bnot\s+subject\s+to\b"
    r"|不受[^，。；？！]{0,6}?(?:控|管)|(?:无|未设|没有|不设)(?:信号灯?|红绿灯|灯控)|不看灯|不再受(?:到)?限",
    re.I,
)
# A ban that runs until its end: its lifting is not written here (禁止超车直到限制结束).
_UNTIL = re.compile(r"(?:禁止?|限制|管制|禁令)[^，。；？！]{0,8}?(?:至|到|直到|直至|until)", re.I)


def _prohibition(text: str, kind: str) -> str | None:
    """The verdict "prohibited" where every clause naming the action of ``kind`` writes one
    negation of it and nothing could change that: no condition, number, warning or symbol, no
    action that is the rule's without a negation, no negation in another clause, no restriction
    lifted or ended (:data:`_LIFTING`), none of those in the rule's penalty clauses either
    except their own words and numbers (本路段禁止超车，违者罚款200元 was read as a permission
    at 0.54 and the car overtook; an outside probe, forty-ninth session). An exception clause
    that names road users (除警车外, "except police cars") is cut out first (the reader took
    除…外 for a negation: 除警车外，所有车辆禁止超车 read as a permission at 0.97); None
    otherwise."""
    topic = _TOPIC[kind]
    if _LIFTING.search(text) or _NOT_A_BAN.search(text):
        return None
    cut, _ = without_exceptions(text)
    clauses = [c for c in _CLAUSE.split(cut) if c.strip()]
    # a penalty clause ("违者罚款200元", "Violators will be fined 100 euros") that names no
    # action: the rule's force, not a condition of it
    kept = [c for c in clauses if topic.search(c) or not _PENALTY.search(c)]
    if any(_negations(c) for c in kept if not topic.search(c)):
        return None
    rest = " ; ".join(kept)
    if _CONDITION.search(rest) or _ACTS[kind].search(rest):
        return None
    counts = [_negations(c) for c in kept if topic.search(c)]
    return "prohibited" if counts and all(c == 1 for c in counts) else None


# One negation that is no ban: an encouragement or a denied offence ("no problem", "Don't
# hesitate to overtake", "not impossible", "not considered running a red light", 没问题, 无妨,
# 不用犹豫, 不视为闯红灯; the reviews of the split-polarity reading, fiftieth session), a
# question, a rule reported as someone's claim, of somewhere else or of the past.
_NOT_A_BAN = re.compile(
    r"\bno\s+(?:problem|issue|worries|infraction|offence|violation)\b|\bnot\s+a\s+problem\b"
    r"|\b(?:don['’]t|do\s+not|never)\s+(?:hesitate|be\s+(?:afraid|shy|scared|nervous)|worry|fear)"
    r"|\bnot\s+(?:im|in|un|dis|ir|il)\w+|\b(?:not|n['’]t)\s+(?:be\s+)?(?:considered|count\w*|"
    r"deemed|treated|regarded)|\bnot\s+running\b|[?？]"
    r"|\bnothing\s+wrong\b|\bno\s+harm\b|\bnever\s+been\s+easier\b|\bignore\b|\bmyths?\b"
    r"|\bno\s+big\s+deal\b|\bnever\s+(?:a|an)\s+(?:problem|issue)\b|不(?:会)?被(?:拍|罚|抓)"
    r"|\b(?:who|whoever)\s+(?:said|says|told)\b|\bnope\b|\bnah\b"
    r"|没问题|没有(?:任何)?问题|没关系|无妨|不妨|无碍|不(?:用|必|要)(?:犹豫|担心|怕|迟疑)"
    r"|别(?:犹豫|担心|怕|迟疑)|无需(?:犹豫|担心|迟疑)|不成问题|不是问题|没事|不要紧|毫无问题|没啥问题"
    r"|不(?:视为|算|属于?|构成|按|当作|认定为?)|吗|有人说|认为|以为|错误|谁(?:说|告诉)|谣言"
    r"|想得美|开什么玩笑|做梦"
    # a rule of somewhere else
    r"|在(?:德国|美国|英国|法国|日本|韩国|欧洲|国外|外国|其他国家|别的国家)|" + _PAST,
    re.I,
)
# A penalty clause: a fine, points, prosecution (its numbers are amounts, not conditions).
_PENALTY = re.compile(
    r"\b(?:fine[sd]?|penalt\w*|punish\w*|prosecut\w*|points?|offenders?|violators?)\b"
    r"|违者|罚|扣分|处罚|记分|追究|处理",
    re.I,
)


@functools.lru_cache(maxsize=8192)
def written_class(text: str, rule_class: str) -> str | None:
    """The class (``overtaking:permitted`` and the like) the negations of a rule write, where
    its reading ``rule_class`` is another: the other polarity of a permission or a
    prohibition (:func:`written_polarity`); or, for a rule read as binding nobody
    (``not_binding``) that names overtaking or a turn on red and no road user but cars
    (perception.binding.names_other_users), the polarity it writes ("No rule forbids a right
    turn on red here" was read as binding nobody at 0.97). None where the reading agrees or
    nothing decides. Cached: evaluation asks it of the same rule on every frame of its rule set."""
    kind, _, polarity = rule_class.partition(":")
    if kind in POLAR_KINDS and polarity in ("permitted", "prohibited"):
        written = written_polarity(text, kind)
        return None if written in (None, polarity) else f"{kind}:{written}"
    # read as binding nobody: only a restriction denied, lifted or ended decides
    if rule_class != "not_binding":
        return None
    read = as_read(text)
    if names_other_users(text) or not _permits(_read(text))[1]:
        return None
    found = {
        f"{k}:{w}"
        for k in POLAR_KINDS
        if _NAMED[k].search(read) and (w := written_polarity(text, k)) is not None
    }
    return found.pop() if len(found) == 1 else None


def polarity_unwritten(text: str, rule_class: str) -> bool:
    """Whether a rule read as ``rule_class`` was read as another class than its words write
    (:func:`written_class`): "Nothing prohibits overtaking here" read as a prohibition. No rule
    text of the rule language read right is flagged, in either language, training or held-out
    families (tests/perception/test_polarity.py)."""
    return written_class(text, rule_class) is not None
