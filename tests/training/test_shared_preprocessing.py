"""Training and the node must use the very same preprocessing: one image function, one rule
text function (``RuleEncoder.encode_rule_set``), and the same arrays out of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import perception.image
import policy.decider
import training.data
from perception.rule_encoder import RuleEncoder
from policy.model import PolicyModel


def test_image_path_is_one_function_object() -> None:
    assert training.data.preprocess_jpeg is perception.image.preprocess_jpeg
    assert policy.decider.preprocess_jpeg is perception.image.preprocess_jpeg


def test_text_path_is_one_function_and_gives_the_same_arrays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.policy.fakemodel import build_fake_model

    model = PolicyModel.load(build_fake_model(tmp_path / "fake.onnx"))
    calls: list[tuple[str, ...]] = []
    real = RuleEncoder.encode_rule_set

    def spy(self: RuleEncoder, texts, *a, **kw):  # type: ignore[no-untyped-def]
        calls.append(tuple(texts))
        return real(self, texts, *a, **kw)

    monkeypatch.setattr(RuleEncoder, "encode_rule_set", spy)
    texts = ("右侧车道封闭，请向左并线", "Max 50")
    node_states, node_mask = model.encode_rules(texts)[:2]
    table = training.data.RuleTable.build(texts, RuleEncoder.load(Path("models/text-encoder")))
    train_states, train_mask = table.gather(np.array([[table.index[t] for t in texts]]))
    # the node's call, then the table's: every text through the same function, once
    assert calls[0] == texts and sorted(t for c in calls[1:] for t in c) == sorted(texts)
    n = len(texts)
    np.testing.assert_array_equal(train_mask[0, :n], node_mask[:n])
    # the table keeps float16: the same states to its precision
    np.testing.assert_allclose(train_states[0, :n], node_states[:n], atol=2e-3)
