"""Shared fixtures: the shared broker (127.0.0.1:1883) and private Mosquitto brokers.

Tests that stop/restart a broker or need their own config start a PRIVATE mosquitto on a free
loopback port (bus.broker.MosquittoProcess, the settings of bus/mosquitto-local.conf); the shared
broker is never touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.broker import MosquittoProcess, broker_answers, free_port, mosquitto_binary

# The marker checks are hooks: importing them here registers them for the whole suite.
from tests.markers import (  # noqa: F401
    pytest_collection_modifyitems,
    pytest_runtest_call,
    skip_or_fail,
)

__all__ = ["MOSQUITTO", "PrivateBroker", "free_port", "port_open"]

MOSQUITTO = mosquitto_binary()
SHARED_HOST, SHARED_PORT = "127.0.0.1", 1883
PrivateBroker = MosquittoProcess


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    return broker_answers(f"mqtt://{host}:{port}", timeout)


@pytest.fixture
def broker_url() -> str:
    """The shared broker; skip if nothing listens on 127.0.0.1:1883 (fail in CI)."""
    if not port_open(SHARED_HOST, SHARED_PORT):
        skip_or_fail(f"no MQTT broker listening on {SHARED_HOST}:{SHARED_PORT}")
    return f"mqtt://{SHARED_HOST}:{SHARED_PORT}"


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    """A started private broker, stopped at teardown; skip if mosquitto is missing (fail in CI)."""
    if MOSQUITTO is None:
        skip_or_fail("mosquitto binary not found (apt-get install mosquitto)")
    broker = MosquittoProcess(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
