"""``ruledrive rules keygen | sign | verify``: the rule authority's keys and signed rule sets.

A node given trusted keys (``RULEDRIVE_TRUSTED_KEYS``) takes only rule sets signed by one of them
(docs/contract.md, "Signed rule sets"). Exit status: 0 done, 1 bad input or a signature that
does not verify, 2 bad flags or a key file that is not the right kind of key.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from bus.schema import RuleSet

__all__ = ["read_rule_set", "register"]

_MAX_RULESET_BYTES = 2 * 1024 * 1024  # the node's default max_payload_bytes


def register(sub: argparse._SubParsersAction) -> None:
    rules = sub.add_parser("rules", help="rule-authority keys; sign and verify rule sets")
    rsub = rules.add_subparsers(dest="rules_cmd", metavar="CMD", required=True)

    keygen = rsub.add_parser("keygen", help="make an Ed25519 key pair (NAME.key, NAME.pub)")
    keygen.add_argument("--out", type=Path, required=True, help="directory for the key files")
    keygen.add_argument("--name", default="rule-authority", help="file stem (default %(default)s)")
    keygen.set_defaults(func=_keygen)

    sign = rsub.add_parser("sign", help="sign a rule set (JSON) with a private key")
    sign.add_argument("ruleset", type=Path, help="RuleSet JSON file")
    sign.add_argument("--key", type=Path, required=True, help="PEM private key (keygen's .key)")
    sign.add_argument("--out", type=Path, help="write here (default: stdout)")
    sign.add_argument(
        "--now",
        action="store_true",
        help="set issued_at_ns to now before signing (nodes refuse rule sets not newer than "
        "the last one they took)",
    )
    sign.set_defaults(func=_sign)

    verify = rsub.add_parser("verify", help="check a rule set's signature against trusted keys")
    verify.add_argument("ruleset", type=Path, help="RuleSet JSON file")
    verify.add_argument(
        "--keys", type=Path, required=True, help="PEM public key, or a directory of *.pem/*.pub"
    )
    verify.set_defaults(func=_verify)


def read_rule_set(path: Path) -> RuleSet:
    """A RuleSet from a JSON file; DataError with a one-line reason otherwise."""
    from pydantic import ValidationError

    from bus.codec import parse_payload
    from bus.topics import RULES
    from bus.validation import short_detail
    from core.errors import DataError, MessageError

    try:
        if path.stat().st_size > _MAX_RULESET_BYTES:
            raise DataError(f"{path}: larger than {_MAX_RULESET_BYTES} bytes, not a rule set")
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        msg = RuleSet.model_validate_json(data)
    except ValidationError as exc:
        raise DataError(f"{path} is not a valid rule set: {short_detail(exc, 3)}") from exc
    try:  # what the node refuses is not signed either: a key given twice, say
        parse_payload(RULES, data)
    except MessageError as exc:
        raise DataError(f"{path} is not a valid rule set: {exc}") from exc
    return msg


def _keygen(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from bus.signing import key_id, private_pem, public_pem
    from core.errors import ConfigError

    if not args.name or "/" in args.name or args.name.startswith("."):
        raise ConfigError(f"--name {args.name!r}: a plain file stem, please")
    private = Ed25519PrivateKey.generate()
    key_path, pub_path = args.out / f"{args.name}.key", args.out / f"{args.name}.pub"
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        for path in (key_path, pub_path):
            if path.exists():
                raise ConfigError(f"{path} exists; not overwriting a key (move it away first)")
        # O_EXCL with mode 0600: the private key is never readable by others, not even briefly.
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(private_pem(private))
        pub_path.write_bytes(public_pem(private.public_key()))
    except OSError as exc:
        raise ConfigError(f"cannot write keys to {args.out}: {exc.strerror or exc}") from exc
    print(f"private key {key_path} (keep it secret; mode 0600)")
    print(f"public key  {pub_path} (give it to the nodes: RULEDRIVE_TRUSTED_KEYS)")
    print(f"key_id      {key_id(private.public_key())}")
    return 0


def _sign(args: argparse.Namespace) -> int:
    from bus.codec import encode
    from bus.signing import load_private_key, sign
    from core.errors import DataError
    from core.paths import check_not_an_input, check_output_file

    if args.out is not None:  # refused before reading anything, as every other output name
        check_output_file(args.out, "--out", create_parents=False)
        check_not_an_input(args.out, "--out", [args.key, args.ruleset])
    private = load_private_key(args.key)
    rules = read_rule_set(args.ruleset)
    if args.now:
        rules = rules.model_copy(update={"issued_at_ns": time.time_ns()})
    signed = sign(rules, private)
    payload = encode(signed) + b"\n"
    if args.out is None:
        sys.stdout.write(payload.decode())
    else:
        try:
            args.out.write_bytes(payload)
        except OSError as exc:
            raise DataError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
        print(f"signed {args.ruleset} with key {signed.key_id} -> {args.out}", file=sys.stderr)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from bus.signing import load_trusted_keys, unverified_reason

    trusted = load_trusted_keys(args.keys)
    rules = read_rule_set(args.ruleset)
    reason = unverified_reason(rules, trusted)
    if reason is not None:
        print(f"ruledrive: not verified: {args.ruleset}: {reason}", file=sys.stderr)
        return 1
    print(f"verified: {args.ruleset} signed by trusted key {rules.key_id}")
    return 0
