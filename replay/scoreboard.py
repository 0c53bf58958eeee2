"""The bus-free half of replay: match decisions to published frames and build the report.

:class:`Scoreboard` is fed ``published(ref, t)`` and ``decided(msg, t)`` events, matches decisions
to frames by (vehicle id, frame id) and builds the :class:`ReplayReport` (accuracy against the
recorded labels, confusion matrix, fallbacks, missing decisions, latency percentiles publish ->
decision, achieved rate); :meth:`ReplayReport.check` is the pass/fail gate.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bus.schema import DecisionLabel, DecisionMsg
from core.metrics import classification_report
from replay.drives import FrameRef

__all__ = ["ReplayReport", "Scoreboard"]

_INDEX = {lab: i for i, lab in enumerate(DecisionLabel)}


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
        if self.frames_published and self.missing > max_missing * self.frames_published:
            out.append(self._missing_reason(max_missing))
        if min_accuracy is not None and (self.accuracy is None or self.accuracy < min_accuracy):
            acc = "n/a (no labelled decision)" if self.accuracy is None else f"{self.accuracy:.3f}"
            out.append(
                f"--min-accuracy gate: accuracy {acc} < {min_accuracy:g} "
                f"({self.labelled} labelled decisions)"
            )
        p99 = self.latency_ms.get("p99")
        if max_p99_ms is not None and (p99 is None or p99 > max_p99_ms):
            got = "n/a (no decision)" if p99 is None else f"{p99:.1f} ms"
            out.append(f"--max-p99-ms gate: latency p99 {got} > {max_p99_ms:g} ms")
        self.failures = out
        return out

    def _missing_reason(self, max_missing: float) -> str:
        share = self.missing / self.frames_published
        why = (
            "at --rate max one frame per vehicle is in flight, so the node conflated none of "
            "them: they were lost (node down, restarted, or slower than --timeout-s)"
            if self.target_rate is None
            else "the node keeps only the newest frame of each vehicle and drops older ones on "
            "purpose when it falls behind (conflation: its status counter dropped.conflated); "
            "frames beyond that were lost (node down, or slower than --timeout-s); "
            "--rate max replays without conflation"
        )
        return (
            f"--max-missing gate: {self.missing} of {self.frames_published} frames got no "
            f"decision ({100 * share:.1f} % > {100 * max_missing:g} % allowed); {why}"
        )


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

    def report(
        self,
        elapsed_s: float,
        frames_planned: int,
        target_rate: float | None,
        vehicles: int,
        aborted: str | None = None,
    ) -> ReplayReport:
        rows = self.matched()
        lat = [ms for _, _, ms in rows]
        fallbacks = Counter(str(m.reason or "unknown") for _, m, _ in rows if not m.valid)
        labelled = [(ref.label, m) for ref, m, _ in rows if ref.label is not None]
        y_true = np.array([_INDEX[DecisionLabel(lab)] for lab, _ in labelled], dtype=np.int64)
        y_pred = np.array([_INDEX[m.decision] for _, m in labelled], dtype=np.int64)
        names = [str(x) for x in DecisionLabel]
        cls = classification_report(y_true, y_pred, names) if labelled else None
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
        )

    def latencies_ms(self) -> list[float]:
        return [ms for _, _, ms in self.matched()]
