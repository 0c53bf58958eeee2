"""Signed rule sets: the canonical bytes as the contract defines them, sign/verify, key files."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bus.codec import parse_incoming
from bus.schema import RuleSet
from bus.signing import (
    canonical_bytes,
    key_id,
    load_private_key,
    load_trusted_keys,
    private_pem,
    public_pem,
    sign,
    unverified_reason,
)
from bus.topics import RULES
from core.errors import ConfigError

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "contract.md"


def _rules(**kw: object) -> RuleSet:
    base: dict = {
        "vehicle_id": "car-1",
        "version": "v1",
        "issued_at_ns": 1795980000000000001,
        "rules": ["Stop at the red light"],
    }
    return RuleSet(**{**base, **kw})


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def trusted(tmp_path: Path, key: Ed25519PrivateKey):
    (tmp_path / "authority.pub").write_bytes(public_pem(key.public_key()))
    return load_trusted_keys(tmp_path / "authority.pub")


def test_canonical_bytes_follow_the_documented_rules() -> None:
    # Written out by hand from docs/contract.md ("Canonical bytes"), not with json.dumps: sorted
    # keys, no whitespace, defaults present, big integers in full, UTF-8 as itself, only quote,
    # backslash and control characters escaped, signature fields left out.
    r = _rules(
        version="ü/2",
        rules=['a "b" \\ c', "tab\there\x01 ✓"],
        signature_b64="AAAA",
        key_id="k",
    )
    expected = (
        '{"expires_at_ns":null,"issued_at_ns":1795980000000000001,'
        '"rules":["a \\"b\\" \\\\ c","tab\\there\\u0001 ✓"],'
        '"schema_version":1,"vehicle_id":"car-1","version":"ü/2"}'
    ).encode()
    assert canonical_bytes(r) == expected


def test_key_order_and_whitespace_of_the_sent_json_do_not_matter(key: Ed25519PrivateKey) -> None:
    signed = sign(_rules(), key)
    loose = (
        f'{{ "rules": ["Stop at the red light"], "key_id": "{signed.key_id}", "version": "v1",\n'
        f'  "signature_b64": "{signed.signature_b64}", "vehicle_id": "car-1",'
        '  "issued_at_ns": 1795980000000000001 }'
    )
    parsed = parse_incoming(RULES.topic(vehicle_id="car-1"), loose.encode()).message
    assert isinstance(parsed, RuleSet)
    assert canonical_bytes(parsed) == canonical_bytes(signed)


def test_signed_rule_set_verifies_and_every_change_breaks_it(
    key: Ed25519PrivateKey, trusted
) -> None:
    signed = sign(_rules(), key)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert signed.key_id == hashlib.sha256(raw).hexdigest()[:16]
    assert len(signed.signature_b64 or "") == 88
    assert unverified_reason(signed, trusted) is None
    for change in (
        {"rules": ["Proceed through the red light"]},
        {"version": "v2"},
        {"issued_at_ns": signed.issued_at_ns + 1},
        {"expires_at_ns": 1},
        {"vehicle_id": "car-2"},
    ):
        reason = unverified_reason(signed.model_copy(update=change), trusted)
        assert reason is not None and "does not match" in reason, change


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"signature_b64": None, "key_id": None}, "unsigned"),
        ({"key_id": None}, "without key_id"),
        ({"key_id": "0123456789abcdef"}, "not a trusted key"),
        ({"signature_b64": "not base64!"}, "not base64"),
        ({"signature_b64": base64.b64encode(b"x" * 10).decode()}, "10 bytes"),
    ],
)
def test_unverified_reasons(key: Ed25519PrivateKey, trusted, change: dict, says: str) -> None:
    bad = sign(_rules(), key).model_copy(update=change)
    reason = unverified_reason(bad, trusted)
    assert reason is not None and says in reason


def test_a_signature_by_another_key_under_a_trusted_key_id_fails(
    key: Ed25519PrivateKey, trusted
) -> None:
    forged = sign(_rules(), Ed25519PrivateKey.generate()).model_copy(
        update={"key_id": key_id(key.public_key())}
    )
    assert "does not match" in (unverified_reason(forged, trusted) or "")


def test_unsigned_and_signed_messages_are_both_valid_on_the_bus(key: Ed25519PrivateKey) -> None:
    topic = RULES.topic(vehicle_id="car-1")
    plain = b'{"vehicle_id":"car-1","version":"v1","issued_at_ns":1,"rules":["Stop"]}'
    assert parse_incoming(topic, plain).message == RuleSet.model_validate_json(plain)
    signed = sign(RuleSet.model_validate_json(plain), key)
    assert parse_incoming(topic, signed.model_dump_json().encode()).message == signed


def test_the_contract_example_verifies_with_its_published_key() -> None:
    text = CONTRACT.read_text()
    block = text[text.index("<!-- generated: bus.signing.example -->") :]
    public_hex = re.search(r"public key \(raw, hex\) `([0-9a-f]{64})`", block)
    canonical = re.search(r"```\n(\{.*\})\n```", block)
    signed_json = re.search(r"```json\n(.*?)\n```", block, re.DOTALL)
    assert public_hex and canonical and signed_json
    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex.group(1)))
    signed = RuleSet.model_validate_json(signed_json.group(1))
    public.verify(base64.b64decode(signed.signature_b64 or ""), canonical.group(1).encode())
    assert canonical_bytes(signed) == canonical.group(1).encode()


# key files --------------------------------------------------------------------------------------


def test_trusted_keys_from_a_directory_by_key_id(tmp_path: Path) -> None:
    keys = [Ed25519PrivateKey.generate() for _ in range(2)]
    (tmp_path / "a.pem").write_bytes(public_pem(keys[0].public_key()))
    (tmp_path / "b.pub").write_bytes(public_pem(keys[1].public_key()))
    (tmp_path / "notes.txt").write_text("ignored")
    trusted = load_trusted_keys(tmp_path)
    assert set(trusted.keys) == {key_id(k.public_key()) for k in keys}
    for k in keys:
        assert unverified_reason(sign(_rules(), k), trusted) is None


def test_a_pipe_or_a_device_among_the_trusted_keys_is_refused_without_hanging(
    tmp_path: Path,
) -> None:
    import os

    from bus.signing import load_trusted_keys

    good = Ed25519PrivateKey.generate()
    (tmp_path / "a.pub").write_bytes(public_pem(good.public_key()))
    os.mkfifo(tmp_path / "z.pub")  # reading it would block for ever
    with pytest.raises(ConfigError, match="z.pub is not a regular file"):
        load_trusted_keys(tmp_path)
    (tmp_path / "z.pub").unlink()
    (tmp_path / "z.pem").symlink_to("/dev/zero")  # reading it would fill the memory
    with pytest.raises(ConfigError, match="z.pem is not a regular file"):
        load_trusted_keys(tmp_path)


def test_the_published_example_key_is_never_trusted(tmp_path: Path) -> None:
    """docs/contract.md's worked example publishes its private key (its seed): a node told to
    trust its public key would take rule sets signed by anyone."""
    from bus.signing import EXAMPLE_SEED, load_trusted_keys

    example = Ed25519PrivateKey.from_private_bytes(EXAMPLE_SEED)
    (tmp_path / "example.pub").write_bytes(public_pem(example.public_key()))
    with pytest.raises(ConfigError, match="worked example, whose private key is published"):
        load_trusted_keys(tmp_path / "example.pub")
    with pytest.raises(ConfigError, match="worked example"):
        load_trusted_keys(tmp_path)


def test_bad_key_files_are_config_errors_naming_the_file(tmp_path: Path) -> None:
    private = Ed25519PrivateKey.generate()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "ed.key").write_bytes(private_pem(private))
    (tmp_path / "ed.pub").write_bytes(public_pem(private.public_key()))
    (tmp_path / "rsa.key").write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "rsa.pub").write_bytes(
        rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (tmp_path / "junk.pem").write_text("junk")
    assert isinstance(load_private_key(tmp_path / "ed.key"), Ed25519PrivateKey)
    cases = [
        (load_private_key, "ed.pub", "this is a public key"),
        (load_private_key, "rsa.key", "not an Ed25519 private key"),
        (load_private_key, "missing.key", "cannot read"),
        (load_trusted_keys, "ed.key", "this is a private key"),
        (load_trusted_keys, "rsa.pub", "not an Ed25519 public key"),
        (load_trusted_keys, "junk.pem", "is not a PEM public key"),
        (load_trusted_keys, "missing", "no such file or directory"),
    ]
    for load, name, says in cases:
        with pytest.raises(ConfigError) as exc:
            load(tmp_path / name)
        assert says in str(exc.value) and name in str(exc.value), (name, str(exc.value))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no \\*.pem or \\*.pub"):
        load_trusted_keys(empty)
    with pytest.raises(ConfigError, match="junk.pem is not a PEM public key"):
        load_trusted_keys(tmp_path)  # one bad key file in the directory stops start-up
