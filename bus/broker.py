"""Local Mosquitto helpers: is a broker there, and a private one for a block of code.

Used by ``ruledrive demo``, ``ruledrive bench node`` and the tests; the private broker has the
recommended settings (``set_tcp_nodelay true``: with Nagle's algorithm and delayed ACKs every
decision took ~40 ms longer on loopback).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bus.mqtt import parse_mqtt_url
from core.errors import BusError

__all__ = ["INSTALL_HINT", "broker_answers", "free_port", "mosquitto_binary", "private_mosquitto"]

INSTALL_HINT = (
    "install it with `sudo apt-get install mosquitto` (Debian/Ubuntu), or set "
    "RULEDRIVE_MQTT_URL to a running broker"
)


def broker_answers(url: str, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at the broker URL's host and port."""
    host, port, _ = parse_mqtt_url(url)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )


@contextmanager
def private_mosquitto() -> Iterator[str]:
    """A Mosquitto on a free loopback port for the duration of the block; yields its URL."""
    binary = mosquitto_binary()
    if binary is None:
        raise BusError(f"no MQTT broker answers and mosquitto is not installed: {INSTALL_HINT}")
    with tempfile.TemporaryDirectory(prefix="ruledrive-mosquitto-") as tmp:
        port = free_port()
        conf = Path(tmp) / "mosquitto.conf"
        # set_tcp_nodelay: without it Nagle + delayed ACKs add ~40 ms to every decision.
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\n"
            "persistence false\nlog_dest none\nset_tcp_nodelay true\n"
        )
        proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        url = f"mqtt://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 5
            while not broker_answers(url, 0.2):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise BusError(f"private mosquitto on port {port} did not start")
                time.sleep(0.05)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
