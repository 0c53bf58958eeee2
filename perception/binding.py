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

from perception.written import as_read, without_exceptions

__all__ = [
    "CAR_EXCEPTED",
    "LANE_USE_CLASSES",
    "THE_CAR",
    "amber_condition",
    "amber_proceeds",
    "TOPIC_CLASSES",
    "barred_lane",
    "binds_others_only",
    "bound_topics",
    "names_bus_lane",
    "names_other_users",
    "names_school",
    "others_first",
]

# The classes a rule of each topic can be read as (both polarities, both amber rules): the check
# asks each, since which one the rule writes is the reader's to say.
TOPIC_CLASSES: dict[str, tuple[str, ...]] = {
    "yield_pedestrians": ("yield_pedestrians",),
    "amber": ("amber:always_stop", "amber:proceed_if_close"),
    "overtaking": ("overtaking:prohibited", "overtaking:permitted"),
    "turn_on_red": ("turn_on_red:prohibited", "turn_on_red:permitted"),
}

# Each topic named unmistakably: a word with no other sense on a road sign (the senses it has
# elsewhere are cut out first: :data:`_NOT_THE_CARS`).
_TOPICS: dict[str, re.Pattern[str]] = {
    "yield_pedestrians": re.compile(
        # give way / yield / stop / slow down ... for pedestrians or people on a crossing
        r"\b(?:give\s+way|giving\s+way|yield\w*|stop\w*|slow\w*\s+down|wait\w*)\b[^.;:!?]{0,30}?"
        r"\b(?:pedestrians?|peds|people|persons?|walkers|foot\s+traffic|children)\b"
        r"|\bpedestrians?\b[^.;:!?]{0,30}?\b(?:priority|right[\s-]+of[\s-]+way|go\s+first|first)\b"
        r"|\blet\s+(?:the\s+)?(?:pedestrians?|people|walkers)\s+(?:cross|go|pass)\b"
        r"|\b(?:crosswalk|zebra\s+crossing)\b[^.;!?]{0,30}?\bstop\b"
        # 车让人, 让行人, 礼让行人, 避让行人, 让人先行, 行人优先, 行人先行; 人行横道…停车让行
        r"|让\s*(?:行\s*)?人|礼让|避让行人|行人\s*(?:优先|先行|先过)"
        r"|(?:人行横道|斑马线|行人)[^。；]{0,20}?(?:停车|减速)\s*让行",
        re.I,
    ),
    "amber": re.compile(
        r"\b(?:amber|yellow)\s+(?:traffic\s+)?(?:lights?|signals?|lamps?|phases?)\b"
        r"|\b(?:on|at)\s+(?:an?\s+)?(?:amber|yellow)\b|\b(?:amber|yellow)\s+means\b"
        r"|\b(?:light|signal)s?\s+(?:turns?|goes|changes?\s+to)\s+(?:amber|yellow)\b"
        r"|\brun\w*\s+(?:the\s+)?(?:amber|yellow)s?\b"
        r"|黄\s*灯|黄色\s*(?:信号|交通)?\s*灯|黄色信号|变黄",
        re.I,
    ),
    "overtaking": re.compile(
        r"\bovertak\w*|\bno[\s-]+passing\b|\bpass(?:ing)?\s+(?:other|slower|the\s+vehicle|"
        r"vehicles|cars)\b|\b(?:do\s+not|don['’]t|never|must\s+not)\s+pass\b(?!\s+(?:beyond|"
        r"through|this|the\s+(?:barrier|gate|sign|point|line)))|超\s*车|超越",
        re.I,
    ),
}
# A right turn on red: in English "red" a signal's ("on red", "red light"), not a place ("Turn
# right onto Red Lion Street", "the red barn", "red cones"); in Chinese a clause that says what
# to do (a rule word), not directions by the lights (到第二个红灯右转, cut in _NOT_THE_CARS).
_RED_SIGNAL = (
    r"(?:\b(?:on|at|against|during|while|steady|solid|flashing|is|shows?|turns?|the\s+light\s+is)"
    r"\s+(?:a\s+)?(?:steady\s+)?red\b(?!\s+(?:cones?|barriers?|barn|bollards?|flags?|route|lion|"
    r"cross|deer|hill|road|street|light\s+cameras?))|\bred\s+(?:lights?|signals?|arrows?|phase)\b"
    r"(?!\s+cameras?))"
)
_RIGHT = r"\b(?:right(?:-hand)?[\s-]+turns?|turn\w*\s+right|right)\b"
_TURN_ON_RED = re.compile(
    _RIGHT
    + r"[^.;:!?]{0,30}?"
    + _RED_SIGNAL
    + r"|"
    + _RED_SIGNAL
    + r"[^.;:!?]{0,30}?"
    + _RIGHT
    + r"|\bturns?\s+on\s+(?:a\s+)?(?:steady\s+)?red\b"
    + r"|(?=[^，。；：！？]*(?:禁|不|勿|可|能|允许|准|停|等|须|必须|让|亮|时|状态))"
    + r"[^，。；：！？]*?"
    + r"(?:红\s*灯[^，。；：！？]{0,10}?右\s*[转拐]|右\s*[转拐][^，。；：！？]{0,10}?红\s*灯)",
    re.I,
)
# What names a topic's word without being the car's decision, cut out before the topics are
# read: a lane or a place named for overtaking, being overtaken, letting others pass; painted
# yellow and warning lamps; pedestrians' own rules, picking up and dropping off, slogans (让人
# causative, 礼让 of vehicles); directions by the traffic lights (到第二个红灯右转).
_NOT_THE_CARS = re.compile(
    r"\b(?:overtaking|passing)\s+(?:lanes?|opportunit\w+|bays?|places?)\b"
    r"|\bbeing\s+(?:overtaken|passed)\b"
    r"|\b(?:allow|let)(?:s|ing)?\s+(?:others|them|faster\s+(?:traffic|vehicles)|following\s+"
    r"(?:traffic|vehicles)|(?:vehicles|traffic)\s+behind)\s+(?:to\s+)?(?:overtak\w*|pass)\b"
    r"|\bto\s+allow\s+overtaking\b|\bpassing\s+(?:vehicles|cars|traffic)\b"
    r"|超车道|被超车?"
    r"|\bon\s+(?:an?\s+)?(?:double\s+)?yellow\s+(?:lines?|box|zig\w*|kerb|curb|hatch\w*|markings?"
    r"|paint)|\b(?:flashing|with)\s+(?:amber|yellow)\s+(?:lights?|lamps?)"
    r"|\b(?:amber|yellow)\s+(?:lights?|lamps?|signal\s+heads)\s+(?:on|indicate|flashing|being)\b"
    r"|黄灯(?:闪烁|警示|时间|信号机)|黄色警示灯"
    r"|\bpedestrians?\s+(?:must\s+|should\s+|please\s+)?(?:look|check)\b[^.;:!?]{0,30}"
    r"|\bpedestrians?\s+(?:do\s+not|don['’]t)\s+have\s+(?:priority|right[\s-]+of[\s-]+way)"
    r"|\bpedestrians?\s+have\s+no\s+(?:priority|right[\s-]+of[\s-]+way)"
    r"|\b(?:stop\w*|wait\w*)\b[^.;:!?]{0,20}?\b(?:let|drop\w*|pick\w*)\b[^.;:!?]{0,20}?"
    r"(?:out|off|up)\b|\bwait\w*\s+(?:area|bay|here)\b[^.;:!?]{0,30}"
    r"|\bslow\w*\s+down\W+(?:people|children)\s+(?:at\s+work|live|working)\b"
    r"|让人(?=们|民|出行|放心|满意|安心|留恋|受惊|上下车|下车|上车|尽快)"
    r"|礼让(?=车辆|进出|校车|来车|对向|三先)|会车[^，。；]{0,3}礼让"
    r"|^行人[^，。；]{0,6}?(?:礼让|避让)车辆|行人(?:先行|优先)(?=等候|通过地下|通过天桥)"
    r"|(?:第[一二三四五六七八九十\d]+个|下一?个|过了?|到了?|经过)[^，。]{0,2}红灯(?:处|路口)?"
    r"|(?<=在)红灯路口",
    re.I,
)

# Road users other than a car (and a rule's own object, pedestrians, aside): a rule that names
# one may truly bind nobody the car is, so its reading is the reader's to judge ("Trucks over
# 7.5 t: no overtaking", 货车禁止超车, "Vehicles over 3.5 t: maximum 60 km/h", 大型车辆). The
# car's own classes are not among them (小客车, 小型客车), nor are words that only contain one
# (交警提示, 警告, "Police notice", 公交站). A second review (forty-ninth session) found the first
# list missing dozens of classes ("Road trains", 渣土车, "P-plate drivers") and silencing the
# car's own 小客车 rules; a list never closes, so the check stays a check, not a reading.
_OTHER_EN = (
    r"\b(?:trucks?|lorr(?:y|ies)|hgvs?|lgvs?|goods\s+vehicles?|freight|vans?|bus(?:es)?|coach(?:es)?"
    r"|cycl\w*|bicycl\w*|bikes?|motor(?:cycl|bik)\w*|mopeds?|scooters?|tractors?|trailers?"
    r"|caravans?|campers?|taxis?|cabs?|ambulances?|police\s+(?:cars?|vehicles?)"
    r"|emergency\s+vehicles?|fire\s+engines?|learners?|heavy\s+(?:vehicles?|goods|trucks?)"
    r"|large\s+vehicles?|tonnes?|tons?|\d+(?:\.\d+)?\s*t"
    r"|road\s+trains?|b-doubles?|semis?|18-wheelers?|rigs?|tankers?|hazmat|dangerous\s+goods"
    r"|long\s+vehicles?|wide\s+loads?|oversize\w*|farm\s+vehicles?|agricultural|machinery"
    r"|motorhomes?|rvs?|convoys?|military|slow[\s-]+moving|towing|horse\s*floats?"
    r"|horse\s+riders?|riders?|trams?|skateboard\w*|rickshaws?|p-?plates?|p[12]|provisional"
    r"|probationary|novice|snow\s+chains?|space-saver|horse-?drawn|carts?|carriages?|pedicabs?"
    r"|minibus(?:es)?|articulated|juggernauts?|motor\s+homes?|campervans?|limousines?|tuk-?tuks?"
    r"|quad\s*bikes?|atvs?|golf\s+carts?|segways?|e-?scooters?|deliver(?:y|ies)|commercial"
    r"|hazardous|forklifts?|cement|mixers?|non-residents?|(?:high|tall|wide)\s+vehicles?"
    r"|\d+(?:\.\d+)?\s*m\s+(?:high|tall|wide|long))\b"
)
_OTHER_ZH = (
    r"货|卡车|(?<!小型)(?<!小)客车|客运车|公交(?!站|车站)|公共汽车|大巴|大车|大型(?:车|汽车|货车|客车|载)"
    r"|中型(?:车|汽车|货车|客车)|重型|摩托|自行车|非机动车|电动车|三轮|拖拉机|挂车|出租车|出租汽车|救护"
    r"|消防车|警车|警用|特种车|工程车|工程机械|教练|校车|危险品|吨"
    r"|渣土|罐车|危化|化学品|搅拌|农用|牵引|电瓶车|代步车|骑手|拖车|防滑链|实习期|黄标|运钞"
    r"|马车|畜力车|铰接|房车|冷链|环卫|洒水车|清扫车|平板车|半挂|人力车|观光车|老年代步"
)
_OTHER_USERS = re.compile(_OTHER_EN + "|" + _OTHER_ZH, re.I)
# Co-objects of a yield rule and inclusions: not who the rule binds ("give way to pedestrians
# and cyclists", 礼让行人和非机动车, "All vehicles including trucks").
_CO_OBJECT = re.compile(
    r"(?:pedestrians?|people)\s+(?:and|or|&)\s+(?:cyclists|bicycles|bikes|cycles)"
    r"|行人(?:和|及|与|、)非机动车|\b(?:including|incl\.?)\s+(?:\w+\s+){0,2}\w+"
    r"|（?含[^）)]{0,6}[）)]?|\bcars\s+and\s+motorcycles\b",
    re.I,
)


def names_other_users(text: str) -> bool:
    """Whether a rule names a road user other than a car (pedestrians and cyclists as what a
    yield rule gives way to aside, and classes a rule includes): its reading as binding nobody
    may be right."""
    return _OTHER_USERS.search(_CO_OBJECT.sub(" ", as_read(text))) is not None


# The car named beside another road user, as bound too ("Overtaking prohibited - this applies to
# cars as well as trucks over 7.5 t", "Trucks and cars alike must not exceed 30 km/h",
# 不论货车还是小汽车，一律限速30km/h: read as binding nobody at 0.99-1.00, answered valid=true
# in a probe), not as an exception ("except cars", 除小客车外). A clause of the car's own beside
# another's ("Cars may overtake; the ban applies to coaches only") is left to the reader: the
# words' polarity is not read per clause, and asking both lost right answers (probe 9).
# The car's own classes, by name (shared with perception.polarity, whose check of a rule that
# excepts the car reads the same words).
_CAR = r"(?:(?:passenger|private|motor|saloon|family)\s+)?cars?|saloons?|motorcars?"
_CAR_ZH = r"(?:小客车|小型客车|小汽车|小型汽车|小轿车|轿车|私家车|乘用车|小型车|小车)"
THE_CAR = r"(?:" + _CAR_ZH + r"|\b(?:" + _CAR + r")\b)"
_CAR_TOO = re.compile(
    r"\b(?:" + _CAR + r")\s+(?:as\s+well|too|also|alike|included)\b"
    r"|\b(?:as\s+well\s+as|and\s+also|and|&|or|including|incl\.?|plus|both)\s+(?:" + _CAR + r")\b"
    r"|\b(?:" + _CAR + r")\s+(?:and|&|or|as\s+well\s+as)\s+(?!only\b)\w+"
    r"|\b(?:applies|apply)\s+(?:equally\s+)?to\s+(?:all\s+)?(?:cars|every\s+vehicle|all\s+vehicles)"
    r"|(?:不论|无论|不管)[^，。；]{0,12}?(?:还是|或)[^，。；]{0,6}?"
    + _CAR_ZH
    + r"|"
    + _CAR_ZH
    + r"(?:和|与|及|、|以及|或)|(?:和|与|及|、|以及|或)"
    + _CAR_ZH
    + r"|"
    + _CAR_ZH
    + r"[^，。；]{0,4}?(?:也|同样|一样|均|都)",
    re.I,
)
# A rule that excepts the car's own classes: it does not bind the car as its remaining words do
# (除小客车外，禁止超车; 禁止超车，小客车除外; "No overtaking except cars"; "Trucks only, not for
# cars").
CAR_EXCEPTED = re.compile(
    r"除了?[^，。；,;.]{0,12}?"
    + THE_CAR
    + r"|\b(?:except(?:ing)?(?:\s+for)?|other\s+than|apart\s+from|excluding|exempt\w*"
    r"|but\s+not|not\s+for|not\s+to)\s+(?:all\s+|the\s+)?"
    + THE_CAR
    + r"|(?<![a-z]\s)(?<![警])"
    + THE_CAR
    + r"[^，。；,;.]{0,8}?(?:除外|例外|不受此限"
    r"|\bexempt\w*|\bexcepted\b)",
    re.I,
)


@functools.lru_cache(maxsize=8192)
def binds_others_only(text: str) -> bool:
    """Whether a rule names a road user other than a car (:func:`names_other_users`) and not the
    car beside it as bound too ("applies to cars as well as trucks", 不论货车还是小汽车). Cached."""
    if not names_other_users(text):
        return False
    t = as_read(text)
    return _CAR_TOO.search(t) is None or CAR_EXCEPTED.search(t) is not None


# A rule whose subject is another road user: it opens by naming one ("Trucks must stop on
# amber", "Motorcycles only: no overtaking", "Buses may turn right on red", 大货车红灯禁止右转,
# "Vehicles over 3.5 t: maximum 40 km/h"), after at most a few words that name nobody.
_OPENS_EN = re.compile(
    r"^\W*(?:(?:all|only|the|for|any|every|heavy|large|long|vehicles?|over|above|exceeding"
    r"|with|note|notice|attention|warning|school|private)\W+){0,3}?(?:" + _OTHER_EN + ")",
    re.I,
)
_OPENS_ZH = re.compile(
    r"^\W*(?:注意|提示|通知|本路段|前方|所有|全部|车队通知\W*)?[^，。；：:\s]{0,3}?(?:"
    + _OTHER_ZH
    + ")"
)
# Not whom the rule binds: a speaker (教练：..., 交警提醒), a road user named in a condition of
# the car's rule (校车停靠时禁止超车: when a school bus stops), or "other than" it
# (货车以外的机动车).
_SPEAKER_ZH = re.compile(r"^\W*(?:教练|交警|民警|司机|驾驶员|调度|车队)[^，。；：:]{0,4}?[：:]")
_AFTER_ZH = re.compile(r"[^，。；]{0,4}?(?:时|期间|停靠|上下客)|[^，。；]{0,3}?(?:以外|之外)")
# The car among "the others" a rule binds ("Only police vehicles may overtake; all other
# vehicles must not", 其他车辆禁止超车).
_THE_OTHERS = re.compile(
    r"\b(?:all\s+)?other\s+(?:vehicles|traffic|drivers|road\s+users)\b|其他(?:社会)?车辆|其余车辆|其他机动车",
    re.I,
)


@functools.lru_cache(maxsize=8192)
def others_first(text: str) -> bool:
    """Whether a rule opens by naming a road user other than a car as whom it binds (after at
    most three words such as "all", "only", "vehicles over": "Do not overtake trucks", "Give
    way to buses" bind the car), and names no car, no "other vehicles" and no exception. A
    blind review (fifty-second session) found "Trucks must stop on amber" read as the car's
    rule at 1.00; the reading check asks such a rule as binding nobody
    (perception.readcheck.kind_alternatives). Cached."""
    whole = as_read(text)
    if re.search(THE_CAR, whole, re.I) or _THE_OTHERS.search(whole):
        return False
    t, excepted = without_exceptions(text)
    if excepted:  # "Except for trucks over 7.5 t, vehicles may overtake": the rest binds the car
        return False
    t = _SPEAKER_ZH.sub("", _CO_OBJECT.sub(" ", t).strip())
    if _OPENS_EN.match(t) is not None:
        return True
    m = _OPENS_ZH.match(t)
    return m is not None and _AFTER_ZH.match(t[m.end() :]) is None


@functools.lru_cache(maxsize=8192)
def bound_topics(text: str) -> tuple[str, ...]:
    """The topics (keys of :data:`TOPIC_CLASSES`) a rule names unmistakably, in that order,
    where it names no road user other than a car, or names the car beside them as bound too
    (:func:`binds_others_only`); () otherwise.
    "车让人，违者罚款" -> ("yield_pedestrians",); "Fleet drivers: never overtake" ->
    ("overtaking",); "Trucks: no overtaking" -> (); "No honking" -> (); "Overtaking lane ends"
    -> (); "Overtaking prohibited - this applies to cars as well as trucks" -> ("overtaking",).
    Cached: evaluation asks it of the same rule on every frame of its set."""
    if binds_others_only(text):
        return ()
    t = _NOT_THE_CARS.sub(" ", as_read(text))
    found = {k for k, pattern in _TOPICS.items() if pattern.search(t)}
    if _TURN_ON_RED.search(t):
        found.add("turn_on_red")
    return tuple(k for k in TOPIC_CLASSES if k in found)


# A lane barred to the car: the readings that keep it out of a lane (a bus lane, a closure); a rule
# that writes such a ban and is read as anything else (binding nobody, a school zone, no
# overtaking) is asked as each (perception.readcheck.kind_alternatives).
LANE_USE_CLASSES = ("bus_lane", "lane_closed")
_LANE_EN = r"(?:lanes?|ln)\b"
# A lane named by its place ("the right lane", "the kerbside lane", "lane 3", "the bus lane"),
# not any lane ("Never cut into a lane without signalling"): what the lane bans below name.
_WHICH_LANE = (
    r"(?:(?:the\s+|this\s+|that\s+)?(?:(?:far|extreme|very)[\s-]+)?(?:[\w'-]+[\s-]+)?"
    r"(?:left|right|cent(?:re|er)|middle|kerb\w*|curb\w*|near\w*|off\w*|outside|outer\w*"
    r"|inside|inner\w*|fast|slow|bus|transit|hov|first|second|third|fourth|1st|2nd|3rd|4th"
    r"|\d+|one|two|three|four|emergency|shoulder)(?:[\s-]+hand)?(?:most)?[\s-]+(?:lanes?|ln)\b"
    r"|\b(?:lanes?|ln)\s*(?:no\.?\s*|number\s*|#\s*)?(?:\d+|one|two|three|four|I{1,3}|IV)\b"
    r"(?!\s*(?:k?m\b|km|miles?|mi\b|ft\b|feet|yards?|metres?|meters?)))"
)
_NO_CARS = (
    r"no\s+(?:private\s+|motor\s+|passenger\s+|other\s+)?"
    r"(?:cars?|vehicles?|traffic|motorists|drivers)"
)
_BARRED_LANE = re.compile(
    # "cars must not use / enter / drive in the kerbside lane", "you may not be in lane 3"
    r"\b(?:must\s+not|mustn['’]t|may\s+not|shall\s+not|shan['’]t|cannot|can['’]t|can\s+not"
    r"|do\s+not|don['’]t|never|not\s+(?:be\s+)?(?:allowed|permitted|authori[sz]ed)\s+to"
    r"|(?:prohibited|banned|forbidden|barred)\s+from|not\s+to)\s+"
    r"(?:(?:use|using|enter|entering|occupy|occupying)\b|(?:drive|driving|travel|travelling"
    r"|traveling|be|go|stray|cut|move|pull)\s+(?:in|into|on|along|onto)\b)\s+"
    + _WHICH_LANE
    # "keep / stay out of the right lane"
    + r"|\b(?:keep|stay|remain)\s+out\s+of\s+"
    + _WHICH_LANE
    # "no cars in the right lane", "no private vehicles allowed in lane 3", "no entry to the
    # kerb lane for cars", "cars prohibited in lane 3"
    + r"|\b"
    + _NO_CARS
    + r"\s+(?:(?:are\s+)?(?:allowed|permitted)\s+)?(?:in|on|into|along)\s+"
    + _WHICH_LANE
    + r"|\bno\s+entry\s+(?:to|into)\s+"
    + _WHICH_LANE
    + r"|\b(?:cars|private\s+cars|vehicles|motorists|drivers|traffic)\s+(?:are\s+)?(?:prohibited"
    r"|banned|forbidden|barred|not\s+(?:allowed|permitted))\s+(?:in|on|from)\s+"
    + _WHICH_LANE
    # "right lane: no cars", "lane 3: no private cars", "the right lane is closed to cars"
    + r"|(?:"
    + _WHICH_LANE
    + r")[^.;!?]{0,25}?(?:[:\-–—]\s*"
    + _NO_CARS
    + r"\b"
    r"|\bclosed\s+to\s+(?:cars|private\s+(?:cars|vehicles)|general\s+traffic))"
    # 禁止/不得 … 驶入/进入/占用 … 车道; 禁止在…车道行驶 (not 超车道, the overtaking lane)
    r"|(?:禁止|不得|不准|严禁|不许|不能|不可|请勿|勿|不要|别)[^，。；！？]{0,8}?"
    r"(?:(?:驶入|进入|占用|使用|借用|驶进|开进|开入)[^，。；！？]{0,12}?(?:(?<!超)[车車]道|专用道)"
    r"|在[^，。；！？]{0,12}?(?:(?<!超)[车車]道|专用道)[^，。；！？]{0,4}?(?:行驶|通行))"
    # …车道 … 禁止/不得 … 驶入/通行; …车道 小型车禁行
    r"|(?<!超)[车車]道[^，。；！？]{0,12}?(?:禁止|不得|不准|严禁|不许)[^，。；！？]{0,8}?"
    r"(?:驶入|进入|通行|行驶|占用|使用)"
    r"|(?<!超)[车車]道[^，。；！？]{0,12}?(?:小型车|小客车|小型汽车|小汽车|私家车|社会车辆|机动车)禁行",
    re.I,
)
# Who may not use a lane, other than the car: pedestrians and runners (行人禁止进入机动车道).
_NOT_THE_CAR_IN_LANE = re.compile(
    r"\b(?:pedestrians?|walkers|runners|joggers|people\s+on\s+foot)\b|行人|跑者|选手", re.I
)


@functools.lru_cache(maxsize=4096)
def barred_lane(text: str) -> bool:
    """Whether a rule writes a lane the car must keep out of ("At all times, cars must not use
    the kerbside lane", "No cars in the right lane 7-19", 全天小型汽车不得驶入外侧车道,
    禁止在应急车道行驶), naming no road user but cars. The held-out bus-lane wording "cars must
    not use the kerbside lane" was read as binding nobody at 0.95 and 全天小型汽车不得驶入外侧车道
    as no overtaking at 0.97, answered ``valid=true`` (the car stayed in the lane). Cached."""
    if names_other_users(text):
        return False
    t = as_read(text)
    return _BARRED_LANE.search(t) is not None and _NOT_THE_CAR_IN_LANE.search(t) is None


# What a school zone's rule names: a school, its pupils, children. A speed limit read as a school
# zone binds only where a school sign is seen, in its hours; "The Borough Council (Speed Limits)
# Order 2026: no person shall drive ... exceeding 30 km/h" was read as a school zone at 0.99 and
# the car kept its speed (an outside probe, fifty-first session).
_SCHOOL = re.compile(
    r"school\w*|\b(?:pupils?|students?|child\w*|kids?|kind(?:er|y)\w*|nurser(?:y|ies)|academ\w+"
    r"|campus\w*|playgrounds?|sch|xue\s*xiao|xiao\s*(?:yuan|qu)|day\s*cares?|creche|crossing\s+guards?"
    r"|lollipop\w*|elementary|montessori|pre-?k|k-\d+|scholars?|juniors?)\b"
    r"|(?<![驾党军])校(?!场)|学区|学生|学童|儿童|孩子|小朋友|幼|托儿|上学|放学|小学|中学|初中|高中"
    r"|国小|国中|學",
    re.I,
)
# Named places that are no school: "Children's Hospital", "College Road".
_NOT_A_SCHOOL = re.compile(
    r"\b(?:children['’]?s|kids['’]?)\s+(?:hospital|clinic|museum|zoo)\b|\bschool\s+bus\w*"
    r"|\bdriving\s+schools?\b|驾驶学校|校车|校巴",
    re.I,
)


@functools.lru_cache(maxsize=4096)
def names_school(text: str) -> bool:
    """Whether a rule names a school, its pupils or children (what a school zone's rule is
    about): a rule read as a school zone that names none is asked as a plain speed limit
    (perception.readcheck.kind_alternatives). Cached."""
    t = _NOT_A_SCHOOL.sub(" ", as_read(text))
    return _SCHOOL.search(t) is not None


# What makes an amber rule "proceed if close": a distance to the stop line (a number with a unit
# of length) or being close to it, too close to stop, already past it. A rule read as proceed
# if close that writes none of these, or says the distance does not matter ("regardless of
# its distance", "at any distance"), is asked as always stop
# (perception.readcheck.kind_alternatives): "On a steady amber signal, a vehicle shall stop at
# the stop line, regardless of its distance from it" was read as proceed if close at 0.95 and
# "Going ahead on orange is no longer legal" (held out) at high confidence, valid=true.
_CLOSE = re.compile(
    r"\d+(?:[.,]\d+)?\s*(?:k?m(?![a-z])|cm(?![a-z])|metres?|meters?|米|公尺|公里|厘米|公分"
    r"|ft(?![a-z])|feet|foot|yards?|yds?)"
    r"|\b(?:fifteen|ten|twenty|five|fifty)[\s-]*(?:m(?![a-z])|metres?|meters?|feet|yards?)"
    r"|[一二三四五六七八九十百]+\s*(?:米|公尺|厘米)"
    r"|\b(?:close|closer|near|nearer|within|already\s+(?:crossed|passed|past|over|at)"
    r"|(?:cannot|can['’]?t|unable\s+to|not\s+able\s+to)\s+(?:stop|pull\s+up)|stopping\s+distance"
    r"|safely\s+stop|stop\s+safely|pull\s+up\s+safely)\b"
    r"|(?:stopping|to\s+stop)\s+(?:is\s+|would\s+be\s+)?(?:unsafe|not\s+safe|dangerous)"
    r"|unsafe\s+to\s+stop|right\s+at\s+the\s+(?:stop\s+)?line"
    r"|来不及|无法[^，。；]{0,8}?停|不能[^，。；]{0,8}?停|已(?:经)?(?:越过|驶过|通过|过了?)停止线|靠近|接近|临近"
    r"|以内|之内|不足|不到|(?:离|距)[^，。；]{0,8}?近|(?:过|太|很|较)近",
    re.I,
)
_ANY_DISTANCE = re.compile(
    r"\b(?:regardless|irrespective|at\s+any\s+distance|whatever\s+(?:the|your|its)\s+distance"
    r"|no\s+matter\s+(?:how|the|what)|however\s+(?:close|near))\b|再近|(?:无论|不论|不管)[^，。；]{0,6}?(?:距离|远近|多近|多远)"
    r"|任何距离",
    re.I,
)


# Going on at amber, as what a rule allows where it writes that condition ("If the light turns
# amber when you are very close to the line, continue through", 黄灯亮时，无法在停止线前安全停车的
# 车辆允许通过), or stopping "unless" it holds; not "stop even when close" (a.even, 即使).
_GOES_ON = re.compile(
    r"\b(?:proceed\w*|continu\w*|carry\s+on|go(?:es|ing)?|clear\s+the|drive\s+(?:on|through)"
    r"|pass(?:ing)?\s+through|keep\s+going|unless)\b|通过|通行|继续|驶过|前行|驶入路口|不停车|不必停|除非",
    re.I,
)
_EVEN = re.compile(
    r"\beven\s+(?:if|when|though|within|close)\b|即使|即便|哪怕|就算|也[须要应得不]", re.I
)
# A going on denied or asked about ("going through on amber is not permitted", "Can you go
# through on amber if you are close? No: stop.", 离停止线近不是黄灯不停车的理由); "can't stop"
# is the condition, not a denial.
_DENIED = re.compile(
    r"\b(?:not|never|no)\b|(?<!ca)n['’]t\b|不得|不准|不能通|不可|禁止|严禁|不是|并非|切勿|不要|不允许",
    re.I,
)


@functools.lru_cache(maxsize=4096)
def amber_proceeds(text: str) -> bool:
    """Whether an amber rule lets the car go on under the condition of "proceed if close"
    (:func:`amber_condition`): a word of going on, or "stop unless", and no "even when
    close" and no denial. Blind reviews (fifty-second session) found 13 such rules that write
    no distance read as "always stop" at 0.91-1.00. Cached."""
    t = as_read(text)
    return (
        amber_condition(text)
        and _GOES_ON.search(t) is not None
        and _EVEN.search(t) is None
        and _DENIED.search(t) is None
    )


@functools.lru_cache(maxsize=4096)
def amber_condition(text: str) -> bool:
    """Whether an amber rule writes the condition of "proceed if close": a distance to the
    stop line, being close to it or too close to stop, and not that the distance does not
    matter ("at any distance", 无论距离远近). Cached."""
    t = as_read(text)
    return _CLOSE.search(t) is not None and _ANY_DISTANCE.search(t) is None


# A bus lane named: the car must keep out of it in its hours, whoever else the rule names ("BUS
# ONLY LANE. Violators will be fined", 公交专用道 24小时 were read as binding nobody at 1.00; a
# natural-text review, fifty-first session). Not its end ("Bus lane ends", 公交专用道结束).
_BUS_LANE = re.compile(
    r"\bbus(?:es)?[\s-]+(?:only[\s-]+)?lanes?\b|\bbus[\s-]+only\b|\btransit\s+lanes?\b"
    # shared with others: "Bus and taxi lane", "bus/cycle lane", 公交及出租车专用道
    r"|\bbus(?:es)?\s*(?:and|&|/|\+)\s*(?:taxis?|cabs?|coach(?:es)?|cycles?|bikes?|bicycles?|trams?"
    r"|hov)(?:[\s-]+only)?[\s-]+lanes?\b"
    r"|公交(?:车)?(?:和|及|与|、|/)出租(?:汽)?车?专用(?:车)?道"
    r"|公交(?:车)?专用(?:车)?道|公交专线|巴士(?:专线|专用道|线)|公车专用道",
    re.I,
)
_BUS_LANE_ENDS = re.compile(r"\bends?\b|\bend\s+of\b|结束|终止|取消|解除", re.I)


@functools.lru_cache(maxsize=4096)
def names_bus_lane(text: str) -> bool:
    """Whether a rule names a bus lane in force (not its end). Cached."""
    t = as_read(text)
    return _BUS_LANE.search(t) is not None and _BUS_LANE_ENDS.search(t) is None
