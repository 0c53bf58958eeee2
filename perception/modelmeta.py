"""The ONNX metadata contract between training (writer) and the node (reader).

Training calls :func:`build_metadata` and stores the result in ``metadata_props``; the node calls
:func:`parse_metadata` on ``session.get_modelmeta().custom_metadata_map`` and refuses a model that
does not match this build's spec, labels, preprocessing or text encoder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from bus.schema import MAX_MODEL_VERSION_CHARS, SCHEMA_VERSION, VERSION_PATTERN, DecisionLabel
from core.errors import ModelError
from perception.image import DEFAULT_DECODE, PREPROCESSING, PREPROCESSINGS
from perception.spec import META_KEYS, MODEL_SPEC

__all__ = [
    "ENVIRONMENT_KEY",
    "NOT_UNDERSTOOD",
    "ModelMeta",
    "Thresholds",
    "build_metadata",
    "parse_metadata",
]

NOT_UNDERSTOOD = "not_understood"  # the rule class that makes a rule set not understood
# Optional (models exported before it lack it): Python, machine and package versions that
# trained the model (training.checkpoint.training_environment), for whoever retrains it.
ENVIRONMENT_KEY = "ruledrive.training_environment"


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds chosen from validation data by training (see docs/training.md)."""

    confidence: float = 0.5  # below it: low_confidence
    not_understood: float = 0.5  # a rule's not_understood probability at or above it: flagged
    image_ood: float = 0.5  # image_ood at or above it: image_out_of_distribution

    def to_dict(self) -> dict[str, float]:
        return {
            "confidence": self.confidence,
            "not_understood": self.not_understood,
            "image_ood": self.image_ood,
        }


@dataclass(frozen=True)
class ModelMeta:
    labels: tuple[DecisionLabel, ...]
    rule_classes: tuple[str, ...]
    encoder: dict[str, str]
    thresholds: Thresholds
    model_version: str
    schema_version: int
    training_config: dict[str, object] = field(default_factory=dict)
    metrics: dict[str, object] = field(default_factory=dict)
    data_fingerprint: str = ""
    decode: str = DEFAULT_DECODE  # perception.image.PREPROCESSINGS: how its frames were decoded
    training_environment: dict[str, str] = field(default_factory=dict)  # {} if not recorded

    @property
    def not_understood_index(self) -> int:
        return self.rule_classes.index(NOT_UNDERSTOOD)


def build_metadata(
    encoder: Mapping[str, str],
    rule_classes: tuple[str, ...],
    thresholds: Thresholds,
    model_version: str,
    training_config: Mapping[str, object],
    metrics: Mapping[str, object],
    data_fingerprint: str,
    labels: tuple[DecisionLabel, ...] = tuple(DecisionLabel),
    training_environment: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Everything a reader needs to run the model exactly as training evaluated it (and, when
    given, the environment that trained it)."""
    env = (
        {}
        if training_environment is None
        else {ENVIRONMENT_KEY: json.dumps(dict(training_environment), sort_keys=True)}
    )
    return env | {
        META_KEYS["labels"]: json.dumps([str(x) for x in labels]),
        META_KEYS["encoder"]: json.dumps(dict(encoder), sort_keys=True),
        META_KEYS["rule_classes"]: json.dumps(list(rule_classes)),
        META_KEYS["thresholds"]: json.dumps(thresholds.to_dict(), sort_keys=True),
        META_KEYS["spec"]: json.dumps(MODEL_SPEC.to_dict(), sort_keys=True),
        META_KEYS["preprocessing"]: json.dumps(PREPROCESSING, sort_keys=True),
        META_KEYS["schema_version"]: str(SCHEMA_VERSION),
        META_KEYS["model_version"]: model_version,
        META_KEYS["training_config"]: json.dumps(dict(training_config), sort_keys=True),
        META_KEYS["data_fingerprint"]: data_fingerprint,
        META_KEYS["metrics"]: json.dumps(dict(metrics), sort_keys=True),
    }


def _strings(meta: Mapping[str, str], key: str) -> list[str]:
    """A metadata entry that must be a JSON list of strings (a bare string would otherwise be
    read character by character)."""
    value = json.loads(meta[META_KEYS[key]])
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ValueError(f"{key} must be a list of strings, got {str(value)[:80]}")
    return value


# A flag threshold above 1 never flags: training writes 1.01 for a model whose rule head was
# never trained (training.thresholds). A confidence threshold above 1 would refuse every frame.
_MAX_THRESHOLD = {"confidence": 1.0, "not_understood": 1.01, "image_ood": 1.01}


def _thresholds(value: object) -> Thresholds:
    """Each threshold a number in [0, 1] (1.01, never, for the flags): a threshold of 7 sends
    every frame to a fallback, NaN none."""
    if not isinstance(value, dict) or not set(value) <= set(Thresholds().to_dict()):
        raise ValueError(f"thresholds must be an object with {sorted(Thresholds().to_dict())}")
    for name, x in value.items():
        top = _MAX_THRESHOLD[name]
        if isinstance(x, bool) or not isinstance(x, int | float) or not 0.0 <= x <= top:
            raise ValueError(f"threshold {name} must be a number in [0, {top:g}], got {x!r}")
    return Thresholds(**{k: float(v) for k, v in value.items()})


def parse_metadata(meta: Mapping[str, str], source: str = "model") -> ModelMeta:
    """Validate ONNX custom metadata against this build; raise ModelError naming the problem."""
    missing = [k for k in META_KEYS.values() if k not in meta]
    if missing:
        raise ModelError(
            f"{source}: metadata is missing {', '.join(sorted(missing))} (a model exported "
            "before the multilingual text encoder: retrain or use a matching ruledrive)"
        )
    try:
        labels = tuple(DecisionLabel(x) for x in _strings(meta, "labels"))
        rule_classes = tuple(_strings(meta, "rule_classes"))
        encoder = {str(k): str(v) for k, v in json.loads(meta[META_KEYS["encoder"]]).items()}
        thresholds = _thresholds(json.loads(meta[META_KEYS["thresholds"]]))
        spec = json.loads(meta[META_KEYS["spec"]])
        prep = json.loads(meta[META_KEYS["preprocessing"]])
        schema_version = int(meta[META_KEYS["schema_version"]])
        config = json.loads(meta[META_KEYS["training_config"]])
        metrics = json.loads(meta[META_KEYS["metrics"]])
        environment = json.loads(meta.get(ENVIRONMENT_KEY, "{}"))
        if not isinstance(environment, dict) or not all(
            isinstance(v, str) for v in environment.values()
        ):
            raise ValueError(
                f"training environment must be an object of strings, got {environment!r:.80}"
            )
    except (ValueError, TypeError, AttributeError) as exc:
        raise ModelError(f"{source}: metadata cannot be parsed: {exc}") from exc
    if schema_version != SCHEMA_VERSION:
        raise ModelError(f"{source}: schema version {schema_version}, node speaks {SCHEMA_VERSION}")
    if set(labels) != set(DecisionLabel) or len(labels) != len(DecisionLabel):
        raise ModelError(f"{source}: labels {labels} do not match the contract's decisions")
    if NOT_UNDERSTOOD not in rule_classes or len(set(rule_classes)) != len(rule_classes):
        raise ModelError(f"{source}: rule classes {rule_classes} lack {NOT_UNDERSTOOD!r}")
    if spec != json.loads(json.dumps(MODEL_SPEC.to_dict())):
        raise ModelError(f"{source}: input spec {spec} differs from this build's {MODEL_SPEC}")
    decode = next(
        (name for name, known in PREPROCESSINGS.items() if prep == json.loads(json.dumps(known))),
        None,
    )
    if decode is None:
        raise ModelError(f"{source}: preprocessing {prep} is none this build knows")
    if not {"model_sha256", "tokenizer_sha256", "prefix"} <= set(encoder):
        raise ModelError(f"{source}: text encoder identity {encoder} is incomplete")
    version = meta[META_KEYS["model_version"]]
    # Echoed in every decision (DecisionMsg.model_version) and printed by its consumers.
    if len(version) > MAX_MODEL_VERSION_CHARS or not re.fullmatch(VERSION_PATTERN, version):
        raise ModelError(
            f"{source}: model version {version[:60]!r} must be 1-{MAX_MODEL_VERSION_CHARS} "
            "characters without control characters"
        )
    return ModelMeta(
        labels=labels,
        rule_classes=rule_classes,
        encoder=encoder,
        thresholds=thresholds,
        model_version=version,
        schema_version=schema_version,
        training_config=config,
        metrics=metrics,
        data_fingerprint=meta[META_KEYS["data_fingerprint"]],
        decode=decode,
        training_environment=environment,
    )
