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
    *,
    hours: np.ndarray | None = None,
    time: str = "day",
    sign: float = 0.0,
) -> dict[str, np.ndarray]:
    """The checks of hand-made rule-set features, by name: over, under, over_sign, under_sign
    [C]; closed [C,M]; in_force, in_force_rightmost [C]."""
    import keras

    from training.model import MERGE_SIDES, _rule_checks
    from training.ruleparams import (
        EGO_LANE_OUTPUT,
        LANE_SPECS,
        RULE_PARAMS,
        SCHOOL_SIGN_OUTPUT,
        TIME_OUTPUT,
        TIMES_OF_DAY,
    )

    n_h = len(RULE_PARAMS["rule_hours"])
    if lanes is None:
        lanes = np.zeros((N_CLASSES, len(LANE_SPECS), len(MERGE_SIDES)), "float32")
    ego = np.zeros(len(LANE_SPECS), "float32") if ego is None else ego
    hours = np.zeros((N_CLASSES, n_h), "float32") if hours is None else hours
    width = 128 + profile.size + lanes.size + hours.size
    rule_set = keras.Input((width,))
    speed_in = keras.Input((1,))
    scene_in = {
        EGO_LANE_OUTPUT: keras.Input((len(LANE_SPECS),)),
        TIME_OUTPUT: keras.Input((len(TIMES_OF_DAY),)),
        SCHOOL_SIGN_OUTPUT: keras.Input((1,)),
    }
    _, checks = _rule_checks(rule_set, speed_in, scene_in, N_CLASSES)
    model = keras.Model([rule_set, speed_in, *scene_in.values()], checks)
    features = np.concatenate(
        [np.zeros(128, "float32"), profile.reshape(-1), lanes.reshape(-1), hours.reshape(-1)]
    )[None]
    tod = np.array([[t == time for t in TIMES_OF_DAY]], "float32")
    out = model.predict(
        [features, np.array([[speed]], "float32"), ego[None], tod, np.array([[sign]], "float32")],
        verbose=0,
    )[0]
    c = N_CLASSES
    return {
        "over": out[:c],
        "under": out[c : 2 * c],
        "over_sign": out[2 * c : 3 * c],
        "under_sign": out[3 * c : 4 * c],
        "closed": out[4 * c : 6 * c].reshape(c, 2),
        "in_force": out[6 * c : 7 * c],
        "in_force_rightmost": out[7 * c :],
    }


def _checks(profile: np.ndarray, speed: float) -> tuple[np.ndarray, np.ndarray]:
    out = _run_checks(profile, speed)
    return out["over"], out["under"]


@pytest.fixture(scope="module")
def limits() -> tuple[float, ...]:
    from training.model import LIMITS_KPH

    return LIMITS_KPH


def _profile(
    limits: tuple[float, ...], cls: int, limit: float, p: float = 1.0, hours: str = "none"
) -> np.ndarray:
    """Limits by class and hours [C,K,H]: one rule of class ``cls`` names ``limit``."""
    from training.ruleparams import RULE_PARAMS

    vocab = RULE_PARAMS["rule_hours"]
    prof = np.zeros((N_CLASSES, len(limits), len(vocab)), "float32")
    prof[cls, limits.index(limit), vocab.index(hours)] = p
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
    closed = _run_checks(speed, 40.0, lanes, _ego("L1", "R2"))["closed"]
    want = np.zeros((N_CLASSES, 2), "float32")
    want[2, 1] = 1.0  # (class 2, MERGE_SIDES = left, right)
    np.testing.assert_allclose(closed, want, atol=1e-6)


def test_a_closed_lane_elsewhere_or_an_unsure_ego_lane_gives_a_weak_check(
    limits: tuple[float, ...],
) -> None:
    speed = _profile(limits, 0, 50.0, p=0.0)
    lanes = _lane_profile(cls=2, spec="R1", merge="left")
    # Ego in the left lane of two (L1 = R2): the rightmost lane is closed, not ego's.
    assert _run_checks(speed, 40.0, lanes, _ego("L1", "R2"))["closed"].max() < 1e-6
    # A frame where the head is 30 % sure ego is in the rightmost lane: a 30 % check.
    ego = _ego() + 0.3 * _ego("R1")
    closed = _run_checks(speed, 40.0, lanes, ego)["closed"]
    assert closed[2, 0] == pytest.approx(0.3, abs=1e-5)


@pytest.mark.parametrize(
    ("hours", "time", "in_force"),
    [
        ("day", "day", 1),
        ("day", "dusk", 0),
        ("extended", "dusk", 1),
        ("extended", "night", 0),
        ("always", "night", 1),
        ("none", "night", 1),
    ],
)
def test_a_limit_counts_only_while_its_hours_are_in_force(
    limits: tuple[float, ...], hours: str, time: str, in_force: int
) -> None:
    """A 30 km/h rule of class 1 with these hours, at 60 km/h: over only while in force; the
    signed check also needs the school-zone sign in view."""
    prof = _profile(limits, 1, 30.0, hours=hours)
    out = _run_checks(prof, 60.0, time=time, sign=1.0)
    assert out["over"][1] == pytest.approx(in_force, abs=0.02)
    assert out["over_sign"][1] == pytest.approx(in_force, abs=0.02)
    assert _run_checks(prof, 60.0, time=time, sign=0.0)["over_sign"][1] < 1e-6


def test_a_rule_in_force_and_the_rightmost_lane_make_the_bus_lane_check(
    limits: tuple[float, ...],
) -> None:
    from training.ruleparams import RULE_PARAMS

    hours = np.zeros((N_CLASSES, len(RULE_PARAMS["rule_hours"])), "float32")
    hours[0, RULE_PARAMS["rule_hours"].index("day")] = 1.0
    none = _profile(limits, 0, 50.0, p=0.0)
    right = _run_checks(none, 40.0, ego=_ego("R1", "L2"), hours=hours, time="day")
    assert right["in_force"][0] == pytest.approx(1.0, abs=1e-5)
    assert right["in_force_rightmost"][0] == pytest.approx(1.0, abs=1e-5)
    left = _run_checks(none, 40.0, ego=_ego("L1", "R2"), hours=hours, time="day")
    assert left["in_force"][0] == pytest.approx(1.0, abs=1e-5)
    assert left["in_force_rightmost"][0] < 1e-6
    night = _run_checks(none, 40.0, ego=_ego("R1", "L2"), hours=hours, time="night")
    assert night["in_force"][0] < 1e-6


def test_the_checks_come_from_the_serving_models_rule_set_features() -> None:
    """The fused model's rule_set_features carry what the rules name (128 + classes x (limits x
    hours + lanes x merge sides + hours) wide), so the node's split (rule graph once per rule
    set, frame graph per frame) keeps the checks; the scene heads are training outputs, not
    exported ones."""
    from perception.spec import MODEL_SPEC
    from training.export import serving_outputs
    from training.model import LIMITS_KPH, MERGE_SIDES, create_fused_model
    from training.ruleparams import (
        EGO_LANE_OUTPUT,
        LANE_SPECS,
        RULE_PARAMS,
        SCHOOL_SIGN_OUTPUT,
        TIME_OUTPUT,
    )

    h = len(RULE_PARAMS["rule_hours"])
    model = create_fused_model(6, N_CLASSES)
    layer = model.get_layer(MODEL_SPEC.rule_set_output)
    assert layer.output.shape[-1] == 128 + N_CLASSES * (
        len(LIMITS_KPH) * h + len(LANE_SPECS) * len(MERGE_SIDES) + h
    )
    for name in (EGO_LANE_OUTPUT, TIME_OUTPUT, SCHOOL_SIGN_OUTPUT):
        assert name in model.output_names
        assert name not in serving_outputs(model)


def test_the_hours_table_is_the_worlds() -> None:
    """training.ruleparams.HOURS_ACTIVE restates simulator.rules.HOURS (training may not import
    the simulator): the two must agree, or the checks gate limits by the wrong hours."""
    from simulator.rules import HOURS
    from simulator.scene import TIMES_OF_DAY as WORLD_TIMES
    from training.ruleparams import HOURS_ACTIVE, TIMES_OF_DAY

    assert TIMES_OF_DAY == WORLD_TIMES
    assert {k: v for k, v in HOURS_ACTIVE.items() if k != "none"} == {
        k: v[1] for k, v in HOURS.items()
    }
    assert HOURS_ACTIVE["none"] == TIMES_OF_DAY


@pytest.mark.parametrize(
    ("scene", "want"),
    [
        ({"n_lanes": 2, "ego_lane": 0, "time_of_day": "dusk", "school_zone_sign": True}, (1, 1)),
        ({"n_lanes": 2, "ego_lane": 0, "time_of_day": "night", "school_zone_sign": False}, (2, 0)),
        ({"n_lanes": 2, "ego_lane": 0, "time_of_day": "noon", "school_zone_sign": "yes"}, (-1, -1)),
        (None, (-1, -1)),
    ],
)
def test_scene_labels_carry_time_of_day_and_school_sign(
    scene: object, want: tuple[int, int]
) -> None:
    from training.ruleparams import scene_labels

    assert tuple(scene_labels(scene)[-2:]) == want


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


def test_ego_lane_labels_agree_with_the_oracles_lane_index() -> None:
    """training.ruleparams restates which lane a rule names on a road (training may not import
    the simulator): for every lane a rule can name and every road, the ego lane is "named" exactly
    where the oracle's closed_lane_index says so."""
    from simulator.oracle import closed_lane_index
    from simulator.rules import Rule
    from training.ruleparams import _LANES, LANE_SPECS, ego_lane_labels

    for raw, spec in _LANES.items():
        variant = "numbered" if raw[-1].isdigit() else "named"
        rule = Rule(kind="lane_closed", variant=variant, lane=raw, merge="right")
        for n in (2, 3):
            for ego in range(n):
                named = ego_lane_labels({"n_lanes": n, "ego_lane": ego})[LANE_SPECS.index(spec)]
                assert named == int(closed_lane_index(rule, n) == ego), (raw, n, ego)
