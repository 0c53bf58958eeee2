"""The recorder on a real broker: survives a broker restart, a SIGKILL leaves a readable file, and
a recorded replay session trains a model (the offline retraining loop)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bus import recording_reader as recording
from bus.mqtt import MqttBus
from core.errors import RecordingError
from replay.drives import plan_lanes
from replay.player import Replayer
from replay.recorder import BusRecorder, _default_writer
from tests.replay.replay_helpers import drive

pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parents[2]


def _publish_drives(url: str, drives, prefix: str = "ruledrive/v1") -> None:
    """Replay without a node (publishing is all we need): frames, rules and labels go out.

    No node answers, so the replay is stopped once every frame is out, not by its "no decision"
    timeout: a short timeout would abort a replay that a loaded machine publishes slowly."""
    bus = MqttBus(url)
    r = Replayer(bus, plan_lanes(drives), 4.0, prefix=prefix, timeout_s=60)
    r.attach()
    bus.connect()
    stop = threading.Event()

    def stop_when_all_sent() -> None:
        while not stop.wait(0.01):
            if r.board.outstanding() >= r.frames_planned:
                stop.set()

    watcher = threading.Thread(target=stop_when_all_sent, daemon=True)
    watcher.start()
    try:
        report = r.run(stop)
    finally:
        stop.set()
        watcher.join(5)
        bus.close()
    assert report.aborted in (None, "interrupted"), report.aborted


def _start(url: str, out: Path, **kw) -> tuple[BusRecorder, threading.Thread, MqttBus]:
    bus = MqttBus(url)
    rec = BusRecorder(out, flush_s=0.2, writer_factory=_default_writer, **kw)
    rec.subscribe(bus)
    bus.connect()
    t = threading.Thread(target=rec.run)
    t.start()
    return rec, t, bus


def _frames(path: Path) -> int:
    return sum(1 for _ in recording.read_samples([path], require_labels=False))


def test_broker_restart_recorder_continues(private_broker, tmp_path: Path) -> None:
    out = tmp_path / "rec.mcap"
    rec, t, bus = _start(private_broker.url, out)
    _publish_drives(private_broker.url, [drive("car-a", 5)])
    private_broker.stop()
    time.sleep(0.5)
    private_broker.start()
    deadline = time.monotonic() + 10
    while not bus.connected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert bus.connected, "recorder did not reconnect"
    _publish_drives(private_broker.url, [drive("car-b", 4)])
    deadline = time.monotonic() + 10  # delivery is not instant on a loaded machine
    while rec.counts["camera"] < 9 and time.monotonic() < deadline:
        time.sleep(0.05)
    rec.stop()
    t.join(10)
    bus.close()
    assert rec.counts["camera"] == 9
    assert _frames(out) == 9
    summary = rec.summary()  # what it could not hear is unknowable; that it was away is not
    assert summary["reconnects"] == 1 and len(summary["gaps"]) == 1
    assert 0.5 <= summary["gaps"][0]["down_s"] < 5 and summary["gap_s"] >= 0.5
    assert summary["files"] == [str(out)]


def _on_disk(path: Path, vehicle_id: str) -> int:
    """Labelled frames of one vehicle that a reader gets from the file as it is right now."""
    if not path.exists():
        return 0
    try:
        samples = list(recording.read_samples([path], allow_truncated=True))
    except RecordingError as exc:
        if "not an MCAP recording" in str(exc):  # not even the header flushed yet
            return 0
        raise
    return sum(1 for s in samples if s.vehicle_id == vehicle_id and s.label is not None)


def _wait_until(cond, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(0.1)


def test_sigkill_leaves_a_readable_file(private_broker, tmp_path: Path) -> None:
    out = tmp_path / "killed.mcap"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ruledrive.cli",
            "record",
            "--out",
            str(out),
            "--mqtt-url",
            private_broker.url,
            "--chunk-kb",
            "16",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # The recorder is subscribed once something it heard reaches the file (it starts slowly
        # on a loaded box, and a frame published before it subscribed is not recorded).
        def heard_car_a() -> bool:
            _publish_drives(private_broker.url, [drive("car-a", 3)])
            return _on_disk(out, "car-a") > 0

        _wait_until(heard_car_a, 60, "the recorder to write car-a")
        _publish_drives(private_broker.url, [drive("car-b", 10)])
        # Kill only once the periodic flush has put all of car-b on disk, however long that takes.
        _wait_until(lambda: _on_disk(out, "car-b") == 10, 60, "car-b flushed to the file")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    # No summary after a kill: the reader yields every finished chunk, then says "truncated".
    got = []
    with pytest.raises(RecordingError, match="truncated"):
        for sample in recording.read_samples([out]):
            got.append(sample)
    assert len(got) >= 9  # the reader keeps the newest frame pending when the error comes
    assert {s.vehicle_id for s in got} >= {"car-b"} and all(s.label for s in got)
    # ... and `ruledrive train --allow-truncated` takes every complete sample instead.
    kept = list(recording.read_samples([out], allow_truncated=True))
    assert kept[: len(got)] == got and all(s.label for s in kept)
    assert [s.frame_id for s in kept if s.vehicle_id == "car-b"] == list(range(10))


@pytest.mark.slow
@pytest.mark.tf
def test_recorded_replay_session_trains(private_broker, tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    from training.config import TrainConfig
    from training.train import train

    out = tmp_path / "session.mcap"
    rec, t, bus = _start(private_broker.url, out)
    _publish_drives(private_broker.url, [drive(f"car-{i}", 8) for i in range(4)])
    deadline = time.monotonic() + 30
    # A frame's label is a message of its own and may be written after the frame.
    while min(rec.counts["camera"], rec.counts["label"]) < 32 and time.monotonic() < deadline:
        time.sleep(0.05)
    rec.stop()
    t.join(10)
    bus.close()
    info = train(
        TrainConfig(epochs=1, batch_size=8, val_fraction=0.0, threads=2), [out], tmp_path / "run"
    )
    # every replayed frame came back as a labelled sample (beside the generated non-road ones)
    assert info["n_train"] - info["n_negatives"] == 32
    assert info["thresholds"]["not_understood"] > 1.0  # no rule classes: the head never flags
    assert (tmp_path / "run/checkpoint.json").is_file()
