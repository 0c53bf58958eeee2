"""Shared fixtures: the shared broker (127.0.0.1:1883) and private Mosquitto brokers.

Tests that stop/restart a broker or need their own config start a PRIVATE mosquitto on a free
loopback port with a temp config; the shared broker is never touched.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.broker import broker_answers, free_port

# The marker checks are hooks: importing them here registers them for the whole suite.
from tests.markers import (  # noqa: F401
    pytest_collection_modifyitems,
    pytest_runtest_call,
    skip_or_fail,
)

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
)
SHARED_HOST, SHARED_PORT = "127.0.0.1", 1883


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    return broker_answers(f"mqtt://{host}:{port}", timeout)


@pytest.fixture
def broker_url() -> str:
    """The shared broker; skip if nothing listens on 127.0.0.1:1883 (fail in CI)."""
    if not port_open(SHARED_HOST, SHARED_PORT):
        skip_or_fail(f"no MQTT broker listening on {SHARED_HOST}:{SHARED_PORT}")
    return f"mqtt://{SHARED_HOST}:{SHARED_PORT}"


class PrivateBroker:
    """A mosquitto process on a free loopback port; stop() and start() keep the port."""

    def __init__(self, workdir: Path, extra_config: str = "") -> None:
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.config = workdir / f"mosquitto-{self.port}.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            f"log_dest none\n{extra_config}"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert MOSQUITTO is not None
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while not port_open("127.0.0.1", self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"private mosquitto on port {self.port} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    """A started private broker, stopped at teardown; skip if mosquitto is missing (fail in CI)."""
    if MOSQUITTO is None:
        skip_or_fail("mosquitto binary not found (apt-get install mosquitto)")
    broker = PrivateBroker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
