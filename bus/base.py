"""The bus interface shared by the MQTT client and the in-memory bus.

A node, publisher or test written against :class:`Bus` runs unchanged on either. Handlers are
called on the bus's delivery thread (paho's network thread for MQTT): they must only validate and
enqueue, never run inference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Bus", "ConnectHook", "DisconnectHook", "Handler", "Will"]

Handler = Callable[[str, bytes], None]  # (topic, payload)
ConnectHook = Callable[[], None]
DisconnectHook = Callable[[], None]


@dataclass(frozen=True)
class Will:
    """Last will: published by the broker when the client vanishes without a clean disconnect."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@runtime_checkable
class Bus(Protocol):
    def connect(self, will: Will | None = None) -> None:
        """Connect (and keep reconnecting); raises BusError if the first connect fails."""

    def close(self) -> None:
        """Disconnect cleanly (the will is not published)."""

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """Publish; raises BusError if the message cannot be queued (it is lost: e.g. QoS 0
        while disconnected; the MQTT bus holds QoS 1/2 messages until it is back)."""

    def subscribe(self, pattern: str, handler: Handler, qos: int = 0) -> None:
        """Deliver messages matching an MQTT filter (``+``/``#``), retained ones first."""

    def unsubscribe(self, pattern: str, handler: Handler) -> None:
        """Stop delivering ``pattern`` to ``handler``. Returns once no more of its messages can
        come: what the broker sent before still reaches ``handler``, nothing after (the MQTT bus
        waits, bounded, for the broker's acknowledgement)."""

    def add_connect_hook(self, hook: ConnectHook) -> None:
        """Call ``hook`` after every (re)connect, after subscriptions are restored."""

    def add_disconnect_hook(self, hook: DisconnectHook) -> None:
        """Call ``hook`` when the connection is lost (not after ``close()``); the bus keeps
        reconnecting and calls the connect hooks when it is back."""

    @property
    def connected(self) -> bool: ...

    @property
    def takeovers(self) -> int:
        """How often another connection took this client's id (0 where ids cannot clash)."""
        ...

    @property
    def flaps(self) -> int:
        """How often a connection was lost soon after it was made (0 where it cannot be)."""
        ...
