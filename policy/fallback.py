"""The safety fallback table: what the node answers when it cannot trust the model's answer.

Every fallback decision has ``valid=false`` and ``reason`` set to one of these codes. The node
checks a frame in the order of :data:`FALLBACKS` and the first reason that applies is the one
reported, so a frame whose picture cannot be read is always STOP, whatever else is wrong with it.
docs/contract.md's fallback table is generated from :data:`FALLBACKS` (tests check it is current).

SLOW_DOWN where the picture is fine but the context is missing or weak; STOP where the node could
not look at the road at all, or could not run the model on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bus.schema import DecisionLabel

__all__ = ["FALLBACKS", "FALLBACK_DECISION", "Fallback", "Reason", "fallback_table_markdown"]


class Reason(StrEnum):
    BAD_IMAGE = "bad_image"
    IMAGE_TOO_LARGE = "image_too_large"
    BAD_TIMESTAMP = "bad_timestamp"
    STALE_FRAME = "stale_frame"
    NO_RULES = "no_rules"
    RULES_EXPIRED = "rules_expired"
    RULES_PENDING = "rules_pending"
    BAD_RULES = "bad_rules"
    MODEL_ERROR = "model_error"
    INTERNAL_ERROR = "internal_error"
    IMAGE_OUT_OF_DISTRIBUTION = "image_out_of_distribution"
    RULES_NOT_UNDERSTOOD = "rules_not_understood"
    RULES_CONFLICT = "rules_conflict"
    LOW_CONFIDENCE = "low_confidence"


@dataclass(frozen=True)
class Fallback:
    reason: Reason
    decision: DecisionLabel
    when: str


_S, _X = DecisionLabel.SLOW_DOWN, DecisionLabel.STOP

# In the order the node checks them; the first that applies wins.
FALLBACKS: tuple[Fallback, ...] = (
    Fallback(Reason.BAD_IMAGE, _X, "the frame's JPEG is empty, not a JPEG, truncated or corrupt"),
    Fallback(
        Reason.IMAGE_TOO_LARGE,
        _X,
        "the JPEG header declares more pixels, or the JPEG holds more progressive scans, "
        "than the node decodes (not decoded)",
    ),
    Fallback(
        Reason.BAD_TIMESTAMP,
        _S,
        "the frame is stamped further in the future than max_clock_skew_ms",
    ),
    Fallback(Reason.STALE_FRAME, _S, "the frame is older than max_frame_age_ms when its turn came"),
    Fallback(Reason.NO_RULES, _S, "no rule set received yet for the vehicle"),
    Fallback(Reason.RULES_EXPIRED, _S, "the rule set's expires_at_ns has passed"),
    Fallback(
        Reason.RULES_PENDING,
        _S,
        "the vehicle's newest rule set is still being read (other vehicles' rule sets ahead "
        "of it) after its frames have waited max_rules_wait_ms; the node does not act on the "
        "rule set it replaces",
    ),
    Fallback(Reason.BAD_RULES, _S, "the rule set cannot be encoded for this model"),
    Fallback(Reason.MODEL_ERROR, _X, "inference failed or returned non-finite probabilities"),
    Fallback(
        Reason.INTERNAL_ERROR,
        _X,
        "an unexpected error while deciding this frame (logged; the node keeps serving)",
    ),
    Fallback(
        Reason.IMAGE_OUT_OF_DISTRIBUTION,
        _X,
        "the model's out-of-distribution score says the frame is not a front-camera road "
        "scene, or the frame has no colour (a greyscale camera cannot show which signal is "
        "lit; perception.image.colourless)",
    ),
    Fallback(
        Reason.RULES_NOT_UNDERSTOOD,
        _S,
        "the model cannot read a rule (another language, gibberish, not a traffic rule), or "
        "the rule is in a script the model does not read (no letters, or mostly letters other "
        "than Latin and Chinese, or Latin words broken up: 'N o', '0V3RT4K3'), or the model's "
        "reading says what the rule does not write (a speed limit or a lane number not written "
        "in it, binding nobody though the rule names an exception, or a limit its digits "
        "never give), or the rule is longer "
        "than the model reads (40 tokens of "
        "the multilingual encoder, prefix included: about 25 English words or 35 to 40 "
        "Chinese characters; it would be decided on its beginning), or the model reads a "
        "rule unsurely and, read as its "
        "runner-up, the rule would change this frame's decision (the reading check), or its "
        "nearest training rules overrule the model's reading and the model's own reading "
        "would change this frame's decision (the neighbour reading), or the model reads a "
        "rule otherwise than its words write and what they write would change this frame's "
        "decision: a permission or prohibition as the other polarity than the rule's negations "
        "give ('Nothing forbids overtaking' read as a ban), a rule of the car as binding nobody "
        "('车让人，违者罚款', 'Pool cars: max 30 km/h'), a lane closure as another lane or "
        "merge side than written, a lane barred to the car as neither a bus lane nor a "
        "closure, a school zone that names no school, a school zone's or bus lane's hours "
        "as other hours than written ('24/7' read as by day); or an unsure rule read as its "
        "top class outright would decide otherwise than the blend the model acted on; "
        "`unread_rules` names its index",
    ),
    Fallback(
        Reason.RULES_CONFLICT,
        _S,
        "two rules of the set, as the model reads them, say opposite things for the car (the "
        "same kind permitted and prohibited: overtaking, turn on red; amber always-stop and "
        "proceed-if-close) and reading one as the other would change this frame's decision "
        "(every frame of the set for a model without a reading graph): the node does not pick "
        "one; `unread_rules` names them",
    ),
    Fallback(Reason.LOW_CONFIDENCE, _S, "the top probability is below confidence_threshold"),
)

FALLBACK_DECISION: dict[Reason, DecisionLabel] = {f.reason: f.decision for f in FALLBACKS}


def fallback_table_markdown() -> str:
    """The table docs/contract.md shows, made from :data:`FALLBACKS`."""
    rows = ["| order | reason | decision | when |", "|---|---|---|---|"]
    rows += [
        f"| {i} | `{f.reason}` | {f.decision} | {f.when} |" for i, f in enumerate(FALLBACKS, 1)
    ]
    return "\n".join(rows)
