"""The bus-free half of replay: match decisions to published frames and build the report.

:class:`Scoreboard` is fed ``published(ref, t)`` and ``decided(msg, t)`` events, matches decisions
to frames by (vehicle id, frame id) and builds the :class:`ReplayReport` (accuracy against the
recorded labels, confusion matrix, fallbacks, missing decisions, latency percentiles publish ->
decision, achieved rate); :meth:`ReplayReport.check` is the pass/fail gate.

Broker outages: ``publish_failed(ref)`` turns a published frame into a *lost* one (the bus refused
it: disconnected), and ``disconnected(t)`` / ``reconnected(t)`` mark outages. Every frame the
replay tried to send is counted once: ``frames_published = decisions_matched + missing + lost``.
An outage's *unanswered* frames are the missing ones sent while the node could not be heard: from
the last decision before the connection was lost to the first decision after it came back.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bus.schema import DecisionLabel, DecisionMsg
from core.metrics import classification_report
from replay.drives import FrameRef

__all__ = ["HOLD_P99_MS", "Outage", "ReplayReport", "Scoreboard", "pacing"]

_INDEX = {lab: i for i, lab in enumerate(DecisionLabel)}


def _pct(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


@dataclass
class Outage:
    """One lost connection, in monotonic ns (time.perf_counter_ns)."""

    down_ns: int
    dark_from_ns: int | None  # the last decision before it (None: none yet)
    back_ns: int | None = None
    first_decision_ns: int | None = None  # the first decision after it came back

    def covers(self, t_ns: int, start_ns: int, end_ns: int) -> bool:
        """Whether a frame sent at t_ns went out while the node could not be heard."""
        lo = self.dark_from_ns if self.dark_from_ns is not None else start_ns
        hi = self.first_decision_ns if self.first_decision_ns is not None else end_ns
        return lo <= t_ns <= hi


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
    # Broker outages: frames whose publish failed (never reached the broker), rule sets and
    # labels likewise, and per outage (times in s from the replay's start) what it cost.
    lost: int = 0
    rules_lost: int = 0
    labels_lost: int = 0
    outages: list[dict[str, Any]] = field(default_factory=list)
    rules_not_cleared: list[str] = field(default_factory=list)
    # Decisions that were not taken as answers: on another vehicle's topic than the one they
    # name (a vehicle would never see them), or naming a frame's ids with another stamp.
    misrouted: int = 0
    wrong_frame: int = 0
    # At a given --rate: whether the replaying client kept its schedule (see :func:`pacing`).
    pacing: dict[str, Any] = field(default_factory=dict)
    # Per way the rule set in force was written (replay.drives.rule_text), over labelled
    # frames: {"frames", "accuracy", "valid_false"}; empty when nothing was labelled.
    by_rule_text: dict[str, dict[str, float]] = field(default_factory=dict)
    # Frames the node dropped on purpose (a vehicle's newer frame came before it was decided:
    # its status counter dropped.conflated), when the node ran in the replaying process (the
    # demo, `replay --serve-model`); None when the node is elsewhere and its count is not this
    # replay's alone.
    conflated: int | None = None

    @property
    def no_decision(self) -> int:
        """Frames without a decision: sent but unanswered (missing) plus never sent (lost)."""
        return self.missing + self.lost

    @property
    def labels(self) -> list[str]:
        return [str(lab) for lab in DecisionLabel]

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["labels"] = self.labels
        return d

    def check(
        self,
        min_accuracy: float | None = None,
        max_p99_ms: float | None = None,
        max_missing: float = 0.0,
    ) -> list[str]:
        """The gate: reasons this replay fails (also stored in ``failures``), each naming the
        gate, its threshold and the measured value."""
        out: list[str] = []
        if self.aborted:
            out.append(f"aborted: {self.aborted}")
        if self.frames_planned == 0:
            out.append("the recording has no frames")
        if self.frames_published and self.no_decision > max_missing * self.frames_published:
            out.append(self._missing_reason(max_missing))
        if min_accuracy is not None and (self.accuracy is None or self.accuracy < min_accuracy):
            acc = "n/a (no labelled decision)" if self.accuracy is None else f"{self.accuracy:.3f}"
            out.append(
                f"--min-accuracy gate: accuracy {acc} < {min_accuracy:g} "
                f"({self.labelled} labelled decisions)"
            )
        if self.misrouted or self.wrong_frame:
            out.append(
                f"{self.misrouted} decisions came on another vehicle's topic and "
                f"{self.wrong_frame} named a frame's ids with another capture stamp: the node "
                "does not answer each vehicle on its own topic, for its own frame"
            )
        if self.pacing and not self.pacing["held"]:
            out.append(
                f"--rate {self.target_rate:g} not held: frames went out "
                f"{self.pacing['behind_p99_ms']:.0f} ms behind schedule at p99 (limit "
                f"{HOLD_P99_MS:g} ms; the replaying process used "
                f"{self.pacing['client_cpu_pct']:.0f} % of a core), so latency and rate measure "
                "the client, not the node: lower --rate or --vehicles, or spread the vehicles over "
                "several replay processes"
            )
        p99 = self.latency_ms.get("p99")
        if max_p99_ms is not None and (p99 is None or p99 > max_p99_ms):
            got = "n/a (no decision)" if p99 is None else f"{p99:.1f} ms"
            out.append(f"--max-p99-ms gate: latency p99 {got} > {max_p99_ms:g} ms")
        self.failures = out
        return out

    def _missing_reason(self, max_missing: float) -> str:
        share = self.no_decision / self.frames_published
        why = (
            "at --rate max one frame per vehicle is in flight, so the node conflated none of "
            "them: they were lost (node down, restarted, or slower than --timeout-s)"
            if self.target_rate is None
            else "the node keeps only the newest frame of each vehicle and drops older ones on "
            "purpose when it falls behind (conflation: its status counter dropped.conflated); "
            "frames beyond that were lost (node down, or slower than --timeout-s); "
            "--rate max replays without conflation"
        )
        if self.lost or self.outages:
            unanswered = sum(o["frames_unanswered"] for o in self.outages)
            head = (
                f"{self.lost} were lost to {len(self.outages)} broker outage(s) (publish "
                f"failed while disconnected) and {unanswered} sent around them went unanswered"
            )
            rest = self.missing - unanswered
            why = f"{head}; the other {rest}: {why}" if rest > 0 else head
        return (
            f"--max-missing gate: {self.no_decision} of {self.frames_published} frames got no "
            f"decision ({100 * share:.1f} % > {100 * max_missing:g} % allowed); {why}"
        )


HOLD_P99_MS = 100.0  # a replay holds its rate while 99 % of frames go out at most this late


def pacing(
    behind_ms: list[float], cpu_s: float, elapsed_s: float, rate: float | None
) -> dict[str, Any]:
    """Whether a replay at a given rate kept its schedule: how late frames went out (p50, p99,
    max ms behind their due time) and the replaying process's own CPU (% of one core); {} at
    --rate max (no schedule)."""
    if rate is None or not behind_ms:
        return {}
    p99 = float(np.percentile(behind_ms, 99))
    return {
        "behind_p50_ms": round(float(np.percentile(behind_ms, 50)), 3),
        "behind_p99_ms": round(p99, 3),
        "behind_max_ms": round(float(np.max(behind_ms)), 3),
        "client_cpu_pct": round(100 * cpu_s / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        "held": p99 <= HOLD_P99_MS,
    }


class Scoreboard:
    """Matches decisions to published frames by (vehicle id, frame id). Thread-safe: decisions
    arrive on the bus thread while frames are published on another."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: dict[tuple[str, int], tuple[FrameRef, int]] = {}
        self._failed: dict[tuple[str, int], tuple[FrameRef, int]] = {}
        self._got: dict[tuple[str, int], tuple[DecisionMsg, float]] = {}
        self._order: list[tuple[str, int]] = []
        self.unexpected = 0
        self.duplicates = 0
        self.late = 0
        self.last_decision_ns: int | None = None
        self._stamps: dict[tuple[str, int], int] = {}
        self.misrouted = 0  # decisions on another vehicle's topic than the one they name
        self.wrong_frame = 0  # decisions naming a frame's ids but another capture stamp
        # Frames given up on (no decision within the timeout): when the last was, and how many
        # since the last decision came (a node that answers some frames vs one that is gone).
        self.last_give_up_ns: int | None = None
        self.give_ups_in_a_row = 0
        self.model_versions: Counter[str] = Counter()
        self.node_ids: Counter[str] = Counter()
        self.given_up: set[tuple[str, int]] = set()
        self.outages: list[Outage] = []
        self.rules_lost = 0
        self.labels_lost = 0

    def published(self, ref: FrameRef, t_ns: int, stamp_ns: int | None = None) -> None:
        """A frame went out at monotonic time ``t_ns`` (time.perf_counter_ns), stamped
        ``stamp_ns`` in its header (a decision must name that stamp to answer it)."""
        key = (ref.vehicle_id, ref.frame_id)
        with self._lock:
            self._sent[key] = (ref, t_ns)
            self._order.append(key)
            if stamp_ns is not None:
                self._stamps[key] = stamp_ns

    def misrouted_decision(self) -> None:
        """A decision came on another vehicle's topic than the one it names: not a match."""
        with self._lock:
            self.misrouted += 1

    def publish_failed(self, vehicle_id: str, frame_id: int, t_ns: int) -> None:
        """The frame announced by ``published`` never left: the bus refused it at ``t_ns``."""
        key = (vehicle_id, frame_id)
        with self._lock:
            sent = None if key in self._got else self._sent.pop(key, None)
            if sent is not None:
                self._failed[key] = (sent[0], t_ns)

    def disconnected(self, t_ns: int) -> None:
        """The bus lost the broker at monotonic ``t_ns``."""
        with self._lock:
            if self.outages and self.outages[-1].back_ns is None:
                return  # already down
            self.outages.append(Outage(t_ns, self.last_decision_ns))

    def reconnected(self, t_ns: int) -> None:
        with self._lock:
            if self.outages and self.outages[-1].back_ns is None:
                self.outages[-1].back_ns = t_ns

    @property
    def down(self) -> Outage | None:
        """The outage going on now, if any."""
        with self._lock:
            o = self.outages[-1] if self.outages else None
            return o if o is not None and o.back_ns is None else None

    def decided(self, msg: DecisionMsg, t_ns: int) -> FrameRef | None:
        """A decision arrived at monotonic ``t_ns``; returns the frame it answers, or None."""
        key = (msg.vehicle_id, msg.frame_id)
        with self._lock:
            sent = self._sent.get(key)
            if sent is None:
                self.unexpected += 1
                return None
            stamp = self._stamps.get(key)
            if stamp is not None and msg.frame_stamp_ns != stamp:
                self.wrong_frame += 1  # an answer to another frame with these ids
                return None
            if key in self._got:
                self.duplicates += 1
                return None
            if key in self.given_up:
                self.late += 1
            self._got[key] = (msg, (t_ns - sent[1]) / 1e6)
            self.last_decision_ns = t_ns
            self.give_ups_in_a_row = 0
            for o in reversed(self.outages):
                if o.first_decision_ns is not None:
                    break
                if o.back_ns is not None and t_ns >= o.back_ns:
                    o.first_decision_ns = t_ns
            if msg.model_version:
                self.model_versions[msg.model_version] += 1
            self.node_ids[msg.node_id] += 1
            return sent[0]

    def is_decided(self, vehicle_id: str, frame_id: int) -> bool:
        with self._lock:
            return (vehicle_id, frame_id) in self._got

    def give_up(self, vehicle_id: str, frame_id: int) -> None:
        """Stop waiting for a frame's decision (it counts missing unless it still comes)."""
        with self._lock:
            if (vehicle_id, frame_id) in self._got or (vehicle_id, frame_id) in self.given_up:
                return
            self.given_up.add((vehicle_id, frame_id))
            self.last_give_up_ns = time.perf_counter_ns()
            self.give_ups_in_a_row += 1

    @property
    def n_published(self) -> int:
        """Frames the replay tried to send, lost ones included."""
        return len(self._sent) + len(self._failed)

    @property
    def n_decided(self) -> int:
        return len(self._got)

    def outstanding(self) -> int:
        """Frames sent, not answered and not given up on."""
        with self._lock:
            return len(self._sent) - len(self._got) - len(self.given_up - self._got.keys())

    def matched(self) -> list[tuple[FrameRef, DecisionMsg, float]]:
        """(frame, decision, latency ms) in publish order, for reports and golden files."""
        with self._lock:
            return [(self._sent[k][0], *self._got[k]) for k in self._order if k in self._got]

    def missing(self) -> list[FrameRef]:
        """Frames sent that got no decision, in publish order."""
        with self._lock:
            return [self._sent[k][0] for k in self._order if k in self._sent and k not in self._got]

    def lost(self) -> list[FrameRef]:
        """Frames whose publish failed, in publish order."""
        with self._lock:
            return [self._failed[k][0] for k in self._order if k in self._failed]

    def outage_report(self, start_ns: int, end_ns: int) -> list[dict[str, Any]]:
        """Per outage: when (s from start), how long, frames lost (refused since the previous
        outage ended) and frames unanswered (sent in its dark window)."""
        with self._lock:
            unanswered = [t for k, (_, t) in self._sent.items() if k not in self._got]
            failed = [t for _, t in self._failed.values()]
            out, prev_back = [], start_ns - 1
            for o in self.outages:
                back = o.back_ns if o.back_ns is not None else end_ns
                # A publish refused since the previous outage ended is this one's (the bus may
                # refuse a moment before it reports the loss).
                lost, prev_back = sum(prev_back < t <= back for t in failed), back
                out.append(
                    {
                        "down_at_s": round((o.down_ns - start_ns) / 1e9, 3),
                        "back_at_s": (
                            None if o.back_ns is None else round((o.back_ns - start_ns) / 1e9, 3)
                        ),
                        "down_s": round((back - o.down_ns) / 1e9, 3),
                        "frames_lost": lost,
                        "frames_unanswered": sum(o.covers(t, start_ns, end_ns) for t in unanswered),
                    }
                )
            return out

    def report(
        self,
        elapsed_s: float,
        frames_planned: int,
        target_rate: float | None,
        vehicles: int,
        aborted: str | None = None,
        start_ns: int | None = None,
    ) -> ReplayReport:
        """``start_ns``: the replay's start (monotonic ns), for the outage times."""
        rows = self.matched()
        end_ns = time.perf_counter_ns()
        if start_ns is None:
            start_ns = end_ns - int(elapsed_s * 1e9)
        lat = [ms for _, _, ms in rows]
        fallbacks = Counter(str(m.reason or "unknown") for _, m, _ in rows if not m.valid)
        labelled = [(ref.label, m) for ref, m, _ in rows if ref.label is not None]
        y_true = np.array([_INDEX[DecisionLabel(lab)] for lab, _ in labelled], dtype=np.int64)
        y_pred = np.array([_INDEX[m.decision] for _, m in labelled], dtype=np.int64)
        names = [str(x) for x in DecisionLabel]
        cls = classification_report(y_true, y_pred, names) if labelled else None
        valid = [(lab, m) for lab, m in labelled if m.valid]
        written: dict[str, list[tuple[DecisionLabel, DecisionMsg]]] = {}
        for ref, m, _ in rows:
            if ref.label is not None and ref.rule_text:
                written.setdefault(ref.rule_text, []).append((ref.label, m))
        by_text = {
            text: {
                "frames": len(pairs),
                "accuracy": sum(m.decision == lab for lab, m in pairs) / len(pairs),
                "valid_false": sum(not m.valid for _, m in pairs) / len(pairs),
            }
            for text, pairs in sorted(written.items())
        }
        return ReplayReport(
            frames_published=self.n_published,
            frames_planned=frames_planned,
            decisions_matched=len(rows),
            missing=len(self._sent) - len(rows),
            unexpected=self.unexpected,
            misrouted=self.misrouted,
            wrong_frame=self.wrong_frame,
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
                cls["confusion_matrix"] if cls else [[0] * len(names) for _ in names]
            ),
            classification=cls,
            latency_ms={
                "p50": _pct(lat, 50),
                "p95": _pct(lat, 95),
                "p99": _pct(lat, 99),
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
            lost=len(self._failed),
            rules_lost=self.rules_lost,
            labels_lost=self.labels_lost,
            outages=self.outage_report(start_ns, end_ns),
            by_rule_text=by_text,
        )

    def latencies_ms(self) -> list[float]:
        return [ms for _, _, ms in self.matched()]
