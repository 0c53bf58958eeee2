"""Prometheus metrics of the node; the status heartbeat's counters are read from them.

Each node has its own CollectorRegistry, so several nodes (tests) can live in one process. The
registry is the only tally: :meth:`NodeMetrics.counters` reads it back into the flat
``{"decisions": n, "dropped.conflated": n, ...}`` form of ``NodeStatus.counters``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from bus.schema import DecisionMsg
from core.errors import ConfigError

__all__ = ["NodeMetrics"]

_MS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 200, 500, 1000)


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.decisions = Counter("ruledrive_decisions", "Decisions", ["decision"], registry=r)
        self.fallbacks = Counter("ruledrive_fallbacks", "Fallbacks", ["reason"], registry=r)
        self.drops = Counter("ruledrive_frames_dropped", "Frames dropped", ["cause"], registry=r)
        self.rejects = Counter("ruledrive_rejects", "Rejected messages", ["code"], registry=r)
        self.publish_errors = Counter("ruledrive_publish_errors", "Failed publishes", registry=r)
        self.reloads = Counter("ruledrive_model_reloads", "Model reloads", ["result"], registry=r)
        self.batch_size = Histogram(
            "ruledrive_batch_size",
            "Frames per session.run",
            registry=r,
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32, 64),
        )
        self.total_ms = Histogram(
            "ruledrive_node_total_ms", "Arrival -> decision", buckets=_MS, registry=r
        )
        self.inference_ms = Histogram(
            "ruledrive_inference_ms", "session.run per batch", buckets=_MS, registry=r
        )
        self.decode_ms = Histogram(
            "ruledrive_decode_ms", "JPEG decode + resize", buckets=_MS, registry=r
        )
        self.queue_ms = Histogram(
            "ruledrive_queue_ms", "Arrival -> processing", buckets=_MS, registry=r
        )
        self.frame_age_ms = Histogram(
            "ruledrive_frame_age_ms", "Capture -> arrival", buckets=_MS, registry=r
        )
        self.vehicles = Gauge(
            "ruledrive_vehicles_with_rules", "Vehicles with a rule set", registry=r
        )
        self.events = Counter(
            "ruledrive_node_events", "Frames and rule sets taken in", ["event"], registry=r
        )

    def count(self, key: str, n: int = 1) -> None:
        """Count an event without a metric of its own (``frames``, ``rules``, ...).

        ``publish_errors`` and ``reloads.*`` have their own counters: increment those instead.
        """
        self.events.labels(key).inc(n)

    def counters(self) -> dict[str, int]:
        """The heartbeat's counters, read from the registry; keys with a zero count are left out."""
        out: dict[str, float] = {
            "decisions": sum(_totals(self.decisions).values()),
            "rejected": sum(_totals(self.rejects).values()),
            "batches": _totals(self.batch_size, "_count").get("", 0.0),
            "publish_errors": _totals(self.publish_errors).get("", 0.0),
        }
        for prefix, metric in (
            ("fallback", self.fallbacks),
            ("dropped", self.drops),
            ("rejected", self.rejects),
            ("reloads", self.reloads),
        ):
            out.update({f"{prefix}.{k}": v for k, v in _totals(metric).items()})
        out.update(_totals(self.events))
        return {k: int(v) for k, v in sorted(out.items()) if v}

    def reject(self, code: str) -> None:
        self.rejects.labels(code).inc()

    def drop(self, cause: str) -> None:
        self.drops.labels(cause).inc()

    def batch(self, size: int, inference_ms: float) -> None:
        self.batch_size.observe(size)
        self.inference_ms.observe(inference_ms)

    def decided(self, msg: DecisionMsg) -> None:
        self.decisions.labels(str(msg.decision)).inc()
        t = msg.timings
        self.total_ms.observe(t.total_ms)
        self.queue_ms.observe(t.queue_ms)
        self.frame_age_ms.observe(max(0.0, t.frame_age_ms))
        if t.decode_ms:
            self.decode_ms.observe(t.decode_ms)
        if msg.reason is not None:
            self.fallbacks.labels(msg.reason).inc()

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serve /metrics on ``host:port``; a port in use or not allowed stops start-up."""
        try:
            start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise ConfigError(f"metrics port {port} on {host}: {exc.strerror or exc}") from exc


def _totals(metric: Counter | Histogram, suffix: str = "_total") -> dict[str, float]:
    """A metric's samples ending in ``suffix``, by the value of its (only) label ("" if none)."""
    return {
        next(iter(sample.labels.values()), ""): sample.value
        for family in metric.collect()
        for sample in family.samples
        if sample.name.endswith(suffix)
    }
