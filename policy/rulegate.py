"""Whether the node takes a rule set (or a clear) for a vehicle: who signed it, when, in order.

Checked in this order on the bus thread, before a rule set replaces the one held; the first that
fails is the refusal the node reports (docs/contract.md, "Publishing a rule set"):

1. ``rules_unverified``: trusted keys are configured and the rule set is not signed by one of
   them (unsigned, bad signature, unknown key). A clear (empty retained payload) cannot be signed,
   so it is refused too while keys are configured.
2. ``rules_from_future``: issued further ahead of the node's clock than ``max_clock_skew_ms``.
3. ``rules_replayed``: not newer than the newest rule set already accepted for the vehicle
   (policy.rulemarks; kept across restarts with ``state_dir``).
"""

from __future__ import annotations

import logging
from collections.abc import Container
from dataclasses import dataclass

from bus.schema import RuleSet
from bus.signing import TrustedKeys, load_trusted_keys, unverified_reason
from core.rejects import RejectCode
from policy.rulemarks import RuleMarks
from policy.settings import NodeSettings

__all__ = ["Refusal", "RuleGate"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refusal:
    code: RejectCode
    detail: str


class RuleGate:
    """The node's rule-set checks; ConfigError at construction if keys or state cannot be read."""

    def __init__(self, settings: NodeSettings) -> None:
        self.max_clock_skew_ms = settings.max_clock_skew_ms
        self.trusted: TrustedKeys | None = (
            load_trusted_keys(settings.trusted_keys) if settings.trusted_keys else None
        )
        self.marks = RuleMarks(
            settings.state_dir, settings.max_vehicles, keep_sets=self.trusted is not None
        )

    def kept(self) -> dict[str, RuleSet]:
        """The rule sets the node accepted before it stopped (policy.rulemarks, kept while
        signatures are checked), each still signed by a key trusted now; a set whose key is no
        longer trusted is not taken back (logged)."""
        if self.trusted is None:  # nothing is kept without keys (policy.rulemarks)
            return {}
        out = {}
        for vid, rules in self.marks.kept().items():
            reason = unverified_reason(rules, self.trusted)
            if reason is not None:
                log.warning("the kept rule set of %s is not taken back: %s", vid, reason)
                continue
            out[vid] = rules
        return out

    def check(self, vid: str, rules: RuleSet | None, now_ns: int) -> Refusal | None:
        """The refusal of ``rules`` for ``vid`` (None = a clear), or None if it may be taken."""
        if rules is None:
            if self.trusted is not None:
                return Refusal(
                    RejectCode.RULES_UNVERIFIED,
                    "a clear (empty payload) cannot be signed; refused while trusted keys are "
                    "configured (publish a signed rule set instead)",
                )
            return None
        if self.trusted is not None:
            reason = unverified_reason(rules, self.trusted)
            if reason is not None:
                return Refusal(
                    RejectCode.RULES_UNVERIFIED, f"{reason}; refused (trusted keys are configured)"
                )
        # Accepted, a rule set issued years ahead would pin the vehicle: every genuine update
        # after it would look older and be refused.
        if (rules.issued_at_ns - now_ns) / 1e6 > self.max_clock_skew_ms:
            return Refusal(
                RejectCode.RULES_FROM_FUTURE,
                f"issued_at_ns is more than {self.max_clock_skew_ms:g} ms ahead of the node's "
                "clock; refused",
            )
        reason = self.marks.replay_reason(vid, rules)
        if reason is not None:
            return Refusal(RejectCode.RULES_REPLAYED, reason)
        return None

    def accepted(self, vid: str, rules: RuleSet, held: Container[str]) -> bool:
        """Note that ``rules`` is now ``vid``'s rule set; False if its mark could not be saved."""
        return self.marks.record(vid, rules, held)
