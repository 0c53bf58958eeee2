"""Fixtures for the node tests: the fake model (a TEST DOUBLE), frames and rule sets."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from bus.schema import FrameHeader, RuleSet
from policy.model import PolicyModel
from policy.node import Node
from tests.policy.fakemodel import build_fake_model


@pytest.fixture(scope="session")
def fake_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fake_model(tmp_path_factory.mktemp("model") / "fake.onnx")


@pytest.fixture(scope="session")
def model(fake_model_path: Path) -> PolicyModel:
    return PolicyModel.load(fake_model_path, "auto")


def jpeg(value: int = 128, w: int = 320, h: int = 192) -> bytes:
    img = np.full((h, w, 3), value, np.uint8)
    cv2.rectangle(img, (w // 4, h // 4), (w // 2, h // 2), (255 - value, 0, value), -1)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def header(
    vid: str = "car-1", frame_id: int = 0, speed: float = 30.0, stamp_ns: int | None = None
) -> FrameHeader:
    return FrameHeader(
        vehicle_id=vid,
        frame_id=frame_id,
        speed_kph=speed,
        stamp_ns=time.time_ns() if stamp_ns is None else stamp_ns,
    )


def rules(
    vid: str = "car-1",
    version: str = "r1",
    texts: tuple[str, ...] = ("Stop at the red light",),
    expires_at_ns: int | None = None,
) -> RuleSet:
    return RuleSet(
        vehicle_id=vid,
        version=version,
        issued_at_ns=time.time_ns(),
        expires_at_ns=expires_at_ns,
        rules=list(texts),
    )


def rules_encoded(node: Node, timeout_s: float = 10) -> bool:
    """Wait until the rule sets the node holds are encoded (their frames wait until then)."""
    end = time.monotonic() + timeout_s
    while not all(node.decider.ready(r) for r in list(node.rules.values())):
        if time.monotonic() > end:
            return False
        time.sleep(0.005)
    return True


def decoding_threads(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """From now on, the names of the threads that decode frames in the Decider (filled as they
    decode)."""
    import threading

    import policy.decider as decider_mod

    where: set[str] = set()
    real = decider_mod.preprocess_jpeg

    def spy(data: bytes, decode: str = "full"):  # type: ignore[no-untyped-def]
        where.add(threading.current_thread().name)
        return real(data, decode)

    monkeypatch.setattr(decider_mod, "preprocess_jpeg", spy)
    return where
