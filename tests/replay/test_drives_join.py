"""Replay's drives and training's samples come from one join of frames to labels and rules."""

from __future__ import annotations

from pathlib import Path

from bus.recording_reader import read_samples
from bus.recording_writer import RecordingWriter
from bus.schema import DecisionLabel, FrameHeader, LabelMsg, RuleSet
from replay.drives import DriveFrame, DriveRules, load_drives
from simulator.render import render_jpeg
from simulator.scene import Scene

JPEG = render_jpeg(Scene())
GOLDEN = Path(__file__).parents[1] / "golden" / "drive.mcap"


def _frames(path: Path) -> list[tuple[str, int, DecisionLabel | None, bytes]]:
    return [
        (e.header.vehicle_id, e.header.frame_id, e.label, e.jpeg)
        for d in load_drives([path])
        for e in d.events
        if isinstance(e, DriveFrame)
    ]


def _samples(path: Path) -> list[tuple[str, int, DecisionLabel | None, bytes]]:
    return [(s.vehicle_id, s.frame_id, s.label, s.jpeg) for s in read_samples(path)]


def test_drives_and_samples_agree_on_the_golden_drive() -> None:
    assert sorted(_frames(GOLDEN), key=str) == sorted(_samples(GOLDEN), key=str)


def test_a_late_label_is_joined_by_both(tmp_path: Path) -> None:
    path = tmp_path / "late.mcap"
    with RecordingWriter(path) as w:
        w.write_rules(RuleSet(vehicle_id="car-1", version="v1", issued_at_ns=1, rules=["Stop"]))
        for i in range(2):
            w.write_frame(
                FrameHeader(vehicle_id="car-1", frame_id=i, stamp_ns=10 + i, speed_kph=5.0), JPEG
            )
        # Frame 0's label after frame 1 started (a QoS 1 label queued behind a QoS 0 frame):
        # joined all the same, by the one join replay and training share.
        w.write_label(
            LabelMsg(vehicle_id="car-1", frame_id=0, stamp_ns=12, decision=DecisionLabel.STOP)
        )
        w.write_label(
            LabelMsg(vehicle_id="car-1", frame_id=1, stamp_ns=13, decision=DecisionLabel.YIELD)
        )
    expected = [("car-1", 0, DecisionLabel.STOP, JPEG), ("car-1", 1, DecisionLabel.YIELD, JPEG)]
    assert _frames(path) == _samples(path) == expected
    (drive,) = load_drives([path])
    assert isinstance(drive.events[0], DriveRules) and drive.events[0].rules.version == "v1"
