"""MCAP writer/reader: round trip of hand-written records and every bad-input case."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from mcap.writer import Writer

from bus.recording_reader import LATE_LABEL_S, read_events, read_frames, read_samples
from bus.recording_writer import RecordingWriter
from bus.schema import DecisionLabel, DecisionMsg, FrameHeader, LabelMsg, RuleSet, Timings
from core.errors import RecordingError
from perception.image import preprocess_jpeg
from simulator.render import render_jpeg
from simulator.scene import Scene

JPEG = render_jpeg(Scene())


def _write(path: Path, label: bool = True, n: int = 3) -> None:
    with RecordingWriter(path, metadata={"split": "test", "seed": "1"}) as w:
        w.write_rules(
            RuleSet(vehicle_id="car-1", version="v1", issued_at_ns=5, rules=["No overtaking"])
        )
        for i in range(n):
            t = 10 + i * 100
            w.write_frame(
                FrameHeader(vehicle_id="car-1", frame_id=i, stamp_ns=t, speed_kph=30.0 + i), JPEG
            )
            if label:
                w.write_label(
                    LabelMsg(
                        vehicle_id="car-1",
                        frame_id=i,
                        stamp_ns=t,
                        decision=DecisionLabel.STOP,
                        reason="light:red",
                    )
                )
            w.write_decision(
                DecisionMsg(
                    vehicle_id="car-1",
                    frame_id=i,
                    frame_stamp_ns=t,
                    stamp_ns=t + 5,
                    decision=DecisionLabel.STOP,
                    probabilities={DecisionLabel.STOP: 1.0},
                    confidence=1.0,
                    valid=True,
                    rules_version="v1",
                    model_version="m",
                    node_id="n",
                    timings=Timings(
                        frame_age_ms=1,
                        queue_ms=0,
                        decode_ms=0,
                        inference_ms=0,
                        total_ms=1,
                        batch_size=1,
                    ),
                )
            )


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "r.mcap"
    _write(path)
    samples = list(read_samples(path, require_labels=True))
    assert [s.frame_id for s in samples] == [0, 1, 2]
    s = samples[1]
    assert (s.vehicle_id, s.stamp_ns, s.speed_kph, s.rules, s.rules_version, s.split) == (
        "car-1",
        110,
        31.0,
        ("No overtaking",),
        "v1",
        "test",
    )
    assert s.label == DecisionLabel.STOP and s.reason == "light:red" and s.jpeg == JPEG
    assert preprocess_jpeg(s.jpeg).shape == (96, 160, 3)
    events = list(read_events(path))
    assert [e.channel for e in events[:4]] == ["/rules", "/camera/front", "/ego", "/label"]
    assert [e.log_time_ns for e in events] == sorted(e.log_time_ns for e in events)
    assert any(e.channel == "/decision" for e in events)


def test_missing_labels(tmp_path: Path) -> None:
    path = tmp_path / "r.mcap"
    _write(path, label=False)
    assert all(s.label is None for s in read_samples(path))
    with pytest.raises(RecordingError, match=r"r\.mcap: frame car-1/0 has no label"):
        list(read_samples(path, require_labels=True))


def _late_labels(path: Path, lag: int, gap_ns: int = 100) -> None:
    """Frames 0..5 of car-1 whose labels come ``lag`` frames late (QoS 1 labels queue behind
    QoS 0 frames at the broker), and a rule change recorded after frame 2."""
    with RecordingWriter(path) as w:
        w.write_rules(RuleSet(vehicle_id="car-1", version="v1", issued_at_ns=1, rules=["A"]))
        labels = []
        for i in range(6):
            t = 10 + i * gap_ns
            w.write_frame(
                FrameHeader(vehicle_id="car-1", frame_id=i, stamp_ns=t, speed_kph=20.0), JPEG
            )
            if i == 2:
                w.write_rules(
                    RuleSet(vehicle_id="car-1", version="v2", issued_at_ns=t, rules=["B"]),
                    log_time_ns=t + 1,
                )
            labels.append(
                LabelMsg(
                    vehicle_id="car-1",
                    frame_id=i,
                    stamp_ns=t,
                    decision=DecisionLabel.STOP if i % 2 else DecisionLabel.PROCEED,
                )
            )
            if i >= lag:
                w.write_label(labels[i - lag], log_time_ns=t + 2)
        for label in labels[len(labels) - lag :]:
            w.write_label(label, log_time_ns=10 + 6 * gap_ns)


@pytest.mark.parametrize("lag", [0, 1, 3])
def test_a_label_recorded_after_the_vehicles_next_frame_still_joins(
    tmp_path: Path, lag: int
) -> None:
    path = tmp_path / "late.mcap"
    _late_labels(path, lag)
    samples = list(read_samples(path, require_labels=True))
    assert [s.frame_id for s in samples] == list(range(6))
    assert [s.label for s in samples] == [
        DecisionLabel.STOP if i % 2 else DecisionLabel.PROCEED for i in range(6)
    ]
    # Rules as in force when each frame was captured, and replay's order kept: v2 comes after
    # the frames captured before it.
    assert [s.rules_version for s in samples] == ["v1"] * 3 + ["v2"] * 3
    order = [x.version if isinstance(x, RuleSet) else x.header.frame_id for x in read_frames(path)]
    assert order == ["v1", 0, 1, "v2", 2, 3, 4, 5]


def test_a_vehicle_that_numbers_its_frames_again_gets_new_frames(tmp_path: Path) -> None:
    # Unlabelled frames wait for a label; the same drive replayed again at once reuses the
    # frame ids while the first pass's frames still wait: they are two passes, not one merged.
    path = tmp_path / "again.mcap"
    with RecordingWriter(path) as w:
        for t, i in enumerate([0, 1, 2, 0, 1, 2]):
            w.write_frame(
                FrameHeader(vehicle_id="car-1", frame_id=i, stamp_ns=10 + t, speed_kph=float(t)),
                JPEG,
            )
    got = [(s.frame_id, s.stamp_ns, s.speed_kph) for s in read_samples(path)]
    assert got == [(i, 10 + t, float(t)) for t, i in enumerate([0, 1, 2, 0, 1, 2])]


def test_a_label_later_than_the_wait_is_a_missing_label(tmp_path: Path) -> None:
    path = tmp_path / "late.mcap"
    _late_labels(path, lag=2, gap_ns=int(LATE_LABEL_S * 1e9))
    with pytest.raises(RecordingError, match=r"frame car-1/0 has no label \(none recorded within"):
        list(read_samples(path, require_labels=True))
    assert [s.label is not None for s in read_samples(path)] == [False] * 4 + [True] * 2


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.99])
def test_truncated(tmp_path: Path, cut: float) -> None:
    path = tmp_path / "r.mcap"
    _write(path, n=20)
    data = path.read_bytes()
    bad = tmp_path / "cut.mcap"
    bad.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(RecordingError, match="cut.mcap"):
        list(read_samples(bad))


def _corrupted(tmp_path: Path) -> Path:
    """A 20-frame recording with 64 zero bytes written over its middle."""
    path = tmp_path / "r.mcap"
    _write(path, n=20)
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(64)
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(bytes(data))
    return bad


def test_corrupt_and_missing(tmp_path: Path) -> None:
    bad = _corrupted(tmp_path)
    with pytest.raises(RecordingError, match="bad.mcap"):
        list(read_samples(bad))
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"not an mcap file at all")
    with pytest.raises(RecordingError, match="junk.mcap"):
        list(read_samples(junk))
    with pytest.raises(RecordingError, match="no such recording"):
        list(read_samples(tmp_path / "absent.mcap"))


def test_unknown_channel_schema(tmp_path: Path) -> None:
    path = tmp_path / "odd.mcap"
    with open(path, "wb") as fh:
        w = Writer(fh)
        w.start()
        sid = w.register_schema("my.Lidar", "jsonschema", b"{}")
        cid = w.register_channel("/lidar", "json", sid)
        w.add_message(cid, log_time=1, data=b"{}", publish_time=1)
        w.finish()
    with pytest.raises(RecordingError, match="odd.mcap: channel '/lidar' with schema 'my.Lidar'"):
        list(read_samples(path))


def test_bad_json_record_is_named(tmp_path: Path) -> None:
    path = tmp_path / "j.mcap"
    with RecordingWriter(path) as w:
        w._write("/ego", b'{"vehicle_id": "x"}', 7)
    with pytest.raises(RecordingError, match=r"j\.mcap: /ego record at log time 7"):
        list(read_events(path))


def _labelled_frame(w: RecordingWriter, i: int) -> None:
    t = 10 + i * 100
    w.write_frame(FrameHeader(vehicle_id="car-1", frame_id=i, stamp_ns=t, speed_kph=30.0), JPEG)
    w.write_label(
        LabelMsg(
            vehicle_id="car-1", frame_id=i, stamp_ns=t, decision=DecisionLabel.STOP, reason="clear"
        )
    )


def _killed(tmp_path: Path, flushed: int, after: int) -> Path:
    """A writer "SIGKILLed" after ``flushed`` frames were flushed and ``after`` more written: the
    bytes on disk at that moment, copied before close() could write the summary."""
    path = tmp_path / "live.mcap"
    w = RecordingWriter(path, metadata={"split": "recorded"}, chunk_size=1 << 20)
    w.write_rules(RuleSet(vehicle_id="car-1", version="v1", issued_at_ns=5, rules=["Go"]))
    for i in range(flushed):
        _labelled_frame(w, i)
    w.flush()
    for i in range(flushed, flushed + after):  # still in the open chunk: lost by the kill
        _labelled_frame(w, i)
    killed = tmp_path / "killed.mcap"
    killed.write_bytes(path.read_bytes())
    w.close()
    return killed


def test_flush_then_kill_default_raises(tmp_path: Path) -> None:
    killed = _killed(tmp_path, flushed=5, after=3)
    got = []
    with pytest.raises(RecordingError, match=r"killed\.mcap: truncated MCAP"):
        got.extend(read_samples(killed, require_labels=True))
    assert [s.frame_id for s in got] == [0, 1, 2, 3]  # the newest frame was still pending
    with pytest.raises(RecordingError, match="truncated"):
        list(read_events(killed))


def test_flush_then_kill_allow_truncated_recovers_exactly_the_flushed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    killed = _killed(tmp_path, flushed=5, after=3)
    with caplog.at_level("WARNING", logger="bus.recording_reader"):
        got = list(read_samples(killed, require_labels=True, allow_truncated=True))
    assert [s.frame_id for s in got] == [0, 1, 2, 3, 4]
    assert all(
        s.label == DecisionLabel.STOP
        and s.jpeg == JPEG
        and s.rules == ("Go",)
        and s.split == "recorded"
        for s in got
    )
    assert any(
        "killed.mcap" in r.getMessage() and "recovered 5 samples" in r.getMessage()
        for r in caplog.records
        if r.levelname == "WARNING"
    )
    events = list(read_events(killed, allow_truncated=True))
    assert [e.channel for e in events].count("/camera/front") == 5
    assert len(events) == 1 + 5 * 3  # rules, then camera + ego + label per flushed frame
    assert any("recovered 16 events" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("cut", [0.3, 0.5, 0.7, 0.9, 0.99])
def test_allow_truncated_never_yields_a_half_sample(tmp_path: Path, cut: float) -> None:
    """A cut anywhere (inside a chunk too) yields a prefix of the complete samples, no error."""
    path = tmp_path / "r.mcap"
    with RecordingWriter(path, chunk_size=4096) as w:
        for i in range(40):
            _labelled_frame(w, i)
    full = list(read_samples(path, require_labels=True))
    bad = tmp_path / "cut.mcap"
    bad.write_bytes(path.read_bytes()[: int(path.stat().st_size * cut)])
    with pytest.raises(RecordingError, match="cut.mcap: truncated"):
        list(read_samples(bad))
    got = [
        replace(s, source="") for s in read_samples(bad, require_labels=True, allow_truncated=True)
    ]
    assert got == [replace(s, source="") for s in full[: len(got)]]
    assert len(got) < len(full) or cut == 0.99


def test_allow_truncated_still_rejects_corruption(tmp_path: Path) -> None:
    bad = _corrupted(tmp_path)
    with pytest.raises(RecordingError, match="bad.mcap"):
        list(read_samples(bad, allow_truncated=True))


def test_flush_after_close_is_harmless(tmp_path: Path) -> None:
    path = tmp_path / "r.mcap"
    with RecordingWriter(path) as w:
        _labelled_frame(w, 0)
        w.flush()
        w.flush()  # nothing new: no empty chunk
    w.flush()
    assert [s.frame_id for s in read_samples(path, require_labels=True)] == [0]


def _one_message_per_topic() -> dict[str, object]:
    from bus.schema import ErrorReport, NodeState, NodeStatus

    return {
        "camera": FrameHeader(vehicle_id="car-1", frame_id=7, stamp_ns=100, speed_kph=12.5),
        "rules": RuleSet(vehicle_id="car-1", version="v1", issued_at_ns=50, rules=["Stop"]),
        "decision": DecisionMsg(
            vehicle_id="car-1",
            frame_id=7,
            frame_stamp_ns=100,
            stamp_ns=105,
            decision=DecisionLabel.STOP,
            probabilities={DecisionLabel.STOP: 1.0},
            confidence=1.0,
            valid=True,
            rules_version="v1",
            model_version="m",
            node_id="n",
            timings=Timings(
                frame_age_ms=1, queue_ms=0, decode_ms=0, inference_ms=0, total_ms=1, batch_size=1
            ),
        ),
        "label": LabelMsg(
            vehicle_id="car-1",
            frame_id=7,
            stamp_ns=101,
            decision=DecisionLabel.STOP,
            reason="light:red",
        ),
        "status": NodeStatus(
            node_id="n", state=NodeState.ONLINE, stamp_ns=102, counters={"frames": 1}
        ),
        "errors": ErrorReport(node_id="n", stamp_ns=103, topic="t", code="bad_json", detail="x"),
    }


def test_every_topic_has_a_channel_and_round_trips(tmp_path: Path) -> None:
    from bus.recording import CHANNELS, CameraFrame
    from bus.topics import CAMERA, TOPICS

    messages = _one_message_per_topic()
    assert {t.name for t in TOPICS} == set(messages), "add the new topic to this test"
    assert len({t.channel for t in TOPICS}) == len(TOPICS)
    path = tmp_path / "all.mcap"
    with RecordingWriter(path) as w:
        for topic in TOPICS:
            assert CHANNELS[topic.channel].schema_name == topic.channel_schema
            w.write(topic, messages[topic.name], JPEG if topic is CAMERA else b"")
    got: dict[str, list[object]] = {}
    for ev in read_events(path):
        got.setdefault(ev.channel, []).append(ev.message)
    for topic in TOPICS:
        (msg,) = got.pop(topic.channel)
        if topic is CAMERA:
            assert msg == CameraFrame("car-1", 7, 100, JPEG)
            assert got.pop("/ego") == [messages["camera"]]
        else:
            assert msg == messages[topic.name]
    assert not got


def test_channel_names_in_files_never_change() -> None:
    # Renaming a channel makes every existing recording unreadable (tests/golden/drive.mcap).
    from bus.recording import CHANNELS

    assert {name: ch.schema_name for name, ch in CHANNELS.items()} == {
        "/camera/front": "foxglove.CompressedImage",
        "/ego": "ruledrive.FrameHeader",
        "/rules": "ruledrive.RuleSet",
        "/label": "ruledrive.LabelMsg",
        "/decision": "ruledrive.DecisionMsg",
        "/status": "ruledrive.NodeStatus",
        "/errors": "ruledrive.ErrorReport",
        "/scene": "ruledrive.Scene",
    }


def test_second_writer_on_one_file_is_refused_and_the_first_recording_survives(
    tmp_path: Path,
) -> None:
    """Two generators started on one directory used to interleave their chunks into one file,
    which read back as a recording of nothing, with no error."""
    path = tmp_path / "one.mcap"
    with RecordingWriter(path, metadata={"split": "test"}) as first:
        for i in range(3):
            _labelled_frame(first, i)
        first.flush()
        size = path.stat().st_size
        with pytest.raises(RecordingError, match=r"one\.mcap: another process is writing"):
            RecordingWriter(path)
        assert path.stat().st_size == size  # the refused writer truncated nothing
    assert [s.frame_id for s in read_samples(path, require_labels=True)] == [0, 1, 2]
    with RecordingWriter(path) as again:  # closed: the file is free again
        _labelled_frame(again, 7)
    assert [s.frame_id for s in read_samples(path, require_labels=True)] == [7]
