"""Planning a split: drives made of rule-set changes and frames, all symbolic (no pixels yet).

A split of N frames is a sequence of short drives (20-50 frames at 10 Hz). Each drive has one
road (2 or 3 lanes) and one time of day. Normal splits change the rule set every 5-15 frames;
each frame's target decision is the class furthest behind so far (classes come out balanced),
and :func:`simulator.sampler.sample_scene` finds a scene with that decision under the rule set.
Frames are independent snapshots along a drive: motion continuity is not modelled.

The ``counterfactual`` split is made of pairs:

* *same frame*: rule set A, frame S, rule set B, frame S again (same scene, so the renderer gives
  identical JPEG bytes) where the oracle decides S differently under A and B;
* *same rules*: rule set A, frame S1, frame S2 with different decisions.

The ``heldout-phrasing`` split writes every rule with a held-out phrasing; the other splits never
use one.

``language="bilingual"`` writes the rules with the rule language (:mod:`simulator.language`)
instead of the catalogue: English, Chinese and mixed rule sets, rules for other vehicles, and
rules nobody can read (training pool for train/val, test pool for the other splits). There the
``heldout-phrasing`` split uses held-out *families*. ``SplitPlan.rule_texts`` then holds the rule
set as sent, ``rule_sets`` the understood rules the oracle decides with. The default
``"catalogue"`` plans exactly what it always did.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from bus.schema import DecisionLabel
from core.errors import DataError
from simulator.language import RULE_LANGUAGES, RuleText, sample_language_rule_set, understood_rules
from simulator.oracle import decide
from simulator.rules import Rule
from simulator.sampler import sample_rule_set, sample_scene
from simulator.scene import TIMES_OF_DAY, Scene

__all__ = [
    "SPLITS",
    "Drive",
    "PlannedFrame",
    "SplitPlan",
    "fusion_figures",
    "plan_split",
    "split_seed",
]

SPLITS = ("train", "val", "test", "heldout-phrasing", "counterfactual")
# Which not-understood rules a split of the bilingual world draws (training vs test negatives).
NEGATIVE_POOL = {"train": "train", "val": "train"}  # every other split: "test"


@dataclass(frozen=True)
class PlannedFrame:
    scene_index: int  # into SplitPlan.scenes (a repeated index = identical frame bytes)
    rules_index: int  # into SplitPlan.rule_sets: the rule set in force
    decision: DecisionLabel
    reason: str


@dataclass
class Drive:
    drive_id: str
    # ("rules", rules_index) or ("frame", PlannedFrame), in time order
    events: list[tuple[str, int | PlannedFrame]] = field(default_factory=list)


@dataclass
class SplitPlan:
    split: str
    seed: int
    scenes: list[Scene] = field(default_factory=list)
    rule_sets: list[tuple[Rule, ...]] = field(default_factory=list)
    drives: list[Drive] = field(default_factory=list)
    language: str = "catalogue"
    # bilingual only: rule_texts[i] is rule set i as sent (rule_sets[i] its understood rules)
    rule_texts: list[tuple[RuleText, ...]] = field(default_factory=list)

    def texts(self, rules_index: int) -> list[str]:
        """The rule strings of rule set ``rules_index`` as they go on the bus."""
        if self.language == "catalogue":
            return [r.text for r in self.rule_sets[rules_index]]
        return [t.text for t in self.rule_texts[rules_index]]

    def frames(self) -> list[PlannedFrame]:
        return [e for d in self.drives for k, e in d.events if k == "frame"]  # type: ignore[misc]

    def class_counts(self) -> dict[str, int]:
        c = Counter(f.decision for f in self.frames())
        return {str(lbl): c.get(lbl, 0) for lbl in DecisionLabel}


def split_seed(seed: int, split: str) -> np.random.SeedSequence:
    """The root SeedSequence of a split; different splits of one seed never share scenes."""
    return np.random.SeedSequence([seed, SPLITS.index(split)])


class _Balancer:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.counts: Counter[DecisionLabel] = Counter()

    def order(self) -> list[DecisionLabel]:
        """Targets, most under-represented first (random among ties)."""
        keyed = [(self.counts[lbl], self.rng.random(), lbl) for lbl in DecisionLabel]
        return [lbl for _, _, lbl in sorted(keyed)]


def _frame(
    plan: SplitPlan,
    rng: random.Random,
    bal: _Balancer,
    ri: int,
    n_lanes: int,
    tod: str,
    skip: set[DecisionLabel],
) -> PlannedFrame:
    rules = plan.rule_sets[ri]
    for target in bal.order():
        if target in skip:
            continue
        s = sample_scene(rng, target, rules, n_lanes, tod)
        if s is not None:
            break
        skip.add(target)  # infeasible under this rule set (e.g. YIELD without a yield rule)
    else:
        s = sample_scene(rng, DecisionLabel.PROCEED, rules, n_lanes, tod, max_tries=1000)
        if s is None:  # pragma: no cover - PROCEED is always reachable
            raise DataError("sampler could not find any scene for a rule set")
    decision, reason = decide(s, rules)
    bal.counts[decision] += 1
    # Each scene's pixel noise gets its own seed from the split's SeedSequence.
    child = np.random.SeedSequence(
        entropy=[plan.seed, SPLITS.index(plan.split)], spawn_key=(len(plan.scenes),)
    )
    plan.scenes.append(s.replace(noise_seed=int(child.generate_state(1)[0] >> 1)))
    return PlannedFrame(len(plan.scenes) - 1, ri, decision, reason)


def _draw_rules(
    plan: SplitPlan, rng: random.Random, n_lanes: int, held_out: bool
) -> tuple[tuple[Rule, ...], tuple[RuleText, ...] | None]:
    """A rule set for this plan's world: (understood rules, texts as sent or None)."""
    if plan.language == "catalogue":
        return sample_rule_set(rng, n_lanes, held_out), None
    texts = sample_language_rule_set(
        rng, n_lanes, held_out, negatives=NEGATIVE_POOL.get(plan.split, "test")
    )
    return understood_rules(texts), texts


def _add_rules(plan: SplitPlan, rules: tuple[Rule, ...], texts: tuple[RuleText, ...] | None) -> int:
    plan.rule_sets.append(rules)
    if texts is not None:
        plan.rule_texts.append(texts)
    return len(plan.rule_sets) - 1


def _new_rules(plan: SplitPlan, rng: random.Random, n_lanes: int, held_out: bool) -> int:
    return _add_rules(plan, *_draw_rules(plan, rng, n_lanes, held_out))


def plan_split(split: str, n_frames: int, seed: int, language: str = "catalogue") -> SplitPlan:
    """Plan ``n_frames`` frames of ``split`` deterministically from ``seed``; ``language`` is
    "catalogue" (the default world) or "bilingual" (the rule language)."""
    if split not in SPLITS:
        raise DataError(f"--split {split!r} is not one of {', '.join(SPLITS)}")
    if n_frames <= 0:
        raise DataError(f"--scenes must be positive, got {n_frames}")
    if language not in RULE_LANGUAGES:
        raise DataError(f"--rule-language {language!r} is not one of {', '.join(RULE_LANGUAGES)}")
    rng = random.Random(int(split_seed(seed, split).generate_state(1)[0]))
    plan = SplitPlan(split, seed, language=language)
    bal = _Balancer(rng)
    held_out = split == "heldout-phrasing"
    done = 0
    while done < n_frames:
        drive = Drive(f"drive-{seed % 1000:03d}-{len(plan.drives):06d}")
        n_lanes = rng.choice((2, 3))
        tod = rng.choice(TIMES_OF_DAY)
        length = min(rng.randint(20, 50), n_frames - done)
        if split == "counterfactual":  # whole pairs only
            length = max(2, length - length % 2)
        if split == "counterfactual":
            _counterfactual_drive(plan, rng, bal, drive, n_lanes, tod, length)
        else:
            left = 0
            skip: set[DecisionLabel] = set()
            for _ in range(length):
                if left == 0:
                    ri = _new_rules(plan, rng, n_lanes, held_out)
                    drive.events.append(("rules", ri))
                    left, skip = rng.randint(5, 15), set()
                drive.events.append(("frame", _frame(plan, rng, bal, ri, n_lanes, tod, skip)))
                left -= 1
        done += sum(1 for k, _ in drive.events if k == "frame")
        plan.drives.append(drive)
    return plan


def _counterfactual_drive(
    plan: SplitPlan,
    rng: random.Random,
    bal: _Balancer,
    drive: Drive,
    n_lanes: int,
    tod: str,
    length: int,
) -> None:
    n = 0
    while length - n >= 2:
        ri = _new_rules(plan, rng, n_lanes, False)
        first = _frame(plan, rng, bal, ri, n_lanes, tod, set())
        scene = plan.scenes[first.scene_index]
        if rng.random() < 0.5:
            # Same frame, other rules: search the catalogue for a rule set that changes it.
            for _ in range(200):
                alt, alt_texts = _draw_rules(plan, rng, n_lanes, False)
                d2, r2 = decide(scene, alt)
                if d2 != first.decision:
                    ri2 = _add_rules(plan, alt, alt_texts)
                    drive.events += [
                        ("rules", ri),
                        ("frame", first),
                        ("rules", ri2),
                        ("frame", PlannedFrame(first.scene_index, ri2, d2, r2)),
                    ]
                    bal.counts[d2] += 1
                    n += 2
                    break
            else:  # a rule-invariant scene (e.g. pedestrian on the road): drop it
                bal.counts[first.decision] -= 1
            continue
        # Same rules, another scene decided differently.
        second = _frame(plan, rng, bal, ri, n_lanes, tod, {first.decision})
        if second.decision != first.decision:
            drive.events += [("rules", ri), ("frame", first), ("frame", second)]
            n += 2
            continue
        bal.counts[second.decision] -= 1
        bal.counts[first.decision] -= 1


def fusion_figures(
    plan: SplitPlan, n_alt: int = 24, max_samples: int = 4000, seed: int = 0
) -> dict[str, float]:
    """How much the decision needs both inputs, measured on the plan's frames.

    ``scenes_rule_dependent``: share of frames whose decision some other catalogue rule set
    changes. ``rules_scene_dependent``: share of frames whose rule set some other scene of the
    split (decided under those rules) changes. Both are estimated with ``n_alt`` draws each.
    """
    rng = random.Random(seed)
    frames = plan.frames()
    if len(frames) > max_samples:
        frames = rng.sample(frames, max_samples)
    scenes = plan.scenes
    by_lanes: dict[int, list[Scene]] = {}
    for s in scenes:
        by_lanes.setdefault(s.n_lanes, []).append(s)
    scene_dep = rules_dep = 0
    for f in frames:
        s = scenes[f.scene_index]
        rules = plan.rule_sets[f.rules_index]
        if any(decide(s, sample_rule_set(rng, s.n_lanes))[0] != f.decision for _ in range(n_alt)):
            scene_dep += 1
        pool = by_lanes[s.n_lanes]
        if any(decide(rng.choice(pool), rules)[0] != f.decision for _ in range(n_alt)):
            rules_dep += 1
    n = max(len(frames), 1)
    return {"scenes_rule_dependent": scene_dep / n, "rules_scene_dependent": rules_dep / n}
