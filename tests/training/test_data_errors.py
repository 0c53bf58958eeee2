"""Training data that must be refused with a clear error (no TensorFlow needed)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from bus.recording_writer import RecordingWriter
from bus.schema import DecisionLabel, FrameHeader, LabelMsg, RuleSet
from core.errors import DataError, RecordingError
from training.data import load_samples

T0 = 1_700_000_000_000_000_000


def _jpeg() -> bytes:
    ok, buf = cv2.imencode(".jpg", np.zeros((360, 640, 3), np.uint8))
    assert ok
    return buf.tobytes()


def _write(path: Path, rules: RuleSet, labelled: bool = True) -> Path:
    with RecordingWriter(path) as w:
        w.write_rules(rules, T0)
        for i in range(3):
            w.write_frame(
                FrameHeader(vehicle_id="car-1", frame_id=i, stamp_ns=T0 + i, speed_kph=40.0),
                _jpeg(),
            )
            if labelled:
                w.write_label(
                    LabelMsg(
                        vehicle_id="car-1",
                        frame_id=i,
                        stamp_ns=T0 + i,
                        decision=DecisionLabel.PROCEED,
                    )
                )
    return path


def _rules(**over: object) -> RuleSet:
    base = dict(vehicle_id="car-1", version="v1", issued_at_ns=T0, rules=["No overtaking"])
    return RuleSet(**{**base, **over})  # type: ignore[arg-type]


def test_labelled_recording_loads(tmp_path: Path) -> None:
    samples = load_samples([_write(tmp_path / "ok.mcap", _rules())])
    assert [s.frame_id for s in samples] == [0, 1, 2]
    assert samples[0].rules == ("No overtaking",) and samples[0].label == DecisionLabel.PROCEED


def test_recording_without_labels_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "nolabels.mcap", _rules(), labelled=False)
    with pytest.raises(DataError, match="nolabels.mcap.*no label"):
        load_samples([path])


def test_other_schema_version_is_refused(tmp_path: Path) -> None:
    future = RuleSet.model_construct(**{**_rules().model_dump(), "schema_version": 2})  # unchecked
    path = _write(tmp_path / "v2.mcap", future)
    with pytest.raises(RecordingError, match="v2.mcap"):
        load_samples([path])
