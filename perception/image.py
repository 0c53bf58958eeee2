"""Frame preprocessing: JPEG bytes -> uint8 RGB array of the model's input size.

This is the single image path: the trainer builds its data set with :func:`preprocess_jpeg` and
the node calls the same function object. Normalisation (uint8 -> float) happens inside the model
graph, so nothing else needs to agree.
"""

from __future__ import annotations

import cv2
import numpy as np

from perception.spec import MODEL_SPEC
from ruledrive.errors import ImageDecodeError

__all__ = [
    "MAX_JPEG_BYTES",
    "MAX_SIDE_PX",
    "PREPROCESSING",
    "decode_jpeg",
    "prepare_frame",
    "preprocess_jpeg",
]

# A front camera frame is well under this; anything larger is refused before decoding.
MAX_JPEG_BYTES = 4 * 1024 * 1024
MAX_SIDE_PX = 4096
_JPEG_MAGIC = b"\xff\xd8"

# Recorded in the ONNX metadata so a reader can check it matches this module.
PREPROCESSING = {
    "decode": "cv2.imdecode(IMREAD_COLOR) then BGR->RGB",
    "resize": "cv2.resize INTER_AREA",
    "height": MODEL_SPEC.image_height,
    "width": MODEL_SPEC.image_width,
    "dtype": "uint8",
    "normalisation": "inside the graph: x / 255",
}


def decode_jpeg(data: bytes) -> np.ndarray:
    """Decode JPEG bytes to an RGB uint8 array (H, W, 3); raise ImageDecodeError if unusable."""
    return cv2.cvtColor(_decode_bgr(data), cv2.COLOR_BGR2RGB)


def _decode_bgr(data: bytes) -> np.ndarray:
    if not data:
        raise ImageDecodeError("empty image payload")
    if len(data) > MAX_JPEG_BYTES:
        raise ImageDecodeError(f"image is {len(data)} bytes, limit {MAX_JPEG_BYTES}")
    if not data.startswith(_JPEG_MAGIC):
        raise ImageDecodeError("not a JPEG (missing SOI marker)")
    buf = np.frombuffer(data, dtype=np.uint8)
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None or bgr.ndim != 3 or bgr.shape[0] == 0 or bgr.shape[1] == 0:
        raise ImageDecodeError("JPEG could not be decoded")
    h, w = bgr.shape[:2]
    if h > MAX_SIDE_PX or w > MAX_SIDE_PX:
        raise ImageDecodeError(f"image {w}x{h} exceeds {MAX_SIDE_PX}px per side")
    return bgr


def prepare_frame(rgb: np.ndarray) -> np.ndarray:
    """Resize an RGB uint8 frame to the model's input size (H, W, 3) uint8."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageDecodeError(f"expected uint8 HxWx3, got {rgb.dtype} {rgb.shape}")
    size = (MODEL_SPEC.image_width, MODEL_SPEC.image_height)
    if rgb.shape[1] == size[0] and rgb.shape[0] == size[1]:
        return np.ascontiguousarray(rgb)
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def preprocess_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes -> model input (H, W, 3) uint8. The one path used by training and the node.

    Resizes before the BGR->RGB swap: the swap commutes with a per-channel resize, so the
    result is identical to ``prepare_frame(decode_jpeg(data))`` at a fraction of the cost.
    """
    return cv2.cvtColor(prepare_frame(_decode_bgr(data)), cv2.COLOR_BGR2RGB)
