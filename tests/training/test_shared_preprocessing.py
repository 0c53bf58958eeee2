"""Training and the node must use the very same preprocessing function objects."""

from __future__ import annotations

import perception.image
import perception.text
import policy.decider
import training.data


def test_image_path_is_one_function_object() -> None:
    assert training.data.preprocess_jpeg is perception.image.preprocess_jpeg
    assert policy.decider.preprocess_jpeg is perception.image.preprocess_jpeg


def test_text_path_is_one_class() -> None:
    import perception.modelmeta

    assert training.data.RuleTokenizer is perception.text.RuleTokenizer
    assert perception.modelmeta.RuleTokenizer is perception.text.RuleTokenizer
