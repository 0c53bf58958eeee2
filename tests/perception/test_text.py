from __future__ import annotations

import json

import numpy as np
import pytest

from core.errors import ConfigError, MessageError
from perception.text import PAD_ID, UNK_ID, RuleTokenizer, tokenize

RULES = ["Speed limit 50 km/h", "No overtaking", "Left lane closed ahead, merge right"]


def test_tokenize_keeps_numbers_and_drops_punctuation() -> None:
    assert tokenize("School zone: 30 km/h on weekdays 7am-5pm") == [
        "school",
        "zone",
        "30",
        "km",
        "h",
        "on",
        "weekday",
        "7",
        "am",
        "5",
        "pm",
    ]


def test_word_forms_share_a_token() -> None:
    a = tokenize("Turning right at a red light is allowed after stopping")
    b = tokenize("Right turn on red allowed after a full stop")
    assert {"turn", "allow", "stop"} <= set(a) & set(b)


def test_tokenizer_built_with_another_normaliser_is_refused() -> None:
    obj = json.loads(RuleTokenizer.from_texts(RULES).to_json())
    obj["normaliser"] = "none"
    with pytest.raises(ConfigError, match="normaliser"):
        RuleTokenizer.from_json(json.dumps(obj))


def test_round_trip_through_json_keeps_encoding() -> None:
    tok = RuleTokenizer.from_texts(RULES)
    back = RuleTokenizer.from_json(tok.to_json())
    assert back == tok and back.sha256() == tok.sha256()
    np.testing.assert_array_equal(back.encode_rules(RULES), tok.encode_rules(RULES))


def test_encoding_shape_padding_and_unknown_words() -> None:
    tok = RuleTokenizer.from_texts(RULES)
    enc = tok.encode_rules(["No overtaking", "Horn prohibited"])
    assert enc.shape == (tok.max_rules, tok.max_tokens) and enc.dtype == np.int32
    assert list(enc[0][:2]) == [tok.index["no"], tok.index["overtak"]]
    assert enc[1][0] == UNK_ID and enc[1][1] == UNK_ID  # words never seen in training
    assert (enc[2:] == PAD_ID).all()


def test_rule_order_permutes_rows_only() -> None:
    tok = RuleTokenizer.from_texts(RULES)
    a, b = tok.encode_rules(RULES), tok.encode_rules(RULES[::-1])
    assert sorted(map(tuple, a)) == sorted(map(tuple, b))


def test_too_many_rules_is_a_message_error() -> None:
    tok = RuleTokenizer.from_texts(RULES)
    with pytest.raises(MessageError, match="too_many_rules"):
        tok.encode_rules(["No overtaking"] * (tok.max_rules + 1))


def test_long_rule_is_truncated_not_rejected() -> None:
    tok = RuleTokenizer.from_texts(RULES)
    assert tok.encode_rule(" ".join(["no"] * 100)).shape == (tok.max_tokens,)


DUPLICATE = '{"vocab": ["<pad>", "<unk>", "a", "a"], "max_rules": 5, "max_tokens": 20}'


@pytest.mark.parametrize("bad", ['{"vocab": ["a"]}', "not json", DUPLICATE])
def test_bad_tokenizer_json_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError):
        RuleTokenizer.from_json(bad)
