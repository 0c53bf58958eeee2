from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

from core.errors import ImageDecodeError
from perception.image import (
    MAX_JPEG_BYTES,
    MAX_PIXELS,
    MAX_SCANS,
    MAX_SIDE_PX,
    decode_jpeg,
    jpeg_scans,
    jpeg_size,
    prepare_frame,
    preprocess_jpeg,
)
from perception.spec import MODEL_SPEC
from tests.perception.jpeg_bombs import hidden_frame_header, jpeg_segments


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


def test_truncated_jpeg_is_refused() -> None:
    data = _jpeg()
    sof = data.index(b"\xff\xc0")
    # Cut inside the scan: OpenCV refuses a frame with missing rows (never half a picture).
    with pytest.raises(ImageDecodeError, match="could not be decoded"):
        decode_jpeg(data[: len(data) // 2])
    # Cut before the frame header: nothing to decode.
    with pytest.raises(ImageDecodeError, match="no frame header"):
        decode_jpeg(data[: sof + 4])


def _noisy_jpeg(seed: int) -> bytes:
    """A camera-like frame: a scene with sensor noise, as the simulator renders them."""
    rng = np.random.default_rng(seed)
    img = np.zeros((360, 640, 3), np.uint8)
    img[:180] = (200, 120, 60)
    img[180:] = (90, 90, 95)
    noisy = np.clip(img + rng.normal(0, 2.0, img.shape), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 75])
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("decode", ["full", "reduced"])
@pytest.mark.parametrize("keep", [0.3, 0.8, 0.98])
def test_a_scan_cut_short_but_ended_with_eoi_is_refused(keep: float, decode: str) -> None:
    # libjpeg only warns ("premature end of data segment") and fills the rest with grey, so
    # the decode "succeeds"; the node must answer bad_image, not decide on half a picture.
    data = _noisy_jpeg(1)
    sos = data.index(b"\xff\xda")
    cut = data[: sos + int((len(data) - sos) * keep)] + b"\xff\xd9"
    with pytest.raises(ImageDecodeError, match="ends before the image does"):
        preprocess_jpeg(cut, decode)


@pytest.mark.parametrize("decode", ["full", "reduced"])
def test_whole_frames_and_a_grey_frame_are_not_taken_for_cut_ones(decode: str) -> None:
    for seed in range(20):
        preprocess_jpeg(_noisy_jpeg(seed), decode)
    ok, grey = cv2.imencode(".jpg", np.full((360, 640, 3), 128, np.uint8))
    assert ok  # all grey: left to the picture checks (image_out_of_distribution)
    assert (preprocess_jpeg(grey.tobytes(), decode) == 128).all()
    drawn = np.full((360, 640, 3), 128, np.uint8)  # a drawing on flat grey, as tests send
    cv2.rectangle(drawn, (160, 90), (320, 180), (0, 0, 255), -1)
    ok, buf = cv2.imencode(".jpg", drawn)
    assert ok
    preprocess_jpeg(buf.tobytes(), decode)


def test_prepare_frame_rejects_wrong_dtype() -> None:
    with pytest.raises(ImageDecodeError):
        prepare_frame(np.zeros((10, 10, 3), np.float32))


def test_fast_path_equals_decode_then_prepare() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    data = buf.tobytes()
    np.testing.assert_array_equal(preprocess_jpeg(data, "full"), prepare_frame(decode_jpeg(data)))


@pytest.mark.parametrize(
    ("size", "decoded"),
    [
        ((640, 360), (160, 90)),  # the camera: 1/4, keeps >= 90 % of 160x96
        ((1920, 1080), (240, 135)),  # 1/8
        ((320, 192), (160, 96)),  # 1/2
        ((400, 200), (200, 100)),  # 1/2: 1/4 would keep only 100x50
        ((160, 96), (160, 96)),  # the model's size: no reduction
        ((64, 48), (64, 48)),  # smaller than the model: full decode, then up-scaled
    ],
)
def test_reduced_decode_scales_only_as_far_as_the_model_needs(
    size: tuple[int, int], decoded: tuple[int, int]
) -> None:
    from perception.image import _decode_bgr

    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    cv2.rectangle(img, (w // 4, h // 4), (w // 2, h // 2), (30, 200, 90), -1)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    data = buf.tobytes()
    assert _decode_bgr(data, "reduced").shape[1::-1] == decoded
    out = preprocess_jpeg(data)  # training's default is the reduced decode
    assert out.shape == (96, 160, 3) and out.dtype == np.uint8
    # the same picture as the full decode, to a pixel level or two
    assert np.abs(out.astype(int) - preprocess_jpeg(data, "full")).mean() < 2.0


def test_an_unknown_decode_is_an_error() -> None:
    img = np.zeros((48, 64, 3), np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    with pytest.raises(ValueError, match="unknown decode"):
        preprocess_jpeg(buf.tobytes(), "bilinear")


def _declaring(width: int, height: int, progressive: bool = False) -> bytes:
    img = np.full((48, 64, 3), 90, np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)])
    assert ok
    data = bytearray(buf.tobytes())
    sof = data.index(b"\xff\xc2" if progressive else b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize("progressive", [False, True])
def test_size_is_read_from_the_header(progressive: bool) -> None:
    assert jpeg_size(_declaring(64, 48, progressive)) == (64, 48)
    assert jpeg_size(_declaring(640, 360, progressive)) == (640, 360)


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (60000, 60000),
        (30000, 30000),
        (MAX_SIDE_PX + 1, 8),
        (8, MAX_SIDE_PX + 1),
        (MAX_SIDE_PX, MAX_PIXELS // MAX_SIDE_PX + 1),
    ],
)
def test_images_declaring_too_many_pixels_are_refused_before_decoding(
    width: int, height: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_decode(*_a: object) -> None:
        raise AssertionError("a bomb reached the decoder")

    monkeypatch.setattr(cv2, "imdecode", no_decode)
    with pytest.raises(ImageDecodeError) as err:
        preprocess_jpeg(_declaring(width, height))
    assert err.value.code == "image_too_large"


def test_largest_allowed_size_still_decodes() -> None:
    img = np.zeros((MAX_PIXELS // MAX_SIDE_PX, MAX_SIDE_PX, 3), np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    assert preprocess_jpeg(buf.tobytes()).shape == (96, 160, 3)


@pytest.mark.parametrize(
    "data", [b"\xff\xd8\xff\xd9", b"\xff\xd8\xff\xc0\x00\x11", _declaring(0, 48)]
)
def test_headers_without_a_usable_frame_are_bad_images(data: bytes) -> None:
    with pytest.raises(ImageDecodeError) as err:
        preprocess_jpeg(data)
    assert err.value.code == "bad_image"


def _no_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decode(*_a: object) -> None:
        raise AssertionError("a bomb reached the decoder")

    monkeypatch.setattr(cv2, "imdecode", no_decode)


@pytest.mark.parametrize(
    "lead",
    [
        b"\xff\x00",  # libjpeg skips FF 00 as junk, it is not a segment
        b"\xff\xd8",  # a second start of image
        b"\xff\xf0",  # a reserved marker (JPG0)
    ],
)
def test_a_frame_header_hidden_from_the_size_check_is_refused_before_decoding(
    lead: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = hidden_frame_header(lead)
    _no_decode(monkeypatch)
    with pytest.raises(ImageDecodeError, match="not read before a scan") as err:
        preprocess_jpeg(data)
    assert err.value.code == "bad_image"


def test_a_second_frame_header_is_refused() -> None:
    base = _declaring(64, 48)
    sof = base.index(b"\xff\xc0")
    sof_len = struct.unpack(">H", base[sof + 2 : sof + 4])[0]
    twice = base[: sof + 2 + sof_len] + base[sof : sof + 2 + sof_len] + base[sof + 2 + sof_len :]
    with pytest.raises(ImageDecodeError, match="second frame header"):
        jpeg_size(twice)


def test_a_progressive_jpeg_repeating_a_scan_is_refused_before_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each scan re-reads the whole image: a 2 MB file repeating one small scan 70,000 times
    took a minute to decode. A normal progressive frame is well inside the limit."""
    img = np.random.default_rng(0).integers(0, 255, (360, 640, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok
    normal = buf.tobytes()
    parts = jpeg_segments(normal)
    scans = [s for s in parts if s.startswith(b"\xff\xda")]
    assert 2 <= jpeg_scans(normal) == len(scans) <= MAX_SCANS
    assert preprocess_jpeg(normal).shape == (96, 160, 3)
    last = parts.index(scans[-1])
    bomb = b"\xff\xd8" + b"".join(parts[: last + 1]) + scans[-1] * MAX_SCANS + b"\xff\xd9"
    assert jpeg_scans(bomb) > MAX_SCANS
    _no_decode(monkeypatch)
    with pytest.raises(ImageDecodeError, match=f"scans, limit {MAX_SCANS}") as err:
        preprocess_jpeg(bomb)
    assert err.value.code == "image_too_large"


def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """``jpeg`` with an EXIF APP1 segment whose only tag is Orientation (0x0112)."""
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8)  # big-endian TIFF header, IFD at offset 8
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    body = b"Exif\x00\x00" + tiff + ifd + struct.pack(">I", 0)  # no next IFD
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


@pytest.mark.parametrize("decode", ["reduced", "full"])
@pytest.mark.parametrize("orientation", [2, 3, 6, 8])
def test_an_exif_orientation_tag_does_not_turn_the_picture(decode: str, orientation: int) -> None:
    """A tag is 30 bytes of metadata; the model decides on the pixels the camera stored, so a
    tagged frame is read exactly as the same frame without the tag (OpenCV would otherwise
    mirror or turn it: a mirrored red-light frame was answered PROCEED with valid=true)."""
    plain = _jpeg()  # red on the left half only: a mirror or a turn would show
    tagged = _with_exif_orientation(plain, orientation)
    honoured = cv2.imdecode(np.frombuffer(tagged, np.uint8), cv2.IMREAD_COLOR)
    as_stored = cv2.imdecode(np.frombuffer(plain, np.uint8), cv2.IMREAD_COLOR)
    assert not np.array_equal(honoured, as_stored)  # the tag works: OpenCV would apply it
    assert np.array_equal(preprocess_jpeg(tagged, decode), preprocess_jpeg(plain, decode))
    assert np.array_equal(decode_jpeg(tagged), decode_jpeg(plain))
