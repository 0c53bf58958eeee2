"""``ruledrive credentials`` (no broker): what it writes, with which modes, what it refuses, and
that it prints no secret; the one login every command builds (ruledrive.mqtt_login)."""

from __future__ import annotations

import argparse
import ipaddress
import json
import shutil
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509

from bus.mqtt import MqttBus
from core.errors import ConfigError
from ruledrive.cli import main
from ruledrive.credentials import acl_text, build_users, hash_password
from ruledrive.mqtt_login import MqttLogin, add_broker_flags, login_from_args


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("c") / "secrets"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["credentials", "init", str(out), "--vehicles", "car-1", "--nodes", "node-1"])
    assert rc == 0
    return out, buf.getvalue()


def _password(out: Path, user: str) -> str:
    line = next(
        ln for ln in (out / f"env/{user}.env").read_text().splitlines() if "PASSWORD=" in ln
    )
    return line.split("=", 1)[1]


def test_writes_every_file_with_private_modes_and_prints_no_secret(
    made: tuple[Path, str],
) -> None:
    out, printed = made
    users = json.loads((out / "users.json").read_text())["users"]
    assert users == {
        "car-1": "vehicle",
        "node-1": "node",
        "rule-authority": "rule-authority",
        "recorder": "recorder",
        "replay": "replay",
        "health": "health",
    }
    secret = ["ca.key", "broker/server.key", "broker/passwd", "broker/acl"]
    secret += ["broker/health.password"] + [f"env/{u}.env" for u in users if u != "health"]
    for name in secret:
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
    for d in (out, out / "broker", out / "env"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    passwords = {u: _password(out, u) for u in users if u != "health"}
    assert len(set(passwords.values())) == len(passwords)
    assert all(len(p) >= 32 for p in passwords.values())
    for p in passwords.values():
        assert p not in printed
        assert p not in (out / "broker/passwd").read_text()  # hashed, never plain
    assert "node-1" in printed and str(out / "env/node-1.env") in printed


def test_server_certificate_verifies_against_the_ca_for_every_host(
    made: tuple[Path, str],
) -> None:
    out, _ = made
    ca = x509.load_pem_x509_certificate((out / "ca.crt").read_bytes())
    cert = x509.load_pem_x509_certificate((out / "broker/server.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {"mosquitto", "localhost"}
    assert set(sans.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # The clients' TLS stack loads the CA file as it is written.
    ssl.create_default_context(cafile=str(out / "ca.crt"))


def test_password_command_prints_one_password(
    made: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = made
    assert main(["credentials", "password", str(out), "recorder"]) == 0
    assert capsys.readouterr().out == _password(out, "recorder") + "\n"
    assert main(["credentials", "password", str(out), "nobody"]) == 2
    assert "no credentials for 'nobody'" in capsys.readouterr().err


def test_refuses_to_overwrite_without_force(
    made: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "copy"
    shutil.copytree(made[0], out)
    before = _password(out, "recorder")
    assert main(["credentials", "init", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert _password(out, "recorder") == before
    assert main(["credentials", "init", str(out), "--force"]) == 0
    assert _password(out, "recorder") != before
    assert not (out / "env/car-1.env").exists()  # no longer listed: its login is gone


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--vehicles", "car 1"], "not a valid id"),
        (["--vehicles", "car-1\n"], "not a valid id"),  # a regex's `$` matches before a newline
        (["--vehicles", "recorder"], "reserved"),
        (["--vehicles", "node-7"], "are nodes"),
        (["--vehicles", "replay-000"], "replay user"),
        (["--nodes", "gpu-1"], "must start with 'node-'"),
        (["--vehicles", "car-1,car-1"], "listed twice"),
        (["--hosts", "bad host"], "not a host name"),
        (["--hosts", ""], "names no host"),  # was: the default names, silently
        (["--hosts", " , "], "names no host"),
        (["--url", "mqtts://[::1"], "Invalid IPv6 URL"),
        (["--url", "http://x"], "must look like"),
    ],
)
def test_bad_input_is_a_configuration_error(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["credentials", "init", str(tmp_path / "s"), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s/ca.key").exists()


def test_acl_grants_only_what_each_role_needs() -> None:
    text = acl_text(build_users(["car-1"], ["node-1"], replay_vehicles=1))
    blocks = {b.split("\n")[1]: b for b in text.split("\n\n")[1:]}
    assert blocks["user car-1"].splitlines()[2:] == [
        "topic write ruledrive/v1/vehicles/car-1/camera/front",
        "topic read ruledrive/v1/vehicles/car-1/decision",
        "topic read ruledrive/v1/vehicles/car-1/rules",
        "topic read ruledrive/v1/nodes/+/status",
    ]
    assert "topic readwrite ruledrive/v1/vehicles/+/rules" in blocks["user rule-authority"]
    assert "rules" not in blocks["user node-1"].replace(
        "topic read ruledrive/v1/vehicles/+/rules", ""
    )
    assert "pattern" not in text  # a pattern line would grant every user
    assert "replay-001" not in blocks["user replay"]


def test_hash_is_mosquittos_pbkdf2_sha512_format() -> None:
    # Known answer: PBKDF2-HMAC-SHA512("secret", salt 12 x 0x01, 101 rounds), base64.
    h = hash_password("secret", salt=b"\x01" * 12)
    kind, rounds, salt, digest = h.split("$")[1:]
    assert (kind, rounds, salt) == ("7", "101", "AQEBAQEBAQEBAQEB")
    import base64
    import hashlib

    assert base64.b64decode(digest) == hashlib.pbkdf2_hmac("sha512", b"secret", b"\x01" * 12, 101)


def _args(argv: list[str], env: dict[str, str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_broker_flags(p, env)
    return p.parse_args(argv)


def test_login_reads_env_and_flags_and_keeps_the_password_out_of_flags() -> None:
    env = {
        "RULEDRIVE_MQTT_URL": "mqtts://b:8883",
        "RULEDRIVE_MQTT_USERNAME": "recorder",
        "RULEDRIVE_MQTT_PASSWORD": "pw",
    }
    login = login_from_args(_args([], env), env)
    assert login == MqttLogin("mqtts://b:8883", "recorder", "pw", None)
    assert "pw" not in repr(login)
    flagged = login_from_args(_args(["--mqtt-username", "replay"], env), env)
    assert flagged.username == "replay"
    with pytest.raises(SystemExit):
        _args(["--mqtt-password", "x"], {})
    with pytest.raises(ConfigError, match="without --mqtt-username"):
        login_from_args(
            _args([], {"RULEDRIVE_MQTT_PASSWORD": "pw"}), {"RULEDRIVE_MQTT_PASSWORD": "pw"}
        )
    with pytest.raises(ConfigError, match="not mqtts"):
        login_from_args(_args(["--tls-ca", __file__], {}), {})
    with pytest.raises(ConfigError, match="no such file"):
        login_from_args(_args(["--mqtt-url", "mqtts://b", "--tls-ca", "/nope.crt"], {}), {})


def test_bus_client_id_is_the_username() -> None:
    assert MqttBus("mqtt://127.0.0.1:1", client_id="x", username="car-1").client_id == "car-1"
    assert MqttBus("mqtt://127.0.0.1:1", client_id="x").client_id == "x"
    with pytest.raises(ConfigError, match="not mqtts"):
        MqttBus("mqtt://127.0.0.1:1", tls_ca=__file__)
    with pytest.raises(ConfigError, match="without a username"):
        MqttBus("mqtt://127.0.0.1:1", password="pw")


# -- a refused or failed init leaves nothing behind -----------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--hosts", "bad host!"], "not a host name"),
        (["--days", "1000000000"], "--days must be a whole number within 1..36500"),
        (["--ca-days", "40000"], "--ca-days must be a whole number within 1..36500"),
        (["--days", "2000"], "would outlive its CA (--ca-days 1825)"),
        (["--days", "30", "--ca-days", "29"], "would outlive its CA"),
        (["--prefix", "a/#"], "--prefix 'a/#': topic prefix must be"),
        (["--prefix", "a/+/b"], "--prefix 'a/+/b'"),
        (["--prefix", ""], "--prefix ''"),
    ],
)
def test_a_refused_init_creates_nothing_and_a_rerun_works(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "new" / "s"
    assert main(["credentials", "init", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("ruledrive: configuration error:") == 1, err
    assert message in err
    assert list(tmp_path.iterdir()) == []
    assert main(["credentials", "init", str(out)]) == 0


@pytest.mark.parametrize("failure", [ConfigError("mosquitto_passwd -U failed"), KeyboardInterrupt])
def test_a_failure_after_creation_removes_only_what_the_run_made(
    failure: BaseException | type[BaseException], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ruledrive.credentials

    def broken(*args: object, **kwargs: object) -> str:
        raise failure

    monkeypatch.setattr(ruledrive.credentials, "passwd_file", broken)
    rc = 130 if failure is KeyboardInterrupt else 2
    fresh = tmp_path / "fresh" / "s"
    assert main(["credentials", "init", str(fresh)]) == rc
    assert list(tmp_path.iterdir()) == []  # not even the parent it created
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "README").write_text("mine")
    assert main(["credentials", "init", str(kept)]) == rc
    assert [p.name for p in kept.iterdir()] == ["README"]
    monkeypatch.undo()
    assert main(["credentials", "init", str(kept)]) == 0


def test_certificates_refuse_impossible_lifetimes() -> None:
    from ruledrive.certs import issue_server_cert, make_ca

    with pytest.raises(ConfigError, match="within 1..36500"):
        make_ca(days=1_000_000_000)
    key, ca = make_ca(days=10)
    with pytest.raises(ConfigError, match="outlive its CA"):
        issue_server_cert(key, ca, ["localhost"], days=11)
    _, cert = issue_server_cert(key, ca, ["localhost"], days=10)
    assert cert.not_valid_after_utc <= ca.not_valid_after_utc
