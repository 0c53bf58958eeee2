"""Fixtures shared by the perception tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.defaults import READING_THRESHOLD

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def node() -> Callable[..., Any]:
    """The node's decision path (Decider) on the shipped model over the golden drive's first
    40 frames: node(text, reading_threshold) -> (the model's reading of the rule alone, one
    decision per frame)."""
    from bus.recording_reader import read_samples
    from bus.schema import RuleSet
    from policy.decider import Decider
    from policy.model import PolicyModel
    from tests.policy.test_decider import header

    models: dict[float, PolicyModel] = {}
    drive = ROOT / "tests/golden/drive.mcap"
    frames = list(read_samples([drive], require_labels=False))[:40]

    def run(text: str, threshold: float = READING_THRESHOLD) -> tuple[str, list[Any]]:
        if threshold not in models:
            models[threshold] = PolicyModel.load(
                ROOT / "models/ruledrive-default.onnx", "cpu", reading_threshold=threshold
            )
        model = models[threshold]
        read = model.meta.rule_classes[int(model.encode_rules((text,)).classes[0].argmax())]
        rs = RuleSet(vehicle_id="car-1", version="v", issued_at_ns=time.time_ns(), rules=[text])
        decider = Decider(model, "n")
        return read, [decider.step(header(speed=40.0), f.jpeg, rs) for f in frames]

    return run
