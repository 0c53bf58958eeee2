"""Rule texts written by people (or by writers other than the generator), as reader training data.

The generator (``simulator.language``) writes every training rule in its own style; its held-out
families test meaning, but three rounds running (docs/training.md, "Sixteenth round") a reader
change that gained on them lost on hand-written probes. More writers in training is the direct
lever on wording from writers nobody has seen. A *written wording file* is ``bench wording``'s
template format (``ruledrive/bench_wording.py``) plus, per language, an optional
``not_binding`` list: whole sentences (no slots) of readable rules that decide nothing for a car
(rules for trucks or cyclists only, parking, equipment), so the reader does not learn that a
hand-written style means "a rule that binds".

:func:`written_records` renders each template several times over parameters drawn from the
world's own values (``simulator.rules``), with the rule's symbolic form as its label, as rule
corpus lines (``training.reader.load_rule_corpus``); families ``LANG.written.NAME``.
:func:`write_corpus_with_written` writes a corpus file made of a generator corpus followed by
those lines: the corpus the recipe's reader trains on (``ruledrive.recipe.WRITTEN``).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from core.errors import ConfigError, DataError
from core.paths import write_atomic
from ruledrive.bench_wording import Templates, load_templates, render_checked
from simulator.oracle import NOT_BINDING, NOT_UNDERSTOOD, RULE_CLASSES

__all__ = [
    "KINDS",
    "WRITTEN_DIR",
    "distractor_rule",
    "draw_rule",
    "load_written",
    "write_corpus_with_written",
    "written_digest",
    "written_records",
]

# Every rule class (the oracle's), and for those a written file may word, the kind and variant
# of its symbolic rule: "overtaking:prohibited" is kind overtaking, variant prohibited.
KINDS: tuple[str, ...] = RULE_CLASSES
_KIND_VARIANT = {
    c: (c.split(":")[0], c.split(":")[1] if ":" in c else "")
    for c in RULE_CLASSES
    if c not in (NOT_BINDING, NOT_UNDERSTOOD)
}
# The committed written wording files the recipe's reader trains on.
WRITTEN_DIR = Path(__file__).resolve().parents[1] / "training" / "written"


def draw_rule(kind: str, rng: random.Random) -> dict[str, Any]:
    """A symbolic rule of rule class ``kind`` that binds every vehicle, its parameters drawn
    from the world's values (the generator's ``simulator.rules``)."""
    from simulator.rules import HOURS, LANE_NAMES, LANE_NUMBERS, SCHOOL_LIMITS, SIDES, SPEED_LIMITS

    rule = _rule(*_KIND_VARIANT[kind])
    if kind == "speed_limit":
        rule["limit"] = rng.choice(SPEED_LIMITS)
    elif kind == "school_zone":
        rule["limit"], rule["hours"] = rng.choice(SCHOOL_LIMITS), rng.choice(sorted(HOURS))
    elif kind == "bus_lane":
        rule["hours"] = rng.choice(sorted(HOURS))
    elif kind == "lane_closed":
        rule["lane"] = rng.choice((*LANE_NAMES, *LANE_NUMBERS))
        rule["variant"] = "named" if rule["lane"] in LANE_NAMES else "numbered"
        rule["merge"] = rng.choice(SIDES)
    return rule


def load_written(path: Path) -> Templates:
    """A written wording file, checked (``bench wording``'s checks, and its ``not_binding``
    sentences: strings of at most the bus's rule length)."""
    return load_templates(path, KINDS, allow_not_binding=True)


def written_records(
    templates: Templates, name: str, renderings: int, seed: int
) -> Iterator[dict[str, Any]]:
    """Rule corpus lines of one written file: each template rendered ``renderings`` times (a
    template without slots once: its renderings would all be one text), each ``not_binding``
    sentence once; families ``[LANG.written.NAME]``."""
    rng = random.Random(seed)
    for lang in sorted(set(templates.rules) | set(templates.not_binding)):
        family = [f"{lang}.written.{name}"]
        for kind, texts in sorted(templates.rules.get(lang, {}).items()):
            for template in texts:
                one = Templates({lang: {kind: [template]}}, templates.slots)
                n = renderings if "{" in template else 1
                for _ in range(n):
                    rule = draw_rule(kind, rng)
                    text = render_checked(one, lang, kind, rule, rng)
                    yield {
                        "text": text,
                        "lang": lang,
                        "class": kind,
                        "rule": rule,
                        "families": family,
                    }
        for text in templates.not_binding.get(lang, []):
            yield {
                "text": text,
                "lang": lang,
                "class": "not_binding",
                "rule": distractor_rule(),
                "families": family,
            }


def distractor_rule() -> dict[str, Any]:
    """The symbolic form of a readable rule that binds no car here (the generator's)."""
    return _rule("distractor", "")


def _rule(kind: str, variant: str) -> dict[str, Any]:
    """A symbolic rule for every vehicle, as a frame's ``rule_meta`` carries it, naming no
    parameter yet."""
    return {
        "kind": kind,
        "variant": variant,
        "scope": "all",
        "limit": None,
        "hours": None,
        "lane": None,
        "merge": None,
    }


def written_digest(paths: Sequence[Path]) -> str:
    """Of the written files' bytes and names: part of the corpus's stamp."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def write_corpus_with_written(
    base: Path, written: Sequence[Path], out: Path, renderings: int, seed: int
) -> dict[str, int]:
    """``out``: the corpus ``base`` followed by every written file's lines (a text the corpus
    already holds is left out: its first label stands). Atomic: on any error ``out`` is as it
    was. Counts of what was added. A base that is not a corpus, or a text given two different
    classes, is a DataError naming where each came from."""
    from training.reader import load_rule_corpus

    if renderings < 1:
        raise ConfigError(f"renderings must be >= 1, got {renderings}")
    corpus = load_rule_corpus(base)  # checks the base, line by line
    base_bytes = base.read_bytes()
    if base_bytes and not base_bytes.endswith(b"\n"):
        base_bytes += b"\n"
    known: dict[str, tuple[str, str]] = {
        t: (c, f"the corpus {base}") for t, c in zip(corpus.texts, corpus.classes, strict=True)
    }
    lines: list[str] = []
    for path in written:
        templates = load_written(path)
        for rec in written_records(templates, path.stem, renderings, seed):
            cls, where = known.get(rec["text"], (None, ""))
            if cls is not None and cls != rec["class"]:
                raise DataError(
                    f"{path}: {rec['text']!r} is {rec['class']} here and {cls} in {where}; "
                    "reword one"
                )
            if cls is None:  # a text already there keeps its line
                known[rec["text"]] = (rec["class"], str(path))
                lines.append(json.dumps(rec, ensure_ascii=False))
    added = len(lines)
    write_atomic(out, base_bytes + ("\n".join(lines) + "\n" if lines else "").encode("utf-8"))
    return {"written_lines": added, "files": len(written)}
