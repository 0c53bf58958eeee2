"""An in-memory bus with the MQTT bus's interface: wildcard filters and retained messages.

Delivery is synchronous on the publisher's thread, so a test that publishes then checks sees the
effect at once. ``lost()`` then ``connect()`` simulate a broken connection and its return (the
will is published, the disconnect and then the connect hooks run); while lost, every publish
raises BusError, whatever its QoS. A shared subscription (``$share/GROUP/FILTER``) gets each
matching message on one member of its group, round robin (Mosquitto's only strategy), and no
retained message (brokers differ there: Mosquitto 2.0 sends them; nothing may rely on it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from paho.mqtt.client import topic_matches_sub

from bus.base import ConnectHook, DisconnectHook, Handler, Will
from bus.topics import split_shared
from core.errors import BusError

__all__ = ["MemoryBus", "Recorder"]


class MemoryBus:
    """A broker and its client in one object; several nodes and clients may share one."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._subs: list[tuple[str, Handler]] = []
        # share group -> [(filter, handler)], and how many messages each group has been handed
        self._shared: dict[str, list[tuple[str, Handler]]] = {}
        self._turn: dict[str, int] = {}
        self._retained: dict[str, bytes] = {}
        self._hooks: list[ConnectHook] = []
        self._lost_hooks: list[DisconnectHook] = []
        self._will: Will | None = None
        self._connected = False
        self.published: list[tuple[str, bytes, int, bool]] = []

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def takeovers(self) -> int:
        return 0  # one process, no client ids

    @property
    def flaps(self) -> int:
        return 0

    def connect(self, will: Will | None = None) -> None:
        self._will = will
        self._connected = True
        for hook in list(self._hooks):
            hook()

    def close(self) -> None:
        self._connected = False
        self._will = None

    def lost(self) -> None:
        """Drop the connection as a crash would: the broker publishes the will."""
        will, self._will, self._connected = self._will, None, False
        if will is not None:
            self._deliver(will.topic, will.payload, will.retain)
        for hook in list(self._lost_hooks):
            hook()

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        if not self._connected:
            raise BusError(f"publish to {topic!r}: not connected")
        if "+" in topic or "#" in topic:
            raise BusError(f"publish to {topic!r}: wildcards are not allowed in a topic")
        self.published.append((topic, bytes(payload), qos, retain))
        self._deliver(topic, bytes(payload), retain)

    def _deliver(self, topic: str, payload: bytes, retain: bool) -> None:
        with self._lock:
            if retain:
                if payload:
                    self._retained[topic] = payload
                else:
                    self._retained.pop(topic, None)
            handlers = [h for pat, h in self._subs if topic_matches_sub(pat, topic)]
            for group, members in self._shared.items():
                matching = [h for pat, h in members if topic_matches_sub(pat, topic)]
                if matching:
                    turn = self._turn[group] = self._turn.get(group, -1) + 1
                    handlers.append(matching[turn % len(matching)])
        for handler in handlers:
            handler(topic, payload)

    def subscribe(self, pattern: str, handler: Handler, qos: int = 0) -> None:
        try:
            group, topic_filter = split_shared(pattern)
        except ValueError as exc:
            raise BusError(f"subscribe {pattern!r}: {exc}") from exc
        if group is not None:
            with self._lock:
                self._shared.setdefault(group, []).append((topic_filter, handler))
            return
        with self._lock:
            self._subs.append((pattern, handler))
            retained = [(t, p) for t, p in self._retained.items() if topic_matches_sub(pattern, t)]
        for topic, payload in retained:
            handler(topic, payload)

    def unsubscribe(self, pattern: str, handler: Handler) -> None:
        group, topic_filter = split_shared(pattern)
        with self._lock:
            if group is None:
                self._subs = [(p, h) for p, h in self._subs if (p, h) != (pattern, handler)]
            else:
                members = self._shared.get(group, [])
                members[:] = [(p, h) for p, h in members if (p, h) != (topic_filter, handler)]

    def add_connect_hook(self, hook: ConnectHook) -> None:
        self._hooks.append(hook)

    def add_disconnect_hook(self, hook: DisconnectHook) -> None:
        self._lost_hooks.append(hook)

    def retained(self, topic: str) -> bytes | None:
        with self._lock:
            return self._retained.get(topic)


class Recorder:
    """Collects messages from a subscription, with a wait helper (for tests and benchmarks)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()

    def __call__(self, topic: str, payload: bytes) -> None:
        with self._cond:
            self.messages.append((topic, payload))
            self._cond.notify_all()

    def wait_for(
        self, predicate: Callable[[list[tuple[str, bytes]]], bool], timeout: float = 5.0
    ) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.messages), timeout)

    def wait_count(self, n: int, timeout: float = 5.0) -> bool:
        return self.wait_for(lambda msgs: len(msgs) >= n, timeout)
