"""Rule texts written by other writers as reader training data (ruledrive.written_corpus).

The committed files must cover every rule kind in both languages, keep clear of every probe
(evaluation wording must stay unseen), and turn into corpus lines whose labels are the rule
they render."""

from __future__ import annotations

import difflib
import json
import random
import re
from pathlib import Path

import pytest

from core.errors import ConfigError, DataError
from ruledrive.bench_wording import load_templates
from ruledrive.written_corpus import (
    KINDS,
    WRITTEN_DIR,
    draw_rule,
    load_written,
    write_corpus_with_written,
    written_records,
)
from training.reader import load_rule_corpus

ROOT = Path(__file__).resolve().parents[2]
PROBES = sorted((ROOT / "docs" / "examples").glob("wordings*.yaml"))
WORDED = [k for k in KINDS if k not in ("not_binding", "not_understood")]


def _norm(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum() or ch in "{}")


def test_the_written_files_cover_every_kind_in_both_languages() -> None:
    files = sorted(WRITTEN_DIR.glob("*.yaml"))
    assert len(files) >= 4
    for path in files:
        t = load_written(path)
        for lang in ("en", "zh"):
            assert len(t.not_binding[lang]) >= 20, (path.name, lang)
    kinds = {(lang, k) for p in files for lang, ks in load_written(p).rules.items() for k in ks}
    assert kinds == {(lang, k) for lang in ("en", "zh") for k in WORDED}


def test_no_written_template_is_close_to_a_probe_template() -> None:
    """Probes (docs/examples/wordings*.yaml) are evaluation: a training template equal to one,
    or within similarity 0.85 of one once case and punctuation are set aside, would make a
    probe figure measure memory. Fails when a written file (or a new probe) breaks this."""
    assert len(PROBES) >= 5
    probe = [
        (lang, _norm(x))
        for p in PROBES
        for lang, ks in load_templates(p, KINDS).rules.items()
        for ts in ks.values()
        for x in ts
    ]
    close = []
    for path in sorted(WRITTEN_DIR.glob("*.yaml")):
        for lang, ks in load_written(path).rules.items():
            for t in (x for ts in ks.values() for x in ts):
                n = _norm(t)
                for pl, pn in probe:
                    if pl != lang:
                        continue
                    m = difflib.SequenceMatcher(None, n, pn)
                    # The quick ratios bound ratio() from above: the same answer, sooner.
                    if m.real_quick_ratio() > 0.85 and m.quick_ratio() > 0.85 and m.ratio() > 0.85:
                        close.append((path.name, t, pn))
    assert not close, close[:5]


def test_records_carry_the_rule_they_render(tmp_path: Path) -> None:
    text = (
        "en:\n  slots:\n    hours: {day: [by day], extended: [till eight], always: [always]}\n"
        "  rules:\n    school_zone: ['School: {limit} km/h {hours}']\n"
        "    overtaking:prohibited: ['Keep behind the car ahead']\n"
        "  not_binding: ['Trucks: no passing']\n"
    )
    path = tmp_path / "w.yaml"
    path.write_text(text)
    recs = list(written_records(load_written(path), "w", 5, seed=3))
    school = [r for r in recs if r["class"] == "school_zone"]
    assert len(school) == 5  # a template with slots: several renderings
    hours = {"day": "by day", "extended": "till eight", "always": "always"}
    for r in school:
        rule = r["rule"]
        assert r["text"] == f"School: {rule['limit']} km/h {hours[rule['hours']]}"
        assert rule["kind"] == "school_zone" and rule["scope"] == "all"
    # A template without slots renders one text; not_binding sentences once each.
    assert [r["class"] for r in recs].count("overtaking:prohibited") == 1
    assert [r["text"] for r in recs if r["class"] == "not_binding"] == ["Trucks: no passing"]
    assert {tuple(r["families"]) for r in recs} == {("en.written.w",)}


@pytest.mark.parametrize("kind", WORDED)
def test_every_drawn_rule_is_one_the_reader_trains_on(tmp_path: Path, kind: str) -> None:
    rng = random.Random(kind)
    lines = [
        json.dumps({"text": f"{kind} {i}", "class": kind, "rule": draw_rule(kind, rng)})
        for i in range(30)
    ]
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(lines) + "\n")
    corpus = load_rule_corpus(path)  # refuses a class that contradicts its rule or a value
    assert corpus.classes == [kind] * 30
    assert all(p >= 0 for par in corpus.params for p in par)  # every parameter in the vocabulary


def _base(tmp_path: Path, text: str, cls: str) -> Path:
    """A one-line corpus file."""
    base = tmp_path / "base.jsonl"
    base.write_text(
        json.dumps({"text": text, "class": cls, "rule": draw_rule(cls, random.Random(1))}) + "\n"
    )
    return base


def test_the_combined_corpus_is_the_base_then_the_written_lines(tmp_path: Path) -> None:
    base = _base(tmp_path, "No overtaking", "overtaking:prohibited")
    w = tmp_path / "w.yaml"
    w.write_text(
        "en:\n  rules:\n    overtaking:prohibited: ['No overtaking', 'Stay behind']\n"
        "  not_binding: ['Buses: no overtaking']\n"
    )
    out = tmp_path / "out.jsonl"
    got = write_corpus_with_written(base, [w], out, renderings=3, seed=1)
    assert got == {"written_lines": 2, "files": 1}  # the base's "No overtaking" is not repeated
    assert out.read_text().count('"No overtaking"') == 1
    corpus = load_rule_corpus(out)
    assert corpus.texts == ["No overtaking", "Stay behind", "Buses: no overtaking"]
    assert corpus.classes == ["overtaking:prohibited", "overtaking:prohibited", "not_binding"]
    assert not list(tmp_path.glob("*.tmp"))


def test_a_text_written_with_two_classes_is_refused(tmp_path: Path) -> None:
    base = _base(tmp_path, "Overtaking allowed", "overtaking:permitted")
    w = tmp_path / "w.yaml"
    w.write_text("en:\n  rules:\n    overtaking:prohibited: ['Overtaking allowed']\n")
    out = tmp_path / "out.jsonl"
    msg = (
        "'Overtaking allowed' is overtaking:prohibited here and overtaking:permitted in the "
        f"corpus {base}"
    )
    with pytest.raises(DataError, match=re.escape(msg)):
        write_corpus_with_written(base, [w], out, renderings=2, seed=1)
    assert not out.exists()


def test_not_binding_sentences_belong_to_written_files_only(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("en:\n  rules:\n    overtaking:prohibited: ['Stay behind']\n"
                    "  not_binding: ['Buses: no overtaking']\n")  # fmt: skip
    with pytest.raises(ConfigError, match="unknown keys"):
        load_templates(path, KINDS)  # a bench wording file
    path.write_text("en:\n  rules:\n    overtaking:prohibited: ['Stay behind']\n"
                    "  not_binding: ['" + "x" * 201 + "']\n")  # fmt: skip
    with pytest.raises(ConfigError, match="has 201 characters"):
        load_written(path)


def test_rule_corpus_command_appends_written_files(tmp_path: Path) -> None:
    from ruledrive.cli import main as cli

    out = tmp_path / "c.jsonl"
    written = sorted(WRITTEN_DIR.glob("*.yaml"))[:1]
    argv = ["rule-corpus", "--out", str(out), "--sets", "20", "--seed", "1"]
    assert cli([*argv, "--written", *map(str, written), "--renderings", "2"]) == 0
    corpus = load_rule_corpus(out)
    families = {f for fams in corpus.families for f in fams}
    assert {f"en.written.{written[0].stem}", f"zh.written.{written[0].stem}"} <= families
    assert any(not f.startswith(("en.written", "zh.written")) for f in families)  # the sets too


def test_rule_corpus_command_refuses_a_bad_written_file_before_writing(tmp_path: Path) -> None:
    from ruledrive.cli import main as cli

    out, bad = tmp_path / "c.jsonl", tmp_path / "bad.yaml"
    bad.write_text("en:\n  rules:\n    speed_limit: ['No speeding']\n")
    assert cli(["rule-corpus", "--out", str(out), "--sets", "5", "--written", str(bad)]) == 2
    assert not out.exists()


def test_the_recipe_corpus_with_written_files_is_rewritten_when_a_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ruledrive.recipe as recipe
    import ruledrive.written_corpus as wc

    monkeypatch.setattr(recipe, "CORPUS", ("c.jsonl", 10, 3))
    monkeypatch.setattr(recipe, "WRITTEN_RENDERINGS", 2)
    written = tmp_path / "written"
    written.mkdir()
    (written / "w.yaml").write_text("en:\n  rules:\n    overtaking:prohibited: ['Stay behind']\n")
    monkeypatch.setattr(wc, "WRITTEN_DIR", written)
    plain = recipe._corpus(tmp_path, written=False)
    both = recipe._corpus(tmp_path, written=True)
    assert plain != both
    assert load_rule_corpus(both).texts[-1] == "Stay behind"
    assert load_rule_corpus(both).texts[:-1] == load_rule_corpus(plain).texts
    (written / "w.yaml").write_text("en:\n  rules:\n    overtaking:prohibited: ['Keep behind']\n")
    assert load_rule_corpus(recipe._corpus(tmp_path, written=True)).texts[-1] == "Keep behind"
    for f in written.glob("*.yaml"):
        f.unlink()
    with pytest.raises(ConfigError, match="no written wording files"):
        recipe._corpus(tmp_path, written=True)


def test_a_written_file_may_hold_not_binding_sentences_only_but_not_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "nb.yaml"
    path.write_text("en:\n  not_binding: ['Trucks: no passing']\n")
    recs = list(written_records(load_written(path), "nb", 3, seed=1))
    assert [(r["text"], r["class"]) for r in recs] == [("Trucks: no passing", "not_binding")]
    path.write_text("en:\n  slots: {}\n")
    with pytest.raises(ConfigError, match="neither rules nor not_binding"):
        load_written(path)


def test_written_not_binding_sentences_are_not_the_generators_held_out_rules() -> None:
    """The held-out splits measure how readable rule sets nobody trained on are flagged; a
    written sentence close to a held-out rendering would make that figure measure memory.
    Held-out rule sets are drawn as the held-out split draws them (text only)."""
    from simulator.language.ruleset import sample_language_rule_set

    rng = random.Random(303)
    held: dict[str, set[str]] = {"en": set(), "zh": set()}
    for _ in range(1500):
        for t in sample_language_rule_set(rng, rng.choice((2, 3)), held_out=True):
            if t.held_out and t.lang in held:
                held[t.lang].add(_norm(t.text))
    assert all(len(v) > 500 for v in held.values())
    close = []
    for path in sorted(WRITTEN_DIR.glob("*.yaml")):
        for lang, sentences in load_written(path).not_binding.items():
            for s in sentences:
                n = _norm(s)
                for h in held[lang]:
                    if not 0.7 < len(h) / max(len(n), 1) < 1.4:
                        continue
                    m = difflib.SequenceMatcher(None, n, h)
                    if m.quick_ratio() > 0.85 and m.ratio() > 0.85:
                        close.append((path.name, s, h))
    assert not close, close[:5]


def test_kinds_are_the_oracles_rule_classes() -> None:
    from simulator.oracle import RULE_CLASSES

    assert KINDS == RULE_CLASSES


def test_rule_corpus_command_leaves_out_as_it_was_when_a_rendering_is_too_long(
    tmp_path: Path,
) -> None:
    """A template whose slot value pushes a rendering past the bus's rule length is found only
    while rendering, after the sets are drawn: --out must still be as it was."""
    from ruledrive.cli import main as cli

    out = tmp_path / "c.jsonl"
    out.write_text("old corpus\n")
    long = "x" * 190
    bad = tmp_path / "w.yaml"
    bad.write_text(
        "en:\n  slots:\n    hours: {day: [" + long + "], extended: [e], always: [a]}\n"
        "  rules:\n    bus_lane: ['Buses only {hours} on the right']\n"
    )
    argv = ["rule-corpus", "--out", str(out), "--sets", "5", "--written", str(bad)]
    assert cli([*argv, "--renderings", "20"]) == 2
    assert out.read_text() == "old corpus\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.jsonl", "w.yaml"]  # no temporaries


def test_renderings_without_written_files_is_refused(tmp_path: Path) -> None:
    from ruledrive.cli import main as cli

    out = tmp_path / "c.jsonl"
    assert cli(["rule-corpus", "--out", str(out), "--sets", "5", "--renderings", "3"]) == 2
    assert not out.exists()


def test_a_base_that_is_not_a_corpus_is_a_data_error(tmp_path: Path) -> None:
    base = tmp_path / "base.jsonl"
    base.write_text('{"text": "Max 50"}\n')  # no class
    w = tmp_path / "w.yaml"
    w.write_text("en:\n  rules:\n    overtaking:prohibited: ['Stay behind']\n")
    with pytest.raises(DataError, match="not a corpus record"):
        write_corpus_with_written(base, [w], tmp_path / "out.jsonl", renderings=2, seed=1)
