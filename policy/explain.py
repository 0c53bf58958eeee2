"""How the node reads a rule set, rule by rule, before any frame (``ruledrive rules explain``).

For a rule author: what each rule is read as, with what probability and parameters (limit,
hours, lane), and whether the node acts on that reading:

- ``not_understood``: the node answers every frame ``rules_not_understood`` while the rule is in
  force (a script it does not read, longer than it reads, read as not understood, or read as
  saying what its words do not write: perception.readcheck.reading_unwritten);
- ``checked``: the reading check holds another reading of it (unsure, its words write another,
  its neighbours or the sentence reader read it otherwise: perception.readcheck.read_rule_set),
  and the node answers ``rules_not_understood`` on the frames where that other reading would
  decide otherwise (which frames those are depends on the frame, so this says only that it
  can happen);
- ``conflict``: another rule of the set is read as the same kind with the other variant, and the
  node answers ``rules_conflict`` on the frames where that matters;
- ``understood``: read as shown and acted on.

The reading is the node's own (policy.model.PolicyModel.encode_rules, the same code path and
thresholds), so what this says is what a vehicle's node does with the same rule set and model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from core.errors import ConfigError
from perception.readcheck import LIMIT_KINDS, conflicting, written_alternatives
from perception.rule_encoder import read_in_part, unreadable_script
from perception.spec import MODEL_SPEC
from policy.model import EncodedRules, PolicyModel

__all__ = ["VERDICTS", "RuleReading", "explain", "explain_encoded"]

_S = MODEL_SPEC
VERDICTS = ("understood", "checked", "conflict", "not_understood")
_HOURS_KINDS = ("school_zone", "bus_lane")
# Each parameter reading: the name it is shown by, and its values in the order of its softmax.
_PARAMS = {
    "rule_limit": ("limit_kph", tuple("none" if v is None else str(v) for v in _S.rule_limits)),
    "rule_hours": ("hours", ("none", *_S.rule_hours)),
    "rule_lane": ("lane", ("none", *_S.rule_lanes)),
    "rule_merge": ("merge", ("none", *_S.rule_merges)),
}


@dataclass(frozen=True)
class RuleReading:
    """One rule as the node reads it. ``verdict`` is one of VERDICTS; ``why`` says what led to
    it, one short phrase each (empty for ``understood``)."""

    index: int
    text: str
    read_as: str
    probability: float
    runner_up: str
    runner_up_probability: float
    verdict: str
    why: tuple[str, ...] = ()
    params: dict[str, str] = field(default_factory=dict)


def _params(rule_class: str, params: Sequence[np.ndarray], r: int) -> dict[str, str]:
    """The parameters of rule ``r`` that its class uses, as read."""
    if not params:
        return {}
    used = [
        *(("rule_limit",) if rule_class in LIMIT_KINDS else ()),
        *(("rule_hours",) if rule_class in _HOURS_KINDS else ()),
        *(("rule_lane", "rule_merge") if rule_class == "lane_closed" else ()),
    ]
    layers = _S.rule_param_layers
    return {_PARAMS[k][0]: _PARAMS[k][1][int(np.argmax(params[layers.index(k)][r]))] for k in used}


def _written(
    texts: tuple[str, ...], top: np.ndarray, classes: tuple[str, ...], params: Sequence[np.ndarray]
) -> dict[int, list[str]]:
    """Per rule, the readings its words write where they differ from the model's (the reading
    check's written alternatives, perception.readcheck.written_alternatives)."""
    out: dict[int, list[str]] = {}
    for r, c, p in written_alternatives(texts, top, classes, params):
        said = [f"{_PARAMS[k][0]}={_PARAMS[k][1][v]}" for k, v in sorted((p or {}).items())]
        what = c if not said else f"{c} ({', '.join(said)})"
        if what not in out.setdefault(r, []):
            out[r].append(what)
    return out


def explain_encoded(
    model: PolicyModel, texts: tuple[str, ...], encoded: EncodedRules
) -> list[RuleReading]:
    """Each rule of ``texts`` as ``encoded`` (``model.encode_rules(texts)``) reads it."""
    if encoded.classes is None:
        raise ConfigError(
            f"{model.version}: a model without a rule graph reads its rules with every frame; "
            "explain needs one that reads them once (any model ruledrive exports)"
        )
    names = model.meta.rule_classes
    classes = np.asarray(encoded.classes)
    kept = texts[: len(classes)]
    top = classes.argmax(axis=-1)
    present = np.asarray(encoded.mask).max(axis=-1) > 0
    clash = conflicting(classes, present, names)
    written = _written(kept, top, names, encoded.params)
    checked = {int(r) for r, _ in encoded.alternatives}
    part = read_in_part(encoded.mask)
    nu = model.meta.not_understood_index
    threshold = model.reading_threshold
    out = []
    for r, text in enumerate(kept):
        order = np.argsort(classes[r])[::-1]
        first, second = int(order[0]), int(order[1])
        why: list[str] = []
        if r in encoded.unreadable or classes[r, nu] >= model.meta.thresholds.not_understood:
            verdict = "not_understood"
            if unreadable_script(text):
                why.append(
                    "not written in words the model reads (another script, no letters, broken up)"
                )
            elif part[r]:
                why.append("longer than the model reads")
            elif classes[r, nu] >= model.meta.thresholds.not_understood:
                why.append("read as not understood")
            else:
                why.append("its reading says what its words do not write (a limit, lane or scope)")
        elif r in checked:
            verdict = "checked"
            if threshold > 0 and classes[r, first] < threshold:
                why.append(f"unsure: read at {classes[r, first]:.2f} < {threshold:.2f}")
            why += [f"its words write {w}" for w in written.get(r, [])]
            if not why:
                why.append("its nearest training rules or the sentence reader read it otherwise")
        elif clash[r]:
            verdict = "conflict"
            kind = names[first].split(":", 1)[0]
            why += [
                f"rule {o} is read as {names[int(top[o])]}"
                for o in range(len(kept))
                if present[o]
                and names[int(top[o])] != names[first]
                and names[int(top[o])].split(":", 1)[0] == kind
            ]
        else:
            verdict = "understood"
        out.append(
            RuleReading(
                index=r,
                text=text,
                read_as=names[first],
                probability=float(classes[r, first]),
                runner_up=names[second],
                runner_up_probability=float(classes[r, second]),
                verdict=verdict,
                why=tuple(why),
                params=_params(names[first], encoded.params, r),
            )
        )
    return out


def explain(model: PolicyModel, texts: tuple[str, ...]) -> list[RuleReading]:
    """Each rule of ``texts`` as the node reads it with ``model``."""
    return explain_encoded(model, texts, model.encode_rules(texts))
