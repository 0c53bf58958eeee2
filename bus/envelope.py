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
from bus.validation import error_code, short_detail
from core.errors import MessageError
from core.rejects import RejectCode

__all__ = ["MAGIC", "MAX_HEADER_BYTES", "pack_frame", "unpack_frame"]

MAGIC = b"RDF1"
MAX_HEADER_BYTES = 4096
_PREFIX = struct.Struct(">4sI")


def pack_frame(header: FrameHeader, jpeg: bytes) -> bytes:
    head = header.model_dump_json().encode()
    return _PREFIX.pack(MAGIC, len(head)) + head + jpeg


def unpack_frame(payload: bytes) -> tuple[FrameHeader, bytes]:
    """Split and validate an envelope; raise MessageError with a stable code if it is bad."""
    if len(payload) < _PREFIX.size:
        raise MessageError(RejectCode.BAD_ENVELOPE, f"payload of {len(payload)} bytes is too short")
    magic, n = _PREFIX.unpack_from(payload)
    if magic != MAGIC:
        raise MessageError(RejectCode.BAD_ENVELOPE, f"magic {magic!r} is not {MAGIC!r}")
    if n > MAX_HEADER_BYTES or _PREFIX.size + n > len(payload):
        raise MessageError(RejectCode.BAD_ENVELOPE, f"header length {n} does not fit the payload")
    head = payload[_PREFIX.size : _PREFIX.size + n]
    try:
        header = FrameHeader.model_validate_json(head)
    except ValidationError as exc:
        raise MessageError(error_code(exc, RejectCode.BAD_HEADER), short_detail(exc)) from exc
    return header, payload[_PREFIX.size + n :]
