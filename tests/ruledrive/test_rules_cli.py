"""``ruledrive rules keygen | sign | verify``: a round trip, and bad input ending in one line."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bus.schema import RuleSet
from ruledrive.cli import main

ROOT = Path(__file__).resolve().parents[2]
RULESET = {"vehicle_id": "car-1", "version": "v1", "issued_at_ns": 5, "rules": ["Stop"]}


def one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "keys"
    assert main(["rules", "keygen", "--out", str(out)]) == 0
    capsys.readouterr()
    return out


@pytest.fixture
def ruleset(tmp_path: Path) -> Path:
    path = tmp_path / "rs.json"
    path.write_text(json.dumps(RULESET))
    return path


def test_keygen_sign_verify_round_trip(
    keys: Path, ruleset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = keys / "rule-authority.key", keys / "rule-authority.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"PUBLIC KEY" in public.read_bytes()
    signed = tmp_path / "signed.json"
    before = time.time_ns()
    argv = ["rules", "sign", str(ruleset), "--key", str(private), "--out", str(signed), "--now"]
    assert main(argv) == 0
    msg = RuleSet.model_validate_json(signed.read_bytes())
    assert msg.signature_b64 and msg.key_id and msg.issued_at_ns >= before
    assert msg.rules == ["Stop"]
    capsys.readouterr()
    assert main(["rules", "verify", str(signed), "--keys", str(keys)]) == 0
    assert msg.key_id in capsys.readouterr().out
    # Stdout signing gives the same kind of message; without --now the time is kept.
    assert main(["rules", "sign", str(ruleset), "--key", str(private)]) == 0
    assert RuleSet.model_validate_json(capsys.readouterr().out).issued_at_ns == 5


def test_verify_refuses_unsigned_tampered_and_unknown_key(
    keys: Path, ruleset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signed = tmp_path / "signed.json"
    assert main(["rules", "sign", str(ruleset), "--key", str(keys / "rule-authority.key"),
                 "--out", str(signed)]) == 0  # fmt: skip
    tampered = tmp_path / "tampered.json"
    tampered.write_text(signed.read_text().replace('"Stop"', '"Proceed"'))
    other = tmp_path / "other"
    assert main(["rules", "keygen", "--out", str(other)]) == 0
    capsys.readouterr()
    for path, keydir, says in (
        (ruleset, keys, "unsigned"),
        (tampered, keys, "does not match"),
        (signed, other, "not a trusted key"),
    ):
        assert main(["rules", "verify", str(path), "--keys", str(keydir)]) == 1
        assert says in one_line(capsys.readouterr().err)


def test_bad_input_ends_in_one_line(
    keys: Path, ruleset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rsa_key = tmp_path / "rsa.key"
    rsa_key.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "wrong.json").write_text(json.dumps({**RULESET, "rules": "Stop"}))
    private, public = str(keys / "rule-authority.key"), str(keys / "rule-authority.pub")
    cases = [
        (["sign", str(tmp_path / "missing.json"), "--key", private], 1, "cannot read"),
        (["sign", str(tmp_path / "bad.json"), "--key", private], 1, "Invalid JSON"),
        (["sign", str(tmp_path / "wrong.json"), "--key", private], 1, "not a valid rule set"),
        (["sign", str(ruleset), "--key", public], 2, "this is a public key"),
        (["sign", str(ruleset), "--key", str(rsa_key)], 2, "not an Ed25519 private key"),
        (["sign", str(ruleset), "--key", str(tmp_path / "none.key")], 2, "cannot read"),
        (
            ["sign", str(ruleset), "--key", private, "--out", str(tmp_path / "no" / "x.json")],
            2,
            "no directory",
        ),
        (["sign", str(ruleset), "--key", private, "--out", str(tmp_path)], 2, "is a directory"),
        (["verify", str(ruleset), "--keys", private], 2, "this is a private key"),
        (["keygen", "--out", str(keys)], 2, "not overwriting"),
        (["keygen", "--out", str(keys), "--name", "../x"], 2, "plain file stem"),
    ]
    for argv, rc, says in cases:
        assert main(["rules", *argv]) == rc, argv
        line = one_line(capsys.readouterr().err)
        assert line.startswith("ruledrive") and says in line, (argv, line)


def test_the_command_runs_as_a_process(keys: Path, ruleset: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ruledrive.cli", "rules", "sign", str(ruleset), "--key",
         str(keys / "rule-authority.pub")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "public key" in one_line(proc.stderr)
