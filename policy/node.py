"""The inference node (``ruledrive serve``): bus in, Decider, bus out.

Threads: the bus's delivery thread runs :meth:`Node.on_message`, which only validates, stores
rule sets and puts frames in a per-vehicle slot (conflation: the newest frame wins, the one it
replaces is counted as dropped, so the queue never holds more than one frame per vehicle). The
Decider splits a batch into ``inference_threads`` shares (default: 2 on a CPU), each decoded,
checked and run through the frame graph on its own thread, so one share's decode overlaps the
other's session.run; with one share it decodes the batch on ``decode_threads`` threads first.
A decode-ahead worker (``decode_ahead``; off by default) decodes the waiting frames while the
serving loop runs the model on the previous batch; a frame it has not reached is decoded with
the batch. It gave no consistent gain on 2 cores (docs/benchmarks.md, "Node"). The serving
loop (:meth:`Node.run`) forms micro-batches across vehicles (up to ``max_batch_size``, waiting
at most ``max_wait_us`` and never longer than needed for the vehicles seen in the last second),
asks the Decider, publishes, and between batches sends the heartbeat and polls the model file
for hot reload.

Replicas (``share_group``): several nodes take a vehicle's frames through one MQTT 5 shared
subscription, so the broker hands each frame to one of them, while each subscribes to every rule
set as usual. A frame is decided from itself and its vehicle's rules alone, so any replica gives
the same answer; the order of decisions across replicas is the consumer's to restore
(docs/contract.md, "Replicas").
"""

from __future__ import annotations

import itertools
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from bus.base import Bus, Will
from bus.codec import Incoming, encode, parse_incoming
from bus.schema import (
    DecisionMsg,
    FrameHeader,
    NodeState,
    NodeStatus,
    RuleSet,
)
from bus.topics import CAMERA, DECISION, ERRORS, RULES, STATUS, Topic
from core.errors import BusError, ConfigError, ImageDecodeError, MessageError, ModelError
from core.rejects import RejectCode
from perception.image import preprocess_jpeg
from policy.decider import Decider, FrameJob
from policy.fallback import Reason
from policy.metrics import NodeMetrics
from policy.model import PolicyModel
from policy.reports import ReportLimiter
from policy.rulegate import RuleGate
from policy.settings import FRAME_OVERHEAD_BYTES, NodeSettings, load_settings

__all__ = ["Node", "main", "serve_in_thread"]

log = logging.getLogger(__name__)

_ACTIVE_WINDOW_NS = 1_000_000_000  # a vehicle is "active" if it sent a frame within 1 s
_DECODE_WAIT_S = 0.05  # the longest the loop waits for a decode in progress before its own
_MARK_RETRY_S = 5.0  # rule-set marks whose write failed are written again this often
_HOUSEKEEPING_S = 0.25  # aggregated reports and vehicle expiry are looked at this often
# Fallbacks caused by what a sender put in the frame: answered *and* reported on the errors topic.
_REPORTED = {
    Reason.BAD_IMAGE: "JPEG cannot be decoded",
    Reason.IMAGE_TOO_LARGE: "JPEG declares too many pixels; not decoded",
    Reason.BAD_TIMESTAMP: "stamped in the future beyond the clock-skew limit",
}


def _cost(jpeg: bytes) -> int:
    """What a waiting frame counts against max_pending_bytes: frames with tiny or empty JPEGs
    are limited too."""
    return len(jpeg) + FRAME_OVERHEAD_BYTES


@dataclass
class _Pending:
    header: FrameHeader
    jpeg: bytes
    arrival_ns: int
    arrival_mono_ns: int
    # Its vehicle's place in line: the arrival of the first frame it has waiting. A newer frame
    # replacing a waiting one keeps that place, so a busy vehicle cannot starve a steady one.
    queued_mono_ns: int
    # Set by the decode-ahead worker (under Node._cond): (decode, model input, ms), one
    # attribute so a reader never sees half of it.
    decoded: tuple[str, np.ndarray, float] | None = None
    decoding: bool = False
    done: threading.Event = field(default_factory=threading.Event)  # the worker is through


class Node:
    def __init__(self, settings: NodeSettings, bus: Bus, model: PolicyModel | None = None) -> None:
        self.settings = settings
        self.bus = bus
        self.gate = RuleGate(settings)  # reads trusted keys and rule-set marks: ConfigError
        model = model or PolicyModel.load(
            settings.model_path,
            settings.providers,
            settings.max_batch_size,
            settings.encoder_dir,
            threads=settings.ort_threads,
            spinning=settings.ort_spinning,
            reading_threshold=settings.reading_check_threshold,
            neighbour_reading=settings.neighbour_reading,
            inference_threads=settings.inference_threads,
            cuda_graphs=settings.cuda_graphs,
        )
        self.decider = Decider(
            model,
            settings.node_id,
            settings.confidence_threshold,
            settings.max_frame_age_ms,
            settings.rules_cache_size,
            max_clock_skew_ms=settings.max_clock_skew_ms,
            decode_threads=settings.decode_threads,
            max_rules_wait_ms=settings.max_rules_wait_ms,
        )
        self.metrics = NodeMetrics()
        self.rules: dict[str, RuleSet] = {}
        # The topics the node consumes, each with its handler (bus thread: validate, enqueue).
        self._handlers: dict[Topic, Callable[[str, Incoming, int, int], None]] = {
            RULES: self._on_rules,
            CAMERA: self._on_frame,
        }
        self._pending: dict[str, _Pending] = {}
        # Vehicles whose waiting frame the decode-ahead worker has not decoded yet, oldest first
        # (an ordered set: one entry per vehicle, so it never outgrows the waiting frames).
        self._to_decode: dict[str, None] = {}
        self._seen: dict[str, int] = {}
        self._last_heard: dict[str, float] = {}  # vehicle -> monotonic s of its last message
        # Vehicles silent for vehicle_ttl_s that hold a rule set: their encodings are dropped,
        # their rule set stays (the broker will not send its retained copy again), and they
        # give up their place only to a new vehicle when max_vehicles are held.
        self._dormant: set[str] = set()
        self._next_mark_retry = 0.0  # monotonic s: when housekeeping next writes unsaved marks
        self._pending_bytes = 0
        self.reports = ReportLimiter(settings.node_id, settings.error_report_interval_s)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._failed_mtime: int | None = None
        self._started = time.monotonic()
        p, nid = settings.topic_prefix, settings.node_id
        self.status_topic = STATUS.topic(p, node_id=nid)
        self.errors_topic = ERRORS.topic(p, node_id=nid)
        # While signatures are checked, the rule sets accepted before a restart are taken back
        # (policy.rulemarks): a refused message retained over the genuine one on the broker
        # must not cost the vehicle its rules.
        for vid, rules in self.gate.kept().items():
            self.rules[vid] = rules
            self._last_heard[vid] = time.monotonic()
            self.decider.prefetch(rules, self._encoded)
        self.metrics.vehicles.set(len(self.rules))

    # lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Subscribe, connect (last will = retained offline status), start metrics."""
        self.bus.add_connect_hook(lambda: self.publish_status(NodeState.ONLINE))
        for entry in self._handlers:
            self.bus.subscribe(self._subscription(entry), self.on_message, entry.qos)
        offline = encode(self._status(NodeState.OFFLINE))
        if self.settings.metrics_port:  # before connecting: a busy port stops start-up cleanly
            self.metrics.serve(self.settings.metrics_port, self.settings.metrics_host)
        self.bus.connect(Will(self.status_topic, offline, STATUS.qos, STATUS.retain))

    def _subscription(self, entry: Topic) -> str:
        """Frames through the share group, when there is one; rule sets never: the broker may
        hand a vehicle to any replica at any frame, so every replica needs every rule set, and a
        shared subscription would give each new one to one replica only."""
        group = self.settings.share_group if entry is CAMERA else None
        return entry.subscription(self.settings.topic_prefix, share_group=group)

    def stop(self) -> None:
        """Ask the loop to finish the frames in hand, publish offline and return (thread-safe)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def request_reload(self) -> None:
        self._reload.set()
        with self._cond:
            self._cond.notify_all()

    def run(self) -> None:
        """Serve until stop(); then answer what is pending, publish offline, disconnect."""
        next_beat = time.monotonic() + self.settings.heartbeat_s
        poll_s = self.settings.reload_poll_s or float("inf")  # 0 = SIGHUP only
        next_poll = time.monotonic() + poll_s
        decoder = None
        if self.settings.decode_ahead:
            decoder = threading.Thread(target=self._decode_ahead, name="decode-ahead", daemon=True)
            decoder.start()
        try:
            while not self._stop.is_set():
                wait = min(next_beat, next_poll, time.monotonic() + _HOUSEKEEPING_S)
                wait -= time.monotonic()
                batch = self._collect(timeout=max(0.0, wait))
                if batch:
                    self.process(batch)
                now = time.monotonic()
                self.housekeeping(now)
                if now >= next_beat:
                    self.publish_status(NodeState.ONLINE)
                    next_beat = now + self.settings.heartbeat_s
                if self._reload.is_set() or now >= next_poll:
                    self.maybe_reload(force=self._reload.is_set())
                    next_poll = now + poll_s
            self._leave_share_group()
            with self._cond:
                rest, self._pending = list(self._pending.values()), {}
                self._pending_bytes = 0
            for i in range(0, len(rest), self.settings.max_batch_size):
                self.process(rest[i : i + self.settings.max_batch_size])
        finally:
            if decoder is not None:
                self._stop.set()
                with self._cond:
                    self._cond.notify_all()
                decoder.join(timeout=5.0)
            self.publish_status(NodeState.OFFLINE)
            self.bus.close()
            # Rule sets still queued for encoding are not encoded: at exit Python would run
            # every queued one first (300 vehicles' new rule sets kept a stopped node alive
            # 22 s, past a container's stop grace).
            self.decider.close()

    def _leave_share_group(self) -> None:
        """A stopping replica leaves its group before answering the frames it holds: the broker
        hands the next frames to the others, and those it sent before the leave are answered
        here, so none falls between the two."""
        if self.settings.share_group is None:
            return
        try:
            self.bus.unsubscribe(self._subscription(CAMERA), self.on_message)
        except BusError as exc:
            log.warning("could not leave share group %s: %s", self.settings.share_group, exc)

    # network thread ----------------------------------------------------------------------------

    def on_message(self, topic: str, payload: bytes) -> None:
        """Validate and enqueue only; never inference here (it runs on the bus thread)."""
        arrival_ns, arrival_mono = time.time_ns(), time.perf_counter_ns()
        try:
            msg = parse_incoming(
                topic, payload, self.settings.topic_prefix, self.settings.max_payload_bytes
            )
        except MessageError as exc:
            self.report(topic, exc.code, exc.detail)
            return
        except Exception as exc:  # a parser bug must not kill the bus thread
            log.exception("unexpected error parsing a message on %.200s", topic)
            self.report(topic, RejectCode.INTERNAL_ERROR, f"{type(exc).__name__} while parsing")
            return
        handler = self._handlers.get(msg.topic)
        if handler is not None:  # the node subscribes to nothing else
            handler(topic, msg, arrival_ns, arrival_mono)

    def _on_rules(self, topic: str, msg: Incoming, arrival_ns: int, _mono: int) -> None:
        rules = msg.message
        assert rules is None or isinstance(rules, RuleSet)
        refusal = self.gate.check(msg.ids["vehicle_id"], rules, arrival_ns)
        if refusal is not None:  # signature, issue time, order: policy.rulegate
            self.report(topic, refusal.code, refusal.detail)
            return
        self._store_rules(msg.ids["vehicle_id"], rules)

    def _on_frame(self, topic: str, msg: Incoming, arrival_ns: int, arrival_mono: int) -> None:
        header = msg.message
        assert isinstance(header, FrameHeader)
        vid = header.vehicle_id
        woken = False
        with self._cond:
            old = self._pending.get(vid)
            limit = self.settings.max_pending_bytes
            overloaded = old is None and self._pending_bytes + _cost(msg.jpeg) > limit
            if not overloaded:
                if old is not None:
                    self.metrics.drop("conflated")
                    self._pending_bytes -= _cost(old.jpeg)
                queued = arrival_mono if old is None else old.queued_mono_ns
                self._pending[vid] = _Pending(header, msg.jpeg, arrival_ns, arrival_mono, queued)
                self._pending_bytes += _cost(msg.jpeg)
                if self.settings.decode_ahead:
                    self._to_decode.setdefault(vid)
                self._seen[vid] = arrival_mono
                self._last_heard[vid] = time.monotonic()
                woken = vid in self._dormant
                self._dormant.discard(vid)
            self.metrics.count("frames")
            self._cond.notify_all()
        held = self.rules.get(vid)
        if woken and held is not None:
            self.decider.prefetch(held, self._encoded)  # its frame waits for it, not the loop
        if held is not None and not overloaded and not self.decider.ready(held):
            self.decider.hurry(vid)  # read before the rule sets of vehicles not driving
        if overloaded:  # reported outside the lock: publishing may block
            self.report(
                topic,
                RejectCode.NODE_OVERLOADED,
                f"{self._pending_bytes} bytes of frames waiting, limit {limit}; "
                f"frame {header.frame_id} dropped",
            )

    def _store_rules(self, vid: str, rules: RuleSet | None) -> None:
        if rules is None:  # retained message cleared
            self.rules.pop(vid, None)
            with self._cond:
                self._dormant.discard(vid)
            self.decider.forget(vid)
        else:
            if vid not in self.rules and len(self.rules) >= self.settings.max_vehicles:
                victim = self._evict_dormant()
                if victim is None:
                    self.report(
                        RULES.topic(self.settings.topic_prefix, vehicle_id=vid),
                        RejectCode.TOO_MANY_VEHICLES,
                        f"{len(self.rules)} vehicles hold rule sets, limit "
                        f"{self.settings.max_vehicles}, none silent for vehicle_ttl_s; refused",
                    )
                    return
            self.rules[vid] = rules
            with self._cond:
                self._last_heard[vid] = time.monotonic()
                self._dormant.discard(vid)
            self.metrics.count("rules")
            # Encoded on a worker now, not in the serving loop: the vehicle's frames wait for
            # it (Node._ready), other vehicles' frames do not.
            self.decider.prefetch(rules, self._encoded)
            if not self.gate.accepted(vid, rules, self.rules):  # older ones are refused now
                self.metrics.count("rules.mark_not_saved")
        self.metrics.vehicles.set(len(self.rules))

    def _evict_dormant(self) -> str | None:
        """Make room for a new vehicle: forget the rule set of the vehicle silent longest among
        those silent for vehicle_ttl_s; None when no vehicle is."""
        with self._cond:
            victim = min(
                (v for v in self._dormant if v in self.rules),
                key=lambda v: self._last_heard.get(v, 0.0),
                default=None,
            )
            if victim is not None:
                self._dormant.discard(victim)
                self._last_heard.pop(victim, None)
                self.rules.pop(victim, None)
        if victim is not None:
            self.decider.forget(victim)
            self.metrics.count("vehicles.forgotten")
        return victim

    def report(self, topic: str, code: RejectCode, detail: str) -> None:
        """Count a rejected input and report it, rate-limited per (code, topic); never raises."""
        self.metrics.reject(code)
        log.debug("rejected %s: %s %s", topic, code, detail)
        report = self.reports.offer(topic[:200], topic, code, detail)
        if report is not None:
            self._publish(self.errors_topic, encode(report), ERRORS.qos, False)
        else:
            self.metrics.count("reports.aggregated")

    def housekeeping(self, now: float) -> None:
        """Publish the aggregated reports whose interval ended; drop what silent vehicles cost
        (their encodings; their rule sets only when a new vehicle needs the place), unless this
        node is a replica: a vehicle whose frames the broker hands to another replica is silent
        here, and its rule set must still be here the moment the vehicle moves over."""
        for report in self.reports.flush():
            self._publish(self.errors_topic, encode(report), ERRORS.qos, False)
        marks = self.gate.marks
        if marks.unsaved and now >= self._next_mark_retry:
            self._next_mark_retry = now + _MARK_RETRY_S
            if not marks.retry_unsaved():
                log.warning("every rule-set mark is saved again")
        if self.settings.share_group is not None:
            return
        ttl = self.settings.vehicle_ttl_s
        with self._cond:
            silent = [
                v
                for v, t in self._last_heard.items()
                if now - t > ttl and v not in self._pending and v not in self._dormant
            ]
            # A silent vehicle without a rule set is forgotten; one with a rule set keeps it
            # (the broker sends a retained rule set once, at subscription: dropped here, the
            # vehicle would come back to no_rules for good) and sheds its encodings.
            gone = [v for v in silent if v not in self.rules]
            for vid in gone:
                del self._last_heard[vid]
            dormant = [v for v in silent if v in self.rules]
            self._dormant.update(dormant)
        for vid in silent:
            self.decider.forget(vid)
        if dormant:
            self.metrics.count("vehicles.dormant", len(dormant))

    # decode-ahead worker -----------------------------------------------------------------------

    def _decode_ahead(self) -> None:
        """Decode waiting frames as they arrive, while the serving loop runs the model on the
        previous batch (OpenCV and onnxruntime both release the GIL, so the two overlap). The
        serving loop decodes itself any frame this worker has not reached, and a frame that does
        not decode here is left to it, so its error is answered and reported in one place."""
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stop.is_set() or bool(self._to_decode), 0.25)
                if self._stop.is_set():
                    return
                item = None
                while self._to_decode and item is None:
                    vid = next(iter(self._to_decode))
                    del self._to_decode[vid]
                    p = self._pending.get(vid)
                    if p is not None and p.decoded is None and not p.decoding:
                        item, p.decoding = p, True
                decode = self.decider.model.meta.decode
            if item is None:
                continue
            t0 = time.perf_counter_ns()
            try:
                image = preprocess_jpeg(item.jpeg, decode)
                item.decoded = (decode, image, (time.perf_counter_ns() - t0) / 1e6)
            except ImageDecodeError:
                pass  # the serving loop decodes it again and answers the error
            except Exception:  # a bug must not stop the worker: the serving loop decodes it
                log.exception("decode-ahead failed on a frame of %s", item.header.vehicle_id)
            finally:
                item.done.set()

    # serving loop ------------------------------------------------------------------------------

    def _collect(self, timeout: float) -> list[_Pending]:
        s = self.settings
        with self._cond:
            if (
                not self._cond.wait_for(
                    lambda: self._any_ready() or self._stop.is_set() or self._reload.is_set(),
                    self._wake_s(timeout),
                )
                or not self._pending
            ):
                return []
            now = time.perf_counter_ns()
            self._seen = {v: t for v, t in self._seen.items() if now - t < _ACTIVE_WINDOW_NS}
            active = len(self._seen)
            target = min(s.max_batch_size, max(1, active))
            if len(self._pending) < target and s.max_wait_us > 0:
                self._cond.wait_for(
                    lambda: len(self._pending) >= target or self._stop.is_set(),
                    s.max_wait_us / 1e6,
                )
            # The dict is in line order already (a vehicle joins at the end and a newer frame
            # keeps its vehicle's place): the first ready ones, without sorting every waiting
            # frame for each batch (a flood of 20,000 tiny frames once delayed a steady
            # vehicle's answer by 43 s that way).
            batch = list(
                itertools.islice(
                    (p for p in self._pending.values() if self._ready(p)), s.max_batch_size
                )
            )
            for item in batch:
                del self._pending[item.header.vehicle_id]
                self._pending_bytes -= _cost(item.jpeg)
            return batch

    def _ready(self, p: _Pending) -> bool:
        """A frame whose rule set is still being encoded waits, the others go first; after
        max_rules_wait_ms it goes too, to be answered rules_pending (Decider._check)."""
        rules = self.rules.get(p.header.vehicle_id)
        return (
            self.decider.ready(rules)
            or self.decider.waiting_ms(rules) >= self.decider.max_rules_wait_ms
        )

    def _wake_s(self, timeout: float) -> float:
        """``timeout``, or less when a frame waiting on its rule set's encoding is due to be
        answered rules_pending sooner (nothing notifies the serving loop of that)."""
        if not self.decider.pending_encodings:
            return timeout  # the common case: no rule set being read, nothing falls due
        limit = self.decider.max_rules_wait_ms
        due = [
            limit - w
            for w in (self.decider.waiting_ms(self.rules.get(v)) for v in self._pending)
            if w > 0
        ]
        return min(timeout, max(0.001, min(due) / 1e3)) if due else timeout

    def _any_ready(self) -> bool:
        return any(self._ready(p) for p in self._pending.values())

    def _encoded(self) -> None:
        """A rule set's encoding ended (worker thread): the frames waiting on it may go."""
        with self._cond:
            self._cond.notify_all()

    def process(self, batch: list[_Pending]) -> list[DecisionMsg]:
        """Decide a batch and publish every decision (also usable without the loop)."""
        for p in batch:  # a frame the worker is decoding now: its result, not a second decode
            if p.decoding and p.decoded is None:
                p.done.wait(_DECODE_WAIT_S)
        jobs = [
            FrameJob(
                p.header,
                p.jpeg,
                self.rules.get(p.header.vehicle_id),
                p.arrival_ns,
                p.arrival_mono_ns,
                p.decoded,
            )
            for p in batch
        ]
        try:
            decisions = self.decider.decide_batch(jobs)
        except Exception:  # a bug, not an input: answer the batch, keep serving the others
            log.exception(
                "decider failed on a batch of %d; answering it with internal_error", len(jobs)
            )
            decisions = [self.decider.fallback(job, Reason.INTERNAL_ERROR) for job in jobs]
        inferred = [d for d in decisions if d.timings.inference_ms > 0]
        if inferred:
            self.metrics.batch(inferred[0].timings.batch_size, inferred[0].timings.inference_ms)
        for d in decisions:
            self._publish_decision(d)
            if d.reason in _REPORTED:
                what = _REPORTED[Reason(d.reason)]
                self.report(
                    CAMERA.topic(self.settings.topic_prefix, vehicle_id=d.vehicle_id),
                    RejectCode(d.reason),
                    f"frame {d.frame_id}: {what}",
                )
            elif d.reason == Reason.STALE_FRAME:
                self.metrics.drop("stale")
        return decisions

    def _publish_decision(self, d: DecisionMsg) -> None:
        topic = DECISION.topic(self.settings.topic_prefix, vehicle_id=d.vehicle_id)
        self.metrics.decided(d)
        self._publish(topic, encode(d), DECISION.qos, DECISION.retain)

    def _publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        try:
            self.bus.publish(topic, payload, qos, retain)
        except BusError as exc:
            self.metrics.publish_errors.inc()
            log.debug("publish failed: %s", exc)

    # status and reload -------------------------------------------------------------------------

    def _status(self, state: NodeState) -> NodeStatus:
        model = self.decider.model
        return NodeStatus(
            node_id=self.settings.node_id,
            state=state,
            stamp_ns=time.time_ns(),
            uptime_s=time.monotonic() - self._started,
            provider=model.provider,
            model_version=model.version,
            counters=self._counters(),
            share_group=self.settings.share_group,
        )

    def _counters(self) -> dict[str, int]:
        counters = self.metrics.counters()
        # Another process with this node id takes the connection (bus.mqtt): the broker says so
        # (takeovers) or, before Mosquitto 2.0.15, the connection is just lost at once (flaps).
        for key, n in (("mqtt_takeovers", self.bus.takeovers), ("mqtt_flaps", self.bus.flaps)):
            if n:
                counters[key] = n
        return counters

    def publish_status(self, state: NodeState) -> None:
        self._publish(self.status_topic, encode(self._status(state)), STATUS.qos, STATUS.retain)

    def maybe_reload(self, force: bool = False) -> bool:
        """Load the model file again if forced (SIGHUP) or its mtime changed; keep the old one
        if the new one fails. Returns True if a new model is in use."""
        self._reload.clear()
        path = self.settings.model_path
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            mtime = None
        current = self.decider.model
        if not force and (mtime in (current.mtime_ns, self._failed_mtime) or mtime is None):
            return False
        try:
            model = PolicyModel.load(
                path,
                self.settings.providers,
                self.settings.max_batch_size,
                self.settings.encoder_dir,
                encoder=current.encoder,
                sentence_encoder=current.sentence.encoder if current.sentence else current.vectors,
                threads=self.settings.ort_threads,
                spinning=self.settings.ort_spinning,
                reading_threshold=self.settings.reading_check_threshold,
                neighbour_reading=self.settings.neighbour_reading,
                inference_threads=self.settings.inference_threads,
                cuda_graphs=self.settings.cuda_graphs,
            )
        except (ModelError, ConfigError) as exc:
            self._failed_mtime = mtime
            self.metrics.reloads.labels("failed").inc()
            log.error("model reload failed, keeping %s: %s", current.version, exc)
            self.report(str(path), RejectCode.MODEL_RELOAD_FAILED, str(exc))
            return False
        self.decider.set_model(model)
        self.metrics.reloads.labels("ok").inc()
        log.info("model reloaded: %s -> %s", current.version, model.version)
        self.publish_status(NodeState.ONLINE)
        return True


@contextmanager
def serve_in_thread(node: Node, join_s: float = 15.0) -> Iterator[Node]:
    """Start ``node`` and serve it on a background thread for the block; then stop and join.

    For processes that host a node beside other work (the demo, ``replay --serve-model``, tests).
    """
    node.start()
    thread = threading.Thread(target=node.run, name="node", daemon=True)
    thread.start()
    try:
        yield node
    finally:
        node.stop()
        thread.join(join_s)
        if thread.is_alive():
            log.warning("node thread still running %.0f s after stop()", join_s)


def main(settings: NodeSettings | None = None, bus: Bus | None = None) -> int:
    """Run a node until SIGTERM/SIGINT (SIGHUP reloads the model). Returns the exit code."""
    settings = settings or load_settings()
    if bus is None:
        from bus.mqtt import MqttBus

        bus = MqttBus(
            settings.mqtt_url,
            client_id=settings.node_id,
            username=settings.mqtt_username,
            password=settings.mqtt_password.get_secret_value() if settings.mqtt_password else None,
            tls_ca=str(settings.tls_ca) if settings.tls_ca else None,
        )
    node = Node(settings, bus)
    restore = {}
    if threading.current_thread() is threading.main_thread():
        for sig, fn in (
            (signal.SIGTERM, node.stop),
            (signal.SIGINT, node.stop),
            (signal.SIGHUP, node.request_reload),
        ):
            restore[sig] = signal.signal(sig, lambda *_a, fn=fn: fn())
    try:
        node.start()
        log.info(
            "node %s serving %s on %s (model %s%s)",
            settings.node_id,
            settings.topic_prefix,
            node.decider.model.provider,
            node.decider.model.version,
            f", frames shared in group {settings.share_group}" if settings.share_group else "",
        )
        node.run()
    finally:
        for sig, old in restore.items():
            signal.signal(sig, old)
    return 0
