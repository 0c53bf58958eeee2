"""The safety fallback table: what the node answers when it cannot trust the model's answer.

Every fallback decision has ``valid=false`` and ``reason`` set to one of these codes.

=================  ===========  ========================================================
reason             decision     when
=================  ===========  ========================================================
no_rules           SLOW_DOWN    no rule set received yet for the vehicle
rules_expired      SLOW_DOWN    the rule set's expires_at_ns has passed
bad_rules          SLOW_DOWN    the rule set cannot be encoded for this model
low_confidence     SLOW_DOWN    top class probability below confidence_threshold
stale_frame        SLOW_DOWN    frame older than max_frame_age_ms when its turn came
bad_image          STOP         header parsed but the JPEG is empty/corrupt/too large
model_error        STOP         inference failed or returned non-finite probabilities
internal_error     STOP         unexpected node error (logged; the node then stops)
=================  ===========  ========================================================

SLOW_DOWN where the picture is fine but the context is missing or weak; STOP where the node could
not look at the road at all.
"""

from __future__ import annotations

from enum import StrEnum

from bus.schema import DecisionLabel

__all__ = ["FALLBACK_DECISION", "Reason"]


class Reason(StrEnum):
    NO_RULES = "no_rules"
    RULES_EXPIRED = "rules_expired"
    BAD_RULES = "bad_rules"
    LOW_CONFIDENCE = "low_confidence"
    STALE_FRAME = "stale_frame"
    BAD_IMAGE = "bad_image"
    MODEL_ERROR = "model_error"
    INTERNAL_ERROR = "internal_error"


_S, _X = DecisionLabel.SLOW_DOWN, DecisionLabel.STOP
FALLBACK_DECISION: dict[Reason, DecisionLabel] = {
    Reason.NO_RULES: _S,
    Reason.RULES_EXPIRED: _S,
    Reason.BAD_RULES: _S,
    Reason.LOW_CONFIDENCE: _S,
    Reason.STALE_FRAME: _S,
    Reason.BAD_IMAGE: _X,
    Reason.MODEL_ERROR: _X,
    Reason.INTERNAL_ERROR: _X,
}
