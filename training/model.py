"""Named model builders: image encoder, rule-text encoder, fused decision classifier.

Inputs are the names in perception.spec.MODEL_SPEC, which the ONNX graph keeps. Pixel
normalisation and speed scaling happen inside the graph, so the node feeds raw uint8 frames and
km/h. The text encoder reads each rule separately and pools over rules, so rule order cannot
change the decision.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from perception.spec import MODEL_SPEC, InputSpec, ModelSpec
from training.wordvectors import TextPrior

__all__ = [
    "create_fused_model",
    "create_image_encoder",
    "create_image_only_model",
    "create_text_encoder",
    "create_text_only_model",
]

SPEED_SCALE_KPH = 100.0
RAMPS = 32
RAMP_TOP_KPH = 130.0


def _inputs(spec: ModelSpec) -> tuple[keras.KerasTensor, keras.KerasTensor, keras.KerasTensor]:
    image, rules, speed = (_input(i) for i in spec.inputs)
    return image, rules, speed


def _input(spec: InputSpec) -> keras.KerasTensor:
    return keras.Input(spec.shape, dtype=spec.dtype, name=spec.name)


def create_image_encoder(
    spec: ModelSpec = MODEL_SPEC, width: int = 32, out_dim: int = 128
) -> keras.Model:
    """uint8 [N,96,160,3] -> [N,out_dim]. Flattens a coarse map, since *where* things are matters
    (ego lane position, which adjacent lane is occupied)."""
    image = _input(spec.image)
    x = layers.Rescaling(1.0 / 255.0)(ops.cast(image, "float32"))  # [N,96,160,3]
    x = layers.Conv2D(width, 3, strides=2, padding="same", activation="relu")(x)  # [N,48,80,w]
    x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)  # [N,24,40,w]
    x = layers.Conv2D(2 * width, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)  # [N,12,20,2w]
    x = layers.Conv2D(2 * width, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)  # [N,6,10,2w]
    x = layers.Conv2D(3 * width, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(16, 1, activation="relu")(x)  # [N,6,10,16]
    x = layers.Flatten()(x)  # [N,960]
    x = layers.Dense(out_dim, activation="relu")(x)
    return keras.Model(image, x, name="image_encoder")


@keras.saving.register_keras_serializable(package="ruledrive")
class _PriorEmbedding(layers.Layer):
    """int32 [N,R,T] token ids -> [N,R,T,dim]: a frozen pretrained word vector, linearly
    projected, plus a learned vector per "slot".

    The frozen part is what lets the model read a word it never saw in training ("shut") by its
    closeness to one it did ("closed"); a learned embedding of such a word would stay at its
    random initial value. Tokens the prior cannot know (digits, whose meaning here is a speed
    limit, ``<unk>``, words outside the table) get their own learned slot; every word of the
    table shares slot 0. The weights are set by :meth:`set_prior` (see
    ``training.wordvectors.TextPrior``) and travel in the checkpoint and the ONNX graph.
    """

    def __init__(
        self, vocab_size: int, prior_dim: int, n_slots: int, dim: int, **kwargs: object
    ) -> None:
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.prior_dim = prior_dim
        self.n_slots = n_slots
        self.dim = dim
        self.prior = self.add_weight(
            shape=(vocab_size, prior_dim), initializer="zeros", trainable=False, name="prior"
        )
        self.slot = self.add_weight(
            shape=(vocab_size,), dtype="int32", initializer="zeros", trainable=False, name="slot"
        )
        self.learned = layers.Embedding(n_slots, dim)
        self.project = layers.Dense(dim, use_bias=False)

    def set_prior(self, vectors, slots) -> None:  # type: ignore[no-untyped-def]
        self.prior.assign(vectors)
        self.slot.assign(slots)

    def call(self, tokens):  # type: ignore[no-untyped-def]
        prior = self.project(ops.take(self.prior, tokens, axis=0))
        return prior + self.learned(ops.take(self.slot, tokens, axis=0))

    def get_config(self) -> dict[str, object]:
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "prior_dim": self.prior_dim,
            "n_slots": self.n_slots,
            "dim": self.dim,
        }


@keras.saving.register_keras_serializable(package="ruledrive")
class _TokenPositions(layers.Layer):
    """Adds a learned position embedding along the token axis of [N,R,T,D]."""

    def __init__(self, max_tokens: int, dim: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.max_tokens, self.dim = max_tokens, dim
        self.pos = layers.Embedding(max_tokens, dim)

    def call(self, x):  # type: ignore[no-untyped-def]
        return x + self.pos(ops.arange(self.max_tokens))

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "max_tokens": self.max_tokens, "dim": self.dim}


def create_text_encoder(
    prior: TextPrior, spec: ModelSpec = MODEL_SPEC, dim: int = 64, out_dim: int = 128
) -> keras.Model:
    """int32 [N,R,T] token ids -> [N,out_dim]: pretrained-prior token embeddings, a one-block
    transformer per rule, then a permutation-invariant (masked max + mean) pool over rules."""
    tokens = _input(spec.rules)
    tok_mask = ops.cast(ops.not_equal(tokens, 0), "float32")  # [N,R,T]
    embed = _PriorEmbedding(prior.vocab_size, prior.dim, prior.n_slots, dim, name="prior_embedding")
    embed.set_prior(prior.vectors, prior.slots)
    x = embed(tokens)  # [N,R,T,D]
    x = _TokenPositions(spec.max_tokens, dim)(x)
    # [N,R,T,T]: every query token may attend to the real (non-padding) tokens of its own rule.
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
    r = layers.Dense(out_dim, activation="relu")(ops.concatenate([mean_t, max_t], axis=-1))
    rule_mask = ops.cast(ops.max(tok_mask, axis=2), "float32")[..., None]  # [N,R,1]
    r = r * rule_mask  # empty rule slots contribute nothing (r >= 0, so max is safe)
    n_rules = ops.maximum(ops.sum(rule_mask, axis=1), 1.0)  # [N,1]
    pooled = ops.concatenate([ops.max(r, axis=1), ops.sum(r, axis=1) / n_rules], axis=-1)
    out = layers.Dense(out_dim, activation="relu")(pooled)  # [N,out_dim]
    return keras.Model(tokens, out, name="text_encoder")


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


def create_fused_model(
    prior: TextPrior, n_labels: int, spec: ModelSpec = MODEL_SPEC
) -> keras.Model:
    """The decision classifier: image + rule text + ego speed -> softmax over decisions."""
    image, rules, speed = _inputs(spec)
    img = create_image_encoder(spec)(image)  # [N,128]
    txt = create_text_encoder(prior, spec)(rules)  # [N,128]
    spd = _speed_features(speed)  # [N,33]
    # Multiplicative terms let the head form conjunctions (what the rule says x what the frame
    # shows; the limit in the text x the speed) that plain concatenation learns slowly.
    txt_spd = layers.Dense(64)(txt) * layers.Dense(64)(spd)
    feats = layers.Concatenate()([img, txt, spd, img * txt, txt_spd])
    return keras.Model([image, rules, speed], _head(feats, n_labels, spec), name="ruledrive_fused")


def create_image_only_model(
    prior: TextPrior, n_labels: int, spec: ModelSpec = MODEL_SPEC
) -> keras.Model:
    """Ablation: same image encoder and head, sees the frame and speed but not the rules."""
    image, rules, speed = _inputs(spec)
    feats = layers.Concatenate()([create_image_encoder(spec)(image), _speed_features(speed)])
    return keras.Model(
        [image, rules, speed], _head(feats, n_labels, spec), name="ruledrive_image_only"
    )


def create_text_only_model(
    prior: TextPrior, n_labels: int, spec: ModelSpec = MODEL_SPEC
) -> keras.Model:
    """Ablation: same text encoder and head, sees the rules and speed but not the frame."""
    image, rules, speed = _inputs(spec)
    feats = layers.Concatenate()([create_text_encoder(prior, spec)(rules), _speed_features(speed)])
    return keras.Model(
        [image, rules, speed], _head(feats, n_labels, spec), name="ruledrive_text_only"
    )
