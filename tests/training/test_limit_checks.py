"""The fused model compares the limits its rules name with the ego speed (training.model): the
rule graph carries, per rule class, which limit a rule of that class names, and the frame side
turns it into "over" / "under" that limit. Checked on hand-made rule readings, so a wrong
slice, sign or slope shows here and not as a few points of accuracy after a 20-minute run."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.tf

N_CLASSES = 3


def _checks(profile: np.ndarray, speed: float) -> tuple[np.ndarray, np.ndarray]:
    import keras

    from training.model import _limit_checks

    width = 128 + profile.size
    rule_set = keras.Input((width,))
    speed_in = keras.Input((1,))
    _, checks = _limit_checks(rule_set, speed_in, N_CLASSES)
    model = keras.Model([rule_set, speed_in], checks)
    features = np.concatenate([np.zeros(128, "float32"), profile.reshape(-1)])[None]
    out = model.predict([features, np.array([[speed]], "float32")], verbose=0)[0]
    return out[:N_CLASSES], out[N_CLASSES:]


@pytest.fixture(scope="module")
def limits() -> tuple[float, ...]:
    from training.model import LIMITS_KPH

    return LIMITS_KPH


def _profile(limits: tuple[float, ...], cls: int, limit: float, p: float = 1.0) -> np.ndarray:
    prof = np.zeros((N_CLASSES, len(limits)), "float32")
    prof[cls, limits.index(limit)] = p
    return prof


@pytest.mark.parametrize(("speed", "over"), [(54.0, 1), (46.0, 0), (90.0, 1), (20.0, 0)])
def test_a_speed_three_kph_or_more_from_the_limit_is_clearly_over_or_under(
    limits: tuple[float, ...], speed: float, over: int
) -> None:
    got_over, got_under = _checks(_profile(limits, 1, 50.0), speed)
    assert got_over[1] == pytest.approx(over, abs=0.06)
    assert got_under[1] == pytest.approx(1 - over, abs=0.06)
    # The other classes name no limit: neither over nor under anything.
    assert np.abs(np.delete(got_over, 1)).max() < 1e-6
    assert np.abs(np.delete(got_under, 1)).max() < 1e-6


def test_an_unsure_reading_gives_an_unsure_check(limits: tuple[float, ...]) -> None:
    over, _ = _checks(_profile(limits, 0, 30.0, p=0.4), 60.0)
    assert over[0] == pytest.approx(0.4, abs=0.02)


def test_the_checks_come_from_the_serving_models_rule_set_features() -> None:
    """The fused model's rule_set_features carry the profile (128 + classes x limits wide), so
    the node's split (rule graph once per rule set, frame graph per frame) keeps the check."""
    from perception.spec import MODEL_SPEC
    from training.model import LIMITS_KPH, create_fused_model

    model = create_fused_model(6, N_CLASSES)
    layer = model.get_layer(MODEL_SPEC.rule_set_output)
    assert layer.output.shape[-1] == 128 + N_CLASSES * len(LIMITS_KPH)


def test_the_architecture_revision_is_part_of_the_model_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same config and data under another graph is another model: its version differs."""
    import training.model
    from training.config import TrainConfig
    from training.train import _model_version

    cfg = TrainConfig()
    now = _model_version(cfg, "b94103330395c5dd")
    assert now.startswith("fused-b9410333-")
    monkeypatch.setattr(training.model, "ARCHITECTURE", "another-graph")
    assert _model_version(cfg, "b94103330395c5dd") != now
    assert _model_version(cfg.model_copy(update={"model_version": "pinned"}), "x") == "pinned"
