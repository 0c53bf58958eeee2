"""The fused model compares what its rules say with what the frame shows (training.model): the
rule graph carries, per rule class, which limit a rule of that class names and which lane it
closes towards which merge side; the frame side turns them into "over" / "under" that limit and
"the ego lane is the one named". Checked on hand-made rule readings, so a wrong slice, sign or
slope shows here and not as a few points of accuracy after a 20-minute run."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.tf

N_CLASSES = 3


def _lane_profile(
    cls: int = 0, spec: str = "L1", merge: str = "right", p: float = 1.0
) -> np.ndarray:
    from training.model import MERGE_SIDES
    from training.ruleparams import LANE_SPECS

    prof = np.zeros((N_CLASSES, len(LANE_SPECS), len(MERGE_SIDES)), "float32")
    prof[cls, LANE_SPECS.index(spec), MERGE_SIDES.index(merge)] = p
    return prof


def _run_checks(
    profile: np.ndarray,
    speed: float,
    lanes: np.ndarray | None = None,
    ego: np.ndarray | None = None,
) -> np.ndarray:
    import keras

    from training.model import MERGE_SIDES, _rule_checks
    from training.ruleparams import LANE_SPECS

    lanes = (
        np.zeros((N_CLASSES, len(LANE_SPECS), len(MERGE_SIDES)), "float32")
        if lanes is None
        else lanes
    )
    ego = np.zeros(len(LANE_SPECS), "float32") if ego is None else ego
    width = 128 + profile.size + lanes.size
    rule_set = keras.Input((width,))
    speed_in = keras.Input((1,))
    ego_in = keras.Input((len(LANE_SPECS),))
    _, checks = _rule_checks(rule_set, speed_in, ego_in, N_CLASSES)
    model = keras.Model([rule_set, speed_in, ego_in], checks)
    features = np.concatenate([np.zeros(128, "float32"), profile.reshape(-1), lanes.reshape(-1)])[
        None
    ]
    return model.predict(
        [features, np.array([[speed]], "float32"), ego[None].astype("float32")], verbose=0
    )[0]


def _checks(profile: np.ndarray, speed: float) -> tuple[np.ndarray, np.ndarray]:
    out = _run_checks(profile, speed)
    return out[:N_CLASSES], out[N_CLASSES : 2 * N_CLASSES]


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


def _ego(*specs: str) -> np.ndarray:
    from training.ruleparams import LANE_SPECS

    return np.array([float(s in specs) for s in LANE_SPECS], "float32")


def test_a_closed_lane_that_is_the_ego_lane_says_merge_toward_its_side(
    limits: tuple[float, ...],
) -> None:
    """A rule of class 2 closes the leftmost lane, merge right: on a frame whose ego lane is the
    leftmost, the (class 2, right) lane check is on; the others are off."""
    speed = _profile(limits, 0, 50.0, p=0.0)
    lanes = _lane_profile(cls=2, spec="L1", merge="right")
    closed = _run_checks(speed, 40.0, lanes, _ego("L1", "R2"))[2 * N_CLASSES :]
    want = np.zeros((N_CLASSES, 2), "float32")
    want[2, 1] = 1.0  # (class 2, MERGE_SIDES = left, right)
    np.testing.assert_allclose(closed, want.reshape(-1), atol=1e-6)


def test_a_closed_lane_elsewhere_or_an_unsure_ego_lane_gives_a_weak_check(
    limits: tuple[float, ...],
) -> None:
    speed = _profile(limits, 0, 50.0, p=0.0)
    lanes = _lane_profile(cls=2, spec="R1", merge="left")
    # Ego in the left lane of two (L1 = R2): the rightmost lane is closed, not ego's.
    assert _run_checks(speed, 40.0, lanes, _ego("L1", "R2"))[2 * N_CLASSES :].max() < 1e-6
    # A frame where the head is 30 % sure ego is in the rightmost lane: a 30 % check.
    ego = _ego() + 0.3 * _ego("R1")
    closed = _run_checks(speed, 40.0, lanes, ego)[2 * N_CLASSES :]
    assert closed[2 * 2 + 0] == pytest.approx(0.3, abs=1e-5)


def test_the_checks_come_from_the_serving_models_rule_set_features() -> None:
    """The fused model's rule_set_features carry both profiles (128 + classes x limits + classes
    x lanes x merge sides wide), so the node's split (rule graph once per rule set, frame graph
    per frame) keeps the checks; the ego-lane head is a training output, not an exported one."""
    from perception.spec import MODEL_SPEC
    from training.export import serving_outputs
    from training.model import LIMITS_KPH, MERGE_SIDES, create_fused_model
    from training.ruleparams import EGO_LANE_OUTPUT, LANE_SPECS

    model = create_fused_model(6, N_CLASSES)
    layer = model.get_layer(MODEL_SPEC.rule_set_output)
    assert layer.output.shape[-1] == 128 + N_CLASSES * (
        len(LIMITS_KPH) + len(LANE_SPECS) * len(MERGE_SIDES)
    )
    assert EGO_LANE_OUTPUT in model.output_names
    assert EGO_LANE_OUTPUT not in serving_outputs(model)


@pytest.mark.parametrize(
    ("n_lanes", "ego", "named"),
    [
        (2, 0, {"L1", "R2"}),
        (2, 1, {"L2", "R1"}),
        (3, 0, {"L1", "R3"}),
        (3, 1, {"L2", "R2", "C"}),
        (3, 2, {"L3", "R1"}),
    ],
)
def test_ego_lane_labels_name_every_way_a_rule_can_name_the_ego_lane(
    n_lanes: int, ego: int, named: set[str]
) -> None:
    from training.ruleparams import LANE_SPECS, ego_lane_labels

    got = ego_lane_labels({"n_lanes": n_lanes, "ego_lane": ego})
    assert {s for s, v in zip(LANE_SPECS, got, strict=True) if v == 1} == named
    assert set(got) <= {0, 1}


@pytest.mark.parametrize(
    "scene",
    [
        None,
        {},
        {"n_lanes": 2},
        {"n_lanes": 2, "ego_lane": 2},
        {"n_lanes": "2", "ego_lane": 0},
        {"n_lanes": 2, "ego_lane": True},
        {"n_lanes": 2, "ego_lane": -1},
    ],
)
def test_ego_lane_labels_of_a_missing_or_malformed_scene_are_not_trained_on(scene: object) -> None:
    from training.ruleparams import LANE_SPECS, ego_lane_labels

    assert ego_lane_labels(scene) == [-1] * len(LANE_SPECS)


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
