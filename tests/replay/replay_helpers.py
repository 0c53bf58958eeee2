"""Synthetic drives for the replay tests (no recording needed)."""

from __future__ import annotations

import time

import cv2
import numpy as np

from bus.schema import DecisionLabel, DecisionMsg, FrameHeader, RuleSet, Timings
from replay.drives import Drive, DriveFrame, DriveRules

T0 = 1_700_000_000_000_000_000
PERIOD = 33_333_333


def jpeg(value: int) -> bytes:
    img = np.full((96, 160, 3), value, np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def drive(
    vid: str,
    n: int = 5,
    labels: tuple[DecisionLabel, ...] = tuple(DecisionLabel),
    rule_change_at: int | None = None,
    expires_after: int | None = None,
) -> Drive:
    """n frames of one vehicle with a rule set at the start (and optionally a change)."""
    rules = RuleSet(
        vehicle_id=vid,
        version="r1",
        issued_at_ns=T0,
        rules=["Stop at the red light"],
        expires_at_ns=None if expires_after is None else T0 + expires_after * PERIOD,
    )
    events: list[DriveFrame | DriveRules] = [DriveRules(T0, rules)]
    for i in range(n):
        t = T0 + i * PERIOD + 1
        if rule_change_at == i:
            events.append(
                DriveRules(
                    t - 1,
                    rules.model_copy(
                        update={
                            "version": "r2",
                            "rules": ["Speed limit 50 km/h"],
                            "issued_at_ns": t - 1,
                        }
                    ),
                )
            )
        header = FrameHeader(
            vehicle_id=vid, frame_id=100 + i, stamp_ns=t, speed_kph=10.0 * (i % 30)
        )  # <= 300 km/h
        events.append(DriveFrame(t, header, jpeg(40 * (i % 6)), labels[i % len(labels)]))
    return Drive(vid, events, "synthetic")


def decision(
    vid: str, fid: int, label: DecisionLabel, valid: bool = True, reason: str | None = None
) -> DecisionMsg:
    """A node's answer to frame ``fid`` of ``vid`` (stamp 1, node n1, model m1)."""
    probs = {lab: (0.9 if lab == label else 0.02) for lab in DecisionLabel}
    return DecisionMsg(
        vehicle_id=vid,
        frame_id=fid,
        frame_stamp_ns=1,
        stamp_ns=time.time_ns(),
        decision=label,
        probabilities=probs,
        confidence=0.9,
        valid=valid,
        reason=reason,
        rules_version="r1",
        model_version="m1",
        node_id="n1",
        timings=Timings(
            frame_age_ms=1, queue_ms=0, decode_ms=1, inference_ms=1, total_ms=2, batch_size=1
        ),
    )
