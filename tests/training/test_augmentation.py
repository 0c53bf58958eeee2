"""Training-only augmentations of the tf.data pipeline (position shift, token dropout) and the
speed ramps' initial thresholds: what they may and may not change."""

from __future__ import annotations

import numpy as np
import pytest

from perception.text import UNK_ID, RuleTokenizer
from training.data import ArrayDataset, maskable_ids

pytestmark = pytest.mark.tf

RULES = [
    "Lane 2 closed, merge left",
    "Speed limit 50 km/h",
    "No overtaking",
    "Trucks over 7.5 t: no overtaking on the hill near the school before 7am",
]


def _dataset(n: int = 64) -> tuple[ArrayDataset, RuleTokenizer]:
    tok = RuleTokenizer.from_texts(RULES)
    rng = np.random.default_rng(0)
    tokens = np.stack(
        [tok.encode_rules(list(rng.permutation(RULES)[: rng.integers(0, 5)])) for _ in range(n)]
    )
    tokens[0, 0] = np.arange(2, 2 + tokens.shape[-1]) % tok.vocab_size  # a full row: no room
    tokens[0, 0][tokens[0, 0] == 0] = 2
    return (
        ArrayDataset(
            np.zeros((n, 2, 2, 3), np.uint8),
            tokens,
            np.zeros((n, 1), np.float32),
            np.zeros(n, np.int32),
            [],
        ),
        tok,
    )


def _batches(ds: ArrayDataset, **kw: object) -> np.ndarray:
    tf_ds = ds.to_tf(batch_size=16, shuffle=False, seed=3, **kw)  # type: ignore[arg-type]
    return np.concatenate([x["rule_tokens"].numpy() for x, _ in tf_ds])


def test_position_shift_moves_rules_right_without_losing_or_reordering_tokens() -> None:
    ds, _ = _dataset()
    out = _batches(ds, position_shift=2)
    shifts = []
    for before, after in zip(
        ds.tokens.reshape(-1, ds.tokens.shape[-1]), out.reshape(-1, out.shape[-1]), strict=True
    ):
        words = before[before != 0]
        np.testing.assert_array_equal(after[after != 0], words)  # same tokens, same order
        if len(words):
            k = int(np.argmax(after != 0))
            assert 0 <= k <= 2 and (after[:k] == 0).all()
            shifts.append(k)
    assert set(shifts) == {0, 1, 2}  # it does shift, by every amount allowed
    np.testing.assert_array_equal(out[0, 0], ds.tokens[0, 0])  # a full row cannot move
    np.testing.assert_array_equal(_batches(ds), ds.tokens)  # off by default (evaluation)


def test_token_dropout_masks_only_words_that_do_not_change_the_meaning() -> None:
    ds, tok = _dataset()
    out = _batches(ds, token_dropout=0.5, tokenizer=tok)
    hit = out != ds.tokens
    assert hit.any() and (out[hit] == UNK_ID).all()
    keep = ~maskable_ids(tok)
    assert not hit[keep[ds.tokens]].any()  # digits, left/right/centre, no/not, padding survive
    assert keep[tok.index["50"]] and keep[tok.index["left"]] and keep[tok.index["no"]]


def test_speed_ramps_start_as_thresholds_spread_over_the_speed_range() -> None:
    import keras

    from training.model import RAMP_TOP_KPH, _speed_features

    speed = keras.Input((1,), name="speed_kph")
    model = keras.Model(speed, _speed_features(speed))
    feats = model.predict(np.array([[0.0], [50.0], [130.0]], np.float32), verbose=0)
    ramps = feats[:, 1:]
    kinks_kph = np.linspace(0.0, RAMP_TOP_KPH, ramps.shape[1])
    np.testing.assert_allclose(ramps[1], np.maximum(50.0 - kinks_kph, 0) / 100, atol=1e-6)
    assert (ramps[0] == 0).all() and (ramps[2][:-1] > 0).all()
    assert np.diff(kinks_kph).max() < 6.0  # finer than the world's margin around a limit (2x3)
