"""MCAP recordings of drives: the format and the types shared by the simulator, training, the
bus recorder and replay. ``bus.recording_writer`` writes it, ``bus.recording_reader``
reads it.


Channels mirror the bus topics (``bus.topics``)::

    /camera/front  protobuf foxglove.CompressedImage  frame_id = "{vehicle_id}/{frame_id}"
    /ego           json  bus.schema.FrameHeader       (vehicle, frame id, capture stamp, speed)
    /rules         json  bus.schema.RuleSet           retained: in force for that vehicle's later
                                                      frames until replaced
    /label         json  bus.schema.LabelMsg          oracle / driver ground truth
    /decision      json  bus.schema.DecisionMsg       written by the bus recorder only
    /scene         json  symbolic scene (debugging)   {"vehicle_id", "frame_id", "scene"}

JSON channels use message encoding ``json`` and a ``jsonschema`` schema from the pydantic model.

Files are chunked with CRCs, so a truncated or corrupt file is detected (see the reader).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from bus.schema import DecisionLabel, DecisionMsg, FrameHeader, LabelMsg, RuleSet

__all__ = [
    "CAMERA_CH",
    "CHANNELS",
    "DECISION_CH",
    "EGO_CH",
    "JSON_MODELS",
    "LABEL_CH",
    "METADATA_NAME",
    "RULES_CH",
    "SCENE_CH",
    "CameraFrame",
    "Event",
    "Sample",
    "counterfactual_pairs",
]

CAMERA_CH, EGO_CH, RULES_CH, LABEL_CH, DECISION_CH, SCENE_CH = (
    "/camera/front", "/ego", "/rules", "/label", "/decision", "/scene")
JSON_MODELS: dict[str, type[BaseModel] | None] = {
    EGO_CH: FrameHeader, RULES_CH: RuleSet, LABEL_CH: LabelMsg, DECISION_CH: DecisionMsg,
    SCENE_CH: None,
}
# channel -> schema name a reader accepts
CHANNELS = {CAMERA_CH: "foxglove.CompressedImage", EGO_CH: "ruledrive.FrameHeader",
            RULES_CH: "ruledrive.RuleSet", LABEL_CH: "ruledrive.LabelMsg",
            DECISION_CH: "ruledrive.DecisionMsg", SCENE_CH: "ruledrive.Scene"}
METADATA_NAME = "ruledrive"


@dataclass(frozen=True)
class CameraFrame:
    vehicle_id: str
    frame_id: int
    stamp_ns: int
    jpeg: bytes


@dataclass(frozen=True)
class Event:
    """One decoded record of the timeline: ``channel`` and its typed message."""

    channel: str
    log_time_ns: int
    message: Any  # CameraFrame | FrameHeader | RuleSet | LabelMsg | DecisionMsg | dict


@dataclass(frozen=True)
class Sample:
    """One labelled (or unlabelled) frame with the rule set in force when it was captured."""

    vehicle_id: str
    frame_id: int
    stamp_ns: int
    speed_kph: float
    jpeg: bytes
    rules: tuple[str, ...]
    rules_version: str | None
    label: DecisionLabel | None
    reason: str | None
    split: str
    source: str = ""
    scene: dict[str, Any] | None = None


def counterfactual_pairs(samples: Iterable[Sample], kind: str | None = None) \
        -> list[tuple[Sample, Sample]]:
    """Pairs of samples decided differently that share one input.

    ``kind="frame"``: identical JPEG bytes, different rule sets. ``kind="rules"``: the same rule
    set (same drive and rules version) with different frames. None: both. Consecutive members of
    each group are paired; only pairs with different (non-None) labels are returned.
    """
    by_frame: dict[bytes, list[Sample]] = {}
    by_rules: dict[tuple[str, str | None, tuple[str, ...]], list[Sample]] = {}
    for s in samples:
        if s.label is None:
            continue
        by_frame.setdefault(s.jpeg, []).append(s)
        by_rules.setdefault((s.vehicle_id, s.rules_version, s.rules), []).append(s)
    out: list[tuple[Sample, Sample]] = []
    if kind in (None, "frame"):
        for group in by_frame.values():
            out += [(a, b) for a, b in zip(group, group[1:], strict=False)
                    if a.label != b.label and a.rules != b.rules]
    if kind in (None, "rules"):
        for group in by_rules.values():
            out += [(a, b) for a, b in zip(group, group[1:], strict=False)
                    if a.label != b.label and a.jpeg != b.jpeg]
    return out
