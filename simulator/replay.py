"""Replay recorded drives through a node over the bus, and score the decisions that come back.

Two halves, so tests and tools can use either alone:

* :class:`Scoreboard` -- bus-free: fed ``published(ref, t)`` and ``decided(msg, t)`` events, it
  matches decisions to frames by (vehicle id, frame id) and builds the :class:`ReplayReport`
  (accuracy against the recorded labels, confusion matrix, fallbacks, missing decisions,
  latency percentiles publish -> decision, achieved rate).
* :class:`Replayer` -- publishes lanes of drives on any :class:`bus.base.Bus` (MQTT or the
  in-memory bus): rule sets retained at their recorded times, frames (``bus.envelope``) at the
  recorded timing divided by ``rate``, or as fast as the node answers (``rate=None``: one frame in
  flight per vehicle, because the node conflates a vehicle's frames and would drop the older).

Frames and rule sets are restamped on publish (the node judges staleness and expiry against its
own clock); a lane plays one or more recorded drives under one vehicle id with fresh frame ids,
and every frame keeps a reference to its recorded (vehicle id, frame id) for labels and golden
comparisons.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bus.base import Bus
from bus.codec import encode
from bus.envelope import pack_frame
from bus.schema import (
    DecisionLabel,
    DecisionMsg,
    FrameHeader,
    LabelMsg,
    NodeState,
    NodeStatus,
    RuleSet,
)
from bus.topics import CAMERA, DECISION, DEFAULT_PREFIX, LABEL, RULES, STATUS
from training.metrics import classification_report

__all__ = [
    "Drive",
    "DriveFrame",
    "DriveRules",
    "IGNORED_FIELDS",
    "PROB_TOLERANCE",
    "FrameRef",
    "Lane",
    "ReplayReport",
    "Replayer",
    "Scoreboard",
    "compare_reference",
    "decision_record",
    "load_drives",
    "load_reference",
    "plan_lanes",
    "write_reference",
]

log = logging.getLogger(__name__)

LABELS: tuple[DecisionLabel, ...] = tuple(DecisionLabel)
_INDEX = {lab: i for i, lab in enumerate(LABELS)}


# -- drives and lanes --------------------------------------------------------------------------


@dataclass(frozen=True)
class DriveFrame:
    t_ns: int  # recorded capture time
    header: FrameHeader
    jpeg: bytes
    label: DecisionLabel | None


@dataclass(frozen=True)
class DriveRules:
    t_ns: int  # recorded issue time
    rules: RuleSet


@dataclass
class Drive:
    """One recorded vehicle's events in recorded-time order."""

    vehicle_id: str
    events: list[DriveFrame | DriveRules]
    source: str = ""

    @property
    def n_frames(self) -> int:
        return sum(isinstance(e, DriveFrame) for e in self.events)


@dataclass(frozen=True)
class FrameRef:
    """A published frame: its ids on the bus and the recorded ids it stands for."""

    vehicle_id: str
    frame_id: int
    source_vehicle_id: str
    source_frame_id: int
    label: DecisionLabel | None


@dataclass
class Lane:
    """One replayed vehicle: drives played back to back under ``vehicle_id``."""

    vehicle_id: str
    drives: list[Drive]

    def steps(self) -> list[tuple[int, DriveFrame | DriveRules, FrameRef | None]]:
        """(offset from the lane start in ns, event, frame ref) with frame ids renumbered."""
        out: list[tuple[int, DriveFrame | DriveRules, FrameRef | None]] = []
        base, next_id = 0, 0
        for drive in self.drives:
            if not drive.events:
                continue
            t0 = drive.events[0].t_ns
            last = 0
            for ev in drive.events:
                offset = base + max(0, ev.t_ns - t0)
                last = max(last, offset)
                ref = None
                if isinstance(ev, DriveFrame):
                    ref = FrameRef(self.vehicle_id, next_id, drive.vehicle_id,
                                   ev.header.frame_id, ev.label)
                    next_id += 1
                out.append((offset, ev, ref))
            base = last + 33_000_000  # one frame period between drives
        return out


def plan_lanes(drives: Sequence[Drive], vehicles: int | None = None) -> list[Lane]:
    """Lanes for the drives: one per drive under its recorded id (``vehicles=None``), or exactly
    ``vehicles`` lanes named ``replay-000``..., drive i on lane i mod N (cycled if N > drives)."""
    drives = [d for d in drives if d.events]
    if vehicles is None:  # the same id in two recordings gets a suffix: lanes must not share
        seen: Counter[str] = Counter()
        lanes_ = []
        for d in drives:
            seen[d.vehicle_id] += 1
            n = seen[d.vehicle_id]
            lanes_.append(Lane(d.vehicle_id if n == 1 else f"{d.vehicle_id[:58]}-{n}", [d]))
        return lanes_
    if vehicles < 1:
        raise ValueError("vehicles must be >= 1")
    lanes = [Lane(f"replay-{k:03d}", []) for k in range(vehicles)]
    for i in range(max(len(drives), vehicles) if drives else 0):
        lanes[i % vehicles].drives.append(drives[i % len(drives)])
    return [lane for lane in lanes if lane.drives]


# -- scoring (bus-free) ------------------------------------------------------------------------


def _pct(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


@dataclass
class ReplayReport:
    """Everything a replay measured; ``to_dict()`` is the JSON report."""

    frames_published: int
    frames_planned: int
    decisions_matched: int
    missing: int
    unexpected: int
    duplicates: int
    late: int
    fallback: int
    fallback_reasons: dict[str, int]
    labelled: int
    accuracy: float | None
    accuracy_valid_only: float | None
    confusion_matrix: list[list[int]]
    classification: dict[str, Any] | None
    latency_ms: dict[str, float | None]
    elapsed_s: float
    achieved_fps: float
    target_rate: float | None
    vehicles: int
    model_versions: list[str]
    node_ids: list[str]
    aborted: str | None = None
    recordings: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [str(lab) for lab in LABELS]

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["labels"] = self.labels
        return d

    def check(self, min_accuracy: float | None = None, max_p99_ms: float | None = None,
              max_missing: float = 0.0) -> list[str]:
        """The gate: reasons this replay fails (also stored in ``failures``)."""
        out: list[str] = []
        if self.aborted:
            out.append(f"aborted: {self.aborted}")
        if self.frames_planned == 0:
            out.append("the recording has no frames")
        if self.frames_published and self.missing > max_missing * self.frames_published:
            out.append(f"{self.missing} of {self.frames_published} frames got no decision")
        if min_accuracy is not None and (self.accuracy is None or self.accuracy < min_accuracy):
            acc = "n/a" if self.accuracy is None else f"{self.accuracy:.3f}"
            out.append(f"accuracy {acc} < --min-accuracy {min_accuracy}")
        p99 = self.latency_ms.get("p99")
        if max_p99_ms is not None and (p99 is None or p99 > max_p99_ms):
            got = "n/a" if p99 is None else f"{p99:.1f}"
            out.append(f"latency p99 {got} ms > --max-p99-ms {max_p99_ms}")
        self.failures = out
        return out


class Scoreboard:
    """Matches decisions to published frames by (vehicle id, frame id). Thread-safe: decisions
    arrive on the bus thread while frames are published on another."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: dict[tuple[str, int], tuple[FrameRef, int]] = {}
        self._got: dict[tuple[str, int], tuple[DecisionMsg, float]] = {}
        self._order: list[tuple[str, int]] = []
        self.unexpected = 0
        self.duplicates = 0
        self.late = 0
        self.last_decision_ns: int | None = None
        self.model_versions: Counter[str] = Counter()
        self.node_ids: Counter[str] = Counter()
        self.given_up: set[tuple[str, int]] = set()

    def published(self, ref: FrameRef, t_ns: int) -> None:
        """A frame went out at monotonic time ``t_ns`` (time.perf_counter_ns)."""
        key = (ref.vehicle_id, ref.frame_id)
        with self._lock:
            self._sent[key] = (ref, t_ns)
            self._order.append(key)

    def decided(self, msg: DecisionMsg, t_ns: int) -> FrameRef | None:
        """A decision arrived at monotonic ``t_ns``; returns the frame it answers, or None."""
        key = (msg.vehicle_id, msg.frame_id)
        with self._lock:
            sent = self._sent.get(key)
            if sent is None:
                self.unexpected += 1
                return None
            if key in self._got:
                self.duplicates += 1
                return None
            if key in self.given_up:
                self.late += 1
            self._got[key] = (msg, (t_ns - sent[1]) / 1e6)
            self.last_decision_ns = t_ns
            if msg.model_version:
                self.model_versions[msg.model_version] += 1
            self.node_ids[msg.node_id] += 1
            return sent[0]

    def is_decided(self, vehicle_id: str, frame_id: int) -> bool:
        with self._lock:
            return (vehicle_id, frame_id) in self._got

    def give_up(self, vehicle_id: str, frame_id: int) -> None:
        with self._lock:
            self.given_up.add((vehicle_id, frame_id))

    @property
    def n_published(self) -> int:
        return len(self._sent)

    @property
    def n_decided(self) -> int:
        return len(self._got)

    def outstanding(self) -> int:
        with self._lock:
            return len(self._sent) - len(self._got)

    def matched(self) -> list[tuple[FrameRef, DecisionMsg, float]]:
        """(frame, decision, latency ms) in publish order, for reports and golden files."""
        with self._lock:
            return [(self._sent[k][0], *self._got[k]) for k in self._order if k in self._got]

    def missing(self) -> list[FrameRef]:
        with self._lock:
            return [self._sent[k][0] for k in self._order if k not in self._got]

    def report(self, elapsed_s: float, frames_planned: int, target_rate: float | None,
               vehicles: int, aborted: str | None = None) -> ReplayReport:
        rows = self.matched()
        lat = [ms for _, _, ms in rows]
        fallbacks = Counter(str(m.reason or "unknown") for _, m, _ in rows if not m.valid)
        labelled = [(ref.label, m) for ref, m, _ in rows if ref.label is not None]
        y_true = np.array([_INDEX[DecisionLabel(lab)] for lab, _ in labelled], dtype=np.int64)
        y_pred = np.array([_INDEX[m.decision] for _, m in labelled], dtype=np.int64)
        cls = classification_report(y_true, y_pred, [str(x) for x in LABELS]) if labelled else None
        valid = [(lab, m) for lab, m in labelled if m.valid]
        return ReplayReport(
            frames_published=self.n_published,
            frames_planned=frames_planned,
            decisions_matched=len(rows),
            missing=self.n_published - len(rows),
            unexpected=self.unexpected,
            duplicates=self.duplicates,
            late=self.late,
            fallback=sum(fallbacks.values()),
            fallback_reasons=dict(sorted(fallbacks.items())),
            labelled=len(labelled),
            accuracy=cls["accuracy"] if cls else None,
            accuracy_valid_only=(
                sum(m.decision == lab for lab, m in valid) / len(valid) if valid else None
            ),
            confusion_matrix=(
                cls["confusion_matrix"] if cls else [[0] * len(LABELS) for _ in LABELS]
            ),
            classification=cls,
            latency_ms={
                "p50": _pct(lat, 50), "p95": _pct(lat, 95), "p99": _pct(lat, 99),
                "mean": float(np.mean(lat)) if lat else None,
                "max": float(np.max(lat)) if lat else None,
            },
            elapsed_s=elapsed_s,
            achieved_fps=len(rows) / elapsed_s if elapsed_s > 0 else 0.0,
            target_rate=target_rate,
            vehicles=vehicles,
            model_versions=sorted(self.model_versions),
            node_ids=sorted(self.node_ids),
            aborted=aborted,
        )

    def latencies_ms(self) -> list[float]:
        return [ms for _, _, ms in self.matched()]


# -- publishing (any Bus) ----------------------------------------------------------------------

Progress = Callable[[int, int], None]  # (frames decided, frames planned)


class Replayer:
    """Plays lanes on a bus and feeds a Scoreboard. ``rate=None`` = as fast as the node answers.

    A replay never hangs: a frame whose decision has not come ``timeout_s`` after it was sent is
    given up (counted missing; a late answer is still matched and counted ``late``), and when no
    decision at all arrives for ``timeout_s`` while frames are outstanding the replay aborts
    (node down) and the report says so.
    """

    def __init__(self, bus: Bus, lanes: Sequence[Lane], rate: float | None = 1.0, *,
                 prefix: str = DEFAULT_PREFIX, timeout_s: float = 10.0,
                 publish_labels: bool = True, progress: Progress | None = None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be > 0 (or None for as fast as possible)")
        self.bus, self.lanes, self.rate, self.prefix = bus, list(lanes), rate, prefix
        self.timeout_s = timeout_s
        self.publish_labels = publish_labels
        self.progress = progress
        self.board = Scoreboard()
        self.statuses: dict[str, NodeStatus] = {}
        self._cond = threading.Condition()
        self._steps = {lane.vehicle_id: lane.steps() for lane in self.lanes}
        self.frames_planned = sum(ref is not None for s in self._steps.values() for *_, ref in s)
        self._expired: set[tuple[str, str]] = set()

    # bus side ---------------------------------------------------------------------------------

    def _on_decision(self, topic: str, payload: bytes) -> None:
        t = time.perf_counter_ns()
        try:
            msg = DecisionMsg.model_validate_json(payload)
        except ValueError:
            log.warning("undecodable decision on %s", topic)
            return
        if msg.vehicle_id not in self._steps:
            return  # another vehicle on a shared broker
        if self.board.decided(msg, t) is not None:
            with self._cond:
                self._cond.notify_all()
            if self.progress:
                self.progress(self.board.n_decided, self.frames_planned)

    def _on_status(self, topic: str, payload: bytes) -> None:  # noqa: ARG002
        try:
            status = NodeStatus.model_validate_json(payload) if payload else None
        except ValueError:
            return
        if status is not None:
            with self._cond:
                self.statuses[status.node_id] = status
                self._cond.notify_all()

    def attach(self) -> None:
        """Subscribe to decisions and node status (call before bus.connect for MQTT)."""
        self.bus.subscribe(DECISION.subscription(self.prefix), self._on_decision, DECISION.qos)
        self.bus.subscribe(STATUS.subscription(self.prefix), self._on_status, STATUS.qos)

    def wait_for_node(self, timeout_s: float) -> bool:
        """Wait until some node says it is online (its subscriptions are then in place)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: any(s.state == NodeState.ONLINE for s in self.statuses.values()),
                timeout_s,
            )

    def _publish_rules(self, vid: str, ev: DriveRules, expired: bool = False) -> None:
        now = time.time_ns()
        r = ev.rules
        expires = None
        if expired:
            expires = now
        elif r.expires_at_ns is not None and self.rate is not None:
            expires = now + int((r.expires_at_ns - r.issued_at_ns) / self.rate)
        msg = r.model_copy(update={"vehicle_id": vid, "issued_at_ns": now,
                                   "expires_at_ns": expires})
        self.bus.publish(RULES.topic(self.prefix, vehicle_id=vid), encode(msg), RULES.qos, True)

    def _publish_frame(self, vid: str, ev: DriveFrame, ref: FrameRef,
                       current: DriveRules | None) -> None:
        if current is not None and current.rules.expires_at_ns is not None:
            key = (vid, current.rules.version)
            if ev.t_ns >= current.rules.expires_at_ns and key not in self._expired:
                # At --rate max recorded durations collapse: expire the rules explicitly when
                # the recording reaches their expiry time.
                self._expired.add(key)
                self._publish_rules(vid, current, expired=True)
        header = ev.header.model_copy(
            update={"vehicle_id": vid, "frame_id": ref.frame_id, "stamp_ns": time.time_ns()}
        )
        self.board.published(ref, time.perf_counter_ns())
        self.bus.publish(CAMERA.topic(self.prefix, vehicle_id=vid), pack_frame(header, ev.jpeg),
                         CAMERA.qos, CAMERA.retain)
        if self.publish_labels and ev.label is not None:  # after its frame (the recorder joins)
            label = LabelMsg(vehicle_id=vid, frame_id=ref.frame_id, stamp_ns=header.stamp_ns,
                             decision=ev.label, source="oracle")
            self.bus.publish(LABEL.topic(self.prefix, vehicle_id=vid), encode(label), LABEL.qos)

    # the loop ---------------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> ReplayReport:
        """Publish every lane, wait for the answers (bounded), clear the retained rules."""
        stop = stop or threading.Event()
        start = time.perf_counter()
        aborted = None
        try:
            aborted = self._play(stop) or self._drain(stop)
        finally:
            for vid in self._steps:  # leave no retained rule sets behind on a shared broker
                try:
                    self.bus.publish(RULES.topic(self.prefix, vehicle_id=vid), b"", RULES.qos, True)
                except Exception as exc:  # noqa: BLE001 - cleanup must not mask the result
                    log.warning("could not clear retained rules of %s: %s", vid, exc)
        if stop.is_set() and aborted is None:
            aborted = "interrupted"
        return self.board.report(time.perf_counter() - start, self.frames_planned, self.rate,
                                 len(self.lanes), aborted)

    def _stalled(self, since_ns: int) -> bool:
        last = max(self.board.last_decision_ns or since_ns, since_ns)
        return self.board.outstanding() > 0 and time.perf_counter_ns() - last > self.timeout_s * 1e9

    def _play(self, stop: threading.Event) -> str | None:
        steps, cursor = self._steps, {vid: 0 for vid in self._steps}
        current: dict[str, DriveRules | None] = {vid: None for vid in steps}
        waiting: dict[str, tuple[FrameRef, int]] = {}  # rate=None: each lane's frame in flight
        t0 = time.perf_counter_ns()
        while not stop.is_set():
            now = time.perf_counter_ns()
            if self._stalled(t0):
                return f"no decision for {self.timeout_s:g} s (is the node running?)"
            for vid, (ref, sent) in list(waiting.items()):
                if self.board.is_decided(ref.vehicle_id, ref.frame_id):
                    del waiting[vid]
                elif now - sent > self.timeout_s * 1e9:
                    self.board.give_up(ref.vehicle_id, ref.frame_id)
                    del waiting[vid]
            left = [vid for vid in steps if cursor[vid] < len(steps[vid])]
            if not left:
                return None
            if self.rate is None:
                ready, sleep_s = [vid for vid in left if vid not in waiting], 0.5
            else:
                due = {vid: t0 + steps[vid][cursor[vid]][0] / self.rate - now for vid in left}
                ready = [vid for vid, wait in due.items() if wait <= 0]
                sleep_s = min(due.values()) / 1e9
            if not ready:
                with self._cond:  # the predicate closes the race with a decision just in
                    self._cond.wait_for(
                        lambda: stop.is_set() or any(
                            self.board.is_decided(r.vehicle_id, r.frame_id)
                            for r, _ in waiting.values()
                        ),
                        max(0.0, min(sleep_s, self.timeout_s)),
                    )
                continue
            for vid in ready:
                # Rules due with a frame go out before it; at most one frame per lane per pass.
                while cursor[vid] < len(steps[vid]):
                    offset, ev, ref = steps[vid][cursor[vid]]
                    if self.rate is not None and t0 + offset / self.rate > time.perf_counter_ns():
                        break
                    cursor[vid] += 1
                    if isinstance(ev, DriveRules):
                        current[vid] = ev
                        self._publish_rules(vid, ev)
                        continue
                    assert ref is not None
                    self._publish_frame(vid, ev, ref, current[vid])
                    if self.rate is None:
                        waiting[vid] = (ref, time.perf_counter_ns())
                    break
        return None

    def _drain(self, stop: threading.Event) -> str | None:
        """Wait for the outstanding decisions, at most timeout_s after the last one came."""
        begun = time.perf_counter_ns()
        with self._cond:
            while self.board.outstanding() > 0 and not stop.is_set():
                if self._stalled(begun):
                    n = self.board.outstanding()
                    if self.board.n_decided == 0:
                        return f"no decision for {self.timeout_s:g} s (is the node running?)"
                    log.warning("%d frames got no decision within %g s", n, self.timeout_s)
                    return None
                self._cond.wait(0.1)
        return None


# -- golden reference (openpilot process_replay style) -----------------------------------------

# Fields that depend on when and where the replay ran, never on what the node decided. The frame
# ids are replaced by the recorded ones so a reference survives --vehicles and renumbering.
IGNORED_FIELDS = ("stamp_ns", "frame_stamp_ns", "timings", "node_id", "vehicle_id", "frame_id")
PROB_TOLERANCE = 1e-3  # absolute, on probabilities and confidence (batching changes the ulps)


def decision_record(ref: FrameRef, msg: DecisionMsg) -> dict[str, Any]:
    """A decision as the reference stores it: recorded ids + every non-ignored field."""
    body = msg.model_dump(mode="json", exclude=set(IGNORED_FIELDS))
    return {"vehicle_id": ref.source_vehicle_id, "frame_id": ref.source_frame_id, **body}


def write_reference(path: str | Path, rows: Sequence[tuple[FrameRef, DecisionMsg, float]],
                    recordings: Sequence[str | Path]) -> None:
    records = {(r["vehicle_id"], r["frame_id"]): r for r in
               (decision_record(ref, msg) for ref, msg, _ in rows)}
    doc = {
        "about": "golden decisions of `ruledrive replay`; update on purpose with `make golden`",
        "recordings": [Path(p).name for p in recordings],
        "ignored_fields": list(IGNORED_FIELDS),
        "prob_tolerance": PROB_TOLERANCE,
        "decisions": [records[k] for k in sorted(records)],
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


def load_reference(path: str | Path) -> dict[tuple[str, int], dict[str, Any]]:
    doc = json.loads(Path(path).read_text())
    return {(r["vehicle_id"], r["frame_id"]): r for r in doc["decisions"]}


def _differs(a: Any, b: Any, tol: float) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return not math.isclose(a, b, rel_tol=0.0, abs_tol=tol)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() != b.keys() or any(_differs(a[k], b[k], tol) for k in a)
    return a != b


def compare_reference(reference: dict[tuple[str, int], dict[str, Any]],
                      rows: Sequence[tuple[FrameRef, DecisionMsg, float]],
                      tol: float = PROB_TOLERANCE) -> list[str]:
    """Differences between a replay's decisions and the reference ([] = identical)."""
    got: dict[tuple[str, int], dict[str, Any]] = {}
    for ref, msg, _ in rows:
        got.setdefault((ref.source_vehicle_id, ref.source_frame_id), decision_record(ref, msg))
    diffs: list[str] = []
    versions = ({r.get("model_version") for r in reference.values()},
                {r.get("model_version") for r in got.values()})
    if got and versions[0] != versions[1]:
        diffs.append(f"model version {sorted(map(str, versions[1]))} but the reference has "
                     f"{sorted(map(str, versions[0]))} (run `make golden` if the change is meant)")
    for key in sorted(reference.keys() - got.keys()):
        diffs.append(f"{key[0]}/{key[1]}: no decision in this replay")
    for key in sorted(got.keys() - reference.keys()):
        diffs.append(f"{key[0]}/{key[1]}: not in the reference")
    for key in sorted(reference.keys() & got.keys()):
        want, have = reference[key], got[key]
        for name in sorted(want.keys() | have.keys()):
            if name != "model_version" and _differs(want.get(name), have.get(name), tol):
                diffs.append(f"{key[0]}/{key[1]}: {name} {have.get(name)!r} != reference "
                             f"{want.get(name)!r}")
    return diffs


# -- recordings -> drives ----------------------------------------------------------------------


def load_drives(paths: Sequence[str | Path], limit: int | None = None) -> list[Drive]:
    """The drives of MCAP recordings (simulator.recording), one per recorded vehicle and file,
    each frame with its recorded label. ``limit`` caps the frames. Raises RecordingError."""
    from simulator.recording import CameraFrame, read_events  # noqa: PLC0415

    out: list[Drive] = []
    frames = 0
    for path in paths:
        rules: dict[str, list[DriveRules]] = {}
        headers: dict[tuple[str, int], FrameHeader] = {}
        jpegs: dict[tuple[str, int], bytes] = {}
        labels: dict[tuple[str, int], DecisionLabel] = {}
        for ev in read_events(path):
            msg = ev.message
            if isinstance(msg, CameraFrame):
                jpegs[(msg.vehicle_id, msg.frame_id)] = msg.jpeg
            elif isinstance(msg, FrameHeader):
                headers[(msg.vehicle_id, msg.frame_id)] = msg
            elif isinstance(msg, RuleSet):
                rules.setdefault(msg.vehicle_id, []).append(DriveRules(msg.issued_at_ns, msg))
            elif isinstance(msg, LabelMsg):
                labels[(msg.vehicle_id, msg.frame_id)] = msg.decision
        drives: dict[str, Drive] = {}
        for key, header in headers.items():  # recording order
            if key not in jpegs or (limit is not None and frames >= limit):
                continue
            d = drives.setdefault(key[0], Drive(key[0], list(rules.get(key[0], [])), str(path)))
            d.events.append(DriveFrame(header.stamp_ns, header, jpegs[key], labels.get(key)))
            frames += 1
        for d in drives.values():
            # Rules before the frame issued at the same time; stable for equal stamps.
            d.events.sort(key=lambda e: (e.t_ns, isinstance(e, DriveFrame)))
            out.append(d)
    return out
