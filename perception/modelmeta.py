"""The ONNX metadata contract between training (writer) and the node (reader).

Training calls :func:`build_metadata` and stores the result in ``metadata_props``; the node calls
:func:`parse_metadata` on ``session.get_modelmeta().custom_metadata_map`` and refuses a model that
does not match this build's spec, labels or preprocessing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from bus.schema import SCHEMA_VERSION, DecisionLabel
from core.errors import ModelError
from perception.image import PREPROCESSING
from perception.spec import META_KEYS, MODEL_SPEC
from perception.text import RuleTokenizer

__all__ = ["ModelMeta", "build_metadata", "parse_metadata"]


@dataclass(frozen=True)
class ModelMeta:
    labels: tuple[DecisionLabel, ...]
    tokenizer: RuleTokenizer
    model_version: str
    schema_version: int
    training_config: dict[str, object] = field(default_factory=dict)
    metrics: dict[str, object] = field(default_factory=dict)
    data_fingerprint: str = ""


def build_metadata(
    tokenizer: RuleTokenizer,
    model_version: str,
    training_config: Mapping[str, object],
    metrics: Mapping[str, object],
    data_fingerprint: str,
    labels: tuple[DecisionLabel, ...] = tuple(DecisionLabel),
) -> dict[str, str]:
    """Everything a reader needs to run the model exactly as training evaluated it."""
    return {
        META_KEYS["labels"]: json.dumps([str(x) for x in labels]),
        META_KEYS["tokenizer"]: tokenizer.to_json(),
        META_KEYS["tokenizer_sha256"]: tokenizer.sha256(),
        META_KEYS["spec"]: json.dumps(MODEL_SPEC.to_dict(), sort_keys=True),
        META_KEYS["preprocessing"]: json.dumps(PREPROCESSING, sort_keys=True),
        META_KEYS["schema_version"]: str(SCHEMA_VERSION),
        META_KEYS["model_version"]: model_version,
        META_KEYS["training_config"]: json.dumps(dict(training_config), sort_keys=True),
        META_KEYS["data_fingerprint"]: data_fingerprint,
        META_KEYS["metrics"]: json.dumps(dict(metrics), sort_keys=True),
    }


def parse_metadata(meta: Mapping[str, str], source: str = "model") -> ModelMeta:
    """Validate ONNX custom metadata against this build; raise ModelError naming the problem."""
    missing = [k for k in META_KEYS.values() if k not in meta]
    if missing:
        raise ModelError(f"{source}: metadata is missing {', '.join(sorted(missing))}")
    try:
        labels = tuple(DecisionLabel(x) for x in json.loads(meta[META_KEYS["labels"]]))
        spec = json.loads(meta[META_KEYS["spec"]])
        prep = json.loads(meta[META_KEYS["preprocessing"]])
        schema_version = int(meta[META_KEYS["schema_version"]])
        config = json.loads(meta[META_KEYS["training_config"]])
        metrics = json.loads(meta[META_KEYS["metrics"]])
    except (ValueError, TypeError) as exc:
        raise ModelError(f"{source}: metadata cannot be parsed: {exc}") from exc
    if schema_version != SCHEMA_VERSION:
        raise ModelError(f"{source}: schema version {schema_version}, node speaks {SCHEMA_VERSION}")
    if set(labels) != set(DecisionLabel) or len(labels) != len(DecisionLabel):
        raise ModelError(f"{source}: labels {labels} do not match the contract's decisions")
    if spec != json.loads(json.dumps(MODEL_SPEC.to_dict())):
        raise ModelError(f"{source}: input spec {spec} differs from this build's {MODEL_SPEC}")
    if prep != json.loads(json.dumps(PREPROCESSING)):
        raise ModelError(f"{source}: preprocessing {prep} differs from this build's")
    tokenizer = RuleTokenizer.from_json(meta[META_KEYS["tokenizer"]])
    if tokenizer.sha256() != meta[META_KEYS["tokenizer_sha256"]]:
        raise ModelError(f"{source}: tokenizer hash does not match its vocabulary")
    return ModelMeta(
        labels=labels,
        tokenizer=tokenizer,
        model_version=meta[META_KEYS["model_version"]],
        schema_version=schema_version,
        training_config=config,
        metrics=metrics,
        data_fingerprint=meta[META_KEYS["data_fingerprint"]],
    )
