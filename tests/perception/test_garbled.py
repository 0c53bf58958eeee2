"""Rules whose Latin words are broken up (perception.rule_encoder.garbled) are not understood.

An outside fuzzing pass found "N o overtaking" read as overtaking permitted and "S(peed limit 30
km/h" as no limit, confidently, with ``valid=true``; vowels written as digits made the shipped
model wrong with ``valid=true`` on 158 of 954 frames of an outside-written probe, against 49 for
the same wording intact. The node now flags such a rule ``rules_not_understood``
(``unreadable_script``). The check must not cost readable wording: no text of the rule language
(tests/simulator/test_language_world.py) and no rendering of any wording file, written for
evaluation or for training, trips it."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from perception.rule_encoder import garbled, unreadable_script
from ruledrive.bench_wording import load_templates
from ruledrive.written_corpus import KINDS, WRITTEN_DIR, load_written

ROOT = Path(__file__).resolve().parents[2]
WORDING_FILES = sorted((ROOT / "docs" / "examples").glob("wordings*.yaml"))
WRITTEN_FILES = sorted(WRITTEN_DIR.glob("*.yaml"))


@pytest.mark.parametrize(
    "text",
    [
        "N o overtaking",
        "N-o overtaking",
        "N(o overtaking",
        "S(peed limit 30 km/h",
        "O V E R T A K I N G prohibited",
        "0V3RT4K1NG PROHIBITED",
        "Ov3rtaking prohibited",
        "0VERTAKING PROHIBITED",
        "over*taking prohibited",
        "No over_taking",
        "Speed limit 3O km/h t0 5pm, s c h o o l days",
        "ｎ ｏ overtaking",  # full-width letters
        "禁止超车, N o overtaking",
        "N-O OVERTAKING",  # capitals too (a review)
        "N–o overtaking",  # an en dash
        "tr4v3ll1ng is not permitted",
        "OVERT4KING PROHIBITED",
        "NO P4SSING",
    ],
)
def test_broken_up_words_are_not_understood(text: str) -> None:
    assert garbled(text) and unreadable_script(text)


@pytest.mark.parametrize(
    "text",
    [
        "No U-turn",
        "Making a U-turn is prohibited",
        "Lanes A and B closed",
        "Lanes B-D closed",
        "Lanes B/C closed",
        "School zone 7h30-17h00",
        "4x4 vehicles only",
        "Vehicle(s) over 7.5 t",
        "HGVs > 7.5 t banned, 7 a.m. to 5 p.m.",
        "Route A1(M) closed at junction 10, i.e. all vehicles",
        "e.g. buses; e-scooters prohibited; T-junction ahead",
        "Lane 2 (of 3) closed; exit 12A closed; lane 3A closed",
        "50kph max 7am-5pm, 1st lane from the left, 0700 to 1700 hrs",
        "PM2.5 alert: N1 vehicles 30 km/h",
        "Give way to pedestrians (zebra crossing)",
        "No overtaking*",
        "A区禁止停车，第2车道关闭，限速50公里/小时",
        # a review: contractions, units, brackets without a space, codes, lane letters
        "Don't U-turn here; you can't U-turn at the lights",
        "Speed limit 30 km/h U-turns prohibited",
        "Speed limit 80 km/h w/ trailer",
        "a) 50 km/h b) 30 km/h",
        "Lane 2 closed(road works); no entry(except buses)",
        "限速60km/h（A区）",
        "exit12A closed; A1M closed; L3e mopeds and N3G vehicles; max height 4m50",
        "Lanes B C closed; lanes b-d closed; use lane B (C is closed)",
        "2x2x2 m loads",
        "CO2e zone: Euro6d vans only",
    ],
)
def test_readable_wording_is_not_garbled(text: str) -> None:
    assert not garbled(text) and not unreadable_script(text)


def _renderings(rules: dict[str, dict[str, list[str]]], slots: dict) -> list[str]:  # type: ignore[type-arg]
    out = []
    for lang, kinds in rules.items():
        values = {k: [x for xs in v.values() for x in xs] for k, v in slots.get(lang, {}).items()}
        values["Lane"] = [x[:1].upper() + x[1:] for x in values.get("lane", [])]
        values["limit"] = ["30", "7.5"]
        for template in (t for ts in kinds.values() for t in ts):
            names = sorted(set(re.findall(r"\{(\w+)\}", template)))
            for combo in itertools.product(*(values[n] for n in names)):
                out.append(template.format(**dict(zip(names, combo, strict=True))))
    return out


def test_no_wording_file_rendering_trips_the_check() -> None:
    """Every template of every wording file (evaluation probes and the written training
    wording) with every value of its slots: 45,000+ readable renderings, none flagged."""
    texts = []
    for path in WORDING_FILES:
        t = load_templates(path, KINDS)
        texts += _renderings(t.rules, t.slots)
    for path in WRITTEN_FILES:
        w = load_written(path)
        texts += _renderings(w.rules, w.slots) + [s for ss in w.not_binding.values() for s in ss]
    assert len(WORDING_FILES) >= 5 and WRITTEN_FILES and len(texts) > 20000
    assert not [t for t in texts if garbled(t)][:5]
