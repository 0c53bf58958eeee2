"""TrainConfig.ema_momentum: the checkpoint the best-epoch callback saves, and the validation
it is chosen on, are the moving average of the weights, not the last step's weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import ConfigError
from ruledrive.cli import main as cli
from training.config import TrainConfig, load_config

pytestmark = pytest.mark.tf


def _fit(cfg: TrainConfig, out: Path) -> tuple[list[np.ndarray], list[np.ndarray], object]:
    """A small regression fitted two epochs with train's optimizer and callbacks; the saved
    weights, the model's weights after the fit, and the model."""
    import keras

    from training.train import adam, averaging

    keras.utils.set_random_seed(5)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 4)).astype("float32")
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], "float32"))[:, None]
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=adam(keras, cfg, 0.05), loss="mse")
    save = keras.callbacks.ModelCheckpoint(out / "model.keras", save_best_only=False)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[*averaging(keras, cfg), save])
    saved = keras.models.load_model(out / "model.keras", compile=False).get_weights()
    return saved, model.get_weights(), model


def test_the_checkpoint_holds_the_averaged_weights(tmp_path: Path) -> None:
    cfg = TrainConfig(ema_momentum=0.9)
    saved, _, model = _fit(cfg, tmp_path)
    average = [np.asarray(v) for v in model.optimizer._model_variables_moving_average]
    for got, want in zip(saved, average, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_without_averaging_the_checkpoint_is_the_trained_weights(tmp_path: Path) -> None:
    plain, after, _ = _fit(TrainConfig(), tmp_path / "plain")
    for got, want in zip(plain, after, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    averaged, _, _ = _fit(TrainConfig(ema_momentum=0.9), tmp_path / "ema")
    # the same data, seed and steps: only the averaging differs, and it moves the weights
    assert max(float(np.abs(a - p).max()) for a, p in zip(averaged, plain, strict=True)) > 1e-3


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_a_momentum_outside_0_to_1_is_refused(bad: float) -> None:
    with pytest.raises(ConfigError, match="ema_momentum"):
        load_config(None, {"ema_momentum": bad})


@pytest.mark.parametrize("command", ["train", "train-default"])
def test_a_bad_flag_is_a_usage_error(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    extra = ["--data", "x", "--out", "y"] if command == "train" else []
    assert cli([command, *extra, "--ema-momentum", "2"]) == 2
    assert "--ema-momentum: must be within 0..1" in capsys.readouterr().err
