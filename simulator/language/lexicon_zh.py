"""Chinese (简体): synonym families, constructions, scope wrappers and parameter formats.

Family ids are ``zh.<concept>.<member>`` and the construction ids below (``zh.o.prohib``).
Numbers are written as digits or Chinese numerals (五十, 一百二十); lanes by name (左侧车道),
position (最右侧车道), number (第2车道) or counted from either side (右起第二条车道).
"""

from __future__ import annotations

from functools import partial

from simulator.language.render import Ctx, Lexicon, concepts, constructions

__all__ = ["LEXICON", "zh_number"]

_DIGITS = "零一二三四五六七八九"
SPANS = {"day": (7, 17), "extended": (7, 20)}


def zh_number(n: int) -> str:
    """0..199 in Chinese numerals: 15 -> 十五, 50 -> 五十, 105 -> 一百零五, 120 -> 一百二十."""
    if n >= 100:
        rest = n - 100
        if rest == 0:
            return "一百"
        if rest < 10:
            return "一百零" + _DIGITS[rest]
        return "一百" + ("一" if rest < 20 else "") + zh_number(rest)  # 110 = 一百一十
    if n < 10:
        return _DIGITS[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else _DIGITS[tens]) + "十" + (_DIGITS[ones] if ones else "")


C = concepts(
    {
        "prohib": {
            "jinzhi": "禁止",
            "bude": "不得",
            "yanjin": "严禁",
            "buzhun": "不准",
            "buxu": "不许",
            "buyunxu": "不允许",
            "buneng": "不能",
            "qingwu": "请勿",
            "buyao": "不要",
            # 许 and 可 in a prohibition too (ninth round): the eighth round's reader, which
            # saw 许 only in 允许 / 准许 and 可 mostly in 不可通行, took held-out 不许 for a
            # permission and held-out 可 for a prohibition.
            "buzhunxu": "不准许",
            "buke": "不可|不可以",
        },
        # Prohibitions that close a 是…的 sentence (红灯时右转是不允许的).
        "prohib_de": {
            "buyunxu": "不允许|不被允许",
            "jinzhi": "禁止|被禁止",
            "buzhunxu": "不准许|不被准许",
        },
        "permit": {
            "yunxu": "允许",
            "keyi": "可以",
            "zhunxu": "准许",
            "ke": "可",
            "zhunyu": "准予",
            "nenggou": "能够",
        },
        "here": {"here": "|本路段|此路段"},
        "overtake": {
            "chaoche": "超车",
            "chaoyue": "超越前车|超越其他车辆",
            "chaoguo": "超过前方车辆",
            "xingshi": "超车行驶",
        },
        "stop": {
            "tingche": "停车",
            "tingxia": "停下|停车等候",
            "zhiting": "停止前进",
            "tingzhu": "停住",
            "xianqian": "在停止线前停车",
        },
        "amber": {
            "huangdeng": "黄灯",
            "huangse": "黄色信号灯|黄色信号",
            "huangsedeng": "黄色灯光",
            "huangdengxinhao": "黄灯信号",
        },
        "proceed": {
            "tongxing": "通行|继续通行",
            "tongguo": "通过|驶过停止线",
            "jixu": "继续行驶",
            "lukou": "通过路口|驶入路口",
        },
        "yield": {"lirang": "礼让", "rangxing": "停车让行", "birang": "避让", "rang": "让行"},
        "ped": {
            "xingren": "行人",
            "guojie": "过街行人",
            "buxing": "步行者",
            "luren": "路人|过往行人",
        },
        "cross": {
            "renxing": "人行横道",
            "guojiedao": "过街通道",
            "banma": "斑马线",
            "hengdaoxian": "人行横道线",
        },
        "closed": {
            "fengbi": "封闭",
            "guanbi": "关闭",
            "jinxing": "禁止通行",
            "shigong": "施工封闭",
            "jinzhishiru": "禁止驶入",
            "bukeyong": "不可通行|暂停使用",
        },
        "merge": {
            "bingdao": "向{side}并道|请向{side}并道",
            "biandao": "向{side}变道|请向{side}变道",
            "bingxian": "向{side}并线",
            "kao": "靠{side}行驶",
            "huandao": "向{side}换道|向{side}侧换道",
            "shixiang": "驶向{side}侧",
            "zou": "向{side}行驶|改向{side}行驶",
        },
        "speed": {
            "xiansu": "限速|最高限速",
            "shisu": "最高时速|最高车速",
            "shangxian": "车速上限",
            "sudu": "最高速度",
        },
        "turn": {"youzhuan": "右转|向右转弯", "youguai": "右拐"},
        "rlane": {
            "youce": "右侧车道|右车道",
            "zuiyou": "最右侧车道",
            "zuiwai": "最右边的车道",
            "kaoyou": "靠右车道|靠右侧车道",
        },
        "bus": {
            "zhuanyong": "公交专用道",
            "chedao": "公交车专用车道",
            "xianxing": "公交车道",
            "gonggong": "公共汽车专用道",
        },
        "num": {"digits": "d", "hanzi": "h"},
        "unit": {
            "gongli": "公里/小时|公里每小时",
            "kmh": "km/h",
            "none": "",
            "meixiaoshi": "每小时",
            "qianmi": "千米/小时",
            "gongli_short": "公里",
        },
        "dist_unit": {"mi": "米", "m": "m", "gongchi": "公尺"},
        "time": {
            "hanzi": "{az}点到{bz}点|{az}时至{bz}时",
            "clock": "{a}:00-{b}:00|{A}:00至{b}:00|{a}:00\u2014{b}:00",
            "shi": "{a}时至{b}时|{a}点至{b}点",
            "ampm": "早上{az}点到{pm}{bhz}点|上午{a}时至{pm}{bh}时",
            "dao": "{a}:00到{b}:00|{A}:00到{b}:00",
        },
        "always": {
            "quantian": "全天",
            "quantianhou": "全天候|全时段",
            "24h": "24小时",
            "quanri": "全日",
        },
        "days": {"none": "", "shangxue": "上学日", "gongzuo": "工作日|周一至周五"},
        "lane_named": {
            "name": {"left": "左侧车道|左车道", "centre": "中间车道", "right": "右侧车道|右车道"},
            "position": {"left": "最左侧车道", "centre": "正中间的车道", "right": "最右侧车道"},
            "bian": {"left": "最左边的车道", "right": "最右边的车道"},
            "zhongyang": {"centre": "中央车道"},
        },
        "lane_num": {
            "di": "第{k}车道|第{k}条车道",
            "zuoqi": "左起第{kz}条车道|从左数第{kz}条车道",
            "hao": "{k}号车道",
            "zuoshu": "左数第{kz}条车道",
        },
        "lane_right": {
            "youqi": "右起第{kz}条车道|从右数第{kz}条车道",
            "youshu": "右数第{kz}条车道",
        },
        "subj_all": {
            "none": "",
            "cheliang": "车辆|所有车辆",
            "jidongche": "机动车|各类机动车",
            "jiashiren": "驾驶人|驾驶员",
        },
        "scope_all": {"all": "所有车辆|各类车辆", "quanbu": "全部车辆"},
        "scope_cars": {"cars": "小型汽车|小客车|轿车", "xiaoxing": "小型车|小型客车"},
        "scope_trucks": {
            "huoche": "7.5吨以上货车|总重7.5吨以上的货车",
            "dahuoche": "大型货车（7.5吨以上）",
            "zaihuo": "7.5吨以上载货汽车|总质量超过7.5吨的货车",
        },
        "scope_buses": {"buses": "公交车|公共汽车", "cheliang": "公交车辆"},
        "scope_coaches": {"coaches": "大客车|旅游客车|长途客车", "daxing": "大型客车"},
        "scope_cyclists": {"cyclists": "自行车|非机动车", "qixing": "自行车骑行者|骑自行车的人"},
        "scope_motorcycles": {"motorcycles": "摩托车", "qishou": "摩托车驾驶人|摩托车骑手"},
        # --- rules about something else, composed (twenty-second session; see lexicon_en) ---
        "dact": {
            "horn": "鸣笛|鸣喇叭",
            "smoke": "吸烟|抽烟",
            "phone": "使用手机|手持电话",
            "idle": "发动机怠速|原地空转发动机",
            "beam": "使用远光灯|开远光灯",
            "tow": "拖挂房车",
            "camp": "露营|车内过夜",
            "wash": "洗车",
            "music": "大声播放音乐",
            "feed": "投喂动物",
            "unload": "卸货|装卸货物",
            "rubbish": "乱扔垃圾|倾倒垃圾",
            "kite": "放风筝",
            "fireworks": "燃放烟花爆竹",
        },
        "dobl": {
            "belt": "系好安全带|系安全带",
            "dipped": "开启近光灯|打开前照灯",
            "engine_off": "熄火|关闭发动机",
            "dogs": "牵好宠物",
            "helmet": "佩戴头盔",
            "ticket": "出示停车票|备好通行卡",
            "lock": "锁好车门|随身携带贵重物品",
            "licence": "随身携带驾驶证",
            "mirrors": "收起后视镜",
        },
        "dsubj": {"none": "", "jiashiren": "驾驶人|驾驶员", "fangke": "访客|顾客"},
        "dplace": {
            "none": "",
            "cichu": "此处|本区域",
            "tunnel": "隧道内",
            "hospital": "医院附近",
            "car_park": "停车场内",
            "shops": "商店门口",
            "residential": "居民区内",
            "station": "加油站内",
            "services": "服务区内",
            "night": "夜间",
            "ferry": "渡轮上",
            "depot": "车场院内",
        },
    }
)

# fmt: off
HELD = frozenset({
    "prohib.buxu", "permit.ke", "overtake.chaoguo", "stop.zhiting", "amber.huangsedeng",
    "proceed.jixu", "yield.birang", "ped.buxing", "cross.guojiedao", "closed.shigong",
    "merge.kao", "speed.shangxian", "rlane.zuiwai", "bus.xianxing", "unit.qianmi",
    "dist_unit.gongchi", "time.ampm", "always.24h", "lane_named.bian", "lane_num.hao",
    "scope_trucks.dahuoche", "dact.kite", "dact.fireworks", "dobl.licence", "dobl.mirrors",
    "dplace.ferry", "dplace.depot",
})
# fmt: on


def _num(ctx: Ctx, n: int) -> str:
    return zh_number(n) if ctx.member("num") == "hanzi" else str(n)


def _limit(ctx: Ctx, pos: str) -> str:
    n = 15 if pos == "dist" else ctx.rule.limit
    assert n is not None
    num = _num(ctx, n)
    if pos == "dist":
        unit = ctx.word("dist_unit")
        return num + ("米" if unit == "m" and not num.isdigit() else unit)  # never 十五m
    if pos == "bare":
        return num
    unit = ctx.member("unit")
    if unit == "meixiaoshi":
        return f"每小时{num}公里"
    return num + ctx.word("unit")


def _hours(ctx: Ctx, pos: str) -> str:
    days = ctx.word("days")
    if ctx.rule.hours == "always":
        return days + ctx.word("always")
    a, b = SPANS[ctx.rule.hours or "day"]
    form = ctx.rng.choice(ctx.lex.concepts["time"][ctx.member("time")][""])
    when = form.format(
        a=a,
        b=b,
        A=f"{a:02d}",
        az=zh_number(a),
        bz=zh_number(b),
        bh=b - 12,
        bhz=zh_number(b - 12),
        pm="下午" if b <= 18 else "晚上",
    )
    return days + when


def _lane(ctx: Ctx, pos: str) -> str:
    lane = ctx.rule.lane or "left"
    if ctx.rule.variant == "named":
        m = ctx.member("lane_named", lane)
        return ctx.rng.choice(ctx.lex.concepts["lane_named"][m][lane])
    return ctx.word("lane_right" if lane.startswith("r") else "lane_num")


def _lane_k(ctx: Ctx) -> int:
    return int((ctx.rule.lane or "1").lstrip("r"))


PARAMS = {
    "limit": _limit,
    "dist": lambda ctx, pos: _limit(ctx, "dist"),
    "hours": _hours,
    "lane": _lane,
    "k": lambda ctx, pos: _num(ctx, _lane_k(ctx)),
    "kz": lambda ctx, pos: zh_number(_lane_k(ctx)),
    "side": lambda ctx, pos: "左" if ctx.rule.merge == "left" else "右",
    "subj": lambda ctx, pos: ctx.word(
        "subj_all" if ctx.rule.scope == "all" else f"scope_{ctx.rule.scope}"
    ),
    "scope": lambda ctx, pos: ctx.word(f"scope_{ctx.rule.scope}"),
}


_c = partial(constructions, "zh")

_COMPOSED = (
    ("dc.prohib", "{dplace}{prohib}{dact}"),
    ("dc.subj", "{dplace}{dsubj}{prohib}{dact}"),
    ("dc.colon", "{dplace}{dact}：{prohib_de}"),
    ("dc.yilv", "{dplace}一律{prohib}{dact}"),
    ("dc.shi", "{dplace}{dact}是{prohib_de}的"),
    ("dc.qing", "{dplace}请{dobl}"),
    ("dc.xu", "{dplace}{dsubj}须{dobl}"),
    ("dc.bixu", "{dplace}{dsubj}必须{dobl}"),
    ("dc.fakuan", "{dplace}{dact}者将被罚款"),
    ("dc.wubi", "{dplace}务必{dobl}"),
)

CONSTRUCTIONS = (
    *_c(
        "speed_limit",
        "",
        ("s.xiansu", "{here}限速{limit}"),
        ("s.speed", "{speed}{limit}"),
        ("s.colon", "{speed}：{limit}"),
        ("s.subj", "{subj}车速{prohib}超过{limit}"),
        ("s.shisu", "{here}时速{prohib}超过{limit:bare}公里"),
        ("s.yingdang", "行驶速度不应高于{limit}"),
        ("s.qing", "请将车速控制在{limit}以内"),
        ("s.wei", "{here}{speed}为{limit}"),
        ("s.chaosu", "车速超过{limit}即为超速"),
        held=("s.yingdang",),
    ),
    *_c(
        "school_zone",
        "",
        ("z.quyu", "学校区域{hours}限速{limit}"),
        ("z.paren", "学校路段限速{limit}（{hours}）"),
        ("z.hours_first", "{hours}学校区域内车速{prohib}超过{limit}"),
        ("z.colon", "学校区域：{hours}{speed}{limit}"),
        ("z.xiaoyuan", "校园周边{hours}最高时速{limit}"),
        ("z.qing", "学校区域{hours}请减速至{limit}"),
        ("z.subj", "{hours}{subj}在学校区域内车速{prohib}超过{limit}"),
        ("z.colon_hours", "{hours}：学校区域{speed}{limit}"),
        held=("z.xiaoyuan",),
    ),
    *_c(
        "overtaking",
        "prohibited",
        ("o.prohib", "{here}{prohib}{overtake}"),
        ("o.subj", "{subj}{prohib}{overtake}"),
        ("o.no_longer", "{here}不再允许{overtake}"),
        ("o.colon", "{overtake}：{prohib}"),
        ("o.shi", "{here}{overtake}是不允许的"),
        ("o.qingwu", "{here}请勿{overtake}"),
        ("o.yilv", "{here}{overtake}一律禁止"),
        ("o.zaici", "{subj}在此{prohib}{overtake}"),
        # Tenth round: sentence-final 是…的 now trains with turn on red (u.shide), which makes
        # o.shi easier; o.renhe is held out beside it so the split keeps an unseen construction.
        ("o.renhe", "{here}{prohib}任何{overtake}行为"),
        held=("o.shi", "o.renhe"),
    ),
    *_c(
        "overtaking",
        "permitted",
        ("p.permit", "{here}{permit}{overtake}"),
        ("p.subj", "{subj}{permit}{overtake}"),
        ("p.jiechu", "解除禁止{overtake}"),
        ("p.no_longer", "{here}不再禁止{overtake}"),
        ("p.buxian", "{here}{overtake}不受限制"),
        ("p.colon", "{overtake}：允许"),
        ("p.jieshu", "禁止{overtake}路段结束"),
        ("p.zaici", "{subj}在此{permit}{overtake}"),
        ("p.bujin", "{here}不禁止{overtake}"),
        held=("p.buxian",),
    ),
    *_c(
        "lane_closed",
        None,
        ("l.comma", "{lane}{closed}，{merge}"),
        ("l.ahead", "前方{lane}{closed}，{merge}"),
        ("l.works", "施工：{lane}{closed}，{merge}"),
        ("l.merge_first", "{merge}：{lane}{closed}"),
        ("l.yin", "因{lane}{closed}，车辆须{merge}"),
        ("l.zhuyi", "注意：{lane}{closed}，{merge}"),
        ("l.yi", "{lane}已{closed}，{merge}"),
        ("l.qianfang", "{lane}前方{closed}，{merge}"),
        held=("l.yin",),
    ),
    *_c(
        "amber",
        "always_stop",
        ("a.must", "{amber}亮时必须{stop}"),
        ("a.terse", "{amber}{stop}"),
        ("a.yilv", "遇{amber}一律{stop}"),
        ("a.prohib", "{amber}亮起时{prohib}{proceed}"),
        ("a.subj", "{subj}遇{amber}须{stop}"),
        ("a.jibiao", "{amber}即表示须{stop}"),
        ("a.qing", "{amber}亮时请{stop}"),
        ("a.yuexian", "{amber}亮时{prohib}越过停止线"),
        ("a.yingdang", "{subj}遇{amber}应当{stop}"),
        ("a.no_longer", "{amber}亮时不再允许{proceed}"),
        held=("a.jibiao",),
    ),
    *_c(
        "amber",
        "proceed_if_close",
        ("c.ke", "{amber}亮时距停止线{dist}以内可{proceed}"),
        ("c.buzu", "遇{amber}，距停止线不足{dist}时可以{proceed}"),
        ("c.colon", "{amber}：距停止线{dist}以内{permit}{proceed}"),
        ("c.subj", "{subj}遇{amber}时如距停止线{dist}以内可以{proceed}"),
        ("c.fouze", "距停止线{dist}以内遇{amber}可{proceed}，否则须{stop}"),
        ("c.yiqian", "距停止线{dist}以内时，{amber}亮起可{proceed}"),
        ("c.ruguo", "{amber}亮时，如距停止线不足{dist}，可以{proceed}"),
        ("c.cheliang", "{amber}：距停止线{dist}以内的车辆可{proceed}"),
        ("c.no_longer", "{amber}亮时距停止线{dist}以内不再禁止{proceed}"),
        held=("c.fouze",),
    ),
    *_c(
        "yield_pedestrians",
        "",
        ("y.terse", "{yield}{ped}"),
        ("y.cross", "在{cross}前{yield}等候的{ped}"),
        ("y.subj", "{subj}遇{ped}在{cross}等候时应{yield}"),
        ("y.first", "{cross}前请让等候的{ped}先行"),
        ("y.youxian", "{cross}处等候的{ped}优先"),
        ("y.qing", "请在{cross}前{yield}等候的{ped}"),
        ("y.yingdang", "{subj}应当{yield}等候的{ped}"),
        ("y.jingguo", "经过{cross}时{yield}等候的{ped}"),
        held=("y.youxian",),
    ),
    *_c(
        "turn_on_red",
        "permitted",
        ("t.permit", "红灯时{permit}{turn}"),
        ("t.terse", "红灯{permit}{turn}"),
        ("t.after", "红灯亮时停车后{permit}{turn}"),
        ("t.subj", "{subj}遇红灯停车后{permit}{turn}"),
        ("t.bujin", "红灯不禁止{turn}"),
        ("t.colon", "红灯{turn}：允许"),
        ("t.zhuangtai", "红灯状态下{permit}{turn}"),
        ("t.anquan", "遇红灯停车确认安全后{permit}{turn}"),
        ("t.no_longer", "红灯时不再禁止{turn}"),
        ("t.jiechu", "解除红灯禁止{turn}"),
        held=("t.bujin",),
    ),
    *_c(
        "turn_on_red",
        "prohibited",
        ("u.terse", "红灯{prohib}{turn}"),
        ("u.shi", "红灯时{prohib}{turn}"),
        ("u.subj", "红灯亮时{subj}{prohib}{turn}"),
        ("u.no_longer", "红灯时不再允许{turn}"),
        ("u.green", "{turn}须等绿灯"),
        ("u.colon", "红灯{turn}：禁止"),
        ("u.qingwu", "红灯时请勿{turn}"),
        ("u.fangke", "绿灯亮时方可{turn}"),
        ("u.zhuangtai", "红灯状态下{prohib}{turn}"),
        # Tenth round: the wording check read 红灯亮起时右转是不被允许的 as a permission;
        # sentence-final 是…的 was only in the held-out o.shi.
        ("u.shide", "红灯时{turn}是{prohib_de}的"),
        ("u.liangqi", "红灯亮起时{turn}是{prohib_de}的"),
        held=("u.green",),
    ),
    *_c(
        "bus_lane",
        "",
        ("b.wei", "{rlane}为{bus}（{hours}）"),
        ("b.only", "{hours}{rlane}仅限公交车通行"),
        ("b.colon", "{rlane}：{bus}，{hours}"),
        ("b.hours_first", "{hours}{rlane}为{bus}"),
        ("b.no_cars", "{hours}小型汽车{prohib}驶入{rlane}"),
        ("b.rlane_first", "{rlane}{hours}为{bus}"),
        ("b.jingong", "{hours}{rlane}仅供公交车使用"),
        ("b.bus_colon", "{bus}：{rlane}，{hours}"),
        held=("b.no_cars",),
    ),
    *_c(
        "distractor",
        "",
        ("d.parking", "{prohib}停车"),
        ("d.parking_hours", "工作日8时至18时禁止停车"),
        ("d.horn", "医院附近{prohib}鸣笛"),
        ("d.tunnel", "隧道内请开启近光灯"),
        ("d.bridge", "桥上禁止停车"),
        ("d.uturn", "路口{prohib}掉头"),
        ("d.cycle", "自行车请走非机动车道"),
        ("d.loading", "装卸区6点至10点使用中"),
        ("d.litter", "禁止向车外抛洒物品"),
        ("d.chains", "冬季须安装防滑链"),
        ("d.seatbelt", "请系好安全带"),
        ("d.phone", "驾驶时禁止使用手机"),
        ("d.lights", "夜间请开启前照灯"),
        # More readable rules that bind no driving decision (see lexicon_en).
        ("d.smoking", "车内{prohib}吸烟"),
        ("d.drink", "严禁酒后驾驶"),
        ("d.helmet", "摩托车驾乘人员须佩戴头盔"),
        ("d.toll", "前方收费站，请准备好通行卡"),
        ("d.idle", "停车后请熄火"),
        ("d.overload", "车辆{prohib}超载"),
        ("d.fog", "雾天请开启雾灯"),
        ("d.hazard", "车辆故障时请开启危险报警闪光灯"),
        ("d.beam", "市区{prohib}使用远光灯"),
        ("d.rest", "连续驾驶两小时请休息"),
        ("d.residents", "居民专用停车位"),
        ("d.caravan", "停车场内{prohib}停放房车"),
        ("d.pets", "服务区内请牵好宠物"),
        ("d.paydisplay", "路边停车按时收费"),
        ("d.camera", "监控区域"),
        ("d.emissions", "低排放区：高排放车辆须缴费"),
        # Equipment, weather and vehicle care (see lexicon_en).
        ("d.winter_tyres", "冬季请使用雪地轮胎"),
        ("d.triangle", "车内须配备三角警告牌"),
        ("d.rain_lights", "雨天请开启示廓灯"),
        ("d.ice", "出发前请清除车窗积雪"),
        ("d.vest", "下车时请穿反光背心"),
        ("d.child_seat", "十二岁以下儿童须使用儿童座椅"),
        ("d.permit", "持证车辆专用停车位"),
        ("d.roof", "车顶行李须固定牢靠"),
        ("d.firstaid", "车内请备好急救包"),
        ("d.tyre_pressure", "请定期检查胎压"),
        ("d.studs", "夏季{prohib}使用防滑钉轮胎"),
        ("d.noise", "夜间请减少发动机噪音"),
        ("d.spare", "车辆须携带备用轮胎"),
        ("d.trailer", "挂车须悬挂号牌"),
        ("d.defrost", "出发前请除去挡风玻璃上的雾气"),
        ("d.wipers", "雨雪天请使用雨刮器"),
        held=("d.litter", "d.chains", "d.spare", "d.trailer", "d.defrost", "d.wipers"),
    ),
    # Composed rules about something else, all held out (see lexicon_en).
    *_c("distractor", "", *_COMPOSED, held=tuple(cid for cid, _ in _COMPOSED)),
)

WRAPPERS = _c(
    "scope", "any", ("w.colon", "{scope}：{body}"), ("w.paren", "{body}（{scope}）")
) + _c(
    "scope",
    None,
    ("w.prefix", "{scope}{body}"),
    ("w.zhi", "仅限{scope}：{body}"),
    ("w.only", "{body}（仅限{scope}）"),
    ("w.shiyong", "{body}，适用于{scope}"),
    held=("w.shiyong",),
)

LEXICON = Lexicon("zh", C, tuple(CONSTRUCTIONS), tuple(WRAPPERS), HELD, PARAMS, capitalise=False)
