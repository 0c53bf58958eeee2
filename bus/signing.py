"""Signed rule sets: the canonical bytes, Ed25519 signing and verification, key files.

The rule authority signs the *canonical bytes* of a :class:`~bus.schema.RuleSet` with an Ed25519
private key and puts the signature (``signature_b64``) and the id of its key (``key_id``) in the
message; a node with trusted public keys verifies them (docs/contract.md, "Signed rule sets").

Canonical bytes (so that any language can sign): the JSON object of every RuleSet field except
``signature_b64`` and ``key_id``, defaults filled in (``expires_at_ns: null`` when absent), keys
sorted, no whitespace, integers as plain decimal digits, strings as UTF-8 with only ``"``, ``\\``
and control characters escaped (``\\b \\f \\n \\r \\t``, others ``\\u00xx``). ``key_id`` is the
first 16 hex digits of the SHA-256 of the raw 32-byte public key.

Key files are PEM: PKCS#8 for the private key, SubjectPublicKeyInfo for public keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bus.schema import RuleSet
from core.errors import ConfigError
from core.paths import read_regular_file

__all__ = [
    "MAX_KEY_FILE_BYTES",
    "MAX_TRUSTED_KEYS",
    "SIGNATURE_FIELDS",
    "EXAMPLE_SEED",
    "TrustedKeys",
    "canonical_bytes",
    "key_id",
    "load_private_key",
    "load_trusted_keys",
    "private_pem",
    "public_pem",
    "sign",
    "signing_example_markdown",
    "unverified_reason",
]

SIGNATURE_FIELDS = frozenset({"signature_b64", "key_id"})
MAX_KEY_FILE_BYTES = 64 * 1024  # a PEM Ed25519 key is ~120 bytes; anything near this is not one
MAX_TRUSTED_KEYS = 1024
PUBLIC_KEY_SUFFIXES = (".pem", ".pub")
# The key of the contract's worked example. Published, so it must never be trusted anywhere.
EXAMPLE_SEED = bytes(range(32))


def canonical_bytes(rules: RuleSet) -> bytes:
    """The bytes a rule set's signature covers (see the module docstring)."""
    body = rules.model_dump(mode="json", exclude=set(SIGNATURE_FIELDS))
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def key_id(public: Ed25519PublicKey) -> str:
    """The id a signature names its key by: SHA-256 of the raw public key, 16 hex digits."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(rules: RuleSet, private: Ed25519PrivateKey) -> RuleSet:
    """A copy of ``rules`` carrying the signature of its canonical bytes and the key's id."""
    signature = private.sign(canonical_bytes(rules))
    return rules.model_copy(
        update={
            "signature_b64": base64.b64encode(signature).decode("ascii"),
            "key_id": key_id(private.public_key()),
        }
    )


@dataclass(frozen=True)
class TrustedKeys:
    """The public keys a node takes signed rule sets from, by key id."""

    keys: dict[str, Ed25519PublicKey]
    source: str = ""

    def __len__(self) -> int:
        return len(self.keys)


def unverified_reason(rules: RuleSet, trusted: TrustedKeys) -> str | None:
    """Why ``rules`` is not signed by a trusted key (a one-line reason), or None if it is."""
    if rules.signature_b64 is None:
        return "unsigned (no signature_b64)"
    if rules.key_id is None:
        return "signed rule set without key_id"
    public = trusted.keys.get(rules.key_id)
    if public is None:
        return f"signed by key {rules.key_id!r}, which is not a trusted key"
    try:
        signature = base64.b64decode(rules.signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return "signature_b64 is not base64"
    if len(signature) != 64:
        return f"signature is {len(signature)} bytes, an Ed25519 signature has 64"
    try:
        public.verify(signature, canonical_bytes(rules))
    except InvalidSignature:
        return f"signature does not match the rule set (key {rules.key_id})"
    return None


# key files ------------------------------------------------------------------------------------


def _read_key_file(path: Path) -> bytes:
    return read_regular_file(path, MAX_KEY_FILE_BYTES, "key file")


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An unencrypted PEM (PKCS#8) Ed25519 private key; ConfigError naming the file otherwise."""
    data = _read_key_file(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        hint = " (this is a public key)" if b"PUBLIC KEY" in data else ""
        raise ConfigError(f"{path} is not an unencrypted PEM private key{hint}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    return key


def _load_public_key(path: Path) -> Ed25519PublicKey:
    data = _read_key_file(path)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        hint = " (this is a private key: trust its .pub)" if b"PRIVATE KEY" in data else ""
        raise ConfigError(f"{path} is not a PEM public key{hint}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
    return key


def load_trusted_keys(path: Path) -> TrustedKeys:
    """Public keys from a PEM file, or from every ``*.pem``/``*.pub`` file of a directory.

    ConfigError if the path is missing, a key file is not an Ed25519 public key, or a directory
    holds none (a node told to check signatures with no key would refuse every rule set).
    """
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in PUBLIC_KEY_SUFFIXES)
        if len(files) > MAX_TRUSTED_KEYS:
            raise ConfigError(f"{path}: {len(files)} key files, at most {MAX_TRUSTED_KEYS}")
    elif path.is_file():
        files = [path]
    else:
        raise ConfigError(f"trusted keys {path}: no such file or directory")
    keys = {}
    published = key_id(Ed25519PrivateKey.from_private_bytes(EXAMPLE_SEED).public_key())
    for file in files:
        public = _load_public_key(file)
        if key_id(public) == published:
            raise ConfigError(
                f"{file} is the public key of the contract's worked example, whose private key "
                "is published (docs/contract.md): anyone could sign rule sets it trusts"
            )
        keys[key_id(public)] = public
    if not keys:
        raise ConfigError(f"trusted keys {path}: no *.pem or *.pub public key in it")
    return TrustedKeys(keys, str(path))


def private_pem(private: Ed25519PrivateKey) -> bytes:
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# the contract's worked example -----------------------------------------------------------------


def signing_example_markdown() -> str:
    """The worked example docs/contract.md shows: a key, a rule set, its bytes, its signature."""
    private = Ed25519PrivateKey.from_private_bytes(EXAMPLE_SEED)
    public = private.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    example = RuleSet(
        vehicle_id="car-1",
        version="2026-11-29.3",
        issued_at_ns=1795980000000000001,
        rules=["School zone: 30 km/h", 'Überholverbot "A"/"B"'],
    )
    signed = sign(example, private)
    return "\n".join(
        [
            "Test key (published: never trust it): private seed (raw 32 bytes, hex)",
            f"`{EXAMPLE_SEED.hex()}`, public key (raw, hex) `{raw.hex()}`,",
            f"`key_id` `{signed.key_id}`.",
            "",
            "Canonical bytes of the example rule set (UTF-8, one line, no trailing newline):",
            "",
            "```",
            canonical_bytes(example).decode("utf-8"),
            "```",
            "",
            "The signed message:",
            "",
            "```json",
            signed.model_dump_json(indent=2),
            "```",
        ]
    )
