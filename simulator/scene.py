"""The symbolic scene: everything the oracle and the renderer need to know about one frame.

A :class:`Scene` is a frozen, validated value. Decision-relevant fields come first; nuisance
fields (camera jitter, blur, noise, rain, JPEG quality, colours, ``noise_seed``) only change
pixels, never the decision. ``speed_kph`` is frame metadata (it travels in the FrameHeader, not in
the picture).

World conventions (docs/world.md):

* lanes are numbered from the left, ``ego_lane`` 0 = leftmost; all lanes run in ego's direction;
* at a signalised junction the rightmost lane is a right-turn lane (white arrow painted in it);
* the clock: day = 07-17 h, dusk = 17-20 h, night = 20-07 h, every drive is on a weekday.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from core.errors import DataError

__all__ = [
    "CLOSE_STOP_LINE_M",
    "LEAD_BINDING_M",
    "LIGHTS",
    "OBSTACLES",
    "PEDESTRIANS",
    "RULE_META_KEY",
    "TIMES_OF_DAY",
    "Scene",
    "scene_from_dict",
]

LIGHTS = ("none", "red", "amber", "green")
PEDESTRIANS = ("none", "waiting", "on_road")
OBSTACLES = ("none", "cones", "stopped_car")
TIMES_OF_DAY = ("day", "dusk", "night")

# Key of the per-rule metadata that the bilingual world adds to a frame's scene record
# (simulator.language.rule_records); not a Scene field, so scene_from_dict sets it aside.
RULE_META_KEY = "rule_meta"

CLOSE_STOP_LINE_M = 15.0  # amber: "close" means the stop line is at most this far
LEAD_BINDING_M = 40.0  # a lead vehicle nearer than this makes ego overtake or slow down


@dataclass(frozen=True)
class Scene:
    """One frame of the world. Construction validates; bad values raise DataError."""

    n_lanes: int = 2
    ego_lane: int = 0
    light: str = "none"
    stop_line_m: float | None = None
    crosswalk: bool = False
    crosswalk_m: float | None = None
    pedestrians: str = "none"
    lead_vehicle_m: float | None = None
    left_vehicle: bool = False
    right_vehicle: bool = False
    obstacle: str = "none"
    obstacle_m: float = 20.0
    school_zone_sign: bool = False
    speed_sign: int | None = None
    lane_closed_sign: bool = False
    time_of_day: str = "day"
    speed_kph: float = 50.0
    # --- nuisance: pixels only ---
    pitch_px: float = 0.0
    blur: float = 0.0  # Gaussian sigma in px at 640x360
    noise: float = 0.0  # std of additive noise, grey levels
    rain: float = 0.0  # 0..1 streak density
    jpeg_quality: int = 85
    lead_colour: int = 0
    side_colours: tuple[int, int] = (1, 2)
    scenery: int = 0  # picks buildings / trees layout
    noise_seed: int = 0

    def __post_init__(self) -> None:
        _check(self)

    # Lanes that exist next to ego.
    @property
    def has_left_lane(self) -> bool:
        return self.ego_lane > 0

    @property
    def has_right_lane(self) -> bool:
        return self.ego_lane < self.n_lanes - 1

    @property
    def rightmost(self) -> bool:
        return self.ego_lane == self.n_lanes - 1

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["side_colours"] = list(self.side_colours)
        return d

    def replace(self, **changes: Any) -> Scene:
        return dataclasses.replace(self, **changes)


def scene_from_dict(d: dict[str, Any]) -> Scene:
    """Inverse of :meth:`Scene.to_dict`; unknown or bad fields raise DataError. A scene record's
    ``rule_meta`` (:data:`RULE_META_KEY`) is not part of the scene and is ignored."""
    names = {f.name for f in dataclasses.fields(Scene)}
    unknown = set(d) - names - {RULE_META_KEY}
    if unknown:
        raise DataError(f"scene has unknown fields: {', '.join(sorted(unknown))}")
    d = dict(d)
    d.pop(RULE_META_KEY, None)
    if "side_colours" in d:
        d["side_colours"] = tuple(d["side_colours"])
    try:
        return Scene(**d)
    except TypeError as exc:
        raise DataError(f"scene is invalid: {exc}") from exc


def _check(s: Scene) -> None:
    def bad(msg: str) -> DataError:
        return DataError(f"impossible scene: {msg}")

    if s.n_lanes not in (2, 3):
        raise bad(f"n_lanes={s.n_lanes} (must be 2 or 3)")
    if not 0 <= s.ego_lane < s.n_lanes:
        raise bad(f"ego_lane={s.ego_lane} outside 0..{s.n_lanes - 1}")
    if s.light not in LIGHTS:
        raise bad(f"light={s.light!r} not in {LIGHTS}")
    if (s.light == "none") != (s.stop_line_m is None):
        raise bad("stop_line_m is set exactly when there is a traffic light")
    if s.stop_line_m is not None and not 5.0 <= s.stop_line_m <= 60.0:
        raise bad(f"stop_line_m={s.stop_line_m} outside 5..60")
    if s.pedestrians not in PEDESTRIANS:
        raise bad(f"pedestrians={s.pedestrians!r} not in {PEDESTRIANS}")
    if s.pedestrians != "none" and not s.crosswalk:
        raise bad("pedestrians need a crosswalk")
    if s.crosswalk != (s.crosswalk_m is not None):
        raise bad("crosswalk_m is set exactly when there is a crosswalk")
    if s.crosswalk_m is not None and not 6.0 <= s.crosswalk_m <= 64.0:
        raise bad(f"crosswalk_m={s.crosswalk_m} outside 6..64")
    if s.lead_vehicle_m is not None and not 8.0 <= s.lead_vehicle_m <= 80.0:
        raise bad(f"lead_vehicle_m={s.lead_vehicle_m} outside 8..80")
    if s.left_vehicle and not s.has_left_lane:
        raise bad("left_vehicle without a left lane")
    if s.right_vehicle and not s.has_right_lane:
        raise bad("right_vehicle without a right lane")
    if s.obstacle not in OBSTACLES:
        raise bad(f"obstacle={s.obstacle!r} not in {OBSTACLES}")
    if s.obstacle != "none" and s.lead_vehicle_m is not None:
        raise bad("an obstacle and a lead vehicle cannot share the ego lane")
    if not 8.0 <= s.obstacle_m <= 40.0:
        raise bad(f"obstacle_m={s.obstacle_m} outside 8..40")
    if s.speed_sign is not None and not 10 <= s.speed_sign <= 130:
        raise bad(f"speed_sign={s.speed_sign} outside 10..130")
    if s.time_of_day not in TIMES_OF_DAY:
        raise bad(f"time_of_day={s.time_of_day!r} not in {TIMES_OF_DAY}")
    if not (math.isfinite(s.speed_kph) and 0.0 <= s.speed_kph <= 130.0):
        raise bad(f"speed_kph={s.speed_kph} outside 0..130")
    if not 1 <= s.jpeg_quality <= 100:
        raise bad(f"jpeg_quality={s.jpeg_quality} outside 1..100")
    if s.blur < 0 or s.noise < 0 or not 0.0 <= s.rain <= 1.0:
        raise bad("blur/noise must be >= 0 and rain in 0..1")
