"""Frame preprocessing: JPEG bytes -> uint8 RGB array of the model's input size.

This is the single image path: the trainer builds its data set with :func:`preprocess_jpeg` and
the node calls the same function object. Normalisation (uint8 -> float) happens inside the model
graph, so nothing else needs to agree.

Decoding is part of what a model was trained on, so a model names its decode in its metadata
(:data:`PREPROCESSINGS`) and the node decodes the way that model was trained:

* ``"reduced"`` (models trained from this version on): libjpeg decodes at 1/k scale in the DCT
  (``IMREAD_REDUCED_COLOR_k``), k the largest of 2, 4, 8 that keeps at least 90 % of the model's
  width and height (a 640x360 camera frame: k = 4, 160x90), then INTER_AREA to the model's size.
  3.6x cheaper than a full decode on generated frames, the same top label on 99.97 % of 3,000
  test frames for a model trained on full decodes (docs/benchmarks.md, "Levers").
* ``"full"`` (older models): full-size decode, then INTER_AREA.
"""

from __future__ import annotations

import cv2
import numpy as np

from core.errors import ImageDecodeError
from core.rejects import RejectCode
from perception.spec import MODEL_SPEC

__all__ = [
    "DEFAULT_DECODE",
    "MAX_JPEG_BYTES",
    "MAX_PIXELS",
    "MAX_SCANS",
    "MAX_SIDE_PX",
    "MIN_COLOUR",
    "PREPROCESSING",
    "PREPROCESSINGS",
    "colourless",
    "decode_jpeg",
    "jpeg_scans",
    "jpeg_size",
    "prepare_frame",
    "preprocess_jpeg",
]

# A front camera frame is well under this; anything larger is refused before decoding.
MAX_JPEG_BYTES = 4 * 1024 * 1024
MAX_SIDE_PX = 4096
# Checked on the JPEG header *before* decoding: a 761-byte file can declare 60000x60000 pixels
# and make the decoder allocate gigabytes (a decompression bomb).
MAX_PIXELS = 4096 * 2304
# Each scan of a progressive JPEG re-reads the whole image (~0.9 ms per scan at MAX_PIXELS): a
# 2 MB file repeating one small scan 70,000 times took 61 s to decode. Encoders write ~10 scans
# (libjpeg's default progression for colour); more than this is refused before decoding.
MAX_SCANS = 64
_JPEG_MAGIC = b"\xff\xd8"

# Recorded in the ONNX metadata so a reader can check it matches this module.
_COMMON = {
    "resize": "cv2.resize INTER_AREA",
    "height": MODEL_SPEC.image_height,
    "width": MODEL_SPEC.image_width,
    "dtype": "uint8",
    "normalisation": "inside the graph: x / 255",
}
PREPROCESSINGS: dict[str, dict[str, object]] = {
    "reduced": {
        "decode": "cv2.imdecode(IMREAD_REDUCED_COLOR_k), k the largest of 1/2/4/8 keeping >= 90 "
        "% of the model's width and height, then BGR->RGB",
        **_COMMON,
    },
    "full": {"decode": "cv2.imdecode(IMREAD_COLOR) then BGR->RGB", **_COMMON},
}
DEFAULT_DECODE = "reduced"  # what training uses now
PREPROCESSING = PREPROCESSINGS[DEFAULT_DECODE]
_REDUCED_FLAGS = (
    (8, cv2.IMREAD_REDUCED_COLOR_8),
    (4, cv2.IMREAD_REDUCED_COLOR_4),
    (2, cv2.IMREAD_REDUCED_COLOR_2),
)
_ZERO_BLOCK = 128  # the value of a JPEG block whose coefficients are all zero
_KEEP = 0.9  # a reduced decode keeps at least this share of the model's width and height


def decode_jpeg(data: bytes) -> np.ndarray:
    """Decode JPEG bytes to an RGB uint8 array (H, W, 3); raise ImageDecodeError if unusable."""
    return cv2.cvtColor(_decode_bgr(data), cv2.COLOR_BGR2RGB)


def _decode_bgr(data: bytes, decode: str = "full") -> np.ndarray:
    if not data:
        raise ImageDecodeError("empty image payload")
    if len(data) > MAX_JPEG_BYTES:
        raise ImageDecodeError(f"image is {len(data)} bytes, limit {MAX_JPEG_BYTES}")
    if not data.startswith(_JPEG_MAGIC):
        raise ImageDecodeError("not a JPEG (missing SOI marker)")
    w, h, sof = _frame_header(data)
    if w > MAX_SIDE_PX or h > MAX_SIDE_PX or w * h > MAX_PIXELS:
        raise ImageDecodeError(
            f"JPEG declares {w}x{h}, limit {MAX_SIDE_PX}px per side and {MAX_PIXELS} pixels",
            code=RejectCode.IMAGE_TOO_LARGE,
        )
    # Only progressive scans go over the whole image again; a sequential scan carries the data
    # of every block it covers, so its cost is bounded by the payload's size.
    scans = jpeg_scans(data) if sof in _PROGRESSIVE else 1
    if scans > MAX_SCANS:
        raise ImageDecodeError(
            f"JPEG has {scans} scans, limit {MAX_SCANS}; not decoded",
            code=RejectCode.IMAGE_TOO_LARGE,
        )
    buf = np.frombuffer(data, dtype=np.uint8)
    flag = cv2.IMREAD_COLOR
    if decode == "reduced":
        for k, reduced in _REDUCED_FLAGS:
            if w / k >= _KEEP * MODEL_SPEC.image_width and h / k >= _KEEP * MODEL_SPEC.image_height:
                flag = reduced
                break
    elif decode != "full":
        raise ValueError(f"unknown decode {decode!r}; one of {sorted(PREPROCESSINGS)}")
    try:
        # The pixels as the camera stored them: OpenCV otherwise applies an EXIF orientation
        # tag, and a tag alone (metadata, 30 bytes) would mirror or turn the scene the model
        # decides on (a mirrored red-light frame was answered PROCEED, valid=true).
        bgr = cv2.imdecode(buf, flag | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error as exc:  # OpenCV raises for what its own limits refuse
        raise ImageDecodeError(f"JPEG could not be decoded: {str(exc)[:200]}") from exc
    if bgr is None or bgr.ndim != 3 or bgr.shape[0] == 0 or bgr.shape[1] == 0:
        raise ImageDecodeError("JPEG could not be decoded")
    if bgr.shape[0] * bgr.shape[1] > MAX_PIXELS:  # a header the walk above did not see
        raise ImageDecodeError(
            f"decoded image {bgr.shape[1]}x{bgr.shape[0]} is too large (its header said {w}x{h})",
            code=RejectCode.IMAGE_TOO_LARGE,
        )
    if _cut_short(bgr, max(1, round(w / bgr.shape[1]))):
        raise ImageDecodeError(
            "JPEG data ends before the image does (the rest would be decoded as grey); "
            "truncated or corrupt"
        )
    return bgr


def _cut_short(bgr: np.ndarray, scale: int) -> bool:
    """A sequential JPEG whose scan data stops early but still ends with an EOI marker decodes
    without an error: libjpeg only prints a warning and leaves every block it did not get at zero,
    exact mid grey (128, 128, 128), from the cut to the end of the image in the blocks' raster
    order. So: the exactly grey 8x8 blocks (``8 / scale`` pixels a side in a reduced decode) run
    to the end of the image, and none comes well before the last block that is not grey (a
    camera's noise never is; a drawing on a flat grey background has grey blocks before its
    last drawn one).
    A picture grey all over is left to the picture checks. Not caught: a cut within the last
    blocks, a truncated progressive JPEG (blurred, not grey), a drawing whose content is a full
    band at the top above flat grey (taken for a cut one)."""
    if not (bgr[-2:, -2:] == _ZERO_BLOCK).all():  # the cheap test: almost every frame ends here
        return False
    b = max(1, 8 // scale)
    hb, wb = bgr.shape[0] // b, bgr.shape[1] // b
    grey = (bgr[: hb * b, : wb * b] == _ZERO_BLOCK).all(axis=2).reshape(hb, b, wb, b)
    if b >= 4:  # a block's edge pixels take colour from the next block in chroma upsampling
        grey = grey[:, 1:-1, :, 1:-1]
    blocks = grey.all(axis=(1, 3)).ravel()  # raster order
    if blocks.all() or not blocks[-1]:
        return False
    # The last block that is not grey, and no grey block before it, but for the two block rows
    # above it: where the cut row meets the grey below, chroma upsampling blends the two, so the
    # blocks right after the cut are not all exactly grey.
    last = len(blocks) - 1 - int(np.argmin(blocks[::-1]))
    return not blocks[: max(0, last - 2 * wb)].any()


# Start-of-frame markers carry the image size; C4 (DHT), C8 (JPG) and CC (DAC) share the range
# but are not frames.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}  # RSTn, TEM: no length field
_PROGRESSIVE = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
# Segments libjpeg reads before the first scan: APPn, COM, DQT, DHT, DAC, DRI, DNL and the frame
# header. It refuses any other marker, so the walk below does too: a byte sequence it would read
# differently (FF 00, a second SOI, a reserved marker) could hide the real frame header from
# the size check (a 1.6 KB file that declared 160x96 here and 20000x20000 to libjpeg).
_SEGMENTS = frozenset(range(0xE0, 0xF0)) | {0xFE, 0xDB, 0xC4, 0xCC, 0xDD, 0xDC} | _SOF
_SOS = b"\xff\xda"


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) declared by a JPEG's start-of-frame header, read without decoding.

    Walks the marker segments up to the first scan the way libjpeg reads them, so the size is
    the one the decoder will use; raise ImageDecodeError for a marker libjpeg would not read
    there (or reads differently), a second frame header, or a payload without a frame header.
    """
    w, h, _ = _frame_header(data)
    return w, h


def _frame_header(data: bytes) -> tuple[int, int, int]:
    """:func:`jpeg_size` and the frame header's marker (SOF0-SOF15)."""
    n, i = len(data), 2
    size: tuple[int, int, int] | None = None
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise ImageDecodeError(f"JPEG could not be decoded: marker expected at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of the first scan
            break
        if marker not in _SEGMENTS:
            raise ImageDecodeError(
                f"JPEG could not be decoded: marker 0x{marker:02X} at byte {i} is not read "
                "before a scan"
            )
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if length < 2 or i + 2 + length > n:
            break
        if marker in _SOF:
            if size is not None:
                raise ImageDecodeError("JPEG could not be decoded: a second frame header")
            if length < 7:
                break
            h = int.from_bytes(data[i + 5 : i + 7], "big")
            w = int.from_bytes(data[i + 7 : i + 9], "big")
            if w == 0 or h == 0:
                raise ImageDecodeError(f"JPEG declares an empty {w}x{h} image")
            size = (w, h, marker)
        i += 2 + length
    if size is None:
        raise ImageDecodeError("JPEG could not be decoded: no frame header (truncated or corrupt)")
    return size


def jpeg_scans(data: bytes) -> int:
    """An upper bound on a JPEG's scans, read without decoding: its start-of-scan markers (FF DA
    cannot occur inside entropy-coded data, where FF is followed by 00 or a restart marker)."""
    return data.count(_SOS)


# A frame without colour cannot show which signal is lit: a greyscale camera (or a colour JPEG of
# a greyscale picture) is not what the model reads, and it decided 33 of 60 grey copies of the
# golden frames wrong at confidence ~1. Measured on the model's inputs: generated road frames
# have a colour spread of 5.6 or more (night scenes; all 6,000 test frames), grey ones 0.
MIN_COLOUR = 1.0


def colourless(images: np.ndarray) -> np.ndarray:
    """Per model input ([..., H, W, 3] uint8): True where its colour spread (mean over every
    fourth pixel of each fourth row, of |R - G| + |G - B|) is below :data:`MIN_COLOUR`."""
    px = images[..., ::4, ::4, :].astype(np.int16)
    spread = np.abs(px[..., 0] - px[..., 1]) + np.abs(px[..., 1] - px[..., 2])
    return np.asarray(spread.mean(axis=(-2, -1)) < MIN_COLOUR)


def prepare_frame(rgb: np.ndarray) -> np.ndarray:
    """Resize an RGB uint8 frame to the model's input size (H, W, 3) uint8."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageDecodeError(f"expected uint8 HxWx3, got {rgb.dtype} {rgb.shape}")
    size = (MODEL_SPEC.image_width, MODEL_SPEC.image_height)
    if rgb.shape[1] == size[0] and rgb.shape[0] == size[1]:
        return np.ascontiguousarray(rgb)
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def preprocess_jpeg(data: bytes, decode: str = DEFAULT_DECODE) -> np.ndarray:
    """JPEG bytes -> model input (H, W, 3) uint8. The one path used by training and the node;
    ``decode`` is the model's (its metadata names it; training uses :data:`DEFAULT_DECODE`).

    Resizes before the BGR->RGB swap: the swap commutes with a per-channel resize, so with
    ``decode="full"`` the result is identical to ``prepare_frame(decode_jpeg(data))`` at a
    fraction of the cost.
    """
    return cv2.cvtColor(prepare_frame(_decode_bgr(data, decode)), cv2.COLOR_BGR2RGB)
