"""``ruledrive credentials``: create what the secure broker and its clients need.

``ruledrive credentials init DIR --vehicles car-1,car-2 --nodes node-1,node-2`` writes::

    DIR/ca.crt              the CA certificate: every client's RULEDRIVE_TLS_CA
    DIR/ca.key              the CA's private key (0600): move it offline after init
    DIR/broker/             what the broker mounts (deploy/mosquitto.conf):
        ca.crt server.crt   the broker's certificate, for the --hosts names
        server.key passwd   its key; Mosquitto's password file (PBKDF2-SHA512 hashes)
        acl                 who may publish and read what (ruledrive.credentials)
        health.password     the compose health check's login
    DIR/env/USER.env        per user: RULEDRIVE_MQTT_URL, _USERNAME, _PASSWORD, RULEDRIVE_TLS_CA
    DIR/users.json          users and roles, no secrets

Every secret file is created 0600 and its directory 0700. Passwords are random and printed only
by ``ruledrive credentials password DIR USER``. An existing DIR is replaced only with ``--force``
(then every password and certificate is new: clients need the new env files and CA).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bus.topics import DEFAULT_PREFIX
from core.errors import ConfigError
from ruledrive.argtypes import positive_int

if TYPE_CHECKING:
    from ruledrive.credentials import User

__all__ = ["DEFAULT_HOSTS", "DEFAULT_NODES", "init_credentials", "register"]

DEFAULT_NODES = "node-1,node-2"
DEFAULT_HOSTS = "mosquitto,localhost,127.0.0.1,::1"
DEFAULT_URL = "mqtts://localhost:8883"
_GENERATED = ("ca.crt", "ca.key", "broker", "env", "users.json")


def _ids(text: str) -> list[str]:
    # Spaces after commas only: a newline or tab in an id is refused as part of it, not dropped.
    return [i.strip(" ") for i in text.split(",") if i.strip(" ")]


def _hosts(text: str) -> list[str]:
    """``--hosts``: an empty list is an error, not the defaults (a certificate for no name
    would be one for names the user did not ask for)."""
    hosts = _ids(text)
    if not hosts:
        raise ConfigError(f"--hosts {text!r} names no host; give e.g. --hosts {DEFAULT_HOSTS}")
    return hosts


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "credentials",
        help="create the CA, broker certificate, passwords and ACL of the secure deployment",
    )
    csub = p.add_subparsers(dest="credentials", metavar="ACTION", required=True)
    i = csub.add_parser(
        "init",
        help="write DIR (e.g. deploy/secrets) for `docker compose up`",
        description=(__doc__ or "").split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    i.add_argument("dir", type=Path, metavar="DIR")
    i.add_argument("--vehicles", default="", help="vehicle ids, comma-separated (their usernames)")
    i.add_argument(
        "--nodes", default=DEFAULT_NODES, help="node ids, each starting node- (default %(default)s)"
    )
    i.add_argument(
        "--replay-vehicles",
        type=int,
        default=32,
        metavar="N",
        help="the replay user acts for replay-000 .. replay-(N-1) (default %(default)s)",
    )
    i.add_argument(
        "--demo", action="store_true", help="also a `demo` user, confined to ruledrive/demo"
    )
    i.add_argument(
        "--prefix",
        default=DEFAULT_PREFIX,
        help="topic prefix, as the nodes' RULEDRIVE_TOPIC_PREFIX: '/'-separated levels without "
        "wildcards (default %(default)s)",
    )
    i.add_argument(
        "--hosts",
        default=DEFAULT_HOSTS,
        help="names and addresses clients reach the broker by, for its certificate "
        "(default %(default)s)",
    )
    i.add_argument(
        "--url",
        default=DEFAULT_URL,
        help="broker URL written into the env files, for clients on this host "
        "(default %(default)s)",
    )
    i.add_argument(
        "--days",
        type=positive_int,
        default=397,
        help="server certificate lifetime in days, 1..36500 and at most --ca-days "
        "(default %(default)s)",
    )
    i.add_argument(
        "--ca-days",
        type=positive_int,
        default=1825,
        help="CA certificate lifetime in days, 1..36500 (default %(default)s)",
    )
    i.add_argument("--force", action="store_true", help="replace the credentials in DIR")
    i.set_defaults(func=_init)
    w = csub.add_parser("password", help="print one user's password (it is a secret)")
    w.add_argument("dir", type=Path, metavar="DIR")
    w.add_argument("user")
    w.set_defaults(func=_password)


def init_credentials(
    out: Path,
    vehicles: list[str],
    nodes: list[str],
    *,
    prefix: str = DEFAULT_PREFIX,
    replay_vehicles: int = 32,
    demo: bool = False,
    hosts: list[str] | None = None,
    url: str = DEFAULT_URL,
    days: int = 397,
    ca_days: int = 1825,
    force: bool = False,
) -> dict[str, Any]:
    """Write the credentials into ``out``; returns the summary ``users.json`` holds."""
    from bus.mqtt import parse_mqtt_url
    from ruledrive.certs import (
        cert_pem,
        check_lifetimes,
        issue_server_cert,
        key_pem,
        make_ca,
        subject_alt_names,
    )
    from ruledrive.credentials import acl_text, build_users, new_password

    # Every flag is checked before anything is made: a refused run leaves DIR as it was.
    parse_mqtt_url(url)
    users = build_users(vehicles, nodes, prefix=prefix, replay_vehicles=replay_vehicles, demo=demo)
    hosts = hosts or _ids(DEFAULT_HOSTS)
    subject_alt_names(hosts)
    check_lifetimes(days, ca_days)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a directory")
    held = [name for name in _GENERATED if (out / name).exists()]
    if held and not force:  # so that everything of _GENERATED in DIR is this run's
        raise ConfigError(
            f"{out} already holds credentials ({', '.join(held)}); pass --force to replace them "
            "all (new CA and passwords: every client needs its new env file)"
        )
    ca_key, ca_cert = make_ca(days=ca_days)
    server_key, server_cert = issue_server_cert(ca_key, ca_cert, hosts, days=days)
    files: dict[str, tuple[bytes | str, int]] = {
        "ca.key": (key_pem(ca_key), 0o600),
        "ca.crt": (cert_pem(ca_cert), 0o644),
        "broker/ca.crt": (cert_pem(ca_cert), 0o644),
        "broker/server.crt": (cert_pem(server_cert), 0o644),
        "broker/server.key": (key_pem(server_key), 0o600),
        "broker/acl": (acl_text(users), 0o600),
    }
    passwords = {u.name: new_password() for u in users}

    # The first directory this run creates (None: DIR is there): removed whole on a failure.
    top: Path | None = None
    for d in (out, *out.parents):
        if d.exists():
            break
        top = d
    try:
        return _write_credentials(out, users, files, passwords, hosts, url, prefix, force)
    except BaseException as exc:  # KeyboardInterrupt too: no half-written DIR stays behind
        if top is not None:
            shutil.rmtree(top, ignore_errors=True)
        else:
            for name in _GENERATED:
                _remove(out / name)
        if isinstance(exc, OSError):
            raise ConfigError(f"cannot write the credentials to {out}: {exc}") from exc
        raise


def _write_credentials(
    out: Path,
    users: list[User],
    files: dict[str, tuple[bytes | str, int]],
    passwords: dict[str, str],
    hosts: list[str],
    url: str,
    prefix: str,
    force: bool,
) -> dict[str, Any]:
    """Make DIR's files from what ``init_credentials`` made and checked; the caller undoes a
    failure."""
    from ruledrive.credentials import HEALTH, env_text, passwd_file, write_secret

    if force:
        for name in _GENERATED:
            _remove(out / name)
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o700)
    for sub in ("broker", "env"):
        (out / sub).mkdir(mode=0o700)
    out = out.resolve()
    for name, (data, mode) in files.items():
        write_secret(out / name, data, mode)
    hashed_by = passwd_file(out / "broker/passwd", passwords)
    write_secret(out / "broker/health.password", passwords[HEALTH])
    for u in users:
        if u.name != HEALTH:
            write_secret(
                out / f"env/{u.name}.env", env_text(u.name, passwords[u.name], url, out / "ca.crt")
            )
    summary: dict[str, Any] = {
        "prefix": prefix,
        "hosts": hosts,
        "url": url,
        "hashed_by": hashed_by,
        "users": {u.name: u.role for u in users},
    }
    write_secret(out / "users.json", json.dumps(summary, indent=1) + "\n", 0o644)
    return summary


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _init(args: argparse.Namespace) -> int:
    summary = init_credentials(
        args.dir,
        _ids(args.vehicles),
        _ids(args.nodes),
        prefix=args.prefix,
        replay_vehicles=args.replay_vehicles,
        demo=args.demo,
        hosts=_hosts(args.hosts),
        url=args.url,
        days=args.days,
        ca_days=args.ca_days,
        force=args.force,
    )
    print(f"credentials written to {args.dir} (no secret printed; files 0600):")
    print(f"  CA for clients:  {args.dir / 'ca.crt'}   (keep {args.dir / 'ca.key'} offline)")
    print(f"  broker files:    {args.dir / 'broker'}/   (deploy/mosquitto.conf, docker compose)")
    for name, role in summary["users"].items():
        if role != "health":
            print(f"  {role:<15} {name:<16} {args.dir / 'env' / (name + '.env')}")
    print(f"  host names in the broker certificate: {', '.join(summary['hosts'])}")
    return 0


def _password(args: argparse.Namespace) -> int:
    env = args.dir / "env" / f"{args.user}.env"
    try:
        lines = env.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"no credentials for {args.user!r} in {args.dir}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{env}: not a credentials file written by this command ({exc})") from exc
    for line in lines:
        key, _, value = line.partition("=")
        if key == "RULEDRIVE_MQTT_PASSWORD":
            try:
                password = shlex.split(value)[0]
            except (ValueError, IndexError) as exc:  # unbalanced quotes, an empty value
                msg = f"{env}: RULEDRIVE_MQTT_PASSWORD is not readable ({exc})"
                raise ConfigError(msg) from exc
            sys.stdout.write(password + "\n")
            return 0
    raise ConfigError(f"{env} has no RULEDRIVE_MQTT_PASSWORD")
