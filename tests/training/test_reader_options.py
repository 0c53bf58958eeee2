"""Reader options: TrainConfig.state_noise (Gaussian noise on the frozen encoder's token states
while the reader trains, nothing at inference, so the exported graph and the node read a rule
as without it) and TrainConfig.rule_head "factorized" (kind x allowed/forbidden)."""

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


CLASSES = (
    "amber:always_stop",
    "amber:proceed_if_close",
    "bus_lane",
    "not_understood",
    "overtaking:permitted",
    "overtaking:prohibited",
    "turn_on_red:prohibited",  # its kind comes forbidden only here: no polarity to factor
)


def test_factors_split_a_kind_that_comes_allowed_and_forbidden() -> None:
    from training.model import rule_class_factors

    kinds, to_class, pol = rule_class_factors(CLASSES)
    assert kinds == ["amber", "bus_lane", "not_understood", "overtaking", "turn_on_red"]
    c = {name: i for i, name in enumerate(CLASSES)}
    assert to_class[kinds.index("overtaking"), c["overtaking:permitted"]] == 1.0
    assert to_class[kinds.index("overtaking"), c["bus_lane"]] == 0.0
    assert pol[:, c["overtaking:permitted"]].tolist() == [1.0, 0.0]
    assert pol[:, c["overtaking:prohibited"]].tolist() == [0.0, 1.0]
    assert pol[:, c["amber:always_stop"]].tolist() == [0.0, 1.0]  # stop = going on forbidden
    assert pol[:, c["turn_on_red:prohibited"]].tolist() == [1.0, 1.0]  # one class: no split
    assert pol[:, c["bus_lane"]].tolist() == [1.0, 1.0]


def test_a_factorized_head_gives_a_distribution_over_the_classes() -> None:
    import keras

    from perception.spec import MODEL_SPEC
    from training.model import _input, _read_rules, create_text_encoder

    keras.utils.set_random_seed(5)
    states, mask = _input(MODEL_SPEC.rules), _input(MODEL_SPEC.rule_mask)
    per_rule = create_text_encoder(MODEL_SPEC)([states, mask])
    _, cls, _ = _read_rules(per_rule, mask, len(CLASSES), MODEL_SPEC, factor_classes=CLASSES)
    model = keras.Model([states, mask], cls)
    named = keras.Model([states, mask], model.get_layer(MODEL_SPEC.rule_output).output)
    # training.reader.reader_of finds the class output by this layer name
    probs = np.asarray(model(_inputs(), training=False))
    np.testing.assert_allclose(np.asarray(named(_inputs(), training=False)), probs)
    assert probs.shape == (2, MODEL_SPEC.max_rules, len(CLASSES))
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    assert (probs >= 0).all()
    with pytest.raises(ValueError, match="class names"):
        _read_rules(per_rule, mask, 3, MODEL_SPEC, factor_classes=CLASSES)


def test_several_readers_read_each_rule_as_the_average_of_their_own_readings() -> None:
    import keras

    from perception.spec import MODEL_SPEC
    from training.model import _input, _read_rules, _text_encoders
    from training.ruleparams import RULE_PARAMS

    keras.utils.set_random_seed(7)
    states, mask = _input(MODEL_SPEC.rules), _input(MODEL_SPEC.rule_mask)
    per_rule = _text_encoders(MODEL_SPEC, states, mask, readers=3)
    _, cls, params = _read_rules(per_rule, mask, len(CLASSES), MODEL_SPEC)
    model = keras.Model([states, mask], [cls, *params.values()])
    names = [MODEL_SPEC.rule_output, *RULE_PARAMS]
    # The reading keeps the single reader's layer names (training.reader.reader_of, the
    # losses and the exported graph's cut find it by them); each reader's own is suffixed.
    got = keras.Model(
        [states, mask],
        {
            n: [model.get_layer(n).output, *(model.get_layer(f"{n}_r{i}").output for i in range(3))]
            for n in names
        },
    )(_inputs(), training=False)
    for n in names:
        average, *own = (np.asarray(t) for t in got[n])
        np.testing.assert_allclose(average, np.mean(own, axis=0), atol=1e-6)
        assert np.abs(own[0] - own[1]).max() > 1e-3  # readers start apart: their own weights
        np.testing.assert_allclose(average.sum(-1), 1.0, atol=1e-5)
    assert np.asarray(got[MODEL_SPEC.rule_output][0]).shape == (
        2,
        MODEL_SPEC.max_rules,
        len(CLASSES),
    )
    with pytest.raises(ValueError, match="readers"):
        _text_encoders(MODEL_SPEC, states, mask, readers=0)


@pytest.mark.parametrize("bad", [0, 6])
def test_readers_out_of_range_are_refused(bad: int) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="readers"):
        TrainConfig(readers=bad)


def test_several_readers_each_carry_the_reading_targets() -> None:
    from perception.spec import MODEL_SPEC
    from training.model import member_targets, reading_outputs
    from training.ruleparams import RULE_PARAMS

    assert reading_outputs(1)[MODEL_SPEC.rule_output] == [MODEL_SPEC.rule_output]
    two = reading_outputs(2)
    assert set(two) == {MODEL_SPEC.rule_output, *RULE_PARAMS}
    assert two["rule_limit"] == ["rule_limit_r0", "rule_limit_r1"]
    cls, weight = np.array([[3, 0]]), np.array([[1.0, 0.0]])
    y = {MODEL_SPEC.output: np.array([2]), MODEL_SPEC.rule_output: cls}
    w = {MODEL_SPEC.output: np.array([1.0]), MODEL_SPEC.rule_output: weight}
    assert member_targets(y, w, 1) == (y, w)
    y2, w2 = member_targets(y, w, 2)
    # Each reader's output gets the reading's targets and weights (its loss is on them, not on
    # the average: training.train); the average keeps its own, as Keras wants one per output.
    names = {MODEL_SPEC.output, MODEL_SPEC.rule_output, "rule_classes_r0", "rule_classes_r1"}
    assert set(y2) == set(w2) == names
    assert y2["rule_classes_r1"] is cls and w2["rule_classes_r0"] is weight
    assert set(y) == {MODEL_SPEC.output, MODEL_SPEC.rule_output}  # the caller's dicts unchanged


def test_a_model_with_several_readers_outputs_each_readers_reading() -> None:
    from training.model import create_fused_model, create_text_only_model, reading_outputs
    from training.reader import reader_of, readers_of

    for build in (create_fused_model, create_text_only_model):
        model = build(6, len(CLASSES), readers=3)
        want = {m for ms in reading_outputs(3).values() for m in ms}
        assert want <= set(model.output_names)  # their losses: training.train
        assert readers_of(model) == 3
        assert set(reader_of(model).output_names) == want
    assert readers_of(create_fused_model(6, len(CLASSES))) == 1


@pytest.mark.parametrize(
    "bad", [0, 100, True, 9.5, [], [6, 6], [6, 0], [6, True], "6+", "six", list(range(1, 10))]
)
def test_an_encoder_layer_out_of_range_is_refused(bad: object) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="encoder_layer"):
        TrainConfig(encoder_layer=bad)  # type: ignore[arg-type]
    assert TrainConfig().encoder_layer is None  # the last layer, as every model before it
    assert TrainConfig(encoder_layer=9).encoder_layer == 9
    # Several layers side by side: a list (config files) or "6+9+12" (the flag); one is that one.
    assert TrainConfig(encoder_layer=[6, 9, 12]).encoder_layer == (6, 9, 12)
    assert TrainConfig(encoder_layer="6+9+12").encoder_layer == (6, 9, 12)
    assert TrainConfig(encoder_layer=" 6 + 9 ").encoder_layer == (6, 9)  # written by a person
    assert TrainConfig(encoder_layer=[9]).encoder_layer == 9
    # The checkpoint stores the config as JSON and reads it back the same.
    cfg = TrainConfig(encoder_layer=(6, 9, 12))
    assert TrainConfig.model_validate_json(cfg.model_dump_json()) == cfg
