"""Replay recorded drives through a node over the bus, and score the decisions that come back.

The publishing loop lives here; the bus-free parts have their own modules, so tests and tools can
use either half alone (their public names are re-exported here too):

* :mod:`replay.drives` -- recorded drives and lanes (:func:`load_drives`, :func:`plan_lanes`).
* :mod:`replay.scoreboard` -- :class:`Scoreboard`, fed ``published(ref, t)`` and
  ``decided(msg, t)`` events, matches decisions to frames by (vehicle id, frame id) and builds the
  :class:`ReplayReport` (accuracy against the recorded labels, confusion matrix, fallbacks,
  missing decisions, latency percentiles publish -> decision, achieved rate, the gates).
* :mod:`replay.golden` -- the golden reference (write / load / compare).
* :class:`Replayer` (here) -- publishes lanes of drives on any :class:`bus.base.Bus` (MQTT or the
  in-memory bus): rule sets retained at their recorded times, frames (``bus.envelope``) at the
  recorded timing divided by ``rate``, or as fast as the node answers (``rate=None``: one frame in
  flight per vehicle, because the node conflates a vehicle's frames and would drop the older).

Broker outages (``bus.publish`` raising BusError while disconnected): the failed frame is counted
*lost*, never raised out of the replay. At a given rate the schedule goes on, as a vehicle's camera
would, and every frame due while the broker is away is lost; at ``rate=None`` publishing waits for
the broker, then for a node to say it is online again (each bounded by ``timeout_s``). Away longer
than ``timeout_s``: the replay gives up with a partial report. Either way the retained rule sets
are cleared once the broker is back (waiting at most ``timeout_s``), or the report lists the
vehicles whose rules could not be cleared.

Frames and rule sets are restamped on publish (the node judges staleness and expiry against its
own clock); a lane plays one or more recorded drives under one vehicle id with fresh frame ids,
and every frame keeps a reference to its recorded (vehicle id, frame id) for labels and golden
comparisons.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from bus.base import Bus
from bus.codec import encode
from bus.envelope import pack_frame
from bus.schema import DecisionMsg, LabelMsg, NodeState, NodeStatus
from bus.topics import CAMERA, DECISION, DEFAULT_PREFIX, LABEL, RULES, STATUS
from core.errors import BusError
from replay.drives import (
    Drive,
    DriveFrame,
    DriveRules,
    FrameRef,
    Lane,
    load_drives,
    plan_lanes,
)
from replay.golden import (
    IGNORED_FIELDS,
    PROB_TOLERANCE,
    compare_reference,
    decision_record,
    load_reference,
    write_reference,
)
from replay.scoreboard import Outage, ReplayReport, Scoreboard, pacing

# Re-exported: replay's public names stay importable from here.
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

# At --rate max, frames given up one after another with no decision between them (this many per
# vehicle): the node is gone (each waited timeout_s), and the replay ends instead of waiting that
# long for every frame.
GIVE_UPS_IN_A_ROW = 3


Progress = Callable[[int, int], None]  # (frames decided, frames planned)


class Replayer:
    """Plays lanes on a bus and feeds a Scoreboard. ``rate=None`` = as fast as the node answers.

    A replay never hangs: a frame whose decision has not come ``timeout_s`` after it was sent is
    given up (counted missing; a late answer is still matched and counted ``late``), and when no
    decision at all arrives for ``timeout_s`` while frames are outstanding (given-up frames
    aside), or GIVE_UPS_IN_A_ROW frames are given up with no decision between them, or the
    first frames are given up before any decision came, the replay aborts (node down) and the
    report says so. A decision counts only on the topic of the vehicle it names and with the
    capture stamp of the frame it names (``misrouted`` / ``wrong_frame`` otherwise).
    """

    def __init__(
        self,
        bus: Bus,
        lanes: Sequence[Lane],
        rate: float | None = 1.0,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout_s: float = 10.0,
        publish_labels: bool = True,
        progress: Progress | None = None,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be > 0 (or None for as fast as possible)")
        self.bus, self.lanes, self.rate, self.prefix = bus, list(lanes), rate, prefix
        self.timeout_s = timeout_s
        self.publish_labels = publish_labels
        self.progress = progress
        self.board = Scoreboard()
        self.behind_ms: list[float] = []  # at a given rate: how late each frame went out
        self.statuses: dict[str, NodeStatus] = {}
        self._cond = threading.Condition()
        self._steps = {lane.vehicle_id: lane.steps() for lane in self.lanes}
        self.frames_planned = sum(ref is not None for s in self._steps.values() for *_, ref in s)
        self._expired: set[tuple[str, str]] = set()
        self._lost_wall_ns = 0  # wall clock of the last lost connection (node status stamps)
        self._waited_out: Outage | None = None
        self.rules_not_cleared: list[str] = []

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
        if topic != DECISION.topic(self.prefix, vehicle_id=msg.vehicle_id):
            self.board.misrouted_decision()  # the vehicle it names would never receive it
            return
        if self.board.decided(msg, t) is not None:
            with self._cond:
                self._cond.notify_all()
            if self.progress:
                self.progress(self.board.n_decided, self.frames_planned)

    def _on_status(self, topic: str, payload: bytes) -> None:
        try:
            status = NodeStatus.model_validate_json(payload) if payload else None
        except ValueError:
            return
        if status is not None:
            with self._cond:
                self.statuses[status.node_id] = status
                self._cond.notify_all()

    def _on_lost(self) -> None:
        self._lost_wall_ns = time.time_ns()
        self.board.disconnected(time.perf_counter_ns())
        with self._cond:
            self._cond.notify_all()

    def _on_connect(self) -> None:
        self.board.reconnected(time.perf_counter_ns())
        with self._cond:
            self._cond.notify_all()

    def attach(self) -> None:
        """Subscribe to decisions and node status, follow the connection (call before
        bus.connect for MQTT)."""
        self.bus.subscribe(DECISION.subscription(self.prefix), self._on_decision, DECISION.qos)
        self.bus.subscribe(STATUS.subscription(self.prefix), self._on_status, STATUS.qos)
        self.bus.add_connect_hook(self._on_connect)
        self.bus.add_disconnect_hook(self._on_lost)

    def wait_for_node(self, timeout_s: float, since_ns: int = 0) -> bool:
        """Wait until some node says it is online (its subscriptions are then in place), in a
        status stamped at or after ``since_ns`` (wall clock; after an outage: a fresh one)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: any(
                    s.state == NodeState.ONLINE and s.stamp_ns >= since_ns
                    for s in self.statuses.values()
                ),
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
        msg = r.model_copy(
            update={"vehicle_id": vid, "issued_at_ns": now, "expires_at_ns": expires}
        )
        try:
            self.bus.publish(RULES.topic(self.prefix, vehicle_id=vid), encode(msg), RULES.qos, True)
        except BusError as exc:  # the node keeps the rules it had: counted, the replay goes on
            self.board.rules_lost += 1
            log.warning("rule set %s of %s lost: %s", r.version, vid, exc)

    def _publish_frame(
        self, vid: str, ev: DriveFrame, ref: FrameRef, current: DriveRules | None
    ) -> bool:
        """Publish one frame (and its label); False if the bus refused it (counted lost)."""
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
        # first: the answer may come at once
        self.board.published(ref, time.perf_counter_ns(), header.stamp_ns)
        try:
            self.bus.publish(
                CAMERA.topic(self.prefix, vehicle_id=vid),
                pack_frame(header, ev.jpeg),
                CAMERA.qos,
                CAMERA.retain,
            )
        except BusError as exc:
            self.board.publish_failed(ref.vehicle_id, ref.frame_id, time.perf_counter_ns())
            log.debug("frame %d of %s lost: %s", ref.frame_id, vid, exc)
            return False
        if self.publish_labels and ev.label is not None:  # after its frame (the recorder joins)
            label = LabelMsg(
                vehicle_id=vid,
                frame_id=ref.frame_id,
                stamp_ns=header.stamp_ns,
                decision=ev.label,
                source="oracle",
            )
            try:
                self.bus.publish(LABEL.topic(self.prefix, vehicle_id=vid), encode(label), LABEL.qos)
            except BusError:
                self.board.labels_lost += 1
        return True

    # the loop ---------------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> ReplayReport:
        """Publish every lane, wait for the answers (bounded), clear the retained rules."""
        stop = stop or threading.Event()
        start = time.perf_counter_ns()
        cpu0 = time.process_time()
        aborted = None
        try:
            aborted = self._play(stop) or self._drain(stop)
        finally:
            self.rules_not_cleared = self._clear_rules()
        if stop.is_set() and aborted is None:
            aborted = "interrupted"
        report = self.board.report(
            (time.perf_counter_ns() - start) / 1e9,
            self.frames_planned,
            self.rate,
            len(self.lanes),
            aborted,
            start_ns=start,
        )
        report.rules_not_cleared = self.rules_not_cleared
        report.pacing = pacing(
            self.behind_ms, time.process_time() - cpu0, report.elapsed_s, self.rate
        )
        return report

    def _clear_rules(self) -> list[str]:
        """Leave no retained rule sets behind on a shared broker: wait for it (at most
        timeout_s) if it is away. Returns the vehicles whose rules could not be cleared."""
        deadline = time.monotonic() + self.timeout_s
        while not self.bus.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        left = []
        for vid in self._steps:
            try:
                if not self.bus.connected:  # a held QoS 1 clear would die with close()
                    raise BusError("not connected to the broker")
                self.bus.publish(RULES.topic(self.prefix, vehicle_id=vid), b"", RULES.qos, True)
            except BusError as exc:
                log.warning("could not clear the retained rules of %s: %s", vid, exc)
                left.append(vid)
        return left

    def _stalled(self, since_ns: int) -> bool:
        """No decision for timeout_s while frames are out; a broker's return restarts the clock
        (the node gets a fresh chance then, and frames lost in the outage are given up first)."""
        back = [o.back_ns for o in self.board.outages if o.back_ns is not None]
        since_ns = max([since_ns, *back, self.board.last_give_up_ns or since_ns])
        last = max(self.board.last_decision_ns or since_ns, since_ns)
        return self.board.outstanding() > 0 and time.perf_counter_ns() - last > self.timeout_s * 1e9

    def _play(self, stop: threading.Event) -> str | None:
        steps, cursor = self._steps, {vid: 0 for vid in self._steps}
        current: dict[str, DriveRules | None] = {vid: None for vid in steps}
        waiting: dict[str, tuple[FrameRef, int]] = {}  # rate=None: each lane's frame in flight
        t0 = time.perf_counter_ns()
        while not stop.is_set():
            now = time.perf_counter_ns()
            down = self.board.down
            if down is not None and (
                now - down.down_ns > self.timeout_s * 1e9 or self._stalled(t0)
            ):  # a stall while the broker is away is the broker's
                return f"broker unreachable for {(now - down.down_ns) / 1e9:.1f} s"
            outage = self.board.outages[-1] if self.board.outages else None
            if self.rate is None and outage is not None and outage is not self._waited_out:
                # No schedule to keep: hold the frames until the broker and a node are back.
                gave_up = self._wait_out(outage, stop)
                if gave_up:
                    return gave_up
                continue
            # Frames past their timeout are given up first (counted missing): with one frame in
            # flight per vehicle, the stall check alone took one unanswered frame for a node
            # that is gone and ended the replay. A node that answers nothing still ends it:
            # GIVE_UPS_IN_A_ROW frames given up with no decision between them.
            for vid, (sent_ref, sent) in list(waiting.items()):
                if self.board.is_decided(sent_ref.vehicle_id, sent_ref.frame_id):
                    del waiting[vid]
                elif now - sent > self.timeout_s * 1e9:
                    self.board.give_up(sent_ref.vehicle_id, sent_ref.frame_id)
                    del waiting[vid]
            in_a_row = GIVE_UPS_IN_A_ROW * max(1, len(steps))  # per vehicle in flight
            gone = self.board.give_ups_in_a_row >= in_a_row or (
                self.board.given_up and self.board.last_decision_ns is None  # never answered
            )
            if self._stalled(t0) or gone:
                return f"no decision for {self.timeout_s:g} s (is the node running?)"
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
                        lambda: (
                            stop.is_set()
                            or any(
                                self.board.is_decided(r.vehicle_id, r.frame_id)
                                for r, _ in waiting.values()
                            )
                        ),
                        max(0.0, min(sleep_s, self.timeout_s)),
                    )
                continue
            refused = False
            for vid in ready:
                if refused:
                    break
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
                    if self.rate is not None:
                        due_ns = t0 + offset / self.rate
                        self.behind_ms.append((time.perf_counter_ns() - due_ns) / 1e6)
                    sent = self._publish_frame(vid, ev, ref, current[vid])
                    if self.rate is None and sent:
                        waiting[vid] = (ref, time.perf_counter_ns())
                    refused = self.rate is None and not sent
                    break
            if refused:
                # paho refuses publishes a moment before its disconnect callback runs: wait for
                # it rather than burn through the lanes' frames, each lost at once.
                with self._cond:
                    self._cond.wait_for(lambda: stop.is_set() or self.board.down is not None, 0.5)
        return None

    def _wait_out(self, outage: Outage, stop: threading.Event) -> str | None:
        """rate=None after a lost connection: wait for the broker (until timeout_s after the
        loss), then for a node's fresh online status (at most timeout_s; frames sent before the
        node has resubscribed would reach no one). Returns why the replay gives up, or None."""
        left_s = self.timeout_s - (time.perf_counter_ns() - outage.down_ns) / 1e9
        with self._cond:
            back = self._cond.wait_for(
                lambda: stop.is_set() or outage.back_ns is not None, max(0.0, left_s)
            )
        if stop.is_set():
            return None
        if not back:
            return f"broker unreachable for {(time.perf_counter_ns() - outage.down_ns) / 1e9:.1f} s"
        self._waited_out = outage
        if not self.wait_for_node(self.timeout_s, since_ns=self._lost_wall_ns):
            log.warning("no node online again %g s after the broker came back", self.timeout_s)
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
