"""The contract's reject codes: why an input was refused, one stable code each.

A rejected bus message (``core.errors.MessageError``) carries one of these; the node reports it in
an ``ErrorReport`` and counts it. The table in docs/contract.md ("Errors") is generated from
:data:`REJECT_MEANINGS` by :func:`reject_table_markdown`, and a test fails when it is stale.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["REJECT_MEANINGS", "RejectCode", "reject_table_markdown"]


class RejectCode(StrEnum):
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNKNOWN_TOPIC = "unknown_topic"
    BAD_VEHICLE_ID = "bad_vehicle_id"
    ID_MISMATCH = "id_mismatch"
    EMPTY_PAYLOAD = "empty_payload"
    BAD_ENVELOPE = "bad_envelope"
    BAD_JSON = "bad_json"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    BAD_HEADER = "bad_header"
    BAD_SCHEMA = "bad_schema"
    BAD_IMAGE = "bad_image"
    IMAGE_TOO_LARGE = "image_too_large"
    BAD_TIMESTAMP = "bad_timestamp"
    RULES_FROM_FUTURE = "rules_from_future"
    RULES_REPLAYED = "rules_replayed"
    RULES_UNVERIFIED = "rules_unverified"
    INTERNAL_ERROR = "internal_error"
    MODEL_RELOAD_FAILED = "model_reload_failed"
    NODE_OVERLOADED = "node_overloaded"
    TOO_MANY_VEHICLES = "too_many_vehicles"
    TOO_MANY_RULES = "too_many_rules"

    @property
    def meaning(self) -> str:
        return REJECT_MEANINGS[self]


REJECT_MEANINGS: dict[RejectCode, str] = {
    RejectCode.PAYLOAD_TOO_LARGE: "payload above `max_payload_bytes`",
    RejectCode.UNKNOWN_TOPIC: (
        "topic not in the contract (not met from the bus: the node subscribes to the "
        "contract's topics only; `bus.codec` raises it for a message parsed off another topic)"
    ),
    RejectCode.BAD_VEHICLE_ID: (
        "vehicle/node id in the topic or payload does not match the id pattern"
    ),
    RejectCode.ID_MISMATCH: "`vehicle_id` in the payload differs from the topic",
    RejectCode.EMPTY_PAYLOAD: "empty payload on a non-retained topic",
    RejectCode.BAD_ENVELOPE: (
        "frame payload is not an `RDF1` envelope or its header length is wrong"
    ),
    RejectCode.BAD_JSON: "not valid JSON, or a key given twice in one object",
    RejectCode.UNSUPPORTED_SCHEMA_VERSION: "`schema_version` is not 1",
    RejectCode.BAD_HEADER: (
        "frame header fields wrong (types, missing, NaN/negative speed, integers beyond "
        "int64, unknown fields)"
    ),
    RejectCode.BAD_SCHEMA: "rule set fields wrong",
    RejectCode.BAD_IMAGE: (
        "the frame's JPEG cannot be decoded; the frame was answered with the STOP fallback, "
        "reported for visibility"
    ),
    RejectCode.IMAGE_TOO_LARGE: (
        "the frame's JPEG declares too many pixels or holds too many scans (not decoded); "
        "answered with the STOP fallback, reported for visibility"
    ),
    RejectCode.BAD_TIMESTAMP: (
        "the frame is stamped in the future; answered with the SLOW_DOWN fallback, reported "
        "for visibility"
    ),
    RejectCode.RULES_FROM_FUTURE: (
        "a rule set's `issued_at_ns` is ahead of the node's clock by more than "
        "`max_clock_skew_ms`; refused (it would pin the vehicle: every later genuine update "
        "would look older)"
    ),
    RejectCode.RULES_REPLAYED: (
        "a rule set is not newer than the newest one the node accepted for the vehicle (an older "
        "`issued_at_ns`, or the same one with other content); refused, as a replay of an old "
        "retained rule set would be (kept across restarts with `state_dir`)"
    ),
    RejectCode.RULES_UNVERIFIED: (
        "trusted keys are configured and a rule set is unsigned, badly signed or signed by an "
        "unknown key, or is a clear (which cannot be signed); refused"
    ),
    RejectCode.INTERNAL_ERROR: (
        "an unexpected error while parsing the message (logged); the node keeps serving"
    ),
    RejectCode.MODEL_RELOAD_FAILED: (
        "a new model file was refused; the node keeps the old one (`topic` = the model path)"
    ),
    RejectCode.NODE_OVERLOADED: (
        "a new vehicle's frame arrived while `max_pending_bytes` of frames were already "
        "waiting; dropped (a waiting vehicle's newer frame still replaces its old one)"
    ),
    RejectCode.TOO_MANY_RULES: (
        "a rule set has more rules than the model takes (answered with the bad_rules "
        "fallback; on the bus a set of more than 5 rules is `bad_schema` first, so only a "
        "model taking fewer rules than the schema allows meets it)"
    ),
    RejectCode.TOO_MANY_VEHICLES: (
        "a rule set for a vehicle the node does not know while `max_vehicles` vehicles hold "
        "rule sets, none of them silent for `vehicle_ttl_s` (the one silent longest gives up "
        "its place; otherwise a silent vehicle keeps its rule set, since the broker sends a "
        "retained one only at subscription); refused"
    ),
}


def reject_table_markdown() -> str:
    """The reject-code table docs/contract.md shows, one row per :class:`RejectCode`."""
    rows = ["| code | meaning |", "|---|---|"]
    rows += [f"| `{code}` | {code.meaning} |" for code in RejectCode]
    return "\n".join(rows)
