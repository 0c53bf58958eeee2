"""Pydantic v2 models of every message on the ruledrive bus (schema version 1).

Every message carries ``schema_version``, a time in ns, and the ids it answers. Units are in field
names. Fields are never repurposed: a change bumps ``SCHEMA_VERSION``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "INT64_MAX",
    "KEY_ID_PATTERN",
    "MAX_MODEL_VERSION_CHARS",
    "SCHEMA_VERSION",
    "VEHICLE_ID_PATTERN",
    "VERSION_PATTERN",
    "DecisionLabel",
    "DecisionMsg",
    "ErrorReport",
    "FrameHeader",
    "LabelMsg",
    "NodeState",
    "NodeStatus",
    "RuleSet",
    "Timings",
]

SCHEMA_VERSION = 1  # also the Literal of Version below: a bump changes both
VEHICLE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
MAX_RULES = 5
MAX_RULE_CHARS = 200
KEY_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"

# Every integer on the bus fits a signed 64-bit integer, so a consumer in any language can hold it
# and arithmetic on it (ages, differences) never overflows a float conversion.
INT64_MAX = 2**63 - 1
MAX_MODEL_VERSION_CHARS = 128  # a model's version (its metadata), echoed in each decision
# A rule-set version (RuleSet.version): printable, one line, no reordering controls.
VERSION_PATTERN = (
    r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]+$"
)
VehicleId = Annotated[str, Field(pattern=VEHICLE_ID_PATTERN, description="[A-Za-z0-9_-], 1-64")]


def _a_number(v: object) -> object:
    """Numbers stay numbers: a boolean or a string is refused, not read as one (``true`` as a
    stamp would otherwise pass as 1 ns after the epoch, ``"40"`` as a speed)."""
    if isinstance(v, bool | str | bytes):
        raise ValueError(f"must be a number, not {type(v).__name__}")
    return v


def _an_integer(v: object) -> object:
    """Integers stay integers: a float is refused too, not rounded (``1.7e18`` is not a
    nanosecond stamp: above 2**53 a float cannot hold every integer)."""
    if isinstance(v, float):
        raise ValueError("must be an integer, not a float")
    return _a_number(v)


StampNs = Annotated[
    int,
    Field(ge=0, le=INT64_MAX, description="UTC time in nanoseconds since the epoch"),
    BeforeValidator(_an_integer),
]
FrameId = Annotated[
    int,
    Field(ge=0, le=INT64_MAX, description="monotonic per vehicle"),
    BeforeValidator(_an_integer),
]
Number = Annotated[float, BeforeValidator(_a_number)]
Version = Annotated[Literal[1], BeforeValidator(_an_integer)]  # `true` is not 1


class DecisionLabel(StrEnum):
    """The decisions the model and the oracle choose between (order = model output order)."""

    PROCEED = "PROCEED"
    SLOW_DOWN = "SLOW_DOWN"
    STOP = "STOP"
    YIELD = "YIELD"
    CHANGE_LANE_LEFT = "CHANGE_LANE_LEFT"
    CHANGE_LANE_RIGHT = "CHANGE_LANE_RIGHT"


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FrameHeader(_Msg):
    """Metadata of one front-camera frame; the JPEG bytes travel raw beside it (bus.envelope)."""

    schema_version: Version = 1
    vehicle_id: VehicleId
    frame_id: FrameId
    stamp_ns: StampNs = Field(description="capture time, UTC ns")
    speed_kph: Number = Field(
        ge=0.0, le=300.0, allow_inf_nan=False, description="ego speed at capture"
    )
    encoding: Literal["jpeg"] = "jpeg"


class RuleSet(_Msg):
    """The traffic rules in force for one vehicle; published retained by the rule authority,
    optionally signed (bus/signing.py)."""

    schema_version: Version = 1
    vehicle_id: VehicleId
    # No control characters: the version is echoed in every decision (rules_version) and in
    # logs, where a newline or an ANSI escape would forge lines or recolour a terminal. C0,
    # DEL and C1 (U+0080-U+009F: NEL is a newline, CSI an escape), the Unicode line and
    # paragraph separators, and the bidirectional controls (which reorder what a log shows:
    # U+061C, U+200E/F, U+202A-E, U+2066-9).
    version: str = Field(
        min_length=1,
        max_length=64,
        pattern=VERSION_PATTERN,
        description="rule-set version id (no control, line-separator or bidirectional "
        "control characters)",
    )
    issued_at_ns: StampNs
    expires_at_ns: StampNs | None = Field(default=None, description="None = never expires")
    rules: list[Annotated[str, Field(min_length=1, max_length=MAX_RULE_CHARS)]] = Field(
        max_length=MAX_RULES
    )
    # Added later and optional, so unsigned rule sets stay valid (bus/signing.py): how a node
    # with trusted keys tells the rule authority's rule sets from anyone else's.
    signature_b64: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Ed25519 signature of the canonical bytes, base64 (None = unsigned)",
    )
    key_id: str | None = Field(
        default=None,
        pattern=KEY_ID_PATTERN,
        description="the signing key: first 16 hex digits of SHA-256 of the raw public key",
    )


class Timings(_Msg):
    frame_age_ms: float = Field(description="capture stamp -> arrival at the node")
    queue_ms: float = Field(ge=0.0, description="arrival -> start of processing")
    decode_ms: float = Field(ge=0.0)
    inference_ms: float = Field(ge=0.0, description="session.run for the batch")
    total_ms: float = Field(ge=0.0, description="arrival -> publish, in the node")
    batch_size: int = Field(ge=1)


class DecisionMsg(_Msg):
    """The node's answer to one frame."""

    schema_version: Version = 1
    vehicle_id: VehicleId
    frame_id: FrameId
    frame_stamp_ns: StampNs
    stamp_ns: StampNs = Field(description="publish time, UTC ns")
    decision: DecisionLabel
    # Bounded like every other field a consumer prints or stores: a replaying client once
    # scored NaN probabilities as a valid answer and wrote 20 MB reasons into its report.
    probabilities: dict[DecisionLabel, Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]]
    confidence: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    valid: bool
    reason: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z_]{0,63}$",
        description="why valid is false (fallback code)",
    )
    unread_rules: list[Annotated[int, Field(ge=0, lt=MAX_RULES)]] = Field(
        default_factory=list,
        max_length=MAX_RULES,
        description="indices of the rules the model could not read (reason rules_not_understood) "
        "or read as contradicting each other (reason rules_conflict)",
    )
    rules_version: str | None = Field(max_length=64, pattern=VERSION_PATTERN)
    model_version: str | None = Field(max_length=MAX_MODEL_VERSION_CHARS, pattern=VERSION_PATTERN)
    node_id: str = Field(pattern=VEHICLE_ID_PATTERN)
    timings: Timings


class NodeState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class NodeStatus(_Msg):
    """Retained status of a node; the broker publishes the offline form as its last will."""

    schema_version: Version = 1
    node_id: str
    state: NodeState
    stamp_ns: StampNs
    uptime_s: float = Field(default=0.0, ge=0.0)
    provider: str | None = None
    model_version: str | None = None
    counters: dict[str, int] = Field(default_factory=dict)
    # Added later and optional (older status messages stay valid): replicas say which group
    # shares their vehicles, so a replica that runs another model version is seen as one.
    share_group: str | None = Field(
        default=None, description="the shared-subscription group of its frames; None = not shared"
    )


class ErrorReport(_Msg):
    """Rejected input, reported on the node's errors topic: the first of a (code, topic) in an
    interval at once, the rest of that interval as one report with ``count``. Past 20 immediate
    reports in an interval (or 1,024 pairs held), rejections from topics not yet reported that
    interval are pooled per code (the first at once, the rest as one report whose ``topic``
    and ``detail`` are the latest example's and whose ``count`` covers every pooled topic)."""

    schema_version: Version = 1
    node_id: str
    stamp_ns: StampNs
    topic: str = Field(description="topic of the (latest) rejected input")
    code: str
    detail: str = Field(description="what was wrong with the (latest) rejected input")
    count: int = Field(
        default=1,
        ge=1,
        le=INT64_MAX,
        description="rejections this report stands for (rate-limited reports)",
    )
    window_ms: float = Field(
        default=0.0, ge=0.0, description="the interval the count covers; 0 = this one input"
    )


class LabelMsg(_Msg):
    """Ground truth for a frame: the oracle's answer (simulator) or what the driver did."""

    schema_version: Version = 1
    vehicle_id: VehicleId
    frame_id: FrameId
    stamp_ns: StampNs
    decision: DecisionLabel
    reason: str | None = None
    source: Literal["oracle", "driver"] = "oracle"
