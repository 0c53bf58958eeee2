"""The model's input/output contract: names, shapes, dtypes and metadata keys.

Training builds the Keras model from this, the exporter names the ONNX graph's inputs after it,
and the node refuses a model whose metadata does not match it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["META_KEYS", "MODEL_SPEC", "ModelSpec"]


@dataclass(frozen=True)
class ModelSpec:
    image_height: int = 96
    image_width: int = 160
    max_rules: int = 5
    max_tokens: int = 20
    # ONNX input / output names (kept by tf2onnx from the Keras Input names).
    image_input: str = "image"  # uint8 [N, H, W, 3] RGB
    rules_input: str = "rule_tokens"  # int32 [N, max_rules, max_tokens], 0 = padding
    speed_input: str = "speed_kph"  # float32 [N, 1]
    output: str = "probabilities"  # float32 [N, n_labels], softmax

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


MODEL_SPEC = ModelSpec()

# Keys of the ONNX metadata_props that ruledrive writes and the node reads.
META_KEYS = {
    "labels": "ruledrive.labels",
    "tokenizer": "ruledrive.tokenizer",
    "tokenizer_sha256": "ruledrive.tokenizer_sha256",
    "spec": "ruledrive.model_spec",
    "preprocessing": "ruledrive.preprocessing",
    "schema_version": "ruledrive.schema_version",
    "model_version": "ruledrive.model_version",
    "training_config": "ruledrive.training_config",
    "data_fingerprint": "ruledrive.data_fingerprint",
    "metrics": "ruledrive.metrics",
}
