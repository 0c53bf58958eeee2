"""Turn pydantic validation failures into the contract's stable reject codes."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from core.errors import MessageError
from core.rejects import RejectCode

__all__ = ["error_code", "json_hint", "no_duplicate_keys", "short_detail"]


def error_code(exc: ValidationError, default: RejectCode = RejectCode.BAD_SCHEMA) -> RejectCode:
    """Stable reason code for a failed validation (reported in ErrorReport.code)."""
    errs = exc.errors(include_url=False)
    if any(e["type"] == "json_invalid" or e["type"] == "json_type" for e in errs):
        return RejectCode.BAD_JSON
    if any(e["loc"][:1] == ("schema_version",) for e in errs):
        return RejectCode.UNSUPPORTED_SCHEMA_VERSION
    if any(e["loc"][:1] == ("vehicle_id",) for e in errs):
        return RejectCode.BAD_VEHICLE_ID
    return default


def short_detail(exc: ValidationError, limit: int = 5) -> str:
    errs = exc.errors(include_url=False)
    parts = (f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in errs[:limit])
    return "; ".join(parts)


def json_hint(raw: bytes) -> str:
    """What is wrong with ``raw`` when a JSON parser's own words ("expected value at line 1
    column 1") would not say it: a byte-order mark, NUL bytes, UTF-16. "" otherwise."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return " (it starts with a UTF-8 byte-order mark: send the JSON without one)"
    if raw.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return " (it starts with a UTF-32 byte-order mark: JSON on the bus is UTF-8)"
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return " (it starts with a UTF-16 byte-order mark: JSON on the bus is UTF-8)"
    if raw and not raw.strip(b"\x00"):
        return f" (the payload is {len(raw)} NUL byte{'s' if len(raw) > 1 else ''})"
    if b"\x00" in raw[:2]:
        return " (NUL bytes among its first characters: UTF-16 or binary, not UTF-8 JSON)"
    return ""


def no_duplicate_keys(raw: bytes) -> None:
    """MessageError (bad_json) if a JSON object in ``raw`` names a key twice. Pydantic keeps the
    last value and other parsers the first, so such a message would mean two things (a signed
    rule set with a second "rules"). Call it after validation, which bounds the nesting."""
    try:
        json.loads(raw, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:  # MessageError is neither
        raise MessageError(RejectCode.BAD_JSON, f"not valid JSON: {str(exc)[:120]}") from exc


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        twice = next(k for i, (k, _) in enumerate(pairs) if k in dict(pairs[:i]))
        raise MessageError(RejectCode.BAD_JSON, f"key {twice[:80]!r} appears twice")
    return out
