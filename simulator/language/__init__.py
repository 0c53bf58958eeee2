"""The rule language: symbolic rules rendered compositionally in English and Chinese.

``ruledrive generate --rule-language bilingual`` uses it instead of the catalogue's templates
(:mod:`simulator.rules`, still the default world). Modules:

* :mod:`~simulator.language.render`: the composition engine (concepts, synonym families,
  constructions, scope wrappers, held-out families);
* :mod:`~simulator.language.lexicon_en`, :mod:`~simulator.language.lexicon_zh`: the two languages;
* :mod:`~simulator.language.negatives`: rules nobody can read (training and test pools differ);
* :mod:`~simulator.language.ruleset`: bilingual rule sets and the per-rule scene metadata.
"""

from __future__ import annotations

from simulator.language.negatives import NEGATIVE_FAMILIES, POOLS, sample_negative
from simulator.language.ruleset import (
    LANGUAGES,
    LEXICONS,
    RuleText,
    render_rule,
    rule_records,
    sample_language_rule_set,
    understood_rules,
)

__all__ = [
    "LANGUAGES",
    "LEXICONS",
    "NEGATIVE_FAMILIES",
    "POOLS",
    "RULE_LANGUAGES",
    "RuleText",
    "held_out_families",
    "render_rule",
    "rule_records",
    "sample_language_rule_set",
    "sample_negative",
    "understood_rules",
]

# Values of ``--rule-language``: the catalogue (default, today's world) or the rule language.
RULE_LANGUAGES = ("catalogue", "bilingual")


def held_out_families() -> frozenset[str]:
    """Every held-out family id (constructions, wrappers, members) of every language."""
    return frozenset().union(*(lex.held_out for lex in LEXICONS.values()))
