"""Local Mosquitto helpers: is a broker there, and a private one for a block of code.

Used by ``ruledrive demo``, ``ruledrive bench node`` and the tests. Every broker started here
(and the one ``deploy/local-broker.sh`` starts) takes its settings from
``bus/mosquitto-local.conf``, which has the recommended ``set_tcp_nodelay true`` (with Nagle's
algorithm and delayed ACKs every decision took ~40 ms longer on loopback).
"""

from __future__ import annotations

import re
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

__all__ = [
    "INSTALL_HINT",
    "LOCAL_CONFIG",
    "MosquittoProcess",
    "broker_answers",
    "free_port",
    "local_config",
    "mosquitto_binary",
    "private_mosquitto",
]

INSTALL_HINT = (
    "install it with `sudo apt-get install mosquitto` (Debian/Ubuntu), or set "
    "RULEDRIVE_MQTT_URL to a running broker"
)
LOCAL_CONFIG = Path(__file__).with_name("mosquitto-local.conf")


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


def local_config(port: int, extra: str = "") -> str:
    """A loopback-only Mosquitto config on ``port``: bus/mosquitto-local.conf, quiet logs,
    then ``extra`` lines."""
    return f"listener {port} 127.0.0.1\n{LOCAL_CONFIG.read_text()}log_dest none\n" + (
        extra if not extra or extra.endswith("\n") else extra + "\n"
    )


class MosquittoProcess:
    """A mosquitto process on a free loopback port; ``stop()``/``kill()`` and ``start()`` keep
    the port.

    ``config`` replaces the local config with a whole one (e.g. deploy/mosquitto.conf with its
    file paths adapted): its first ``listener`` line is moved to the free port on loopback, and
    ``scheme`` (``mqtts`` for a TLS listener) makes ``url``."""

    def __init__(
        self,
        workdir: Path,
        extra_config: str = "",
        *,
        config: str | None = None,
        scheme: str = "mqtt",
    ) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise BusError(f"no MQTT broker answers and mosquitto is not installed: {INSTALL_HINT}")
        self.binary = binary
        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.config = workdir / f"mosquitto-{self.port}.conf"
        if config is None:
            text = local_config(self.port, extra_config)
        else:
            text, n = re.subn(
                r"^listener\s+\d+.*$",
                f"listener {self.port} 127.0.0.1",
                config,
                count=1,
                flags=re.M,
            )
            if n != 1:
                raise BusError("the broker config has no listener line")
            text += "\n" + extra_config
        self.config.write_text(text)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 5.0) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while not broker_answers(self.url, 0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise BusError(f"private mosquitto on port {self.port} did not start")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL, as a crash: no clean shutdown, no wills sent; ``start()`` brings it back."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@contextmanager
def private_mosquitto() -> Iterator[str]:
    """A Mosquitto on a free loopback port for the duration of the block; yields its URL."""
    with tempfile.TemporaryDirectory(prefix="ruledrive-mosquitto-") as tmp:
        broker = MosquittoProcess(Path(tmp))
        broker.start()
        try:
            yield broker.url
        finally:
            broker.stop()
