"""``ruledrive rules keygen | sign | verify | explain``: the rule authority's keys and signed rule
sets, and how the node reads a rule set.

A node given trusted keys (``RULEDRIVE_TRUSTED_KEYS``) takes only rule sets signed by one of them
(docs/contract.md, "Signed rule sets"). ``explain`` reads a rule set as the node would, with
the node's settings (``RULEDRIVE_*``), before it is published (policy.explain). Exit status: 0
done, 1 bad input or a signature that does not verify, 2 bad flags or a key file that is not
the right kind of key, 3 ``explain --strict`` with a rule the node would not act on as read.
"""

from __future__ import annotations

import argparse
import dataclasses
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

    explain = rsub.add_parser(
        "explain", help="how the node reads each rule of a rule set, before any frame"
    )
    explain.add_argument("ruleset", type=Path, nargs="?", help="RuleSet JSON file")
    explain.add_argument(
        "--text",
        action="append",
        default=[],
        metavar="RULE",
        help="a rule's text, instead of a file (repeat for a rule set of several)",
    )
    explain.add_argument(
        "--model",
        type=Path,
        default=None,
        help="ONNX model (default: the node's: RULEDRIVE_MODEL_PATH, else "
        "models/ruledrive-default.onnx); the other node settings come from RULEDRIVE_*",
    )
    explain.add_argument("--json", action="store_true", help="one JSON object per rule")
    explain.add_argument(
        "--strict",
        action="store_true",
        help="exit 3 unless the node acts on every rule as read (verdict 'understood')",
    )
    explain.set_defaults(func=_explain)


def read_rule_set(path: Path) -> RuleSet:
    """A RuleSet from a JSON file; DataError with a one-line reason otherwise."""
    from core.errors import DataError

    try:
        if path.stat().st_size > _MAX_RULESET_BYTES:
            raise DataError(f"{path}: larger than {_MAX_RULESET_BYTES} bytes, not a rule set")
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return _parse_rule_set(data, str(path))


def _parse_rule_set(data: bytes, source: str) -> RuleSet:
    """A RuleSet from its JSON bytes, checked as the node checks it; DataError naming
    ``source`` otherwise."""
    from pydantic import ValidationError

    from bus.codec import parse_payload
    from bus.topics import RULES
    from bus.validation import short_detail
    from core.errors import DataError, MessageError

    try:
        msg = RuleSet.model_validate_json(data)
    except ValidationError as exc:
        raise DataError(f"{source} is not a valid rule set: {short_detail(exc, 3)}") from exc
    try:  # what the node refuses is not signed either: a key given twice, say
        parse_payload(RULES, data)
    except MessageError as exc:
        raise DataError(f"{source} is not a valid rule set: {exc}") from exc
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


def _explain(args: argparse.Namespace) -> int:
    import json

    from core.errors import ConfigError
    from policy.explain import explain
    from policy.model import PolicyModel
    from policy.settings import load_settings

    if (args.ruleset is None) == (not args.text):
        raise ConfigError(
            "give a RuleSet JSON file or --text RULE (one or more), not both"
            if args.text
            else "give a RuleSet JSON file or --text RULE (one or more)"
        )
    if args.ruleset is not None:
        rules = read_rule_set(args.ruleset)
    else:  # the node's own checks of a rule set's texts (length, count, characters)
        body = {"vehicle_id": "explain", "version": "explain", "issued_at_ns": 0}
        rules = _parse_rule_set(json.dumps({**body, "rules": args.text}).encode(), "--text")
    settings = load_settings({"model_path": args.model, "providers": "cpu"})
    model = PolicyModel.load(
        settings.model_path,
        settings.providers,
        1,
        settings.encoder_dir,
        reading_threshold=settings.reading_check_threshold,
        neighbour_reading=settings.neighbour_reading,
    )
    readings = explain(model, tuple(rules.rules))
    for r in readings:
        if args.json:
            print(json.dumps(dataclasses.asdict(r), ensure_ascii=False))
            continue
        params = "".join(f" {k}={v}" for k, v in r.params.items())
        print(
            f"rule {r.index}  {r.verdict:<14} {r.read_as} {r.probability:.2f}{params}"
            f"  (runner-up {r.runner_up} {r.runner_up_probability:.2f})  {r.text!r}"
        )
        for why in r.why:
            print(f"        - {why}")
    if not args.json:
        print(f"model {model.version}; reading check threshold {model.reading_threshold:g}")
    if args.strict and any(r.verdict != "understood" for r in readings):
        return 3
    return 0
