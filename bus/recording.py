"""MCAP recordings of drives: the format and the types shared by the simulator, training, the
bus recorder and replay. ``bus.recording_writer`` writes it, ``bus.recording_reader``
reads it.


Every bus topic has its channel, named in the topic registry (``bus.topics.Topic.channel``);
:data:`CHANNELS` is built from it, plus two channels that are not bus topics::

    /camera/front  protobuf foxglove.CompressedImage  the camera topic's JPEG,
                                                      frame_id = "{vehicle_id}/{frame_id}"
    /ego           json  bus.schema.FrameHeader       the camera topic's header (vehicle, frame
                                                      id, capture stamp, speed)
    /rules         json  bus.schema.RuleSet           retained: in force for that vehicle's later
                                                      frames until replaced
    /label         json  bus.schema.LabelMsg          oracle / driver ground truth
    /decision      json  bus.schema.DecisionMsg       written by the bus recorder only
    /status        json  bus.schema.NodeStatus        node status (not recorded by default)
    /errors        json  bus.schema.ErrorReport       reject reports (not recorded by default)
    /scene         json  symbolic scene (debugging)   {"vehicle_id", "frame_id", "scene"}

JSON channels use message encoding ``json`` and a ``jsonschema`` schema from the pydantic model;
the schema name is ``ruledrive.<model>``. Channel names are part of the file format: renaming one
makes old recordings unreadable.

Files are chunked with CRCs, so a truncated or corrupt file is detected (see the reader).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from bus.schema import DecisionLabel, FrameHeader
from bus.topics import CAMERA, DECISION, LABEL, RULES, TOPICS

__all__ = [
    "CAMERA_CH",
    "CHANNELS",
    "DECISION_CH",
    "EGO_CH",
    "LABEL_CH",
    "METADATA_NAME",
    "RULES_CH",
    "SCENE_CH",
    "CameraFrame",
    "Channel",
    "Event",
    "Sample",
    "counterfactual_pairs",
]


@dataclass(frozen=True)
class Channel:
    """One MCAP channel of the format: name, schema a reader accepts, message encoding."""

    name: str
    schema_name: str
    encoding: str  # "protobuf" (camera image) or "json"
    model: type[BaseModel] | None  # JSON payload model; None = protobuf, or a free JSON object


EGO_CH, SCENE_CH = "/ego", "/scene"
CHANNELS: dict[str, Channel] = {
    t.channel: Channel(
        t.channel,
        t.channel_schema,
        t.channel_encoding,
        t.model if t.channel_encoding == "json" else None,
    )
    for t in TOPICS
}
CHANNELS[EGO_CH] = Channel(EGO_CH, "ruledrive.FrameHeader", "json", FrameHeader)
CHANNELS[SCENE_CH] = Channel(SCENE_CH, "ruledrive.Scene", "json", None)
CAMERA_CH, RULES_CH, LABEL_CH, DECISION_CH = (
    CAMERA.channel,
    RULES.channel,
    LABEL.channel,
    DECISION.channel,
)
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


def counterfactual_pairs(
    samples: Iterable[Sample], kind: str | None = None
) -> list[tuple[Sample, Sample]]:
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
            out += [
                (a, b)
                for a, b in zip(group, group[1:], strict=False)
                if a.label != b.label and a.rules != b.rules
            ]
    if kind in (None, "rules"):
        for group in by_rules.values():
            out += [
                (a, b)
                for a, b in zip(group, group[1:], strict=False)
                if a.label != b.label and a.jpeg != b.jpeg
            ]
    return out
