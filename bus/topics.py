"""The one topic registry: every topic pattern with its payload model, QoS, retain flag and rate.

Publisher, node, simulator, recorder, docs and tests import this; nothing else spells a topic.
Patterns are relative to a configurable prefix (default ``ruledrive/v1``). Each entry also names
the MCAP channel its messages are recorded on (``bus.recording`` builds its channel table from
this registry).
"""

from __future__ import annotations

import functools
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
    "SHARE_GROUP_PATTERN",
    "STATUS",
    "TOPICS",
    "Topic",
    "check_prefix",
    "match_topic",
    "shared_filter",
    "split_shared",
]

DEFAULT_PREFIX = "ruledrive/v1"
# An MQTT 5 share name may hold no '/', '+' or '#'; ruledrive keeps it to the id alphabet.
SHARE_GROUP_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_SHARE = "$share/"
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

    def subscription(self, prefix: str = DEFAULT_PREFIX, share_group: str | None = None) -> str:
        """The MQTT filter for every vehicle / node: placeholders become '+'. With a
        ``share_group``, the MQTT 5 shared subscription ``$share/GROUP/FILTER``: the broker hands
        each message to one member of the group."""
        plain = f"{prefix}/{re.sub(r'{[a-z_]+}', '+', self.pattern)}"
        return plain if share_group is None else shared_filter(share_group, plain)


def shared_filter(group: str, topic_filter: str) -> str:
    """``$share/GROUP/FILTER``; ValueError for a share name MQTT does not allow."""
    if not re.fullmatch(SHARE_GROUP_PATTERN, group):
        raise ValueError(f"share group {group[:80]!r} must match {SHARE_GROUP_PATTERN}")
    return f"{_SHARE}{group}/{topic_filter}"


def split_shared(topic_filter: str) -> tuple[str | None, str]:
    """``$share/GROUP/FILTER`` -> (GROUP, FILTER); any other filter -> (None, filter).

    Messages arrive on their real topic, never with the ``$share/GROUP/`` prefix, so a client
    matches them against FILTER (paho's ``topic_matches_sub`` knows nothing of shares)."""
    if not topic_filter.startswith(_SHARE):
        return None, topic_filter
    group, sep, rest = topic_filter[len(_SHARE) :].partition("/")
    if not group or not sep or not rest:
        raise ValueError(f"shared subscription {topic_filter[:200]!r} is not $share/GROUP/FILTER")
    return group, rest


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


def check_prefix(prefix: str) -> str:
    """``prefix`` if it is a topic prefix: '/'-separated levels of [A-Za-z0-9_.-], no wildcard
    and no empty level; ValueError otherwise. The node's setting, the credentials' ACL lines
    and the commands' --prefix flags all hold to it (a wildcard in an ACL line grants far more
    than it names, and a publish to it fails)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*", prefix):
        raise ValueError("topic prefix must be '/'-separated levels without wildcards")
    # Far inside what MQTT (65,535 bytes a topic) and brokers (Mosquitto: 200 levels) carry
    # with the contract's own levels after it: a longer one was only found out as a broker
    # that "does not answer" (a traceback in paho's thread, or a malformed-packet disconnect).
    if len(prefix) > MAX_PREFIX_CHARS or prefix.count("/") + 1 > MAX_PREFIX_LEVELS:
        raise ValueError(
            f"topic prefix must be at most {MAX_PREFIX_CHARS} characters and "
            f"{MAX_PREFIX_LEVELS} levels, not {len(prefix)} and {prefix.count('/') + 1}"
        )
    return prefix


MAX_PREFIX_CHARS = 1024
MAX_PREFIX_LEVELS = 32


@functools.lru_cache(maxsize=256)  # per message otherwise: tens of microseconds each
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
        m = _regex(prefix, entry).fullmatch(topic)  # `$` alone lets a final newline in
        if m:
            ids = m.groupdict()
            for key, value in ids.items():
                if not _ID.fullmatch(value):
                    detail = f"{key} {value[:80]!r} in topic is invalid"
                    raise MessageError(RejectCode.BAD_VEHICLE_ID, detail)
            return entry, ids
    raise MessageError(
        RejectCode.UNKNOWN_TOPIC, f"topic {topic[:200]!r} is not in the ruledrive contract"
    )
