"""The node's thresholds, chosen from validation data rather than guessed, and calibration.

* ``not_understood``: the lowest threshold that flags at most :data:`MAX_FALSE_FLAG` of the
  understood rules (any flagged rule makes the whole frame a fallback), so readable rule sets
  are rarely refused; 0.5 when that is already safe.
* ``image_ood``: the same rule on road frames.
* ``confidence``: the threshold in 0.3..0.9 that best separates right from wrong decisions on
  road frames (flagging an error gains one, flagging a right answer costs one), flagging at most
  :data:`MAX_LOW_CONFIDENCE` of the frames.

:func:`expected_calibration_error` is the usual 15-bin ECE of the decision's confidence.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from perception.modelmeta import Thresholds
from perception.spec import MODEL_SPEC

__all__ = [
    "MAX_FALSE_FLAG",
    "MAX_LOW_CONFIDENCE",
    "choose_thresholds",
    "expected_calibration_error",
]

MAX_FALSE_FLAG = 0.002
MAX_LOW_CONFIDENCE = 0.02


def _flag_threshold(scores_negative: np.ndarray) -> float:
    """The lowest of 0.5.. that flags at most MAX_FALSE_FLAG of ``scores_negative``."""
    if len(scores_negative) == 0:
        return 0.5
    q = float(np.quantile(scores_negative, 1.0 - MAX_FALSE_FLAG))
    return float(min(0.99, max(0.5, q + 1e-6)))


def _confidence_threshold(probs: np.ndarray, labels: np.ndarray) -> float:
    """The threshold in 0.3..0.9 where flagging gains most (0.3 with no road frame to judge)."""
    best, best_gain = 0.3, -1
    if len(probs) == 0:
        return best
    conf, right = probs.max(1), probs.argmax(1) == labels
    for t in np.linspace(0.3, 0.9, 61):
        flagged = conf < t
        if flagged.mean() > MAX_LOW_CONFIDENCE:
            break
        gain = int((flagged & ~right).sum() - (flagged & right).sum())
        if gain > best_gain:
            best, best_gain = float(t), gain
    return best


def choose_thresholds(
    outs: Mapping[str, np.ndarray],
    labels: np.ndarray,
    rule_cls: np.ndarray,
    ood: np.ndarray,
    not_understood_index: int,
) -> Thresholds:
    """Thresholds from one validation pass (``outs``: the model's outputs by name)."""
    s = MODEL_SPEC
    roads = ood == 0
    known = rule_cls >= 0
    # Recordings whose rules carry no class (the bus recorder's) leave the per-rule head
    # untrained: such a model cannot tell what it does not understand, so it never flags.
    never = 1.01 if not known.any() else None
    understood = known & (rule_cls != not_understood_index) & roads[:, None]
    nu_scores = outs[s.rule_output][..., not_understood_index][understood]
    ood_scores = outs[s.ood_output].reshape(-1)[roads]
    return Thresholds(
        confidence=round(_confidence_threshold(outs[s.output][roads], labels[roads]), 3),
        not_understood=never or round(_flag_threshold(nu_scores), 4),
        image_ood=round(_flag_threshold(ood_scores), 4),
    )


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    if len(labels) == 0:
        return 0.0
    conf, right = probs.max(1), (probs.argmax(1) == labels).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.mean() * abs(right[inside].mean() - conf[inside].mean())
    return float(ece)
