"""The adversarial review corpora of the fiftieth session (tests/perception/data/review50.py),
aimed at rules the model reads unsurely between a permission and a ban. The split-polarity
reading (perception.readcheck.agreed) may settle such a rule only on the ban its words write,
and on these texts it settles none wrongly; the bans the words' reading writes for a
permission are listed by name (a fix that removes one shows up too). The words' permission is
read generously (on 165 of these texts where there is none: a question, a claim, a condition,
the past), which is why the split reading never settles on a permission and the words'
permission is only ever a check that refuses (docs/training.md, "A rule split between a
permission and a ban")."""

from __future__ import annotations

import pytest

from perception.polarity import POLAR_KINDS, written_polarity
from perception.readcheck import CAUTIOUS, agreed
from policy.model import PolicyModel
from tests.perception.data.review50 import ROWS
from tests.perception.test_readcheck import MODEL

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


def _written(polarity: str, truth_is: bool, reviews: tuple[str, ...]) -> set[str]:
    return {
        text
        for text, truth, review in ROWS
        if review in reviews
        for kind in POLAR_KINDS
        if written_polarity(text, kind) == polarity and (truth == f"{kind}:permitted") == truth_is
    }


def test_the_words_write_a_ban_for_a_permission_only_on_the_known_texts() -> None:
    assert _written("prohibited", True, ("first", "second")) == KNOWN_PERMISSIONS_READ_AS_BANS


def test_on_natural_wording_the_words_never_write_a_ban_where_there_is_none() -> None:
    """The third review's natural texts (a road authority's, a handbook's, a navigation
    app's, a dispatcher's): every ban the words write is a ban for the car; the texts aimed at
    the words (liftings in words no list has, "no crime", 没毛病) still find 112 such bans, which
    is why a settled ban is the only reading the words may choose."""
    natural = [(t, truth) for t, truth, review in ROWS if review == "third-natural"]
    assert len(natural) == 174  # 180, six of them already in the earlier reviews' rows
    bans = [
        (t, k) for t, _ in natural for k in POLAR_KINDS if written_polarity(t, k) == "prohibited"
    ]
    assert len(bans) >= 40
    truths = dict(natural)
    assert all(truths[t] == f"{k}:prohibited" for t, k in bans)


@pytest.fixture(scope="module")
def model() -> PolicyModel:
    return PolicyModel.load(MODEL, "cpu", reading_threshold=0.0)  # the model's own reading


def test_the_split_reading_settles_no_review_text_wrongly(model: PolicyModel) -> None:
    """Of the 886 texts, the split-polarity reading settles those the model splits between the
    two polarities and whose words write the ban, and every one it settles is a ban and right;
    the first version (either polarity, before the fixes) settled 41 of the first review's
    texts and 36 of them wrongly, and the ban-only step 22 of the third review's aimed texts,
    all wrongly, before the third round of fixes."""
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
