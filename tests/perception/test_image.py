from __future__ import annotations

import cv2
import numpy as np
import pytest

from perception.image import MAX_JPEG_BYTES, decode_jpeg, prepare_frame, preprocess_jpeg
from perception.spec import MODEL_SPEC
from ruledrive.errors import ImageDecodeError


def _jpeg(h: int = 360, w: int = 640) -> bytes:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (0, 0, 255)  # BGR red on the left half
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def test_preprocess_gives_model_shape_in_rgb() -> None:
    out = preprocess_jpeg(_jpeg())
    assert out.shape == (MODEL_SPEC.image_height, MODEL_SPEC.image_width, 3)
    assert out.dtype == np.uint8
    left = out[:, : MODEL_SPEC.image_width // 4].reshape(-1, 3).mean(0)
    assert left[0] > 200 and left[2] < 50  # red lands in channel 0: RGB, not BGR


@pytest.mark.parametrize(
    "data, msg",
    [
        (b"", "empty"),
        (b"\x89PNG\r\n", "not a JPEG"),
        (b"\xff\xd8" + b"\x00" * 100, "could not be decoded"),
        (b"\xff\xd8" + b"\x00" * (MAX_JPEG_BYTES + 1), "limit"),
    ],
)
def test_bad_images_are_rejected_with_a_reason(data: bytes, msg: str) -> None:
    with pytest.raises(ImageDecodeError, match=msg):
        decode_jpeg(data)


def test_truncated_jpeg_is_rejected_or_decodes_fully() -> None:
    data = _jpeg()
    try:
        img = decode_jpeg(data[: len(data) // 3])
    except ImageDecodeError:
        return
    assert img.shape == (360, 640, 3)  # libjpeg may pad a truncated scan; never half a frame


def test_prepare_frame_rejects_wrong_dtype() -> None:
    with pytest.raises(ImageDecodeError):
        prepare_frame(np.zeros((10, 10, 3), np.float32))


def test_fast_path_equals_decode_then_prepare() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    data = buf.tobytes()
    np.testing.assert_array_equal(preprocess_jpeg(data), prepare_frame(decode_jpeg(data)))
