"""The bus recorder (``ruledrive record``): contract topics in, MCAP files out, for retraining.

It subscribes to frames, rule sets, decisions and labels (bus.topics), validates each message with
the same codec as the node (invalid ones are counted and skipped, never written), and writes them
with ``bus.recording_writer.RecordingWriter`` so ``ruledrive train`` reads the files directly.

* Threads: the bus thread only validates and enqueues; one writer thread writes.
* Crash safety: the writer finishes an MCAP chunk at least every ``flush_s`` seconds, so a killed
  recorder leaves a file readable up to its last chunk (the summary is written only on close).
* Rotation: a new file after ``rotate_mb`` MB or ``rotate_s`` seconds (``FILE-0000.mcap``, ...).
* A broker that goes away: the MQTT bus reconnects and resubscribes by itself; the file stays
  open and valid meanwhile. What was published while the recorder was away is unknowable, so the
  recorder counts what it can: reconnects and each gap (UTC start, seconds), in
  :meth:`BusRecorder.summary` (``ruledrive record`` prints it with the files at the end).
"""

from __future__ import annotations

import glob
import logging
import queue
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bus.base import Bus
from bus.codec import Incoming, parse_incoming
from bus.topics import CAMERA, DECISION, DEFAULT_PREFIX, LABEL, RULES, Topic
from core.defaults import DEFAULT_MQTT_URL
from core.errors import MessageError

__all__ = ["RECORDED_TOPICS", "BusRecorder", "Gap", "existing_outputs", "run_recorder"]

log = logging.getLogger(__name__)

RECORDED_TOPICS: tuple[Topic, ...] = (CAMERA, RULES, DECISION, LABEL)

WriterFactory = Callable[[Path], Any]


@dataclass
class Gap:
    """A time the recorder was not connected: nothing published then was recorded."""

    from_ns: int  # wall clock (time.time_ns) when the connection was lost
    down_s: float | None = None  # None: still away when the recording stopped


class _McapSink:
    """bus.recording_writer.RecordingWriter behind the recorder's write/flush/close."""

    def __init__(self, path: Path, chunk_kb: int) -> None:
        from bus.recording_writer import RecordingWriter

        # split "recorded": `ruledrive train` takes these as training data.
        self.w = RecordingWriter(
            path, metadata={"split": "recorded", "source": "recorder"}, chunk_size=chunk_kb * 1024
        )

    def write(self, topic: Topic, message: Any, jpeg: bytes, log_time_ns: int) -> None:
        self.w.write(topic, message, jpeg, log_time_ns)  # frames keep their capture time

    def flush(self) -> None:
        self.w.flush()

    def close(self) -> None:
        self.w.close()


def _default_writer(path: Path, chunk_kb: int = 256) -> Any:
    return _McapSink(path, chunk_kb)


def _rotated(out: Path, index: int) -> Path:
    return out.with_name(f"{out.stem}-{index:04d}{out.suffix or '.mcap'}")


def existing_outputs(out: str | Path, rotating: bool) -> list[Path]:
    """The files a recorder writing to ``out`` would overwrite: ``out`` itself, or with
    ``rotating`` every ``FILE-NNNN.mcap`` beside it (``ruledrive record`` refuses them unless
    ``--force``)."""
    out = Path(out)
    if not rotating:
        return [out] if out.exists() else []
    pattern = f"{glob.escape(out.stem)}-[0-9][0-9][0-9][0-9]{glob.escape(out.suffix or '.mcap')}"
    return sorted(out.parent.glob(pattern)) if out.parent.is_dir() else []


class BusRecorder:
    """Feed ``on_message`` from any bus; ``run()`` writes until ``stop()``."""

    def __init__(
        self,
        out: str | Path,
        prefix: str = DEFAULT_PREFIX,
        *,
        rotate_mb: float = 0.0,
        rotate_s: float = 0.0,
        flush_s: float = 1.0,
        writer_factory: WriterFactory | None = None,
        max_queue: int = 10_000,
    ) -> None:
        self.out = Path(out)
        self.prefix = prefix
        self.rotate_bytes = int(rotate_mb * 1e6)
        self.rotate_s = rotate_s
        self.flush_s = flush_s
        self.writer_factory = writer_factory or _default_writer
        self.counts: Counter[str] = Counter()
        self.files: list[Path] = []
        self._q: queue.Queue[tuple[Incoming, int] | None] = queue.Queue(max_queue)
        self._stop = threading.Event()
        self._writer: Any = None
        self._opened = 0.0
        self._bytes = 0
        self.gaps: list[Gap] = []
        self.reconnects = 0
        self._lost_at = 0.0  # monotonic, for the gap's length
        # Each vehicle's rule set in force (the newest recorded, not cleared since): written
        # again at the start of every rotated file, so each file trains on its own (a rule set
        # is published once, retained; the files after the first once held frames only).
        self._in_force: dict[str, Incoming] = {}

    def subscribe(self, bus: Bus) -> None:
        """Subscribe to the recorded topics and follow the connection (gaps, reconnects)."""
        for entry in RECORDED_TOPICS:
            bus.subscribe(entry.subscription(self.prefix), self.on_message, entry.qos)
        bus.add_disconnect_hook(self._on_lost)
        bus.add_connect_hook(self._on_back)

    def _on_lost(self) -> None:
        self._lost_at = time.monotonic()
        self.gaps.append(Gap(time.time_ns()))
        log.warning("recorder lost the broker: messages published now are not recorded")

    def _on_back(self) -> None:
        if self.gaps and self.gaps[-1].down_s is None:
            self.gaps[-1].down_s = round(time.monotonic() - self._lost_at, 3)
            self.reconnects += 1
            log.warning("recorder back after %.2f s (gap %d)", self.gaps[-1].down_s, len(self.gaps))

    def summary(self) -> dict[str, Any]:
        """Files, message counts, reconnects and gaps (what a consumer must know is missing)."""
        return {
            "files": [str(f) for f in self.files],
            "counts": dict(sorted(self.counts.items())),
            "reconnects": self.reconnects,
            "gaps": [asdict(g) for g in self.gaps],
            "gap_s": round(sum(g.down_s or 0.0 for g in self.gaps), 3),
        }

    def on_message(self, topic: str, payload: bytes) -> None:
        """Bus thread: validate and enqueue only."""
        t = time.time_ns()
        try:
            msg = parse_incoming(topic, payload, self.prefix)
        except MessageError as exc:
            self.counts[f"rejected.{exc.code}"] += 1
            return
        if msg.message is None and msg.topic is not RULES:
            return  # an empty retained message on another topic: nothing to record
        try:  # a cleared rule set too: a later file must not carry it (_write)
            self._q.put_nowait((msg, t))
        except queue.Full:
            self.counts["dropped.queue_full"] += 1

    def stop(self) -> None:
        self._stop.set()
        self._q.put(None)

    # writer thread ----------------------------------------------------------------------------

    def _path(self, index: int) -> Path:
        if not (self.rotate_bytes or self.rotate_s):
            return self.out
        return _rotated(self.out, index)

    def _open(self) -> None:
        path = self._path(len(self.files))
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = self.writer_factory(path)
        self.files.append(path)
        self._opened, self._bytes = time.monotonic(), 0
        log.info("recording to %s", path)

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _write(self, msg: Incoming, t_ns: int) -> None:
        if msg.topic is RULES:
            vid = msg.ids.get("vehicle_id", "")
            if msg.message is None:  # cleared: no longer in force, nothing to write
                self._in_force.pop(vid, None)
                return
            self._in_force[vid] = msg
        if self._writer is None:
            self._open()
        elif (self.rotate_bytes and self._bytes >= self.rotate_bytes) or (
            self.rotate_s and time.monotonic() - self._opened >= self.rotate_s
        ):
            self._close()
            self._open()
            for held in self._in_force.values():
                if held is not msg:
                    self._writer.write(held.topic, held.message, b"", log_time_ns=t_ns)
                    self.counts["rules.carried"] += 1
        self._writer.write(msg.topic, msg.message, msg.jpeg, log_time_ns=t_ns)
        self._bytes += len(msg.jpeg) + 256
        self.counts[msg.topic.name] += 1

    def run(self) -> list[Path]:
        """Write until stop(); finish the files cleanly. Returns the files written."""
        last_flush = time.monotonic()
        try:
            while True:
                try:
                    item = self._q.get(timeout=self.flush_s)
                except queue.Empty:
                    pass  # nothing new: still flush on time below
                else:
                    if item is None:
                        break
                    self._write(*item)
                if self._writer is not None and time.monotonic() - last_flush >= self.flush_s:
                    self._writer.flush()  # finish the chunk: a kill loses at most flush_s
                    last_flush = time.monotonic()
            while True:  # what arrived before stop()
                try:
                    item = self._q.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    self._write(*item)
        finally:
            self._close()
        return self.files


def run_recorder(
    out: str | Path,
    url: str = DEFAULT_MQTT_URL,
    prefix: str = DEFAULT_PREFIX,
    rotate_mb: float = 0.0,
    rotate_s: float = 0.0,
    duration_s: float = 0.0,
    chunk_kb: int = 256,
    client_id: str = "",
    bus: Bus | None = None,
    *,
    username: str | None = None,
    password: str | None = None,
    tls_ca: str | None = None,
) -> dict[str, Any]:
    """``ruledrive record``: record until SIGINT/SIGTERM or ``duration_s``; returns
    :meth:`BusRecorder.summary` (files, counts, reconnects, gaps).

    ``username``/``password``/``tls_ca`` log in to a secure broker (the recorder user may read
    everything under the prefix); with a username the client id is the username."""
    recorder = BusRecorder(
        out,
        prefix,
        rotate_mb=rotate_mb,
        rotate_s=rotate_s,
        writer_factory=lambda p: _default_writer(p, chunk_kb),
    )
    if bus is None:
        from bus.mqtt import MqttBus

        bus = MqttBus(url, client_id=client_id, username=username, password=password, tls_ca=tls_ca)
    recorder.subscribe(bus)
    restore = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            restore[sig] = signal.signal(sig, lambda *_a: recorder.stop())
    timer = None
    if duration_s > 0:
        timer = threading.Timer(duration_s, recorder.stop)
        timer.daemon = True
    try:
        bus.connect()
        log.info("recording %s/# from %s to %s", prefix, url, out)
        if timer is not None:
            timer.start()
        files = recorder.run()
    finally:
        if timer is not None:
            timer.cancel()
        bus.close()
        for sig, old in restore.items():
            signal.signal(sig, old)
    summary = recorder.summary()
    log.info("recorded %s into %s", summary["counts"], [str(f) for f in files])
    return summary
