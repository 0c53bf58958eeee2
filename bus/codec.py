"""Encode outgoing messages and parse + validate incoming payloads against the registry.

This is the whole parse/validate path of the node: size limit, topic, envelope or JSON, schema
version, field types, and that the ids in the topic match the ids in the payload. Every failure is
a :class:`MessageError` with a stable ``code`` (see docs/contract.md, "Reject codes").
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from bus.envelope import unpack_frame
from bus.topics import DEFAULT_PREFIX, Topic, match_topic
from bus.validation import error_code, json_hint, no_duplicate_keys, short_detail
from core.errors import MessageError
from core.rejects import RejectCode

__all__ = ["DEFAULT_MAX_PAYLOAD_BYTES", "Incoming", "encode", "parse_incoming", "parse_payload"]

DEFAULT_MAX_PAYLOAD_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class Incoming:
    """One validated message: registry entry, topic ids, payload model, raw JPEG for frames."""

    topic: Topic
    ids: dict[str, str]
    message: BaseModel | None  # None = empty retained payload (a cleared retained topic)
    jpeg: bytes = b""


def encode(msg: BaseModel) -> bytes:
    """JSON bytes of a message (frames use bus.envelope.pack_frame instead)."""
    return msg.model_dump_json().encode()


def parse_payload(entry: Topic, payload: bytes) -> tuple[BaseModel, bytes]:
    """Validate a payload for one registry entry; returns (model, jpeg bytes or b"")."""
    if entry.encoding == "envelope":
        header, jpeg = unpack_frame(payload)
        return header, jpeg
    try:
        message = entry.model.model_validate_json(payload)
    except ValidationError as exc:
        code = error_code(exc)
        hint = json_hint(payload) if code == RejectCode.BAD_JSON else ""
        raise MessageError(code, short_detail(exc) + hint) from exc
    no_duplicate_keys(payload)
    return message, b""


def parse_incoming(
    topic: str,
    payload: bytes,
    prefix: str = DEFAULT_PREFIX,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
) -> Incoming:
    """Check size and topic, validate the payload, and check topic ids against payload ids."""
    if len(payload) > max_payload_bytes:
        raise MessageError(
            RejectCode.PAYLOAD_TOO_LARGE, f"{len(payload)} bytes, limit {max_payload_bytes}"
        )
    entry, ids = match_topic(topic, prefix)
    if not payload and entry.retain:
        return Incoming(entry, ids, None)
    if not payload:
        raise MessageError(RejectCode.EMPTY_PAYLOAD, "payload is empty")
    # A frame whose header parses but whose JPEG is empty/corrupt is NOT rejected here: it gets a
    # STOP fallback decision from the decider (a valid header is always answered).
    message, jpeg = parse_payload(entry, bytes(payload))
    for key, value in ids.items():
        if getattr(message, key, value) != value:
            raise MessageError(
                RejectCode.ID_MISMATCH,
                f"{key} {getattr(message, key)!r} in payload, {value!r} in topic",
            )
    return Incoming(entry, ids, message, jpeg)
