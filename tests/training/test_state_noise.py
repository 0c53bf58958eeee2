"""TrainConfig.state_noise: Gaussian noise on the frozen encoder's token states while the reader
trains, and nothing at inference, so the exported graph and the node read a rule as without it."""

from __future__ import annotations

import numpy as np
import pytest

from training.config import TrainConfig

pytestmark = pytest.mark.tf


def _inputs(n: int = 2) -> list[np.ndarray]:
    from perception.spec import MODEL_SPEC

    rng = np.random.default_rng(0)
    r, t, d = MODEL_SPEC.rules.shape
    states = (0.26 * rng.standard_normal((n, r, t, d))).astype("float32")
    mask = np.zeros((n, r, t), "float32")
    mask[:, :2, :5] = 1.0  # two rules of five tokens
    return [states, mask]


def test_noise_moves_the_reading_only_in_training() -> None:
    import keras

    from perception.spec import MODEL_SPEC
    from training.model import create_text_encoder

    keras.utils.set_random_seed(3)
    x = _inputs()
    noisy = create_text_encoder(MODEL_SPEC, state_noise=0.5)
    plain = create_text_encoder(MODEL_SPEC)
    plain.set_weights(noisy.get_weights())  # the noise layer has no weights: same encoder
    infer = np.asarray(noisy(x, training=False))
    np.testing.assert_allclose(infer, np.asarray(plain(x, training=False)), atol=1e-6)
    trained = np.asarray(noisy(x, training=True))
    assert np.abs(trained - infer).max() > 1e-3  # the noise is there when training
    np.testing.assert_allclose(np.asarray(plain(x, training=True)), infer, atol=1e-6)


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_state_noise_out_of_range_is_refused(bad: float) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="state_noise"):
        TrainConfig(state_noise=bad)
