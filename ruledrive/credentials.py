"""Credentials of the secure deployment: users, their rights (the Mosquitto ACL), random
passwords, Mosquitto's password file, and the files ``ruledrive credentials init`` writes.

Who may do what (topics under the prefix, default ``ruledrive/v1``; docs/contract.md "Security
model" is the reader's version):

* a vehicle (username = its id): publish ``vehicles/ID/camera/front``; read its own
  ``decision`` and ``rules`` and ``nodes/+/status``;
* a node (``node-*``): read ``vehicles/+/camera/front`` and ``vehicles/+/rules``; publish
  ``vehicles/+/decision`` and its own ``nodes/ID/status`` and ``nodes/ID/errors``;
* ``rule-authority``: the only writer of ``vehicles/+/rules``;
* ``recorder``: read everything under the prefix, publish nothing;
* ``replay``: acts for the simulated vehicles ``replay-000``... only (frames, rules, labels;
  their decisions; ``nodes/+/status``);
* ``demo`` (opt-in): anything under ``ruledrive/demo``, nothing else;
* ``health``: read ``$SYS/broker/uptime`` (the compose health check).

Every grant names its user (no ``pattern`` lines: those would apply to every user), so a user
has exactly the rights listed here. Mosquitto ACLs cannot match usernames by a prefix, so each
node gets its own lines.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import shlex
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bus.schema import VEHICLE_ID_PATTERN
from bus.topics import (
    CAMERA,
    DECISION,
    DEFAULT_PREFIX,
    ERRORS,
    LABEL,
    RULES,
    STATUS,
)
from bus.topics import (
    check_prefix as check_topic_prefix,
)
from core.errors import ConfigError

__all__ = [
    "DEMO_PREFIX",
    "RESERVED",
    "User",
    "acl_text",
    "build_users",
    "check_prefix",
    "env_text",
    "hash_password",
    "new_password",
    "passwd_file",
    "write_secret",
]

DEMO_PREFIX = "ruledrive/demo"
RULE_AUTHORITY, RECORDER, REPLAY, DEMO, HEALTH = (
    "rule-authority",
    "recorder",
    "replay",
    "demo",
    "health",
)
RESERVED = (RULE_AUTHORITY, RECORDER, REPLAY, DEMO, HEALTH)
NODE_PREFIX, REPLAY_VEHICLE_PREFIX = "node-", "replay-"
_ID = re.compile(VEHICLE_ID_PATTERN)


@dataclass(frozen=True)
class User:
    """One broker login: its name, role and ACL grants ((access, topic filter) pairs)."""

    name: str
    role: str
    grants: tuple[tuple[str, str], ...]


def _check_ids(kind: str, ids: Sequence[str]) -> None:
    for i in ids:
        if not _ID.fullmatch(i):  # `$` alone lets "car\n..." into the ACL file
            raise ConfigError(f"--{kind}: {i!r} is not a valid id ({VEHICLE_ID_PATTERN})")
        if i in RESERVED:
            raise ConfigError(f"--{kind}: {i!r} is reserved for a role ({', '.join(RESERVED)})")
    dupes = sorted({i for i in ids if list(ids).count(i) > 1})
    if dupes:
        raise ConfigError(f"--{kind}: {', '.join(dupes)} listed twice")


def check_prefix(prefix: str) -> None:
    """ConfigError unless the node accepts ``prefix`` as its RULEDRIVE_TOPIC_PREFIX: a wildcard
    in it would make every ACL line grant far more than it names (``a/#/vehicles/...``)."""
    try:
        check_topic_prefix(prefix)
    except ValueError as exc:
        raise ConfigError(f"--prefix {prefix!r}: {exc}") from exc


def build_users(
    vehicles: Sequence[str],
    nodes: Sequence[str],
    *,
    prefix: str = DEFAULT_PREFIX,
    replay_vehicles: int = 32,
    demo: bool = False,
) -> list[User]:
    """Every user of the deployment with its grants; ConfigError on a bad or clashing id, or a
    topic prefix the node would refuse."""
    check_prefix(prefix)
    _check_ids("vehicles", vehicles)
    _check_ids("nodes", nodes)
    for n in nodes:
        if not n.startswith(NODE_PREFIX):
            raise ConfigError(f"--nodes: {n!r} must start with {NODE_PREFIX!r}")
    for v in vehicles:
        if v.startswith((NODE_PREFIX, REPLAY_VEHICLE_PREFIX)):
            raise ConfigError(
                f"--vehicles: {v!r}: ids starting {NODE_PREFIX!r} are nodes and ids starting "
                f"{REPLAY_VEHICLE_PREFIX!r} belong to the replay user"
            )
    if not 0 <= replay_vehicles <= 1000:
        raise ConfigError("--replay-vehicles must be between 0 and 1000")

    users = [
        User(
            v,
            "vehicle",
            (
                ("write", CAMERA.topic(prefix, vehicle_id=v)),
                ("read", DECISION.topic(prefix, vehicle_id=v)),
                ("read", RULES.topic(prefix, vehicle_id=v)),
                ("read", STATUS.subscription(prefix)),
            ),
        )
        for v in vehicles
    ]
    users += [
        User(
            n,
            "node",
            (
                ("read", CAMERA.subscription(prefix)),
                ("read", RULES.subscription(prefix)),
                ("write", DECISION.subscription(prefix)),
                ("readwrite", STATUS.topic(prefix, node_id=n)),
                ("write", ERRORS.topic(prefix, node_id=n)),
            ),
        )
        for n in nodes
    ]
    users.append(
        User(RULE_AUTHORITY, "rule-authority", (("readwrite", RULES.subscription(prefix)),))
    )
    users.append(User(RECORDER, "recorder", (("read", f"{prefix}/#"),)))
    replay: list[tuple[str, str]] = [("read", STATUS.subscription(prefix))]
    for k in range(replay_vehicles):
        vid = f"{REPLAY_VEHICLE_PREFIX}{k:03d}"
        replay += [
            ("write", CAMERA.topic(prefix, vehicle_id=vid)),
            ("readwrite", RULES.topic(prefix, vehicle_id=vid)),
            ("write", LABEL.topic(prefix, vehicle_id=vid)),
            ("read", DECISION.topic(prefix, vehicle_id=vid)),
        ]
    users.append(User(REPLAY, "replay", tuple(replay)))
    if demo:
        users.append(User(DEMO, "demo", (("readwrite", f"{DEMO_PREFIX}/#"),)))
    users.append(User(HEALTH, "health", (("read", "$SYS/broker/uptime"),)))
    return users


def acl_text(users: Iterable[User]) -> str:
    """Mosquitto's acl_file: one ``user`` block per login; anything not listed is denied."""
    lines = [
        "# Mosquitto ACL written by `ruledrive credentials init`: regenerate, do not edit.",
        "# Everything not granted here is denied (publishes dropped, subscriptions get nothing).",
    ]
    for u in users:
        lines += ["", f"# {u.role}", f"user {u.name}"]
        lines += [f"topic {access} {topic}" for access, topic in u.grants]
    return "\n".join(lines) + "\n"


def new_password() -> str:
    """32 random URL-safe characters (192 bits): safe in env files and shells unquoted."""
    return secrets.token_urlsafe(24)


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = 101) -> str:
    """Mosquitto 2's PBKDF2-SHA512 hash (``$7$ITERATIONS$SALT$HASH``, base64), as
    ``mosquitto_passwd`` writes it; used only when that tool is not installed."""
    salt = secrets.token_bytes(12) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def passwd_file(path: Path, logins: dict[str, str], *, tool: str | None = "auto") -> str:
    """Write Mosquitto's password file for ``logins`` (user -> password), mode 0600.

    With ``mosquitto_passwd`` installed (``tool="auto"``) the plain file is written first and
    hashed in place by ``mosquitto_passwd -U`` (no password on a command line); otherwise the
    same PBKDF2-SHA512 hashes are computed here. Returns which was used."""
    binary = shutil.which("mosquitto_passwd") if tool == "auto" else tool
    if binary:
        write_secret(path, "".join(f"{u}:{p}\n" for u, p in logins.items()))
        try:
            subprocess.run(
                [binary, "-U", str(path)], check=True, capture_output=True, text=True, timeout=60
            )
        except (OSError, subprocess.SubprocessError) as exc:
            path.unlink(missing_ok=True)  # never leave the plain passwords behind
            detail = getattr(exc, "stderr", "") or exc
            raise ConfigError(f"mosquitto_passwd -U {path} failed: {detail}") from exc
        os.chmod(path, 0o600)
        return "mosquitto_passwd"
    write_secret(path, "".join(f"{u}:{hash_password(p)}\n" for u, p in logins.items()))
    return "hashlib"


def env_text(username: str, password: str, url: str, ca: Path) -> str:
    """A user's env file: the four settings every command reads (ruledrive.mqtt_login)."""
    pairs = {
        "RULEDRIVE_MQTT_URL": url,
        "RULEDRIVE_MQTT_USERNAME": username,
        "RULEDRIVE_MQTT_PASSWORD": password,
        "RULEDRIVE_TLS_CA": str(ca),
    }
    return "".join(f"{k}={shlex.quote(v)}\n" for k, v in pairs.items())


def write_secret(path: Path, data: str | bytes, mode: int = 0o600) -> None:
    """Write ``path`` created with ``mode`` (never briefly world-readable), replacing it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), mode)  # whatever the umask
        f.write(data.encode() if isinstance(data, str) else data)
