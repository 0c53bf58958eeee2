"""Named model builders: image encoder, rule-text encoder, fused decision classifier.

Inputs and outputs are the names in perception.spec.MODEL_SPEC, which the ONNX graph keeps. Pixel
normalisation and speed scaling happen inside the graph, so the node feeds raw uint8 frames,
the frozen text encoder's token states and km/h. The text encoder reads each rule separately;
each rule is read into a symbolic form (class and parameters) and the decision sees only that
form, pooled over rules, so rule order cannot change the decision. Outputs: the decision, each
rule's class (for rules_not_understood), the image out-of-distribution score, and for training
each rule's parameters (training.ruleparams). The layer named ``MODEL_SPEC.rule_set_output`` is
the rule set as the decision sees it; the exporter adds it as an output
(training.export.serving_model) and the node computes it once per rule set.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import layers, ops

from perception.spec import MODEL_SPEC, InputSpec, ModelSpec
from training.ruleparams import (
    EGO_LANE_OUTPUT,
    HOURS_ACTIVE,
    LANE_SPECS,
    RULE_PARAMS,
    SCHOOL_SIGN_OUTPUT,
    TIME_OUTPUT,
    TIMES_OF_DAY,
)

__all__ = [
    "ARCHITECTURE",
    "create_fused_model",
    "create_image_encoder",
    "create_image_only_model",
    "create_text_encoder",
    "create_text_only_model",
    "member_targets",
    "reading_losses",
    "reading_outputs",
]

# The architecture's revision, part of every model version (training.train): change it with any
# change of the graph, so a retrained model never carries an older model's version.
ARCHITECTURE = "scene-checks-1"

SPEED_SCALE_KPH = 100.0
RAMPS = 32
RAMP_TOP_KPH = 130.0
# The limits the rule_limit head reads (its vocabulary without "none"), in km/h.
LIMITS_KPH = tuple(float(v) for v in RULE_PARAMS["rule_limit"][1:])
LIMIT_SLOPE_KPH = 1.0
# The merge sides a rule can name (rule_merge without "none").
MERGE_SIDES = RULE_PARAMS["rule_merge"][1:]


def _input(spec: InputSpec) -> keras.KerasTensor:
    return keras.Input(spec.shape, dtype=spec.dtype, name=spec.name)


def create_image_encoder(
    spec: ModelSpec = MODEL_SPEC, width: int = 16, out_dim: int = 128
) -> keras.Model:
    """uint8 [N,96,160,3] -> [N,out_dim]. Flattens a coarse map, since *where* things are matters
    (ego lane position, which adjacent lane is occupied). The two full-resolution layers are
    narrow (``width``): they cost most of a training step, and widening them to 32 made a step
    1.6x slower (docs/training.md)."""
    image = _input(spec.image)
    x = layers.Rescaling(1.0 / 255.0)(ops.cast(image, "float32"))  # [N,96,160,3]
    x = layers.Conv2D(width, 3, strides=2, padding="same", activation="relu")(x)  # [N,48,80,w]
    x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)  # [N,24,40,w]
    x = layers.Conv2D(4 * width, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)  # [N,12,20,4w]
    x = layers.Conv2D(4 * width, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)  # [N,6,10,4w]
    x = layers.Conv2D(6 * width, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(16, 1, activation="relu")(x)  # [N,6,10,16]
    x = layers.Flatten()(x)  # [N,960]
    x = layers.Dense(out_dim, activation="relu")(x)
    return keras.Model(image, x, name="image_encoder")


def create_text_encoder(
    spec: ModelSpec = MODEL_SPEC,
    dim: int = 64,
    out_dim: int = 128,
    state_noise: float = 0.0,
    name: str = "text_encoder",
) -> keras.Model:
    """Rule text -> per-rule features [N,R,out_dim] (zero for an empty rule slot).

    Input: the frozen multilingual encoder's token states [N,R,T,384] and their mask [N,R,T]
    (perception.rule_encoder, computed once per rule text). A projection and one transformer
    block per rule re-read the tokens for what decides here (numbers, sides, negation); a masked
    mean + max pools each rule, beside the encoder's own sentence vector (the masked mean of its
    states, what the encoder was trained to make carry meaning, so synonyms land close)."""
    states, tok_mask = _input(spec.rules), _input(spec.rule_mask)
    # Training only (identity at inference and in ONNX): Gaussian noise of std ``state_noise``
    # on the token states, so the reader learns regions of the encoder's space, not the exact
    # points of the training wordings (TrainConfig.state_noise).
    seen = layers.GaussianNoise(state_noise)(states) if state_noise > 0 else states
    x = layers.Dense(dim)(seen)  # [N,R,T,D]
    # [N,R,T,T]: every query token may attend to the real tokens of its own rule.
    attn_mask = ops.cast(tok_mask[:, :, None, :] * ops.ones_like(tok_mask)[:, :, :, None], "bool")
    h = layers.MultiHeadAttention(num_heads=4, key_dim=dim // 4, attention_axes=(2,))(
        x, x, attention_mask=attn_mask
    )
    x = layers.LayerNormalization()(x + h)
    x = layers.LayerNormalization()(
        x + layers.Dense(dim)(layers.Dense(2 * dim, activation="relu")(x))
    )
    m = tok_mask[..., None]  # [N,R,T,1]
    n_tok = ops.maximum(ops.sum(m, axis=2), 1.0)  # [N,R,1]
    mean_t = ops.sum(x * m, axis=2) / n_tok  # [N,R,D]
    max_t = ops.max(x * m - (1.0 - m) * 1e4, axis=2)  # [N,R,D]
    sentence = layers.Dense(dim, activation="relu")(ops.sum(seen * m, axis=2) / n_tok)
    r = layers.Dense(out_dim, activation="relu")(
        ops.concatenate([mean_t, max_t, sentence], axis=-1)
    )
    rule_mask = ops.cast(ops.max(tok_mask, axis=2), "float32")[..., None]  # [N,R,1]
    return keras.Model([states, tok_mask], r * rule_mask, name=name)


def _text_encoders(
    spec: ModelSpec,
    states: keras.KerasTensor,
    mask: keras.KerasTensor,
    readers: int = 1,
    state_noise: float = 0.0,
    sentences: keras.KerasTensor | None = None,
) -> list[keras.KerasTensor]:
    """``readers`` independent text encoders of the same rules, each [N,R,128]; their readings
    are averaged in :func:`_read_rules` (TrainConfig.readers).

    With ``sentences`` (each rule's sentence vector from a second pretrained encoder, [N,R,512],
    TrainConfig.sentence_input), each reader's features are joined by a Dense(128, GELU) of the
    vector of its own, [N,R,256]: the heads then read each rule from both encoders, trained
    together (``ruledrive bench reader --sentence-input``, docs/training.md)."""
    if readers < 1:
        raise ValueError(f"readers must be at least 1, not {readers}")
    out = []
    for i in range(readers):
        suffix = "" if i == 0 else f"_{i}"
        f = create_text_encoder(spec, state_noise=state_noise, name=f"text_encoder{suffix}")(
            [states, mask]
        )
        if sentences is not None:
            vec = layers.Dense(128, name=f"sentence_proj{suffix}")(sentences)
            # GELU's tanh form: tf2onnx cannot convert the exact one's Erfc.
            f = layers.Concatenate()([f, ops.gelu(vec, approximate=True)])
        out.append(f)
    return out


def _sentence_input(spec: ModelSpec, sentence: bool) -> list[keras.KerasTensor]:
    """The optional sentence-vector input (MODEL_SPEC.rule_sentences), as a list to append to
    a model's inputs: empty without ``sentence``."""
    return [_input(spec.rule_sentences)] if sentence else []


# Rule classes "kind:variant" whose variant says whether an act is allowed (0) or not (1).
POLARITY = {"permitted": 0, "proceed_if_close": 0, "prohibited": 1, "always_stop": 1}


def rule_class_factors(classes: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(kinds, [K,C] kind -> class, [2,C] polarity -> class) for a factorized rule head: a
    class of a kind that comes both allowed and forbidden (overtaking, turn on red, amber) is
    its kind and a polarity; any other class is its kind alone (both polarities lead to it)."""
    kind_of = [c.split(":", 1)[0] for c in classes]
    pol_of = [POLARITY.get(c.split(":", 1)[1], -1) if ":" in c else -1 for c in classes]
    pols: dict[str, set[int]] = {}
    for k, v in zip(kind_of, pol_of, strict=True):
        pols.setdefault(k, set()).add(v)
    polar = {k for k, p in pols.items() if p == {0, 1}}
    kinds = sorted(set(kind_of))
    to_class = np.zeros((len(kinds), len(classes)), "float32")
    pol = np.zeros((2, len(classes)), "float32")
    for c, (k, v) in enumerate(zip(kind_of, pol_of, strict=True)):
        to_class[kinds.index(k), c] = 1.0
        if k in polar:
            pol[v, c] = 1.0
        else:
            pol[:, c] = 1.0
    return kinds, to_class, pol


def _rule_head(
    per_rule: keras.KerasTensor,
    n_classes: int,
    spec: ModelSpec,
    factor_classes: Sequence[str] | None = None,
    suffix: str = "",
) -> keras.KerasTensor:
    """[N,R,F] -> softmax over rule classes per rule (what each rule is, or not_binding /
    not_understood): the node's rules_not_understood check reads it.

    With ``factor_classes`` (the class names), the head is factorized: a softmax over kinds
    times a softmax over polarity (allowed / forbidden) shared by every kind that has both, so
    what turns "banned" into "allowed" ("no longer banned") is learnt once for all kinds rather
    than per kind (TrainConfig.rule_head). Its output is still a distribution over the classes."""
    x = layers.Dense(64, activation="relu")(per_rule)
    if factor_classes is None:
        return layers.Dense(n_classes, activation="softmax", name=spec.rule_output + suffix)(x)
    if len(factor_classes) != n_classes:
        raise ValueError(f"{len(factor_classes)} class names for {n_classes} classes")
    kinds, to_class, pol = rule_class_factors(factor_classes)
    p_kind = layers.Dense(len(kinds), activation="softmax")(x)  # [N,R,K]
    p_pol = layers.Dense(2, activation="softmax")(x)  # [N,R,2]
    probs = ops.matmul(p_kind, to_class) * ops.matmul(p_pol, pol)  # [N,R,C], sums to 1
    return layers.Identity(name=spec.rule_output + suffix)(probs)


def _reading(
    per_rule: keras.KerasTensor,
    n_classes: int,
    spec: ModelSpec,
    factor_classes: Sequence[str] | None,
    suffix: str = "",
) -> tuple[keras.KerasTensor, dict[str, keras.KerasTensor]]:
    """One reader's per-rule softmaxes: class [N,R,C] and parameters {name: [N,R,V]}."""
    cls = _rule_head(per_rule, n_classes, spec, factor_classes, suffix)
    params = {
        name: layers.Dense(len(vocab), activation="softmax", name=name + suffix)(
            layers.Dense(64, activation="relu")(per_rule)
        )
        for name, vocab in RULE_PARAMS.items()
    }
    return cls, params


def reading_outputs(readers: int, spec: ModelSpec = MODEL_SPEC) -> dict[str, list[str]]:
    """Each reading output's name -> the outputs its loss is on: itself for one reader; each
    reader's own (``rule_classes_r0`` ...) for several, which keeps them independent readers.
    A loss on their average alone lets each reader give up classes another covers (measured:
    whole classes never read, docs/training.md "Several readers")."""
    names = (spec.rule_output, *RULE_PARAMS)
    if readers == 1:
        return {n: [n] for n in names}
    return {n: [f"{n}_r{i}" for i in range(readers)] for n in names}


def reading_losses(
    readers: int, rule_weight: float, param_weight: float, spec: ModelSpec = MODEL_SPEC
) -> tuple[dict[str, keras.losses.Loss], dict[str, float]]:
    """The reading's losses and their weights (class: ``rule_weight``, each parameter:
    ``param_weight``), keyed by the outputs :func:`reading_outputs` puts them on; for the whole
    model's compile (training.train) and the reader's alone (training.reader)."""
    weight = {spec.rule_output: rule_weight, **dict.fromkeys(RULE_PARAMS, param_weight)}
    on = reading_outputs(readers, spec)
    losses = {m: keras.losses.SparseCategoricalCrossentropy() for ms in on.values() for m in ms}
    return losses, {m: weight[n] for n, ms in on.items() for m in ms}


def member_targets(
    y: dict[str, np.ndarray], w: dict[str, np.ndarray], readers: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Targets and sample weights keyed by output name, with each reading's copied onto the
    outputs :func:`reading_outputs` puts its loss on. The average keeps its own (Keras wants a
    target for every output; with no loss on it, it is not used)."""
    if readers == 1:
        return y, w
    y, w = dict(y), dict(w)
    for name, members in reading_outputs(readers).items():
        if name in y:
            for m in members:
                y[m], w[m] = y[name], w[name]
    return y, w


def _read_rules(
    per_rule: keras.KerasTensor | Sequence[keras.KerasTensor],
    tok_mask: keras.KerasTensor,
    n_classes: int,
    spec: ModelSpec,
    out_dim: int = 128,
    factor_classes: Sequence[str] | None = None,
    members: dict[str, keras.KerasTensor] | None = None,
) -> tuple[keras.KerasTensor, keras.KerasTensor, dict[str, keras.KerasTensor]]:
    """Per-rule features -> (rule set features [N,out_dim], rule classes, parameter outputs).

    Each rule is read into a symbolic form: its class and its parameters (training.ruleparams),
    each a softmax trained on the generator's labels. The decision sees only that form, embedded
    and pooled over rules (sum and max, so rule order cannot change it): how a rule is worded
    reaches the decision only through what the reading made of it.

    With several readers' features (a list, :func:`_text_encoders`), each reads every rule with
    heads of its own (layers suffixed ``_r0``, ``_r1`` ...) and the reading is the average of
    their softmaxes, under the single reader's output names: everything downstream, the
    exported graph's cut (perception.splitgraph) and the node are unchanged. ``members`` (a dict)
    receives each reader's own outputs by name, for the model's outputs: the losses are on them
    (:func:`reading_outputs`)."""
    features = list(per_rule) if isinstance(per_rule, list | tuple) else [per_rule]
    if len(features) == 1:
        cls, params = _reading(features[0], n_classes, spec, factor_classes)  # [N,R,C]
    else:
        readings = [
            _reading(f, n_classes, spec, factor_classes, f"_r{i}") for i, f in enumerate(features)
        ]
        if members is not None:
            for i, (c, p) in enumerate(readings):
                members[f"{spec.rule_output}_r{i}"] = c
                members.update({f"{n}_r{i}": t for n, t in p.items()})
        cls = layers.Average(name=spec.rule_output)([r[0] for r in readings])
        params = {
            name: layers.Average(name=name)([r[1][name] for r in readings]) for name in RULE_PARAMS
        }
    form = ops.concatenate([cls, *params.values()], axis=-1)  # [N,R,C+P]
    e = layers.Dense(64, activation="relu")(layers.Dense(64, activation="relu")(form))
    rule_mask = ops.cast(ops.max(tok_mask, axis=2), "float32")[..., None]  # [N,R,1]
    e = e * rule_mask  # empty rule slots contribute nothing (e >= 0, so max is safe)
    pooled = ops.concatenate([ops.max(e, axis=1), ops.sum(e, axis=1)], axis=-1)
    dense = layers.Dense(out_dim, activation="relu")(pooled)
    # What the rule set names, by rule class, for the frame side to check (_rule_checks); each
    # entry is the largest over rules (rule order cannot change it), so one rule of a class
    # does not blur into another's:
    # - limits with their hours [N, C*K*H]: P(class c) * P(limit = LIMITS_KPH[k]) * P(hours h);
    # - lanes closed [N, C*S*M]: P(class c) * P(lane = LANE_SPECS[s]) * P(merge = MERGE_SIDES[m]);
    # - hours [N, C*H]: P(class c) * P(hours h).
    m = rule_mask[..., None, None]  # [N,R,1,1,1]: rule_mask is [N,R,1]
    limit = params["rule_limit"][..., 1:]  # [N,R,K]: drop "none"
    hours = params["rule_hours"]  # [N,R,H], "none" included: in force at every time
    lane = params["rule_lane"][..., 1:]  # [N,R,S]
    merge = params["rule_merge"][..., 1:]  # [N,R,M]
    limits = cls[..., :, None, None] * limit[..., None, :, None] * hours[..., None, None, :]
    lanes = cls[..., :, None, None] * lane[..., None, :, None] * merge[..., None, None, :]
    in_force = cls[..., :, None] * hours[..., None, :] * rule_mask[..., None]  # [N,R,C,H]
    k, h, sm = len(LIMITS_KPH), len(RULE_PARAMS["rule_hours"]), len(LANE_SPECS) * len(MERGE_SIDES)
    rule_set = layers.Concatenate(name=spec.rule_set_output)(
        [
            dense,
            ops.reshape(ops.max(limits * m, axis=1), (-1, n_classes * k * h)),
            ops.reshape(ops.max(lanes * m, axis=1), (-1, n_classes * sm)),
            ops.reshape(ops.max(in_force, axis=1), (-1, n_classes * h)),
        ]
    )
    return rule_set, cls, params


def _scene_heads(image_features: keras.KerasTensor) -> dict[str, keras.KerasTensor]:
    """[N,F] -> what the frame shows that the rules are checked against, each trained from the
    scene record (training.ruleparams.scene_labels; training outputs only, the exported graph
    keeps them inside): per lane a rule can name (LANE_SPECS), the probability that it is the
    ego lane on this road; the time of day (TIMES_OF_DAY); a school-zone sign in view."""
    x = layers.Dense(64, activation="relu")(image_features)
    return {
        EGO_LANE_OUTPUT: layers.Dense(len(LANE_SPECS), activation="sigmoid", name=EGO_LANE_OUTPUT)(
            x
        ),
        TIME_OUTPUT: layers.Dense(len(TIMES_OF_DAY), activation="softmax", name=TIME_OUTPUT)(x),
        SCHOOL_SIGN_OUTPUT: layers.Dense(1, activation="sigmoid", name=SCHOOL_SIGN_OUTPUT)(x),
    }


def _frozen_dense(x: keras.KerasTensor, kernel: np.ndarray, bias: np.ndarray | None = None):  # type: ignore[no-untyped-def]
    """x @ kernel (+ bias) as a frozen layer: a constant tensor would become a graph input of
    the export, not a weight."""
    layer = layers.Dense(kernel.shape[1], use_bias=bias is not None, trainable=False)
    out = layer(x)
    layer.set_weights(
        [kernel.astype("float32")] + ([bias.astype("float32")] if bias is not None else [])
    )
    return out


def _rule_checks(
    rule_set: keras.KerasTensor,
    speed: keras.KerasTensor,
    scene: dict[str, keras.KerasTensor],
    n_classes: int,
) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """Rule set features (from :func:`_read_rules`: the pooled rule features, then what the
    rules name by class: limits with hours, lanes closed, hours), km/h and the scene heads ->
    (the pooled rule features, checks [N,8C]). Per rule class c:

    - over / under: how surely the speed is over (under) a limit that a rule of class c names,
      counting only rules whose hours are in force at the time of day the frame shows (the world
      keeps speeds 3 km/h clear of every limit, so a 1 km/h slope separates them); and the same
      two times P(school-zone sign in view), which a school-zone limit needs;
    - closed, per merge side m: how surely a rule of class c closes the ego lane and says merge
      to m (sum over the lanes a rule can name of P(named) * P(it is the ego lane here));
    - in force: how surely a rule of class c is in force at this time of day, and that times
      P(ego in the rightmost lane), which a bus lane needs.

    Which check decides, and what else must hold (the lane to merge into free, no hazard), is the
    head's to learn; the comparisons of what the text says with what the frame shows are made
    explicit here, not learned from the products of two feature vectors."""
    k, h = len(LIMITS_KPH), len(RULE_PARAMS["rule_hours"])
    s, m = len(LANE_SPECS), len(MERGE_SIDES)
    widths = (n_classes * k * h, n_classes * s * m, n_classes * h)
    out_dim = rule_set.shape[-1] - sum(widths)
    txt = rule_set[:, :out_dim]
    a, b = out_dim + widths[0], out_dim + widths[0] + widths[1]
    limits = ops.reshape(rule_set[:, out_dim:a], (-1, n_classes, k, h))
    lanes = ops.reshape(rule_set[:, a:b], (-1, n_classes, s, m))
    hours = ops.reshape(rule_set[:, b:], (-1, n_classes, h))
    # Which of the rule_hours values are in force at the time of day the frame shows: [N,H].
    cover = np.array(
        [[t in HOURS_ACTIVE[v] for v in RULE_PARAMS["rule_hours"]] for t in TIMES_OF_DAY], "float32"
    )  # [T,H]
    active = _frozen_dense(scene[TIME_OUTPUT], cover)
    # (speed - limit_k) / slope: [N,K].
    z = _frozen_dense(
        speed,
        np.full((1, k), 1.0 / LIMIT_SLOPE_KPH),
        -np.array(LIMITS_KPH) / LIMIT_SLOPE_KPH,
    )
    in_force_limits = ops.sum(limits * active[:, None, None, :], axis=-1)  # [N,C,K]
    over = ops.sum(in_force_limits * ops.sigmoid(z)[:, None, :], axis=-1)  # [N,C]
    under = ops.sum(in_force_limits * ops.sigmoid(-z)[:, None, :], axis=-1)
    sign = scene[SCHOOL_SIGN_OUTPUT]  # [N,1]
    ego = scene[EGO_LANE_OUTPUT]  # [N,S]
    closed = ops.reshape(ops.sum(lanes * ego[:, None, :, None], axis=2), (-1, n_classes * m))
    in_force = ops.sum(hours * active[:, None, :], axis=-1)  # [N,C]
    r1 = LANE_SPECS.index("R1")
    rightmost = ego[:, r1 : r1 + 1]  # [N,1]
    checks = [over, under, over * sign, under * sign, closed, in_force, in_force * rightmost]
    return txt, ops.concatenate(checks, axis=-1)


def _ood_head(image_features: keras.KerasTensor, spec: ModelSpec) -> keras.KerasTensor:
    """[N,F] -> probability that the frame is not a front-camera road scene."""
    x = layers.Dense(32, activation="relu")(image_features)
    return layers.Dense(1, activation="sigmoid", name=spec.ood_output)(x)


def _head(features: keras.KerasTensor, n_labels: int, spec: ModelSpec) -> keras.KerasTensor:
    x = layers.Dense(256, activation="relu")(features)
    x = layers.Dropout(0.1)(x)
    x = layers.Dense(128, activation="relu")(x)
    return layers.Dense(n_labels, activation="softmax", name=spec.output)(x)


def _speed_features(speed: keras.KerasTensor) -> keras.KerasTensor:
    """km/h -> [N,1+RAMPS]: the scaled speed plus ramps relu(speed - t), so a limit is an easy
    threshold. The ramps start with their kinks spread evenly over 0..RAMP_TOP_KPH (every ~4
    km/h, finer than the world's +-3 km/h margin around a limit) and stay trainable; left at
    Keras' zero-bias default every kink would start at 0 km/h, and the head would have to
    learn each threshold from scratch."""
    s = layers.Rescaling(1.0 / SPEED_SCALE_KPH)(speed)  # [N,1]
    ramps = layers.Dense(RAMPS, activation="relu")
    out = ramps(s)  # [N,RAMPS]
    kinks = np.linspace(0.0, RAMP_TOP_KPH / SPEED_SCALE_KPH, RAMPS, dtype="float32")
    ramps.set_weights([np.ones((1, RAMPS), "float32"), -kinks])
    return layers.Concatenate()([s, out])


def _outputs(spec: ModelSpec, *tensors: keras.KerasTensor) -> dict[str, keras.KerasTensor]:
    """The three outputs by name (decision, rule classes, image OOD), as the ONNX graph names
    them."""
    return dict(zip(spec.outputs, tensors, strict=True))


def _speed_and_inputs(spec: ModelSpec):  # type: ignore[no-untyped-def]
    image, states, mask, speed = (_input(i) for i in spec.inputs)
    return image, states, mask, speed


def create_fused_model(
    n_labels: int,
    n_rule_classes: int,
    spec: ModelSpec = MODEL_SPEC,
    state_noise: float = 0.0,
    factor_classes: Sequence[str] | None = None,
    readers: int = 1,
    sentence: bool = False,
) -> keras.Model:
    """The decision classifier: image + rule text + ego speed -> softmax over decisions, plus the
    per-rule classes and the image out-of-distribution score. ``sentence``: also each rule's
    sentence vector (an input after the speed, :func:`_text_encoders`)."""
    image, states, mask, speed = _speed_and_inputs(spec)
    vec = _sentence_input(spec, sentence)
    img = create_image_encoder(spec)(image)  # [N,128]
    # each [N,R,128] ([N,R,256] with the sentence vector)
    per_rule = _text_encoders(spec, states, mask, readers, state_noise, *vec)
    members: dict[str, keras.KerasTensor] = {}
    rule_set, cls, params = _read_rules(
        per_rule, mask, n_rule_classes, spec, factor_classes=factor_classes, members=members
    )
    scene = _scene_heads(img)
    txt, checks = _rule_checks(rule_set, speed, scene, n_rule_classes)  # [N,128], [N,8C]
    spd = _speed_features(speed)  # [N,33]
    # Multiplicative terms let the head form conjunctions (what the rule says x what the frame
    # shows; the limit in the text x the speed) that plain concatenation learns slowly.
    txt_spd = layers.Dense(64)(txt) * layers.Dense(64)(spd)
    img_checks = layers.Dense(32)(img) * layers.Dense(32)(checks)  # e.g. school sign x over
    feats = layers.Concatenate()([img, txt, spd, img * txt, txt_spd, checks, img_checks])
    outputs = _outputs(spec, _head(feats, n_labels, spec), cls, _ood_head(img, spec))
    outputs.update(params, **scene, **members)
    return keras.Model([image, states, mask, speed, *vec], outputs, name="ruledrive_fused")


def create_image_only_model(
    n_labels: int,
    n_rule_classes: int,
    spec: ModelSpec = MODEL_SPEC,
    state_noise: float = 0.0,
    factor_classes: Sequence[str] | None = None,
    readers: int = 1,
    sentence: bool = False,
) -> keras.Model:
    """Ablation: same image encoder and heads, sees the frame and speed but not the rules
    (``readers`` and ``sentence`` are accepted for a common signature: with no text there is
    nothing to read, and the model has no sentence input)."""
    image, states, mask, speed = _speed_and_inputs(spec)
    img = create_image_encoder(spec)(image)
    feats = layers.Concatenate()([img, _speed_features(speed)])
    # The rule heads see nothing of the text: a constant per rule slot.
    blank = layers.Dense(8)(ops.zeros_like(mask[..., :1]))  # [N,R,8]
    _, cls, params = _read_rules(blank, mask, n_rule_classes, spec, factor_classes=factor_classes)
    outputs = _outputs(spec, _head(feats, n_labels, spec), cls, _ood_head(img, spec))
    outputs.update(params, **_scene_heads(img))
    return keras.Model([image, states, mask, speed], outputs, name="ruledrive_image_only")


def create_text_only_model(
    n_labels: int,
    n_rule_classes: int,
    spec: ModelSpec = MODEL_SPEC,
    state_noise: float = 0.0,
    factor_classes: Sequence[str] | None = None,
    readers: int = 1,
    sentence: bool = False,
) -> keras.Model:
    """Ablation: same text encoder and heads, sees the rules and speed but not the frame."""
    image, states, mask, speed = _speed_and_inputs(spec)
    vec = _sentence_input(spec, sentence)
    per_rule = _text_encoders(spec, states, mask, readers, state_noise, *vec)
    members: dict[str, keras.KerasTensor] = {}
    rule_set, cls, params = _read_rules(
        per_rule, mask, n_rule_classes, spec, factor_classes=factor_classes, members=members
    )
    blank_img = layers.Dense(8)(ops.zeros_like(speed))  # [N,8]: no picture
    scene = _scene_heads(blank_img)  # constants: without the frame, no scene
    # The fused model's checks too (against those constants).
    txt, checks = _rule_checks(rule_set, speed, scene, n_rule_classes)
    feats = layers.Concatenate()([txt, _speed_features(speed), checks])
    outputs = _outputs(spec, _head(feats, n_labels, spec), cls, _ood_head(blank_img, spec))
    outputs.update(params, **scene, **members)
    return keras.Model([image, states, mask, speed, *vec], outputs, name="ruledrive_text_only")
