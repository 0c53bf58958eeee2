"""The one topic registry: every topic pattern with its payload model, QoS, retain flag and rate.

Publisher, node, simulator, recorder, docs and tests import this; nothing else spells a topic.
Patterns are relative to a configurable prefix (default ``ruledrive/v1``).
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
from ruledrive.errors import MessageError

__all__ = [
    "CAMERA",
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


@dataclass(frozen=True)
class Topic:
    name: str  # short name, also the MCAP channel suffix
    pattern: str  # relative to the prefix; {vehicle_id} or {node_id} placeholders
    model: type[BaseModel]
    encoding: str  # "envelope" (bus.envelope binary) or "json"
    qos: int
    retain: bool
    rate_hz: float | None  # expected rate per vehicle/node; None = on change
    description: str

    def topic(self, prefix: str = DEFAULT_PREFIX, **ids: str) -> str:
        return f"{prefix}/{self.pattern.format(**ids)}"

    def subscription(self, prefix: str = DEFAULT_PREFIX) -> str:
        """The MQTT filter for every vehicle / node: placeholders become '+'."""
        return f"{prefix}/{re.sub(r'{[a-z_]+}', '+', self.pattern)}"


CAMERA = Topic(
    "camera", "vehicles/{vehicle_id}/camera/front", FrameHeader, "envelope", 0, False, 30.0,
    "Front-camera frame: binary envelope (JSON FrameHeader + raw JPEG).",
)
RULES = Topic(
    "rules", "vehicles/{vehicle_id}/rules", RuleSet, "json", 1, True, None,
    "Traffic rules in force for the vehicle; retained so a restarted node gets them.",
)
DECISION = Topic(
    "decision", "vehicles/{vehicle_id}/decision", DecisionMsg, "json", 1, False, 30.0,
    "The node's decision for one frame.",
)
LABEL = Topic(
    "label", "vehicles/{vehicle_id}/label", LabelMsg, "json", 1, False, None,
    "Ground truth for a frame (oracle in simulation, the driver's action in a vehicle).",
)
STATUS = Topic(
    "status", "nodes/{node_id}/status", NodeStatus, "json", 1, True, 0.2,
    "Retained node status: online heartbeat, or offline (last will).",
)
ERRORS = Topic(
    "errors", "nodes/{node_id}/errors", ErrorReport, "json", 1, False, None,
    "One report per rejected input: topic, reason code, detail.",
)

TOPICS: tuple[Topic, ...] = (CAMERA, RULES, DECISION, LABEL, STATUS, ERRORS)

_ID = VEHICLE_ID_PATTERN.strip("^$")


def match_topic(topic: str, prefix: str = DEFAULT_PREFIX) -> tuple[Topic, dict[str, str]]:
    """Find the registry entry of a concrete topic; raise MessageError('unknown_topic') if none."""
    for entry in TOPICS:
        regex = "^" + re.escape(prefix) + "/" + re.sub(
            r"\\{([a-z_]+)\\}", lambda m: f"(?P<{m.group(1)}>{_ID})", re.escape(entry.pattern)
        ) + "$"
        m = re.match(regex, topic)
        if m:
            return entry, m.groupdict()
    raise MessageError("unknown_topic", f"topic {topic!r} is not in the ruledrive contract")
