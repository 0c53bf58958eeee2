"""TrainConfig.split_words: Chinese rules read in a second segmentation while training, their
words in characters (perception.rule_encoder.split_han_words), from rows of the rule table of
their own (RuleTable.add_split_forms); everything that is not training reads the tokenizer's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import ConfigError, DataError
from perception.rule_encoder import RuleEncoder
from ruledrive.cli import main as cli
from training.config import load_config
from training.data import SPLIT_KEY, RuleTable

TEXTS = [
    "No overtaking on this road",
    "驾驶人可以在本路段超过前方车辆",  # many words: its split form differs (p = 1 - 2^-6)
    "左侧车道封闭，请向右并线",
    "学校区域限速30公里/小时",
    "School zone: 30 km/h on weekdays",
]


@pytest.fixture(scope="module")
def encoder() -> RuleEncoder:
    return RuleEncoder.load(cache_size=0)


@pytest.fixture(scope="module")
def table(encoder: RuleEncoder, tmp_path_factory: pytest.TempPathFactory) -> RuleTable:
    t = RuleTable.build(TEXTS, encoder)
    t.add_split_forms(encoder, tmp_path_factory.mktemp("cache") / "t.split.npz")
    return t


def test_split_forms_are_rows_of_their_own(table: RuleTable, encoder: RuleEncoder) -> None:
    assert table.alt is not None
    split = [t for t in TEXTS if encoder.split_ids(t) != encoder.token_ids(t)]
    assert TEXTS[1] in split and TEXTS[0] not in split and TEXTS[4] not in split
    assert table.n_texts == len(TEXTS) and len(table.texts) == len(TEXTS) + len(split)
    for text in TEXTS:
        row = table.index[text]
        if text not in split:
            assert table.alt[row] == -1
            continue
        alt = int(table.alt[row])
        assert table.texts[alt] == SPLIT_KEY + text
        states, mask = encoder.encode_ids([encoder.split_ids(text)])
        assert np.array_equal(table.masks[alt], mask[0].astype(np.uint8))
        assert np.array_equal(table.states[alt], states[0].astype(np.float16))
        assert table.masks[alt].sum() > table.masks[row].sum()  # more, shorter pieces
    assert (table.alt[len(TEXTS) :] == -1).all()  # a split form has none of its own


def test_the_split_forms_cache_gives_the_same_rows(
    table: RuleTable, encoder: RuleEncoder, tmp_path: Path
) -> None:
    cache = tmp_path / "t.split.npz"
    first = RuleTable.build(TEXTS, encoder)
    first.add_split_forms(encoder, cache)
    assert cache.is_file()
    again = RuleTable.build(TEXTS, encoder)
    again.add_split_forms(encoder, cache)
    assert again.texts == first.texts == table.texts
    assert np.array_equal(again.states, first.states)
    with pytest.raises(DataError, match="already"):
        again.add_split_forms(encoder)


def test_training_reads_split_forms_and_nothing_else_does(table: RuleTable) -> None:
    assert table.alt is not None
    idx = np.array([[table.index[t] for t in TEXTS]] * 3 + [[-1] * len(TEXTS)])
    plain_states, plain_masks = table.gather(idx)
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    assert all(
        np.array_equal(a, b)
        for a, b in zip(table.gather(idx, 0.0, rng), (plain_states, plain_masks), strict=True)
    )
    assert rng.bit_generator.state == before  # off draws nothing: training as before
    states, masks = table.gather(idx, 1.0, rng)
    has = table.alt[np.maximum(idx, 0)] >= 0
    want_states, want_masks = table.gather(np.where(has, table.alt[np.maximum(idx, 0)], idx))
    assert np.array_equal(states, want_states) and np.array_equal(masks, want_masks)
    assert not np.array_equal(states, plain_states)
    assert not masks[3].any()  # an empty slot stays empty
    half = [table.gather(idx[:1], 0.5, rng)[1].sum() for _ in range(64)]
    assert len(set(half)) > 1  # each occurrence draws its own form
    with pytest.raises(ValueError, match="rng"):
        table.gather(idx, 0.5)


def test_a_table_with_sentence_vectors_gets_no_split_forms(encoder: RuleEncoder) -> None:
    t = RuleTable.build(TEXTS[:2], encoder)
    t.sentences = np.zeros((2, 512), np.float32)
    with pytest.raises(DataError, match="sentence"):
        t.add_split_forms(encoder)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"split_words": -0.1}, "split_words"),
        ({"split_words": 1.5}, "split_words"),
        ({"split_words": 0.5, "sentence_input": "use-m-v3"}, "cannot be combined"),
    ],
)
def test_bad_split_words_settings_are_refused(changes: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(None, changes)
    assert load_config(None, {"split_words": 0.5}).split_words == 0.5


@pytest.mark.parametrize("command", ["train", "train-default"])
def test_a_bad_split_words_flag_is_a_usage_error(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = ["--data", "x", "--out", "y"] if command == "train" else []
    assert cli([command, *extra, "--split-words", "2"]) == 2
    assert "--split-words: must be within 0..1" in capsys.readouterr().err
