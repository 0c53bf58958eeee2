"""Pictures that are not a front-camera road scene, for the model's out-of-distribution head.

The node must say so (``image_out_of_distribution``) when a frame is noise, blank, a photograph
of something else or from the wrong camera. The head learns that from negatives drawn here, and
it is evaluated on negatives of *other* kinds, so a good score means it learned "not a road
scene", not "not one of the training kinds":

* training kinds (:data:`TRAIN_KINDS`): pixel noise, blurred noise, a flat colour, colour
  gradients, random shapes on a flat background, stripes, a road frame upside down;
* test kinds (:data:`TEST_KINDS`): checkerboards, lines of text, a drawn face (a portrait), an
  icon on white, a road frame turned 90 degrees (a camera mounted sideways), a road frame seen
  through a heavy colour cast with the sky at the bottom (mirrored vertically).

Every negative is a JPEG, so it goes through ``perception.preprocess_jpeg`` like any frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

__all__ = ["TEST_KINDS", "TRAIN_KINDS", "negative_jpegs"]

W, H = 640, 360
Drawer = Callable[[np.random.Generator, Sequence[bytes]], np.ndarray]


def _rand_color(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, 3))  # type: ignore[return-value]


def _noise(rng: np.random.Generator, _road: Sequence[bytes]) -> np.ndarray:
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def _blurred_noise(rng: np.random.Generator, _road: Sequence[bytes]) -> np.ndarray:
    img = rng.integers(0, 256, (H // 8, W // 8, 3), dtype=np.uint8)
    return cv2.resize(img, (W, H), interpolation=cv2.INTER_CUBIC)


def _flat(rng: np.random.Generator, _road: Sequence[bytes]) -> np.ndarray:
    return np.full((H, W, 3), _rand_color(rng), np.uint8)


def _gradient(rng: np.random.Generator, _road: Sequence[bytes]) -> np.ndarray:
    a, b = np.array(_rand_color(rng), np.float32), np.array(_rand_color(rng), np.float32)
    t = np.linspace(0, 1, W if rng.random() < 0.5 else H, dtype=np.float32)[:, None]
    line = (a * (1 - t) + b * t).astype(np.uint8)
    if len(line) == W:
        return np.broadcast_to(line[None], (H, W, 3)).copy()
    return np.broadcast_to(line[:, None], (H, W, 3)).copy()


def _shapes(rng: np.random.Generator, _road: Sequence[bytes]) -> np.ndarray:
    img = np.full((H, W, 3), _rand_color(rng), np.uint8)
    for _ in range(int(rng.integers(3, 12))):
        x, y = int(rng.integers(0, W)), int(rng.integers(0, H))
        r = int(rng.integers(10, 120))
        if rng.random() < 0.5:
            cv2.circle(img, (x, y), r, _rand_color(rng), -1)
        else:
            cv2.rectangle(img, (x, y), (x + r, y + r // 2), _rand_color(rng), -1)
    return img


def _stripes(rng: np.random.Generator, _road: Sequence[bytes]) -> np.ndarray:
    img = np.full((H, W, 3), _rand_color(rng), np.uint8)
    step = int(rng.integers(8, 60))
    color = _rand_color(rng)
    for x in range(0, W + H, 2 * step):
        cv2.line(img, (x, 0), (x - H, H), color, step // 2)
    return img


def _road(rng: np.random.Generator, road: Sequence[bytes]) -> np.ndarray:
    data = np.frombuffer(road[int(rng.integers(0, len(road)))], np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("a road frame given for negatives does not decode")
    return cv2.resize(img, (W, H), interpolation=cv2.INTER_AREA)


def _upside_down(rng: np.random.Generator, road: Sequence[bytes]) -> np.ndarray:
    return cv2.rotate(_road(rng, road), cv2.ROTATE_180)


def _checkerboard(rng: np.random.Generator, _road: Sequence[bytes]) -> np.ndarray:
    k = int(rng.integers(12, 80))
    yy, xx = np.mgrid[0:H, 0:W]
    mask = ((yy // k + xx // k) % 2).astype(bool)
    img = np.empty((H, W, 3), np.uint8)
    img[mask], img[~mask] = _rand_color(rng), _rand_color(rng)
    return img


def _text(rng: np.random.Generator, _road: Sequence[bytes]) -> np.ndarray:
    img = np.full((H, W, 3), 235, np.uint8)
    letters = "abcdefghijklmnopqrstuvwxyz0123456789 "
    for row in range(int(rng.integers(4, 10))):
        line = "".join(letters[int(i)] for i in rng.integers(0, len(letters), 40))
        cv2.putText(img, line, (10, 40 + 38 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (20, 20, 20), 2)
    return img


def _portrait(rng: np.random.Generator, _road: Sequence[bytes]) -> np.ndarray:
    img = np.full((H, W, 3), _rand_color(rng), np.uint8)
    cx, cy = W // 2 + int(rng.integers(-60, 60)), H // 2
    skin = (int(rng.integers(90, 200)), int(rng.integers(120, 200)), int(rng.integers(170, 240)))
    cv2.ellipse(img, (cx, cy + 150), (170, 90), 0, 180, 360, _rand_color(rng), -1)  # shoulders
    cv2.ellipse(img, (cx, cy), (85, 110), 0, 0, 360, skin, -1)
    for dx in (-32, 32):
        cv2.circle(img, (cx + dx, cy - 20), 10, (40, 30, 30), -1)
    cv2.ellipse(img, (cx, cy + 45), (30, 12), 0, 0, 180, (60, 40, 150), 4)
    return cv2.GaussianBlur(img, (0, 0), 2)


def _icon(rng: np.random.Generator, _road: Sequence[bytes]) -> np.ndarray:
    img = np.full((H, W, 3), 255, np.uint8)
    color = _rand_color(rng)
    cv2.circle(img, (W // 2, H // 2), 140, color, 18)
    pts = np.array([[W // 2 - 60, H // 2 + 50], [W // 2, H // 2 - 70], [W // 2 + 60, H // 2 + 50]])
    cv2.fillPoly(img, [pts.astype(np.int32)], color)
    return img


def _sideways(rng: np.random.Generator, road: Sequence[bytes]) -> np.ndarray:
    img = cv2.rotate(_road(rng, road), cv2.ROTATE_90_CLOCKWISE)
    return cv2.resize(img, (W, H), interpolation=cv2.INTER_AREA)


def _cast_mirrored(rng: np.random.Generator, road: Sequence[bytes]) -> np.ndarray:
    img = cv2.flip(_road(rng, road), 0).astype(np.int16)
    img[..., int(rng.integers(0, 3))] += 110
    return np.clip(img, 0, 255).astype(np.uint8)


TRAIN_KINDS: dict[str, Drawer] = {
    "noise": _noise,
    "blurred_noise": _blurred_noise,
    "flat": _flat,
    "gradient": _gradient,
    "shapes": _shapes,
    "stripes": _stripes,
    "upside_down": _upside_down,
}
TEST_KINDS: dict[str, Drawer] = {
    "checkerboard": _checkerboard,
    "text": _text,
    "portrait": _portrait,
    "icon": _icon,
    "sideways": _sideways,
    "mirrored_cast": _cast_mirrored,
}


def negative_jpegs(
    n: int, kinds: dict[str, Drawer], seed: int, road_jpegs: Sequence[bytes]
) -> list[tuple[str, bytes]]:
    """``n`` (kind, JPEG) negatives, kinds in turn, deterministic for a seed. ``road_jpegs``:
    real frames for the kinds made from a road frame."""
    rng = np.random.default_rng(seed)
    names = list(kinds)
    out = []
    for i in range(n):
        name = names[i % len(names)]
        img = kinds[name](rng, road_jpegs)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 95))])
        if not ok:
            raise ValueError(f"could not encode a {name} negative")
        out.append((name, buf.tobytes()))
    return out
