"""The adversarial review corpora of the fiftieth session (tests/perception/data/review50.py),
aimed at rules the model reads unsurely between a permission and a ban. The split-polarity
reading (perception.readcheck.agreed) may settle such a rule only on the ban its words write,
and on these texts it settles none wrongly; what the words' reading still gets wrong is listed
by name (a fix that removes one shows up too). The words writing a permission where there is
none is why the split reading never settles on a permission (docs/training.md, "A rule split
between a permission and a ban")."""

from __future__ import annotations

import pytest

from perception.polarity import POLAR_KINDS, written_polarity
from perception.readcheck import CAUTIOUS, agreed
from policy.model import PolicyModel
from tests.perception.data.review50 import ROWS
from tests.perception.test_readcheck import MODEL

# Left after the review's fixes: triple negations, sarcasm, reported claims, time, weather and
# place windows, other senses of the words, and road users no list names (pace car, 网约车).
KNOWN_PERMISSIONS_NOT_GIVEN = {
    "Authorised vehicles may overtake here.",
    "Beyond the bridge, overtaking isn't prohibited.",
    "By day, overtaking is not prohibited.",
    "Drivers from abroad often assume they may turn right on red here.",
    "Escort car: right turn on red not prohibited.",
    "In clear weather, right turn on red is not prohibited.",
    "In daylight, overtaking is not prohibited.",
    "In dry weather overtaking isn't prohibited.",
    "In the right lane, overtaking is not prohibited.",
    "It is not the case that right turns on red are not banned at this junction.",
    "It is not true that overtaking is not prohibited here.",
    "It's a common misconception that right turn on red isn't illegal here.",
    "Lead vehicle: overtaking not prohibited.",
    "Marked patrol units: overtaking not restricted.",
    "Off-peak: right turn on red not prohibited.",
    "Official vehicles: overtaking not restricted.",
    "On Sundays, overtaking is not restricted.",
    "Pace car: overtaking not prohibited.",
    "Permit holders may overtake on this section.",
    "Permit holders: overtaking not prohibited.",
    "Race marshals: overtaking not prohibited.",
    "Safety car: overtaking not prohibited.",
    "The 'Overtaking allowed' sign has been removed.",
    "Vehicles with a permit may turn right on red.",
    "Vehicles with a special permit may overtake here.",
    "With good visibility overtaking is not prohibited.",
    "Yeah right, like overtaking on this bridge isn't illegal.",
    "You can turn right on Red Street.",
    "下个路口红灯右转不受限制",
    "允许红灯右转的标志已拆除",
    "允许超车标志已拆除",
    "出隧道后不禁止超车",
    "平日红灯右转不受限制",
    "应急保障车辆不禁止超车",
    "执行任务的车辆红灯右转不受限制",
    "持有特别通行证的车辆红灯右转不受限制",
    "挂警灯的车辆超车不受限制",
    "早晚高峰以外红灯右转不受限制",
    "晴天超车不受限制",
    "本路口不是不禁止红灯右转",
    "特勤车辆红灯右转不受限制",
    "白天红灯右转不受限制",
    "白天超车不受限制",
    "红灯右转并非不禁止",
    "网约车可以红灯右转",
    "网约车红灯右转不受限制",
    "警卫车辆超车不受限制",
    "说这里能超车的人都错了",
    "赛事车辆超车不受限制",
    "过了桥就不禁止超车了",
    "这里并非不禁止超车",
    "领航车不禁止超车",
}
# Permissions read as bans: liftings and encouragement in words no list has.
KNOWN_PERMISSIONS_READ_AS_BANS = {
    "Dispatch: right turns on red at Elm St no longer a problem.",
    "Overtaking ban: finished.",
    "The no right turn on red signs have been taken away.",
    "Turning right on red is not an issue at this junction.",
    "禁止超车的规定已被删除",
    "请忽略旧的禁止超车标志",
    "车队通知：海滨路超车不再是问题",
}


def _written(polarity: str, truth_is: bool) -> set[str]:
    return {
        text
        for text, truth, _ in ROWS
        for kind in POLAR_KINDS
        if written_polarity(text, kind) == polarity and (truth == f"{kind}:permitted") == truth_is
    }


def test_the_words_write_a_permission_where_there_is_none_only_on_the_known_texts() -> None:
    assert _written("permitted", False) == KNOWN_PERMISSIONS_NOT_GIVEN


def test_the_words_write_a_ban_for_a_permission_only_on_the_known_texts() -> None:
    assert _written("prohibited", True) == KNOWN_PERMISSIONS_READ_AS_BANS


@pytest.fixture(scope="module")
def model() -> PolicyModel:
    return PolicyModel.load(MODEL, "cpu", reading_threshold=0.0)  # the model's own reading


def test_the_split_reading_settles_no_review_text_wrongly(model: PolicyModel) -> None:
    """Of the 515 texts, the split-polarity reading settles those the model splits between the
    two polarities and whose words write the ban, and every one it settles is a ban; the
    first version (either polarity, before the fixes) settled 41 of the first review's texts
    and 36 of them wrongly."""
    classes = list(model.meta.rule_classes)
    settled = {}
    for text, truth, _ in ROWS:
        read = model.encode_rules((text,))
        assert read.classes is not None
        for _, c in agreed(read.classes, read.mask, 0.85, (text,), classes):
            settled[text] = (truth, classes[c])
    assert settled  # the corpus reaches the step
    assert all(c.endswith(CAUTIOUS) for _, c in settled.values())
    assert {t for t, (truth, c) in settled.items() if truth != c} == set()
