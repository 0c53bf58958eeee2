"""Tiny labelled recordings for the training tests (three frames of one vehicle)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from bus.recording_writer import RecordingWriter
from bus.schema import DecisionLabel, FrameHeader, LabelMsg, RuleSet

T0 = 1_700_000_000_000_000_000


def jpeg() -> bytes:
    ok, buf = cv2.imencode(".jpg", np.zeros((360, 640, 3), np.uint8))
    assert ok
    return buf.tobytes()


def rule_set(**over: object) -> RuleSet:
    base = dict(vehicle_id="car-1", version="v1", issued_at_ns=T0, rules=["No overtaking"])
    return RuleSet(**{**base, **over})  # type: ignore[arg-type]


def write_recording(
    path: Path,
    rules: RuleSet | None = None,
    labelled: bool = True,
    with_rules: bool = True,
    split: str | None = None,
    unlabelled: frozenset[int] = frozenset(),
) -> Path:
    """Three frames of car-1 under ``rules`` (default :func:`rule_set`; none recorded unless
    ``with_rules``), each labelled PROCEED unless ``labelled`` is False or its frame id is in
    ``unlabelled``; ``split``: the recording's split metadata ("recorded": as the bus recorder
    writes it)."""
    with RecordingWriter(path, metadata={"split": split} if split else None) as w:
        if with_rules:
            w.write_rules(rules or rule_set(), T0)
        for i in range(3):
            w.write_frame(
                FrameHeader(vehicle_id="car-1", frame_id=i, stamp_ns=T0 + i, speed_kph=40.0),
                jpeg(),
            )
            if labelled and i not in unlabelled:
                w.write_label(
                    LabelMsg(
                        vehicle_id="car-1",
                        frame_id=i,
                        stamp_ns=T0 + i,
                        decision=DecisionLabel.PROCEED,
                    )
                )
    return path
