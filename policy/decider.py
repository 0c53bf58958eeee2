"""The bus-free decision logic: frame + latest rule set -> DecisionMsg (single or batched).

Tests and replay call :meth:`Decider.step` / :meth:`Decider.decide_batch` directly; the node
(policy.node) only feeds it batches and publishes what it returns. Every fallback of the safety
table (policy.fallback) is decided here, so the table lives in one place.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from bus.schema import DecisionLabel, DecisionMsg, FrameHeader, RuleSet, Timings
from core.errors import ImageDecodeError, MessageError, ModelError
from perception.image import colourless, preprocess_jpeg
from perception.readcheck import conflicting
from policy.fallback import FALLBACK_DECISION, Reason
from policy.model import EncodedRules, ModelOutputs, PolicyModel

__all__ = ["Decider", "FrameJob"]

log = logging.getLogger(__name__)

# What a kept rule set holds for the token states when its model never reads them again.
_NO_STATES = np.zeros((0,), np.float32)
_NO_STATES.flags.writeable = False

# A frame decoded before the checks: (model input or the exception its decode raised, ms).
_Decoded = tuple["np.ndarray | Exception", float]


def _decode_one(jpeg: bytes, decode: str) -> _Decoded:
    t0 = time.perf_counter_ns()
    try:
        image: np.ndarray | Exception = preprocess_jpeg(jpeg, decode)
    except Exception as exc:  # answered per frame by Decider._check, never for the batch
        image = exc
    return image, (time.perf_counter_ns() - t0) / 1e6


@dataclass(frozen=True)
class FrameJob:
    """One frame to decide, with the rule set in force when it is processed."""

    header: FrameHeader
    jpeg: bytes
    rules: RuleSet | None
    arrival_ns: int = field(default_factory=time.time_ns)  # wall clock, for the frame age
    arrival_mono_ns: int = field(default_factory=time.perf_counter_ns)  # for queue / total
    # The frame already decoded (the node's decode-ahead worker): (the decode it used, the
    # model input, milliseconds it took). Used only if that decode is the model's.
    decoded: tuple[str, np.ndarray, float] | None = None


# How long closing waits for the rule set being read (one rule set: ~50 ms; bounded so a
# stuck encoder cannot hold a stopping node past docker's 10 s grace).
CLOSE_JOIN_S = 5.0


class _EncodeQueue:
    """The one thread that reads (encodes) rule sets, at most one waiting per vehicle (a newer
    rule set takes the vehicle's older one out of line and goes to the end). Vehicles whose
    frames wait on their rule set (:meth:`hurry`) go first, in the order they asked; then the
    others in arrival order. Before, one vehicle's new rule set waited behind every rule set that
    came before it: an outside probe's driving vehicle got only rules_pending for 25 s behind 200
    other vehicles' new rule sets (and a restart takes every retained rule set at once)."""

    def __init__(self, fn: Callable[[tuple[str, ...]], EncodedRules]) -> None:
        self._fn = fn
        self._cv = threading.Condition()
        self._todo: OrderedDict[str, tuple[Future[EncodedRules], tuple[str, ...]]] = OrderedDict()
        self._urgent: OrderedDict[str, None] = OrderedDict()  # vehicles of _todo, in asking order
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="rule-encoder", daemon=True)
        self._thread.start()

    def submit(self, vehicle_id: str, texts: tuple[str, ...]) -> Future[EncodedRules]:
        future: Future[EncodedRules] = Future()
        with self._cv:
            if self._closed:
                future.cancel()
                return future
            self._todo.pop(vehicle_id, None)  # its older rule set: the caller cancels it
            # A new rule set goes first only once a frame waits on it (hurry again): the frames
            # that waited were on the old one.
            self._urgent.pop(vehicle_id, None)
            self._todo[vehicle_id] = (future, texts)
            self._cv.notify()
        return future

    def hurry(self, vehicle_id: str) -> None:
        with self._cv:
            if vehicle_id in self._todo:
                self._urgent.setdefault(vehicle_id)

    def close(self) -> None:
        """Cancel what waits and end the thread after the encoding it is running (joined: a
        process that exits while the thread is inside onnxruntime aborts)."""
        with self._cv:
            self._closed = True
            waiting = [f for f, _ in self._todo.values()]
            self._todo.clear()
            self._urgent.clear()
            self._cv.notify()
        for future in waiting:
            future.cancel()
        if threading.current_thread() is not self._thread:
            self._thread.join(CLOSE_JOIN_S)

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._todo and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                vid = next(iter(self._urgent), None) or next(iter(self._todo))
                self._urgent.pop(vid, None)
                future, texts = self._todo.pop(vid)
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while it waited (superseded, forgotten)
            try:
                future.set_result(self._fn(texts))
            except BaseException as exc:  # the frame's check re-raises it (encoded_rules)
                future.set_exception(exc)


class Decider:
    """Holds the model and the per-(vehicle, rules version) token cache."""

    def __init__(
        self,
        model: PolicyModel,
        node_id: str,
        confidence_threshold: float | None = None,
        max_frame_age_ms: float = math.inf,
        cache_size: int = 1024,
        clock: Callable[[], int] = time.time_ns,
        *,
        max_clock_skew_ms: float = math.inf,
        decode_threads: int = 1,
        max_rules_wait_ms: float = math.inf,
    ) -> None:
        self.model = model
        # A frame whose rule set has been read for longer than this is answered rules_pending;
        # a younger wait is waited out (the node sends a frame only when it is ready or due).
        self.max_rules_wait_ms = max_rules_wait_ms
        self.node_id = node_id
        self.confidence_threshold = confidence_threshold
        self.max_frame_age_ms = max_frame_age_ms
        self.max_clock_skew_ms = max_clock_skew_ms
        self.clock = clock
        self._cache: OrderedDict[tuple[str, str], tuple[tuple[str, ...], EncodedRules]] = (
            OrderedDict()
        )
        self._cache_size = cache_size
        self.cache_hits = 0
        self.cache_misses = 0
        # Rule sets are encoded as they arrive, on a worker thread, so a new rule set does not
        # hold up the frames of other vehicles in the serving loop (prefetch). One entry per
        # vehicle, its newest rule set: a newer one cancels an older one not yet started, so a
        # vehicle flooding rule updates holds at most one place in the worker's queue and
        # memory stays bounded by the vehicles the node serves (forget drops one).
        self._lock = threading.Lock()
        # vehicle -> (version, texts, encoding, since when the vehicle's frames have waited on
        # an encoding (monotonic ns; 0: no frame waits yet, hurry): a newer rule set superseding
        # one still in flight keeps that time, so a vehicle whose rules change faster than they
        # are read still gets answers, rules_pending)
        self._encoding: dict[str, tuple[str, tuple[str, ...], Future[EncodedRules], int]] = {}
        self._queue = _EncodeQueue(self._encode)
        # A batch's JPEGs decoded side by side (OpenCV releases the GIL); None: one by one in
        # the caller's thread.
        self._decoders = (
            ThreadPoolExecutor(max_workers=decode_threads, thread_name_prefix="decode")
            if decode_threads > 1
            else None
        )

    def close(self) -> None:
        """Cancel the encodings still queued and stop the worker threads (the node stops)."""
        self._queue.close()
        if self._decoders is not None:
            self._decoders.shutdown(wait=False, cancel_futures=True)

    def set_model(self, model: PolicyModel) -> None:
        """Swap the model (hot reload); the rule cache belongs to the old model's encoder."""
        self.model = model
        with self._lock:
            self._cache.clear()
            self._encoding.clear()

    def step(self, header: FrameHeader, jpeg: bytes, rules: RuleSet | None) -> DecisionMsg:
        return self.decide_batch([FrameJob(header, jpeg, rules)])[0]

    def prefetch(self, rules: RuleSet, on_done: Callable[[], None] | None = None) -> None:
        """Start encoding a rule set that just arrived (returns at once; thread-safe).
        ``on_done`` is called on the worker when the encoding ends (ok, failed or cancelled).
        It supersedes the vehicle's older rule set: if that one is still queued, it is never
        encoded."""
        vid, version, texts = rules.vehicle_id, rules.version, tuple(rules.rules)
        future: Future[EncodedRules] | None = None
        with self._lock:
            hit = self._cache.get((vid, version))
            busy = self._encoding.get(vid)
            if busy is not None and busy[:2] == (version, texts):
                return  # already in flight
            if busy is not None:
                del self._encoding[vid]
            if hit is None or hit[0] != texts:
                since = busy[3] if busy is not None and not busy[2].done() else 0
                future = self._queue.submit(vid, texts)
                self._encoding[vid] = (version, texts, future, since)
        # Outside the lock: cancel() runs the old one's done callbacks in this thread.
        if busy is not None:
            busy[2].cancel()  # only succeeds while it waits in the queue
        if future is not None and on_done is not None:
            future.add_done_callback(lambda _: on_done())

    def hurry(self, vehicle_id: str) -> None:
        """A frame of this vehicle waits on its rule set: read it before the rule sets of
        vehicles that send no frames (a restart takes every retained rule set at once), and
        count the vehicle's wait (waiting_ms) from now, not from when the rule set came: a
        first frame after a restart was answered rules_pending at once for a rule set that
        was read 80 ms later."""
        with self._lock:
            busy = self._encoding.get(vehicle_id)
            if busy is not None and not busy[3] and not busy[2].done():
                self._encoding[vehicle_id] = (*busy[:3], time.monotonic_ns())
        self._queue.hurry(vehicle_id)

    def _encode(self, texts: tuple[str, ...]) -> EncodedRules:
        """The rule set as it is kept for its frames: a split model decides from the rule
        graph's features, so the encoder's token states (5 x 40 x 384 float32, 307 KiB a rule
        set) are dropped; 10,000 vehicles' rule sets held 3.1 GB with them."""
        encoded = self.model.encode_rules(texts)
        if encoded.features is None:  # the whole graph runs per frame and reads the states
            return encoded
        return encoded._replace(states=_NO_STATES)

    @property
    def pending_encodings(self) -> int:
        """Rule sets held for encoding (in the worker's queue, running, or done and not yet
        used by a frame): at most one per vehicle."""
        with self._lock:
            return len(self._encoding)

    def forget(self, vehicle_id: str) -> None:
        """Drop a vehicle's rule encodings (its rules were cleared or it went silent)."""
        with self._lock:
            busy = self._encoding.pop(vehicle_id, None)
            for key in [k for k in self._cache if k[0] == vehicle_id]:
                del self._cache[key]
        if busy is not None:  # outside the lock: cancel() runs its done callbacks here
            busy[2].cancel()

    def ready(self, rules: RuleSet | None) -> bool:
        """False while this rule set is still being encoded on the worker: its vehicle's frames
        wait (the newest one replacing the older), and other vehicles' frames go first."""
        if rules is None:
            return True
        with self._lock:
            busy = self._encoding.get(rules.vehicle_id)
        return busy is None or busy[2].done() or busy[:2] != (rules.version, tuple(rules.rules))

    def waiting_ms(self, rules: RuleSet | None) -> float:
        """How long this rule set's vehicle's frames have waited on its encoding (ms; 0 when it
        is ready or no frame waits on it)."""
        if rules is None:
            return 0.0
        with self._lock:
            busy = self._encoding.get(rules.vehicle_id)
        if busy is None or busy[2].done() or busy[:2] != (rules.version, tuple(rules.rules)):
            return 0.0
        return (time.monotonic_ns() - busy[3]) / 1e6 if busy[3] else 0.0

    def encoded_rules(self, rules: RuleSet) -> EncodedRules:
        """A rule set as the model reads it (policy.model.EncodedRules), computed once per
        (vehicle, version) and cached: neither the text encoder nor the rule graph runs per
        frame."""
        key = (rules.vehicle_id, rules.version)
        texts = tuple(rules.rules)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == texts:  # same version, new texts: re-encoded
                self._cache.move_to_end(key)
                self.cache_hits += 1
                return hit[1]
            self.cache_misses += 1
            busy = self._encoding.get(rules.vehicle_id)
            if busy is not None and busy[:2] == (rules.version, texts):
                del self._encoding[rules.vehicle_id]
            else:
                busy = None  # another version is in flight: it stays for its own frames
        if busy is not None and not busy[2].cancelled():
            encoded = busy[2].result()  # re-raises what the encoder raised
        else:
            encoded = self._encode(texts)
        with self._lock:
            self._cache[key] = (texts, encoded)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return encoded

    def decide_batch(self, jobs: Sequence[FrameJob]) -> list[DecisionMsg]:
        """Decide every job, in order; frames that pass the checks share one session.run (one
        per share, below).

        Checks follow policy.fallback.FALLBACKS. An unexpected error on one frame answers that
        frame with ``internal_error`` (logged) and the others are still decided.

        A model with several frame-graph runners (``inference_threads``) splits the batch into
        that many shares, each decoded, checked and run on its own runner thread: one share's
        decode overlaps the other's session.run, and no thread waits for all the decodes.
        """
        pool = self.model.runners
        if pool is None or len(jobs) < 2:
            return self._decide(jobs, in_share=False)
        cuts = np.linspace(0, len(jobs), min(self.model.runs, len(jobs)) + 1).astype(int)
        shares = pool.map(lambda a, b: self._decide(jobs[a:b], in_share=True), cuts[:-1], cuts[1:])
        return [m for share in shares for m in share]

    def _decide(self, jobs: Sequence[FrameJob], in_share: bool) -> list[DecisionMsg]:
        """decide_batch on the whole batch or, ``in_share``, on one share on its runner thread
        (which decodes its own frames instead of handing them to the decode threads)."""
        start = time.perf_counter_ns()
        now = self.clock()
        out: list[DecisionMsg | None] = [None] * len(jobs)
        ready: list[tuple[int, np.ndarray, EncodedRules, float]] = []
        decoded = [self._predecoded(j) for j in jobs] if in_share else self._decode_all(jobs)
        for i, job in enumerate(jobs):
            t0 = time.perf_counter_ns()
            pre = decoded[i]
            try:
                reason, image, encoded = self._check(job, now, pre)
            except Exception:
                log.exception(
                    "deciding frame %s of %s failed", job.header.frame_id, job.header.vehicle_id
                )
                reason, image, encoded = Reason.INTERNAL_ERROR, None, None
            # A frame decoded before this loop reports the decode it had, wherever it ran.
            decode_ms = (time.perf_counter_ns() - t0) / 1e6 + (pre[1] if pre else 0.0)
            if reason is None and image is not None and encoded is not None:
                ready.append((i, image, encoded, decode_ms))
            else:
                out[i] = self._msg(
                    job, start, 0.0, decode_ms, len(jobs), reason or Reason.INTERNAL_ERROR
                )
        if ready:
            self._infer(jobs, ready, start, out)
        return [m for m in out if m is not None]

    def _decode_all(self, jobs: Sequence[FrameJob]) -> list[_Decoded | None]:
        """Per job, its frame decoded before the checks run: by the node's decode-ahead worker
        (FrameJob.decoded, when it used the model's decode), or here on the decode threads when
        more than one frame of the batch still needs decoding; None: decoded in the checks."""
        out = [self._predecoded(j) for j in jobs]
        todo = [i for i, d in enumerate(out) if d is None]
        if self._decoders is not None and len(todo) > 1:
            decode = self.model.meta.decode
            done = self._decoders.map(
                _decode_one, [jobs[i].jpeg for i in todo], [decode] * len(todo)
            )
            for i, d in zip(todo, done, strict=True):
                out[i] = d
        return out

    def _predecoded(self, job: FrameJob) -> _Decoded | None:
        """The frame as the decode-ahead worker decoded it, if with the model's decode."""
        d = job.decoded
        return (d[1], d[2]) if d and d[0] == self.model.meta.decode else None

    def _check(
        self, job: FrameJob, now: int, pre: _Decoded | None = None
    ) -> tuple[Reason | None, np.ndarray | None, EncodedRules | None]:
        """The pre-inference checks, in FALLBACKS order: (reason, image, encoded rules).
        ``pre``: the frame already decoded with the model's decode, or what that decode raised."""
        try:
            if pre is None:
                image = preprocess_jpeg(job.jpeg, self.model.meta.decode)
            elif isinstance(pre[0], BaseException):
                raise pre[0]  # an ImageDecodeError is answered below; anything else is a bug
            else:
                image = pre[0]
        except ImageDecodeError as exc:
            return Reason(exc.code), None, None
        age_ms = (now - job.header.stamp_ns) / 1e6
        if -age_ms > self.max_clock_skew_ms:
            return Reason.BAD_TIMESTAMP, None, None
        if age_ms > self.max_frame_age_ms:
            return Reason.STALE_FRAME, None, None
        rules = job.rules
        if rules is None:
            return Reason.NO_RULES, None, None
        if rules.expires_at_ns is not None and rules.expires_at_ns <= now:
            return Reason.RULES_EXPIRED, None, None
        if self.waiting_ms(rules) >= self.max_rules_wait_ms:  # do not block: say so
            return Reason.RULES_PENDING, None, None
        try:
            encoded = self.encoded_rules(rules)
        except MessageError:
            return Reason.BAD_RULES, None, None
        return None, image, encoded

    def _infer(self, jobs, ready, start, out) -> None:  # type: ignore[no-untyped-def]
        images = np.stack([r[1] for r in ready])
        speeds = np.array([[jobs[r[0]].header.speed_kph] for r in ready], dtype=np.float32)
        t0 = time.perf_counter_ns()
        try:
            got: ModelOutputs | None = self.model.run_encoded(images, [r[2] for r in ready], speeds)
        except ModelError:
            log.exception("inference failed on a batch of %d", len(ready))
            got = None
        infer_ms = (time.perf_counter_ns() - t0) / 1e6
        n = len(ready)
        th = self.model.meta.thresholds
        confidence = (
            th.confidence if self.confidence_threshold is None else self.confidence_threshold
        )
        nu = self.model.meta.not_understood_index
        finite = np.zeros(n, bool)  # per row: every output finite (none without outputs)
        if got is not None:
            outs = (got.probabilities, got.rule_classes, got.image_ood)
            finite = np.logical_and.reduce(
                [np.isfinite(a.reshape(n, -1)).all(axis=1) for a in outs]
            )
        grey = colourless(images)  # no colour, no signal colours: not what the model reads
        for row, (i, _, encoded, decode_ms) in enumerate(ready):
            if got is None or not finite[row]:
                out[i] = self._msg(jobs[i], start, infer_ms, decode_ms, n, Reason.MODEL_ERROR)
                continue
            p = got.probabilities[row]
            top = int(np.argmax(p))
            present = encoded.mask.max(axis=1) > 0  # [R]: which rule slots hold a rule
            unread = sorted(
                {
                    int(r)
                    for r in np.flatnonzero(present)
                    if got.rule_classes[row, r, nu] >= th.not_understood
                }
                | set(encoded.unreadable)
                | set(got.unsure[row] if got.unsure else ())
            )
            reason = None
            if got.image_ood[row] >= th.image_ood or grey[row]:
                reason = Reason.IMAGE_OUT_OF_DISTRIBUTION
            elif unread:
                reason = Reason.RULES_NOT_UNDERSTOOD
            elif clash := self._clash(got, row, present):
                reason, unread = Reason.RULES_CONFLICT, clash
            elif p[top] < confidence:
                reason = Reason.LOW_CONFIDENCE
            out[i] = self._msg(jobs[i], start, infer_ms, decode_ms, n, reason, p, top, unread)

    def _clash(self, got: ModelOutputs, row: int, present: np.ndarray) -> list[int]:
        """The rules whose contradiction decides this frame (rules_conflict): asked per frame
        where the model has a reading graph (perception.readcheck.conflict_alternatives), else
        every contradicting rule of the set (perception.readcheck.conflicting)."""
        if got.clashes is not None and not got.clashes[row]:
            return []  # it contradicts itself, but not where this frame's decision turns
        clash = conflicting(got.rule_classes[row], present, self.model.meta.rule_classes)
        return [int(r) for r in np.flatnonzero(clash)]

    def fallback(self, job: FrameJob, reason: Reason) -> DecisionMsg:
        """The fallback answer to one frame (``valid=false``, FALLBACK_DECISION[reason])."""
        return self._msg(job, time.perf_counter_ns(), 0.0, 0.0, 1, reason)

    def _msg(
        self,
        job: FrameJob,
        start_ns: int,
        infer_ms: float,
        decode_ms: float,
        batch: int,
        reason: Reason | None,
        probs: np.ndarray | None = None,
        top: int = 0,
        unread: list[int] | None = None,
    ) -> DecisionMsg:
        labels = self.model.labels
        if probs is None:
            probabilities: dict[DecisionLabel, float] = {}
            confidence = 0.0
        else:
            probabilities = {lab: float(p) for lab, p in zip(labels, probs, strict=True)}
            confidence = min(1.0, max(0.0, float(probs[top])))
        decision = labels[top] if reason is None else FALLBACK_DECISION[reason]
        end = time.perf_counter_ns()
        timings = Timings(
            frame_age_ms=(job.arrival_ns - job.header.stamp_ns) / 1e6,
            queue_ms=max(0.0, (start_ns - job.arrival_mono_ns) / 1e6),
            decode_ms=decode_ms,
            inference_ms=infer_ms,
            total_ms=max(0.0, (end - job.arrival_mono_ns) / 1e6),
            batch_size=max(1, batch),
        )
        return DecisionMsg(
            vehicle_id=job.header.vehicle_id,
            frame_id=job.header.frame_id,
            frame_stamp_ns=job.header.stamp_ns,
            stamp_ns=self.clock(),
            decision=decision,
            probabilities=probabilities,
            confidence=confidence,
            valid=reason is None,
            reason=None if reason is None else str(reason),
            unread_rules=unread or [],
            rules_version=None if job.rules is None else job.rules.version,
            model_version=self.model.version,
            node_id=self.node_id,
            timings=timings,
        )
