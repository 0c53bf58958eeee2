"""Binary envelope of a camera frame: the JPEG travels raw, never base64.

Layout (all integers big-endian)::

    offset 0   4 bytes   magic b"RDF1"
    offset 4   4 bytes   uint32 header length N
    offset 8   N bytes   UTF-8 JSON of bus.schema.FrameHeader
    offset 8+N rest      JPEG bytes

This is the MQTT payload only. A recording does not store it: ``bus.recording_writer`` writes the
JPEG as a foxglove ``CompressedImage`` on ``/camera/front`` and the header as JSON on ``/ego``.
"""

from __future__ import annotations

import struct

from pydantic import ValidationError

from bus.schema import FrameHeader
from bus.validation import error_code, json_hint, no_duplicate_keys, short_detail
from core.errors import MessageError
from core.rejects import RejectCode

__all__ = ["MAGIC", "MAX_HEADER_BYTES", "pack_frame", "unpack_frame"]

MAGIC = b"RDF1"
MAX_HEADER_BYTES = 4096
_PREFIX = struct.Struct(">4sI")


def pack_frame(header: FrameHeader, jpeg: bytes) -> bytes:
    head = header.model_dump_json().encode()
    return _PREFIX.pack(MAGIC, len(head)) + head + jpeg


# Said with every bad envelope: a client written from the docs gets the layout in the error.
_LAYOUT = (
    "a frame is b'RDF1', a 4-byte big-endian header length N, N bytes of FrameHeader JSON, "
    "then the raw JPEG (docs/contract.md)"
)


def _what(payload: bytes) -> str:
    """What a payload that is not an envelope looks like, for the error."""
    head = payload.lstrip()[:1]
    if payload.startswith(b"\xff\xd8"):
        return "a bare JPEG without the envelope"
    if head in (b"{", b"["):
        return "JSON (the JPEG is never base64 inside JSON)"
    if payload.startswith(b"RDF"):
        return f"envelope version {payload[:4]!r}, this node reads {MAGIC!r}"
    return f"magic {payload[:4]!r}, not {MAGIC!r}"


def unpack_frame(payload: bytes) -> tuple[FrameHeader, bytes]:
    """Split and validate an envelope; raise MessageError with a stable code if it is bad."""
    if len(payload) < _PREFIX.size or not payload.startswith(MAGIC):
        if payload.startswith(MAGIC) or MAGIC.startswith(payload):  # an envelope cut short
            what = f"payload of {len(payload)} bytes is too short"
        else:
            what = _what(payload)
        raise MessageError(RejectCode.BAD_ENVELOPE, f"{what}: {_LAYOUT}")
    magic, n = _PREFIX.unpack_from(payload)
    if n > MAX_HEADER_BYTES:
        raise MessageError(
            RejectCode.BAD_ENVELOPE, f"header length {n} is over the limit of {MAX_HEADER_BYTES}"
        )
    if _PREFIX.size + n > len(payload):
        raise MessageError(RejectCode.BAD_ENVELOPE, f"header length {n} does not fit the payload")
    head = payload[_PREFIX.size : _PREFIX.size + n]
    try:
        header = FrameHeader.model_validate_json(head)
    except ValidationError as exc:
        code = error_code(exc, RejectCode.BAD_HEADER)
        hint = json_hint(head) if code == RejectCode.BAD_JSON else ""
        raise MessageError(code, short_detail(exc) + hint) from exc
    no_duplicate_keys(head)  # as every other message (bus.codec)
    return header, payload[_PREFIX.size + n :]
