"""The one topic registry: every topic pattern with its payload model, QoS, retain flag and rate.

Publisher, node, simulator, recorder, docs and tests import this; nothing else spells a topic.
Patterns are relative to a configurable prefix (default ``ruledrive/v1``). Each entry also names
the MCAP channel its messages are recorded on (``bus.recording`` builds its channel table from
this registry).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel

from bus.schema import (
    VEHICLE_ID_PATTERN,
    DecisionMsg,
    ErrorReport,
    FrameHeader,
    LabelMsg,
    NodeStatus,
    RuleSet,
)
from core.errors import MessageError
from core.rejects import RejectCode

__all__ = [
    "CAMERA",
    "CAMERA_CHANNEL_SCHEMA",
    "DECISION",
    "DEFAULT_PREFIX",
    "ERRORS",
    "LABEL",
    "RULES",
    "STATUS",
    "TOPICS",
    "Topic",
    "match_topic",
]

DEFAULT_PREFIX = "ruledrive/v1"
# A recorded frame is a foxglove CompressedImage (viewable in Foxglove); its header goes to /ego.
CAMERA_CHANNEL_SCHEMA = "foxglove.CompressedImage"


@dataclass(frozen=True)
class Topic:
    name: str  # short name (logs, counters); not the MCAP channel, see ``channel``
    pattern: str  # relative to the prefix; {vehicle_id} or {node_id} placeholders
    model: type[BaseModel]
    encoding: str  # bus payload: "envelope" (bus.envelope binary) or "json"
    qos: int
    retain: bool
    rate_hz: float | None  # expected rate per vehicle/node; None = on change
    description: str
    channel: str  # MCAP channel name in recordings (never renamed: old files must stay readable)
    channel_encoding: str = "json"  # MCAP message encoding: "json" or "protobuf"

    @property
    def channel_schema(self) -> str:
        """The MCAP schema name of the channel: a foxglove image for frames, else the model."""
        if self.channel_encoding == "protobuf":
            return CAMERA_CHANNEL_SCHEMA
        return f"ruledrive.{self.model.__name__}"

    def topic(self, prefix: str = DEFAULT_PREFIX, **ids: str) -> str:
        return f"{prefix}/{self.pattern.format(**ids)}"

    def subscription(self, prefix: str = DEFAULT_PREFIX) -> str:
        """The MQTT filter for every vehicle / node: placeholders become '+'."""
        return f"{prefix}/{re.sub(r'{[a-z_]+}', '+', self.pattern)}"


CAMERA = Topic(
    "camera",
    "vehicles/{vehicle_id}/camera/front",
    FrameHeader,
    "envelope",
    0,
    False,
    30.0,
    "Front-camera frame: binary envelope (JSON FrameHeader + raw JPEG).",
    "/camera/front",
    "protobuf",
)
RULES = Topic(
    "rules",
    "vehicles/{vehicle_id}/rules",
    RuleSet,
    "json",
    1,
    True,
    None,
    (
        "Traffic rules in force for the vehicle, published by the rule authority; retained so"
        " a restarted node gets them. Optionally signed (Ed25519, docs/contract.md)."
    ),
    "/rules",
)
DECISION = Topic(
    "decision",
    "vehicles/{vehicle_id}/decision",
    DecisionMsg,
    "json",
    1,
    False,
    30.0,
    "The node's decision for one frame.",
    "/decision",
)
LABEL = Topic(
    "label",
    "vehicles/{vehicle_id}/label",
    LabelMsg,
    "json",
    1,
    False,
    None,
    "Ground truth for a frame (oracle in simulation, the driver's action in a vehicle).",
    "/label",
)
STATUS = Topic(
    "status",
    "nodes/{node_id}/status",
    NodeStatus,
    "json",
    1,
    True,
    0.2,
    "Retained node status: online heartbeat, or offline (last will).",
    "/status",
)
ERRORS = Topic(
    "errors",
    "nodes/{node_id}/errors",
    ErrorReport,
    "json",
    1,
    False,
    None,
    "One report per rejected input: topic, reason code, detail.",
    "/errors",
)

TOPICS: tuple[Topic, ...] = (CAMERA, RULES, DECISION, LABEL, STATUS, ERRORS)

_ID = re.compile(VEHICLE_ID_PATTERN)


def _regex(prefix: str, entry: Topic) -> re.Pattern[str]:
    # Placeholders match any one level here; the id format is checked after, so a topic with the
    # right shape but a bad id is reported as bad_vehicle_id rather than unknown_topic.
    body = re.sub(r"\\{([a-z_]+)\\}", r"(?P<\1>[^/]+)", re.escape(entry.pattern))
    return re.compile("^" + re.escape(prefix) + "/" + body + "$")


def match_topic(topic: str, prefix: str = DEFAULT_PREFIX) -> tuple[Topic, dict[str, str]]:
    """Find the registry entry of a concrete topic and its ids.

    Raise MessageError ``unknown_topic`` if no pattern fits, ``bad_vehicle_id`` if one fits but
    an id does not match VEHICLE_ID_PATTERN (node ids follow the same format).
    """
    for entry in TOPICS:
        m = _regex(prefix, entry).match(topic)
        if m:
            ids = m.groupdict()
            for key, value in ids.items():
                if not _ID.match(value):
                    detail = f"{key} {value[:80]!r} in topic is invalid"
                    raise MessageError(RejectCode.BAD_VEHICLE_ID, detail)
            return entry, ids
    raise MessageError(
        RejectCode.UNKNOWN_TOPIC, f"topic {topic[:200]!r} is not in the ruledrive contract"
    )
