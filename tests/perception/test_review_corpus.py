"""The adversarial review corpora of the forty-ninth session (tests/perception/data/review49.py)
hold the checks of what a rule's words write to what was measured after the review's fixes: no
new false flag (a rule of another road user, an information sign, a permission refused) and no
new miss may appear. The few left are listed by name, so a fix that removes one shows up too."""

from __future__ import annotations

import numpy as np

from perception.polarity import written_polarity
from perception.readcheck import binding_alternatives
from tests.perception.data.review49 import C1, C2, H1, H2
from tests.perception.test_binding import CLASSES


def _asked(text: str) -> bool:
    return bool(binding_alternatives((text,), np.array([CLASSES.index("not_binding")]), CLASSES))


def _wrong(text: str, kind: str, truth: str) -> bool:
    got = written_polarity(text, kind)
    return (truth in "AX" and got == "prohibited") or (truth in "PC" and got == "permitted")


# Left after the fixes (docs/training.md): statistics, past or elsewhere, an amber phase length.
KNOWN_FALSE_FLAGS = {
    "Overtaking crashes: 12 deaths on this road since 2019",
    "In France, overtaking on the right is prohibited",
    "Overtaking was banned here until the road was widened",
    "Amber traffic light phase at this junction: 4 seconds",
    "Germany: built-up areas 50 km/h",
    "超车道仅供超车使用",
    "超车事故多发路段",
    "本路段近三年因超车发生事故12起",
    # H1, written after the fixes: classes no list names, and a slogan
    "Car transporters must not overtake",
    "Slow down, people walking",
    "大件运输车辆禁止超车",
    "环卫车红灯禁止右转",
    "让人省心的停车场",
    "冷链车禁止超车",
}
KNOWN_MISSES = {
    "Do not overtake cyclists",
    "Speed limit seventy",
    "超车道限速120 行车道限速100",
    "遇行人通过人行横道请停车",
    "右转受信号灯控制",
    "右转弯车辆按信号灯通行",
    "右转请看信号灯",
    "黄闪信号 减速慢行",
}
KNOWN_WRONG_POLARITIES = {
    "Turning right on red is banned in New York City",
    "Do not drive around closed gates",  # H2
    "冷链车禁止超车",  # H2
}


def test_rules_that_bind_no_car_are_not_checked_and_rules_of_the_car_are() -> None:
    nb = [t for t, truth, _ in C1 if truth == "NB"] + [t for t, truth in H1 if truth == "NB"]
    binding = [t for t, truth, _ in C1 if truth == "B"] + [t for t, truth in H1 if truth == "B"]
    assert len(nb) > 350 and len(binding) > 120
    assert {t for t in nb if _asked(t)} <= KNOWN_FALSE_FLAGS
    assert {t for t in binding if not _asked(t)} <= KNOWN_MISSES


def test_written_polarities_of_the_review_corpus() -> None:
    rows = [(t, k, truth) for t, k, truth, _ in C2] + list(H2)
    assert len(rows) > 350
    assert {t for t, k, truth in rows if _wrong(t, k, truth)} <= KNOWN_WRONG_POLARITIES
    # plain prohibitions still read; a conditional ban read as plain only refuses (15 of C2's,
    # mostly places, where the ban holds wherever the sign stands)
    plain = [(t, k) for t, k, truth, _ in C2 if truth == "P"]
    assert sum(written_polarity(t, k) == "prohibited" for t, k in plain) >= len(plain) // 2
    conditional = [(t, k) for t, k, truth, _ in C2 if truth == "C"]
    assert sum(written_polarity(t, k) == "prohibited" for t, k in conditional) <= 15
