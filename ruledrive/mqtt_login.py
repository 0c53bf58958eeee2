"""How every command that talks to the broker is told where it is and who it is.

One set of settings, the same names as the node's (policy.settings.NodeSettings), so ``serve``,
``record``, ``replay`` and ``demo`` connect the same way to the secure broker:

* ``--mqtt-url`` / ``RULEDRIVE_MQTT_URL``: ``mqtt://host:1883`` or ``mqtts://host:8883`` (TLS);
* ``--mqtt-username`` / ``RULEDRIVE_MQTT_USERNAME``: the identity; the client id is the username;
* ``RULEDRIVE_MQTT_PASSWORD``: environment only, so it never shows in ``ps``;
* ``--tls-ca`` / ``RULEDRIVE_TLS_CA``: the CA that signed the broker's certificate
  (``ruledrive credentials init`` writes it as ``DIR/ca.crt``; default: the system CAs).

``ruledrive credentials init`` writes ``DIR/env/USER.env`` with all four for each user
(``set -a; . deploy/secrets/env/recorder.env; set +a``).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bus.mqtt import check_username, parse_mqtt_url
from core.defaults import DEFAULT_MQTT_URL
from core.errors import ConfigError

__all__ = ["PASSWORD_ENV", "MqttLogin", "add_broker_flags", "login_from_args"]

PASSWORD_ENV = "RULEDRIVE_MQTT_PASSWORD"


@dataclass(frozen=True)
class MqttLogin:
    """Where the broker is and who this command is; ``bus()`` builds the MqttBus."""

    url: str = DEFAULT_MQTT_URL
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_ca: str | None = None

    @property
    def authenticated(self) -> bool:
        return self.username is not None

    def check(self) -> MqttLogin:
        """ConfigError if the settings contradict each other (checked before connecting)."""
        _, _, tls = parse_mqtt_url(self.url)
        if self.tls_ca is not None:
            if not tls:
                raise ConfigError(
                    f"--tls-ca / RULEDRIVE_TLS_CA is set but the broker URL {self.url!r} is not "
                    "mqtts://"
                )
            if not Path(self.tls_ca).is_file():
                raise ConfigError(f"--tls-ca / RULEDRIVE_TLS_CA {self.tls_ca}: no such file")
        if self.password is not None and self.username is None:
            raise ConfigError(f"{PASSWORD_ENV} is set without --mqtt-username")
        if self.username is not None:
            check_username(self.username)
        return self

    def bus_kwargs(self) -> dict[str, Any]:
        return {"username": self.username, "password": self.password, "tls_ca": self.tls_ca}

    def bus(self, client_id: str = "", **kw: Any) -> Any:
        """An MqttBus for this login; with a username the client id is the username."""
        from bus.mqtt import MqttBus

        return MqttBus(self.url, client_id=client_id, **self.bus_kwargs(), **kw)


def add_broker_flags(p: argparse.ArgumentParser, environ: Mapping[str, str] | None = None) -> None:
    """``--mqtt-url``, ``--mqtt-username``, ``--tls-ca`` with RULEDRIVE_* env defaults."""
    env = os.environ if environ is None else environ
    p.add_argument(
        "--mqtt-url",
        default=env.get("RULEDRIVE_MQTT_URL", DEFAULT_MQTT_URL),
        help="broker, mqtt://host:1883 or mqtts://host:8883 (default $RULEDRIVE_MQTT_URL or "
        "%(default)s)",
    )
    p.add_argument(
        "--mqtt-username",
        default=env.get("RULEDRIVE_MQTT_USERNAME") or None,
        metavar="USER",
        help="broker identity, also the client id; the password is read from "
        f"${PASSWORD_ENV} only (default $RULEDRIVE_MQTT_USERNAME)",
    )
    p.add_argument(
        "--tls-ca",
        default=env.get("RULEDRIVE_TLS_CA") or None,
        metavar="FILE",
        help="CA certificate of the broker for mqtts:// (default $RULEDRIVE_TLS_CA, else the "
        "system CAs)",
    )


def login_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> MqttLogin:
    """The checked login of a command: flags, then the password from the environment."""
    env = os.environ if environ is None else environ
    return MqttLogin(
        url=args.mqtt_url,
        username=args.mqtt_username,
        password=env.get(PASSWORD_ENV) or None,
        tls_ca=args.tls_ca,
    ).check()
