"""The recorder's bus side and rotation with a stand-in writer (no MCAP needed)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from bus.codec import encode
from bus.memory import MemoryBus
from bus.schema import DecisionLabel, LabelMsg
from bus.topics import CAMERA, LABEL, RULES, STATUS
from replay.recorder import BusRecorder
from tests.replay.replay_helpers import drive


class ListWriter:
    """TEST DOUBLE of bus.recording_writer.RecordingWriter: keeps what it is given."""

    opened: list[ListWriter] = []

    def __init__(self, path: Path) -> None:
        self.path, self.items, self.flushes, self.closed = path, [], 0, False
        ListWriter.opened.append(self)

    def write(self, topic, message, jpeg, log_time_ns):
        self.items.append((topic.name, message, jpeg, log_time_ns))

    def flush(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        self.closed = True


def _feed(bus: MemoryBus, n: int) -> None:
    from bus.envelope import pack_frame

    d = drive("car-a", n)
    for ev in d.events:
        if hasattr(ev, "rules"):
            bus.publish(RULES.topic(vehicle_id="car-a"), encode(ev.rules), 1, True)
        else:
            bus.publish(CAMERA.topic(vehicle_id="car-a"), pack_frame(ev.header, ev.jpeg))
            label = LabelMsg(
                vehicle_id="car-a",
                frame_id=ev.header.frame_id,
                stamp_ns=1,
                decision=DecisionLabel.STOP,
            )
            bus.publish(LABEL.topic(vehicle_id="car-a"), encode(label), 1)


def test_records_contract_topics_and_rejects_bad_input(tmp_path: Path) -> None:
    ListWriter.opened.clear()
    bus = MemoryBus()
    rec = BusRecorder(tmp_path / "x.mcap", writer_factory=ListWriter, flush_s=0.05)
    rec.subscribe(bus)
    bus.connect()
    t = threading.Thread(target=rec.run)
    t.start()
    _feed(bus, 4)
    bus.publish(CAMERA.topic(vehicle_id="car-a"), b"garbage")
    bus.publish(STATUS.topic(node_id="n1"), b"{}")  # not a recorded topic
    bus.publish(RULES.topic(vehicle_id="car-a"), b"", 1, True)  # cleared retained: skipped
    rec.stop()
    t.join(5)
    (w,) = ListWriter.opened
    assert w.closed and w.path == tmp_path / "x.mcap"
    names = [i[0] for i in w.items]
    assert names.count("camera") == 4 and names.count("label") == 4 and names.count("rules") == 1
    assert rec.counts["rejected.bad_envelope"] == 1
    assert rec.files == [tmp_path / "x.mcap"]


def _rotating(tmp_path: Path) -> tuple[MemoryBus, BusRecorder]:
    """A recorder that starts a new file every ~2 kB, on a connected bus."""
    ListWriter.opened.clear()
    bus = MemoryBus()
    rec = BusRecorder(tmp_path / "run.mcap", rotate_mb=0.002, writer_factory=ListWriter)
    rec.subscribe(bus)
    bus.connect()
    return bus, rec


def test_rotation_by_size(tmp_path: Path) -> None:
    bus, rec = _rotating(tmp_path)
    _feed(bus, 12)
    rec.stop()
    files = rec.run()
    assert len(files) > 1 and files[0].name == "run-0000.mcap"
    assert all(w.closed for w in ListWriter.opened)
    # Every file starts with the rule set in force (published once, retained), so each one
    # trains on its own: the files after the first once held frames without rules.
    for w in ListWriter.opened:
        assert w.items[0][0] == "rules" and w.items[0][1].rules == ["Stop at the red light"]
    carried = len(ListWriter.opened) - 1
    assert rec.counts["rules.carried"] == carried
    assert sum(len(w.items) for w in ListWriter.opened) == 1 + 12 + 12 + carried


def test_a_cleared_rule_set_is_not_carried_into_the_next_file(tmp_path: Path) -> None:
    bus, rec = _rotating(tmp_path)
    _feed(bus, 3)
    bus.publish(RULES.topic(vehicle_id="car-a"), b"", 1, True)  # the authority clears it
    from bus.envelope import pack_frame

    for ev in drive("car-a", 12).events:
        if not hasattr(ev, "rules"):
            bus.publish(CAMERA.topic(vehicle_id="car-a"), pack_frame(ev.header, ev.jpeg))
    rec.stop()
    rec.run()
    assert len(ListWriter.opened) > 2
    last = ListWriter.opened[-1]  # opened after the clear, 12 frames later
    assert [i[0] for i in last.items] and all(i[0] != "rules" for i in last.items)


def test_gaps_and_reconnects_are_counted(tmp_path: Path) -> None:
    ListWriter.opened.clear()
    bus = MemoryBus()
    rec = BusRecorder(tmp_path / "g.mcap", writer_factory=ListWriter)
    rec.subscribe(bus)
    bus.connect()  # the first connect is no reconnect
    _feed(bus, 2)
    bus.lost()
    time.sleep(0.1)
    bus.connect()
    _feed(bus, 2)
    bus.lost()  # still away when it stops
    rec.stop()
    rec.run()
    s = rec.summary()
    assert s["reconnects"] == 1 and len(s["gaps"]) == 2
    assert 0.1 <= s["gaps"][0]["down_s"] < 1 and s["gaps"][1]["down_s"] is None
    assert s["gap_s"] == s["gaps"][0]["down_s"] and s["counts"]["camera"] == 4
    assert s["gaps"][0]["from_ns"] < s["gaps"][1]["from_ns"]
