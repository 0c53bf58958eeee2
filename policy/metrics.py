"""Prometheus metrics of the node; the status heartbeat's counters are read from them.

Each node has its own CollectorRegistry, so several nodes (tests) can live in one process. The
registry is the only tally: :meth:`NodeMetrics.counters` reads it back into the flat
``{"decisions": n, "dropped.conflated": n, ...}`` form of ``NodeStatus.counters``.
"""

from __future__ import annotations

import logging
import socket
import threading
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bus.schema import DecisionMsg
from core.errors import ConfigError

__all__ = ["NodeMetrics"]

log = logging.getLogger(__name__)

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
        """Serve /metrics on ``host:port``; a port in use or not allowed stops start-up.

        prometheus_client's own server (start_http_server) keeps a connection that sends half
        a request open for ever, one thread and one file descriptor each: 1,000 of them held
        1,006 threads and, under a 1,024-file limit, left the node unable to save a rule-set
        mark. This one closes a connection idle for METRICS_IDLE_S and serves at most
        METRICS_CONNECTIONS at once (more are closed at once: a scraper retries)."""
        from wsgiref.simple_server import make_server

        from prometheus_client import make_wsgi_app

        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            server_class = type("_Server", (_MetricsServer,), {"address_family": family})
            httpd: WSGIServer = make_server(
                host, port, make_wsgi_app(self.registry), server_class, _MetricsHandler
            )
        except OSError as exc:
            raise ConfigError(f"metrics port {port} on {host}: {exc.strerror or exc}") from exc
        threading.Thread(target=httpd.serve_forever, name="metrics", daemon=True).start()


METRICS_IDLE_S = 5.0  # a metrics connection silent this long is closed
METRICS_CONNECTIONS = 32  # metrics connections served at once


class _MetricsHandler(WSGIRequestHandler):
    timeout = METRICS_IDLE_S  # socketserver.StreamRequestHandler sets it on the connection

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing (a scrape every few seconds)."""


class _MetricsServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(METRICS_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # full: closed at once
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out or went away: no traceback on stderr for each (the base
        prints one), a debug line."""
        log.debug("metrics connection from %s ended badly", client_address, exc_info=True)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)  # type: ignore[misc]
        finally:
            self._slots.release()


def _totals(metric: Counter | Histogram, suffix: str = "_total") -> dict[str, float]:
    """A metric's samples ending in ``suffix``, by the value of its (only) label ("" if none)."""
    return {
        next(iter(sample.labels.values()), ""): sample.value
        for family in metric.collect()
        for sample in family.samples
        if sample.name.endswith(suffix)
    }
