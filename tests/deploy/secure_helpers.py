"""A private Mosquitto running THE shipped secure config (deploy/mosquitto.conf) with credentials
made by ``ruledrive credentials init`` into a temporary directory, and logins from its files."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bus.broker import MosquittoProcess
from bus.mqtt import MqttBus
from ruledrive.cli import main as cli_main
from tests.conftest import MOSQUITTO
from tests.markers import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
CONTAINER_SECRETS = "/mosquitto/secrets/"
VEHICLES = ("car-1", "car-2")
NODES = ("node-1", "node-2")


def make_credentials(out: Path, *extra: str) -> Path:
    """``ruledrive credentials init`` with the test's vehicles and nodes; returns ``out``."""
    argv = ["credentials", "init", str(out), "--vehicles", ",".join(VEHICLES)]
    argv += ["--nodes", ",".join(NODES), "--replay-vehicles", "4", "--demo", *extra]
    assert cli_main(argv) == 0
    return out


def secure_config(secrets: Path) -> str:
    """deploy/mosquitto.conf with the container's secret paths pointing at ``secrets/broker``."""
    text = (ROOT / "deploy/mosquitto.conf").read_text()
    assert CONTAINER_SECRETS in text
    text = text.replace(CONTAINER_SECRETS, f"{secrets / 'broker'}/")
    text = text.replace("log_dest stdout", "log_dest none")
    if os.geteuid() == 0:
        # Mosquitto 2 reads these files after dropping root for the `mosquitto` user, which
        # cannot enter pytest's 0700 directories (in compose the entrypoint copies them for it).
        text += "\nuser root\n"
    return text


@contextmanager
def secure_broker(workdir: Path, secrets: Path) -> Iterator[MosquittoProcess]:
    if MOSQUITTO is None:
        skip_or_fail("mosquitto binary not found (apt-get install mosquitto)")
    broker = MosquittoProcess(workdir, config=secure_config(secrets), scheme="mqtts")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def env_of(secrets: Path, user: str) -> dict[str, str]:
    """A user's env file as a dict (what `set -a; . FILE` would export)."""
    pairs = {}
    for line in (secrets / "env" / f"{user}.env").read_text().splitlines():
        key, _, value = line.partition("=")
        pairs[key] = shlex.split(value)[0]
    return pairs


def password(secrets: Path, user: str) -> str:
    return env_of(secrets, user)["RULEDRIVE_MQTT_PASSWORD"]


def login_bus(url: str, secrets: Path, user: str | None, **kw: object) -> MqttBus:
    """An MqttBus logged in as ``user`` (None: anonymous) over TLS with the generated CA."""
    return MqttBus(
        url,
        username=user,
        password=password(secrets, user) if user else None,
        tls_ca=str(secrets / "ca.crt"),
        connect_timeout_s=5.0,
        **kw,  # type: ignore[arg-type]
    )
