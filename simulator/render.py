"""Render a :class:`~simulator.scene.Scene` into a front-camera frame with OpenCV.

Pinhole camera 1.4 m above the centre of the ego lane, looking down the road; ground point
(x right, z ahead, metres) -> pixel ``(CX + F*x/z, horizon + F*(CAM_H - height)/z)``.

The model sees the frame at 160x96 (``perception.prepare_frame``, factor 4), so every feature the
oracle uses is drawn larger than life where physics would make it vanish: traffic-light lamps
have a radius >= 10 px and a glow, pedestrians are >= 40 px tall, far vehicles >= 14 px wide, signs
have minimum sizes, the stop line is at least 5 px thick. Nuisance (pitch, blur, noise, rain,
JPEG quality, colours, buildings) changes pixels only.

Rendering is a pure function of the scene: ``scene.noise_seed`` seeds the pixel noise and rain,
``scene.scenery`` the buildings, so the same scene always gives the same bytes.
"""

from __future__ import annotations

import random
from functools import cache

import cv2
import numpy as np

from simulator.scene import Scene

__all__ = ["HEIGHT", "WIDTH", "encode_jpeg", "render", "render_jpeg"]

WIDTH, HEIGHT = 640, 360
F = 560.0
CX = WIDTH / 2
HORIZON = 150.0
CAM_H = 1.4
LANE_W = 3.5
Z_NEAR, Z_FAR = 2.0, 300.0

Colour = tuple[int, int, int]


def _bgr(r: int, g: int, b: int) -> Colour:
    return (b, g, r)


CAR_COLOURS = [
    _bgr(*c)
    for c in (
        (40, 90, 200),
        (200, 200, 205),
        (30, 30, 35),
        (150, 30, 30),
        (40, 130, 60),
        (230, 200, 40),
        (110, 60, 140),
        (90, 90, 95),
    )
]
SHIRTS = [_bgr(*c) for c in ((255, 0, 200), (0, 230, 255), (255, 240, 0), (120, 255, 0))]
PALETTE = {  # sky top, sky horizon, verge, road, sidewalk, marking
    "day": (
        (70, 130, 205),
        (175, 210, 240),
        (80, 125, 60),
        (100, 100, 106),
        (170, 168, 160),
        (245, 245, 245),
    ),
    "dusk": (
        (55, 45, 110),
        (245, 140, 80),
        (55, 75, 45),
        (80, 76, 84),
        (130, 122, 125),
        (225, 220, 215),
    ),
    "night": ((5, 8, 22), (25, 28, 52), (28, 40, 28), (70, 70, 76), (95, 95, 95), (230, 230, 230)),
}


class _Cam:
    def __init__(self, scene: Scene) -> None:
        self.h = HORIZON + scene.pitch_px

    def u(self, x: float, z: float) -> float:
        return CX + F * x / z

    def v(self, z: float, height: float = 0.0) -> float:
        return self.h + F * (CAM_H - height) / z

    def pt(self, x: float, z: float, height: float = 0.0) -> tuple[int, int]:
        return int(round(self.u(x, z))), int(round(self.v(z, height)))


def _ground_quad(
    img: np.ndarray,
    cam: _Cam,
    x0: float,
    x1: float,
    z0: float,
    z1: float,
    col: Colour,
    min_px: int = 0,
) -> None:
    """A rectangle on the road surface; ``min_px`` keeps thin far markings visible."""
    pts = np.array([cam.pt(x0, z0), cam.pt(x1, z0), cam.pt(x1, z1), cam.pt(x0, z1)], np.int32)
    if min_px and pts[0, 1] - pts[2, 1] < min_px:
        pts[2:, 1] = pts[0, 1] - min_px
    cv2.fillConvexPoly(img, pts, col, cv2.LINE_AA)


@cache
def _background(tod: str, h: int) -> np.ndarray:
    sky_top, sky_hor, verge = (np.array(_bgr(*c), np.float32) for c in PALETTE[tod][:3])
    img = np.empty((HEIGHT, WIDTH, 3), np.float32)
    t = np.clip(np.arange(HEIGHT, dtype=np.float32) / max(h, 1), 0, 1)[:, None]
    img[:] = (sky_top * (1 - t) + sky_hor * t)[:, None, :]
    img[h:] = verge
    return img.astype(np.uint8)


@cache
def _light_gain(tod: str, h: int) -> np.ndarray:
    """Per-pixel illumination (0..255) applied before emissive lights are drawn."""
    if tod == "day":
        return np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    y = np.arange(HEIGHT, dtype=np.float32)[:, None]
    x = np.arange(WIDTH, dtype=np.float32)[None, :]
    below = np.clip((y - h) / max(HEIGHT - h, 1), 0, 1)
    if tod == "dusk":
        g = 0.72 + 0.2 * below + 0 * x
    else:  # headlight cone: bright near and central, dark far and aside
        cone = np.exp(-(((x - CX) / (120 + 420 * below)) ** 2))
        g = 0.42 + 0.5 * below * (0.4 + 0.6 * cone) + 0.08 * np.clip((h - y) / h, 0, 1)
    return np.repeat((np.clip(g, 0, 1) * 255).astype(np.uint8)[:, :, None], 3, axis=2)


def _glow(
    img: np.ndarray, centre: tuple[int, int], radius: int, col: Colour, strength: float = 1.0
) -> None:
    """Additive blurred halo: lit lamps stay visible at 160x96 and at night."""
    r = int(radius * 2.6)
    x, y = centre
    x0, y0, x1, y1 = max(x - r, 0), max(y - r, 0), min(x + r + 1, WIDTH), min(y + r + 1, HEIGHT)
    if x0 >= x1 or y0 >= y1:
        return
    patch = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
    cv2.circle(patch, (x - x0, y - y0), int(radius * 1.5), col, -1, cv2.LINE_AA)
    patch = np.asarray(cv2.GaussianBlur(patch, (0, 0), radius * 0.8), np.uint8)
    roi = img[y0:y1, x0:x1]
    cv2.addWeighted(roi, 1.0, patch, strength, 0, dst=roi)


def _car(
    img: np.ndarray,
    cam: _Cam,
    x: float,
    z: float,
    col: Colour,
    emissive: list,
    stopped: bool = False,
) -> None:
    scale = max(1.0, 14.0 / (F * 1.8 / z))  # at least 14 px wide
    w, hgt = F * 1.8 / z * scale, F * 1.5 / z * scale
    cu, bottom = cam.u(x, z), cam.v(z)
    x0, x1, y0, y1 = int(cu - w / 2), int(cu + w / 2), int(bottom - hgt), int(bottom)
    dark = tuple(int(c * 0.55) for c in col)
    cv2.rectangle(img, (x0, y0 + int(hgt * 0.35)), (x1, y1 - int(hgt * 0.08)), col, -1)
    cv2.rectangle(
        img, (x0 + int(w * 0.12), y0), (x1 - int(w * 0.12), y0 + int(hgt * 0.38)), dark, -1
    )
    cv2.rectangle(
        img,
        (x0 + int(w * 0.18), y0 + int(hgt * 0.06)),
        (x1 - int(w * 0.18), y0 + int(hgt * 0.33)),
        _bgr(40, 50, 60),
        -1,
    )
    tw = (int(w * 0.1), int(hgt * 0.08))
    cv2.rectangle(img, (x0 + tw[0], y1 - tw[1]), (x0 + 3 * tw[0], y1), (15, 15, 15), -1)
    cv2.rectangle(img, (x1 - 3 * tw[0], y1 - tw[1]), (x1 - tw[0], y1), (15, 15, 15), -1)
    cv2.rectangle(
        img,
        (int(cu - w * 0.12), int(y1 - hgt * 0.3)),
        (int(cu + w * 0.12), int(y1 - hgt * 0.2)),
        _bgr(235, 235, 235),
        -1,
    )
    ly = int(y1 - hgt * 0.42)
    lr = max(2, int(w * 0.07))
    for lx in (int(x0 + w * 0.12), int(x1 - w * 0.12)):
        emissive.append(("tail", (lx, ly), lr, stopped))


def _pedestrian(img: np.ndarray, cam: _Cam, x: float, z: float, shirt: Colour) -> None:
    hgt = max(F * 1.7 * 1.35 / z, 42.0)
    w = hgt * 0.3
    cu, foot = cam.u(x, z), cam.v(z)
    head = int(hgt * 0.13)
    trousers = _bgr(30, 40, 140)
    cv2.rectangle(
        img,
        (int(cu - w * 0.4), int(foot - hgt * 0.45)),
        (int(cu - w * 0.05), int(foot)),
        trousers,
        -1,
    )
    cv2.rectangle(
        img,
        (int(cu + w * 0.05), int(foot - hgt * 0.45)),
        (int(cu + w * 0.4), int(foot)),
        trousers,
        -1,
    )
    cv2.rectangle(
        img,
        (int(cu - w / 2), int(foot - hgt * 0.8)),
        (int(cu + w / 2), int(foot - hgt * 0.42)),
        shirt,
        -1,
    )
    cv2.circle(
        img, (int(cu), int(foot - hgt * 0.8 - head)), head, _bgr(240, 190, 150), -1, cv2.LINE_AA
    )


def _cone(img: np.ndarray, cam: _Cam, x: float, z: float) -> None:
    hgt = max(F * 0.75 * 1.6 / z, 18.0)
    cu, base = cam.u(x, z), cam.v(z)
    pts = np.array([(cu - hgt * 0.4, base), (cu + hgt * 0.4, base), (cu, base - hgt)], np.int32)
    cv2.fillConvexPoly(img, pts, _bgr(255, 110, 0), cv2.LINE_AA)
    band = base - hgt * 0.55
    cv2.line(
        img,
        (int(cu - hgt * 0.2), int(band)),
        (int(cu + hgt * 0.2), int(band)),
        (255, 255, 255),
        max(1, int(hgt * 0.12)),
    )


def _signs(img: np.ndarray, cam: _Cam, scene: Scene, x_kerb: float, rnd: random.Random) -> None:
    kinds = []
    if scene.speed_sign is not None:
        kinds.append("speed")
    if scene.school_zone_sign:
        kinds.append("school")
    if scene.lane_closed_sign:
        kinds.append("closed")
    z = max(rnd.uniform(12, 22), F * (abs(x_kerb) + 1.0) / 290)
    for i, kind in enumerate(kinds):
        zz = z + 9 * i
        s = max(F * 1.0 / zz, 44.0 if kind == "school" else 34.0)
        cu, base = cam.u(x_kerb, zz), cam.v(zz)
        top = base - max(F * 2.2 / zz, s * 1.8)
        cv2.line(img, (int(cu), int(base)), (int(cu), int(top + s / 2)), (90, 90, 90), 3)
        c = (int(cu), int(top))
        if kind == "speed":
            cv2.circle(img, c, int(s / 2), _bgr(210, 20, 20), -1, cv2.LINE_AA)
            cv2.circle(img, c, int(s * 0.38), (255, 255, 255), -1, cv2.LINE_AA)
            txt = str(scene.speed_sign)
            fs = s / 70
            (tw, th), _ = cv2.getTextSize(txt, cv2.FONT_HERSHEY_SIMPLEX, fs, 2)
            cv2.putText(
                img,
                txt,
                (c[0] - tw // 2, c[1] + th // 2),
                cv2.FONT_HERSHEY_SIMPLEX,
                fs,
                (0, 0, 0),
                2,
                cv2.LINE_AA,
            )
        elif kind == "school":
            r = s / 2
            pts = np.array(
                [
                    (c[0], c[1] - r),
                    (c[0] + r, c[1] - r * 0.2),
                    (c[0] + r, c[1] + r),
                    (c[0] - r, c[1] + r),
                    (c[0] - r, c[1] - r * 0.2),
                ],
                np.int32,
            )
            cv2.fillConvexPoly(img, pts, _bgr(190, 240, 20), cv2.LINE_AA)
            cv2.polylines(img, [pts], True, (0, 0, 0), 2, cv2.LINE_AA)
            for dx in (-0.35, 0.3):
                cv2.circle(
                    img, (int(c[0] + dx * r), int(c[1])), max(2, int(r * 0.15)), (0, 0, 0), -1
                )
                cv2.line(
                    img,
                    (int(c[0] + dx * r), int(c[1])),
                    (int(c[0] + dx * r), int(c[1] + r * 0.8)),
                    (0, 0, 0),
                    max(2, int(r * 0.15)),
                )
        else:
            cv2.rectangle(
                img,
                (int(c[0] - s / 2), int(c[1] - s / 2)),
                (int(c[0] + s / 2), int(c[1] + s / 2)),
                _bgr(255, 130, 0),
                -1,
            )
            for k in range(3):
                yy = int(c[1] - s / 3 + k * s / 3)
                cv2.line(
                    img,
                    (int(c[0] - s / 3), yy),
                    (int(c[0] + s / 3), yy),
                    (255, 255, 255) if k != 1 else (0, 0, 0),
                    max(2, int(s / 12)),
                )


def _traffic_light(img: np.ndarray, cam: _Cam, scene: Scene, x_kerb: float, emissive: list) -> None:
    z = float(scene.stop_line_m or 20.0)
    r = int(np.clip(F * 0.16 / z * 2.2, 10, 20))
    cu = float(np.clip(cam.u(1.2, z), 3 * r, WIDTH - 3 * r))
    top = max(6.0, cam.v(z, 6.2))
    pole_u = cam.u(x_kerb, z)
    cv2.line(
        img,
        (int(pole_u), int(cam.v(z))),
        (int(pole_u), int(top + r)),
        (60, 60, 60),
        max(2, int(F * 0.15 / z)),
    )
    cv2.line(
        img,
        (int(pole_u), int(top + r)),
        (int(cu), int(top + r)),
        (60, 60, 60),
        max(2, int(F * 0.1 / z)),
    )
    cv2.rectangle(
        img,
        (int(cu - 1.4 * r), int(top)),
        (int(cu + 1.4 * r), int(top + 7.6 * r)),
        (20, 20, 20),
        -1,
    )
    lamps = (("red", _bgr(255, 30, 20)), ("amber", _bgr(255, 170, 0)), ("green", _bgr(0, 235, 90)))
    for i, (name, col) in enumerate(lamps):
        c = (int(cu), int(top + 1.3 * r + i * 2.5 * r))
        if name == scene.light:
            emissive.append(("lamp", c, r, col))
        else:
            cv2.circle(img, c, r, tuple(int(k * 0.22) for k in col), -1, cv2.LINE_AA)


def render(scene: Scene) -> np.ndarray:
    """The frame as a BGR uint8 array (HEIGHT, WIDTH, 3)."""
    cam = _Cam(scene)
    h = int(round(cam.h))
    sky_top, sky_hor, verge, road, walk, mark = (_bgr(*c) for c in PALETTE[scene.time_of_day])
    img = _background(scene.time_of_day, h).copy()
    rnd = random.Random(scene.scenery)
    # Buildings / trees on the horizon: scenery only.
    for _ in range(rnd.randint(3, 9)):
        bx, bw, bh = rnd.uniform(0, WIDTH), rnd.uniform(20, 90), rnd.uniform(8, 60)
        shade = rnd.uniform(0.35, 0.8)
        col = tuple(int(c * shade) for c in sky_hor)
        cv2.rectangle(img, (int(bx), int(h - bh)), (int(bx + bw), h), col, -1)

    xl = (-scene.ego_lane - 0.5) * LANE_W
    xr = (scene.n_lanes - scene.ego_lane - 0.5) * LANE_W
    _ground_quad(img, cam, xl - 3.5, xl, Z_NEAR, Z_FAR, walk)
    _ground_quad(img, cam, xr, xr + 3.5, Z_NEAR, Z_FAR, walk)
    _ground_quad(img, cam, xl, xr, Z_NEAR, Z_FAR, road)
    for xe in (xl + 0.1, xr - 0.25):  # solid road edges
        _ground_quad(img, cam, xe, xe + 0.15, Z_NEAR, Z_FAR, mark)
    for i in range(1, scene.n_lanes):  # dashed lane lines
        xd = xl + i * LANE_W - 0.075
        z = Z_NEAR
        while z < 120:
            _ground_quad(img, cam, xd, xd + 0.15, z, z + 3.0, mark)
            z += 9.0
    if scene.crosswalk and scene.crosswalk_m is not None:
        zc = scene.crosswalk_m
        x = xl + 0.3
        while x < xr - 0.3:
            _ground_quad(img, cam, x, min(x + 0.5, xr - 0.3), zc, zc + 3.0, mark)
            x += 1.0
    if scene.light != "none" and scene.stop_line_m is not None:
        _ground_quad(img, cam, xl, xr, scene.stop_line_m - 0.6, scene.stop_line_m, mark, min_px=5)
        xa = xr - LANE_W / 2  # right-turn arrows in the rightmost lane
        for za in {6.0, max(scene.stop_line_m - 6.0, 6.0)}:
            _ground_quad(img, cam, xa - 0.12, xa + 0.12, za, za + 3.0, mark)
            _ground_quad(img, cam, xa - 0.12, xa + 0.9, za + 2.6, za + 3.0, mark)
            tip = np.array(
                [
                    cam.pt(xa + 0.8, za + 2.1),
                    cam.pt(xa + 1.3, za + 2.8),
                    cam.pt(xa + 0.8, za + 3.5),
                ],
                np.int32,
            )
            cv2.fillConvexPoly(img, tip, mark, cv2.LINE_AA)

    # Objects far to near, so nearer ones occlude; pedestrians last (key -1) so a car alongside
    # never hides the one feature a yield/stop decision rests on.
    emissive: list = []
    objs: list[tuple[float, object]] = []
    kerb_r, kerb_l = xr + 1.0, xl - 1.0
    if scene.speed_sign or scene.school_zone_sign or scene.lane_closed_sign:
        objs.append((30.0, lambda: _signs(img, cam, scene, kerb_r, rnd)))
    if scene.light != "none":
        objs.append(
            (
                float(scene.stop_line_m or 0) + 0.1,
                lambda: _traffic_light(img, cam, scene, kerb_r, emissive),
            )
        )
    if scene.pedestrians != "none" and scene.crosswalk_m is not None:
        zc = scene.crosswalk_m + 1.5
        n = 1 + scene.noise_seed % 3
        for k in range(n):
            shirt = SHIRTS[(scene.noise_seed // 3 + k) % len(SHIRTS)]
            if scene.pedestrians == "on_road":
                xp = -1.2 + k * 1.2
                objs.append((-1.0, lambda xp=xp, s=shirt: _pedestrian(img, cam, xp, zc, s)))
            else:  # on the kerb nearest the camera's view, beyond the road edge
                xk = kerb_l - 0.3 - 0.7 * k if abs(xl) < abs(xr) else kerb_r + 0.3 + 0.7 * k
                zk = max(zc, F * (abs(xk) + 0.6) / 290)
                objs.append((-1.0, lambda xk=xk, zk=zk, s=shirt: _pedestrian(img, cam, xk, zk, s)))
    if scene.lead_vehicle_m is not None:
        zl = scene.lead_vehicle_m
        col = CAR_COLOURS[scene.lead_colour % len(CAR_COLOURS)]
        objs.append((zl, lambda: _car(img, cam, 0.0, zl, col, emissive)))
    if scene.obstacle == "cones":
        zo = scene.obstacle_m
        for k in range(5):
            xo, zk = -1.3 + k * 0.65, zo + k * 1.5
            objs.append((zk, lambda xo=xo, zk=zk: _cone(img, cam, xo, zk)))
    elif scene.obstacle == "stopped_car":
        zo = scene.obstacle_m
        col = CAR_COLOURS[scene.lead_colour % len(CAR_COLOURS)]
        objs.append((zo, lambda: _car(img, cam, 0.2, zo, col, emissive, stopped=True)))
        tri = max(F * 0.5 / (zo - 3), 14.0)
        tu, tv = cam.u(0.0, zo - 3), cam.v(zo - 3)
        pts = np.array([(tu - tri / 2, tv), (tu + tri / 2, tv), (tu, tv - tri)], np.int32)
        objs.append(
            (
                zo - 3,
                lambda: cv2.polylines(
                    img, [pts], True, _bgr(230, 0, 0), max(2, int(tri / 6)), cv2.LINE_AA
                ),
            )
        )
    for side, present, colour_i in (("l", scene.left_vehicle, 0), ("r", scene.right_vehicle, 1)):
        if present:
            xs = -LANE_W if side == "l" else LANE_W
            zs = 7.5 + (scene.scenery % 5)
            col = CAR_COLOURS[scene.side_colours[colour_i] % len(CAR_COLOURS)]
            objs.append((zs, lambda xs=xs, zs=zs, col=col: _car(img, cam, xs, zs, col, emissive)))
    for _, draw in sorted(objs, key=lambda o: -o[0]):
        draw()  # type: ignore[operator]

    if scene.time_of_day != "day":
        img = cv2.multiply(img, _light_gain(scene.time_of_day, h), scale=1 / 255)
    night = scene.time_of_day != "day"
    for kind, c, r, extra in emissive:
        if kind == "lamp":
            cv2.circle(img, c, r, extra, -1, cv2.LINE_AA)
            cv2.circle(img, c, max(2, r // 2), (235, 245, 255), -1, cv2.LINE_AA)
            _glow(img, c, r, extra, 0.9)
        elif extra:  # stopped car: hazard lights + bright rear
            cv2.circle(img, c, r + 1, _bgr(255, 160, 0), -1, cv2.LINE_AA)
            _glow(img, c, max(r, 6), _bgr(255, 120, 0), 1.0)
        else:
            cv2.circle(img, c, r, _bgr(255, 40, 30) if night else _bgr(190, 20, 20), -1)
            if night:  # a far car at night is mostly its tail lights: keep them visible
                _glow(img, c, max(r, 6), _bgr(255, 20, 10), 0.9)
    return _nuisance(img, scene)


@cache
def _noise_bank() -> np.ndarray:
    rng = np.random.default_rng(12345)
    return rng.normal(0, 1, (HEIGHT + 64, WIDTH + 64, 3)).astype(np.float32)


def _nuisance(img: np.ndarray, scene: Scene) -> np.ndarray:
    rng = random.Random(scene.noise_seed)
    if scene.rain > 0:
        n = int(250 * scene.rain)
        streak = (200, 200, 200)
        layer = img.copy()
        for _ in range(n):
            x, y = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
            ln = rng.uniform(8, 22)
            cv2.line(layer, (int(x), int(y)), (int(x - ln * 0.25), int(y + ln)), streak, 1)
        img = cv2.addWeighted(img, 1 - 0.35 * scene.rain, layer, 0.35 * scene.rain, 0)
    if scene.blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), scene.blur)
    if scene.noise > 0:
        ox, oy = rng.randrange(64), rng.randrange(64)
        noise = _noise_bank()[oy : oy + HEIGHT, ox : ox + WIDTH]
        img = cv2.add(img.astype(np.float32), noise * scene.noise, dtype=cv2.CV_32F)
        img = np.clip(img, 0, 255).astype(np.uint8)
    return img


def encode_jpeg(bgr: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV only fails on invalid arrays
        raise RuntimeError("cv2.imencode failed")
    return buf.tobytes()


def render_jpeg(scene: Scene) -> bytes:
    """The frame as JPEG bytes at the scene's quality: what goes on the bus and in MCAP."""
    return encode_jpeg(render(scene), scene.jpeg_quality)
