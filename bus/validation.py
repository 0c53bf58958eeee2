"""Turn pydantic validation failures into the contract's stable reject codes."""

from __future__ import annotations

from pydantic import ValidationError

from core.rejects import RejectCode

__all__ = ["error_code", "short_detail"]


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
