"""The optional training-environment entry of the ONNX metadata (perception.modelmeta)."""

from __future__ import annotations

import json

import pytest

from core.errors import ModelError
from perception.modelmeta import ENVIRONMENT_KEY, Thresholds, build_metadata, parse_metadata

ENCODER = {"model_sha256": "a", "tokenizer_sha256": "b", "prefix": "query: "}


def _meta(env: dict[str, str] | None) -> dict[str, str]:
    return build_metadata(
        ENCODER,
        ("speed_limit", "not_understood"),
        Thresholds(),
        model_version="fused-x",
        training_config={},
        metrics={},
        data_fingerprint="f",
        training_environment=env,
    )


def test_the_training_environment_travels_with_the_model() -> None:
    env = {"python": "3.11.7", "keras": "3.15.1", "tensorflow": "2.21.0 (tensorflow-cpu)"}
    meta = _meta(env)
    assert json.loads(meta[ENVIRONMENT_KEY]) == env  # plain JSON, readable without ruledrive
    assert parse_metadata(meta).training_environment == env


def test_a_model_exported_before_it_still_loads_without_one() -> None:
    meta = _meta(None)
    assert ENVIRONMENT_KEY not in meta
    assert parse_metadata(meta).training_environment == {}


@pytest.mark.parametrize("bad", ['["keras"]', '{"keras": 3}', "not json"])
def test_a_malformed_environment_is_a_clear_model_error(bad: str) -> None:
    meta = {**_meta({"python": "3.11.7"}), ENVIRONMENT_KEY: bad}
    with pytest.raises(ModelError, match="metadata cannot be parsed"):
        parse_metadata(meta, source="m.onnx")
