"""Hostile JPEGs for the image and crash-probe tests (test data builders, not checks)."""

from __future__ import annotations

import struct

import cv2
import numpy as np


def _segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", 2 + len(body)) + body


def hidden_frame_header(lead: bytes, width: int = 20000, height: int = 20000) -> bytes:
    """A small real JPEG whose frame header declares ``width`` x ``height``, preceded by
    ``lead`` and an APP1 segment holding a harmless 160x96 frame header: a walk that takes
    ``lead`` for a segment with a length lands on the harmless one, libjpeg reads the big one."""
    ok, buf = cv2.imencode(".jpg", np.full((48, 64, 3), 90, np.uint8))
    assert ok
    base = buf.tobytes()
    sof = base.index(b"\xff\xc0")
    sof_len = struct.unpack(">H", base[sof + 2 : sof + 4])[0]
    real = bytearray(base[sof : sof + 2 + sof_len])
    small = bytearray(real)
    real[5:9] = struct.pack(">HH", height, width)
    small[5:9] = struct.pack(">HH", 96, 160)
    rest = base[2:sof] + base[sof + 2 + sof_len :]
    app = _segment(0xE1, b"\x00" * 4 + bytes(small))
    skip = len(real) + 4 + 4 + 2  # from the lead's length field to the harmless header
    return b"\xff\xd8" + lead + struct.pack(">H", skip) + bytes(real) + app + rest


def jpeg_segments(data: bytes) -> list[bytes]:
    """A JPEG cut into its segments after SOI, each scan with its entropy-coded data."""
    out, i = [], 2
    while i < len(data) and data[i + 1] != 0xD9:
        end = i + 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
        if data[i + 1] == 0xDA:  # entropy-coded data runs to the next marker
            while data[end] != 0xFF or data[end + 1] == 0 or 0xD0 <= data[end + 1] <= 0xD7:
                end += 1
        out.append(data[i:end])
        i = end
    return out


def scan_bomb(width: int, height: int, extra_scans: int) -> bytes:
    """A progressive JPEG of random blocks whose last scan is repeated ``extra_scans`` times:
    every scan makes the decoder go over the whole image again."""
    img = np.random.default_rng(0).integers(0, 255, (height // 16, width // 16, 3), np.uint8)
    img = cv2.resize(img, (width, height), interpolation=cv2.INTER_NEAREST)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok
    parts = jpeg_segments(buf.tobytes())
    last = max(i for i, p in enumerate(parts) if p.startswith(b"\xff\xda"))
    body = b"".join(parts[: last + 1]) + parts[last] * extra_scans + b"".join(parts[last + 1 :])
    return b"\xff\xd8" + body + b"\xff\xd9"
