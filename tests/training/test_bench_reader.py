"""``ruledrive bench reader``: the reader-only measurement of how rules are read.

The scoring is checked on hand-made rules (what counts as read, how frames weigh); the command
end to end on a tiny generated world (it checks the pipeline, not the figures).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bus.recording import Sample
from core.errors import DataError
from ruledrive.bench_reader import (
    ReaderData,
    SentenceFeed,
    _train_and_read,
    add_corpus,
    add_probe,
    collect,
    ensemble,
    probe_wording,
    score,
    score_constructions,
    score_withheld,
    withheld_families,
    worst_constructions,
)
from ruledrive.cli import main as cli
from training.ruleparams import RULE_PARAMS

CLASSES = ["lane_closed", "not_binding", "not_understood", "speed_limit"]


def _params(limit: str = "none", lane: str = "none", merge: str = "none") -> list[int]:
    vals = {"rule_limit": limit, "rule_hours": "none", "rule_lane": lane, "rule_merge": merge}
    return [RULE_PARAMS[p].index(vals[p]) for p in RULE_PARAMS]


def _read(*rows: tuple[str, list[int]]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    cls = np.array([CLASSES.index(c) for c, _ in rows])
    params = {p: np.array([r[1][k] for r in rows]) for k, p in enumerate(RULE_PARAMS)}
    return cls, params


def test_score_counts_a_rule_read_only_when_class_and_its_parameters_are_right() -> None:
    data = ReaderData()
    key_en, key_zh = ("speed_limit", "en", "held-out"), ("speed_limit", "zh", "held-out")
    for text, kind, par, w in (
        ("Max 50", "speed_limit", _params("50"), {key_en: 3}),
        ("Limit 60", "speed_limit", _params("60"), {key_en: 1}),
        ("限速70", "speed_limit", _params("70"), {key_zh: 2}),
        ("Trucks: max 40", "not_binding", _params("40"), {("not_binding", "en", "held-out"): 5}),
    ):
        i = data.add(text, kind, par)
        data.weights[i] = w
    cls, params = _read(
        ("speed_limit", _params("50")),  # right
        ("speed_limit", _params("80")),  # right kind, wrong limit: misread
        ("lane_closed", _params("70")),  # wrong kind: misread
        ("not_binding", _params("90")),  # a rule that binds nobody: its limit decides nothing
    )
    got = score(data, CLASSES, cls, params)
    assert got[key_en] == {"frames": 4, "read": 0.75}  # frames weigh, not texts
    assert got[key_zh] == {"frames": 2, "read": 0.0}
    assert got[("not_binding", "en", "held-out")]["read"] == 1.0


def test_constructions_are_scored_on_their_frames_of_one_wording() -> None:
    """A kind's share can hide one construction read wrongly on every frame: each evaluation
    text's construction is scored on the frames it targets, held-out wording by default."""
    data = ReaderData()
    held, trained = ("speed_limit", "zh", "held-out"), ("speed_limit", "zh", "training")
    for text, par, w, construction in (
        ("限速50", _params("50"), {held: 12}, "zh.s.a"),
        ("最高50", _params("50"), {held: 3}, "zh.s.b"),
        ("限速六十", _params("60"), {held: 10}, "zh.s.b"),
        ("限速70", _params("70"), {trained: 8}, "zh.s.c"),
    ):
        i = data.add(text, "speed_limit", par)
        data.weights[i] = w
        data.constructions[i] = construction
    cls, params = _read(
        ("speed_limit", _params("50")),  # right
        ("speed_limit", _params("50")),  # right
        ("speed_limit", _params("80")),  # wrong limit: misread
        ("speed_limit", _params("70")),  # right, but training wording
    )
    got = score_constructions(data, CLASSES, cls, params)
    assert got == {"zh.s.a": {"frames": 12, "read": 1.0}, "zh.s.b": {"frames": 13, "read": 3 / 13}}
    assert score_constructions(data, CLASSES, cls, params, "training") == {
        "zh.s.c": {"frames": 8, "read": 1.0}
    }
    # Named worst first, on each construction's worst seed; too few frames: not named.
    other = {"zh.s.a": {"frames": 12, "read": 0.5}, "zh.s.d": {"frames": 9, "read": 0.0}}
    assert worst_constructions([got, other]) == "`zh.s.b` 23.1 % (13), `zh.s.a` 50.0 % (12)"
    assert worst_constructions([{}]) == "n/a"


def test_an_ensemble_reads_the_average_of_its_readers_softmaxes() -> None:
    # Two readers disagree on text 0; the average follows the surer one. On text 1 their top
    # classes differ (0 and 1) and the average picks class 2, which both give 0.45.
    a_cls = np.array([[0.9, 0.1, 0.0], [0.45, 0.1, 0.45]])
    b_cls = np.array([[0.3, 0.7, 0.0], [0.0, 0.55, 0.45]])
    a_lim = np.array([[0.6, 0.4], [0.2, 0.8]])
    b_lim = np.array([[0.6, 0.4], [0.9, 0.1]])
    cls, params = ensemble([(a_cls, {"rule_limit": a_lim}), (b_cls, {"rule_limit": b_lim})])
    assert cls.tolist() == [0, 2]
    assert params["rule_limit"].tolist() == [0, 0]
    one, _ = ensemble([(b_cls, {"rule_limit": b_lim})])
    assert one.tolist() == [1, 1]  # one reader: its own argmax


def test_add_keeps_one_entry_per_text() -> None:
    data = ReaderData()
    assert data.add("No passing", "overtaking", _params()) == 0
    assert data.add("禁止超车", "overtaking", _params()) == 1
    assert data.add("No passing", "overtaking", _params()) == 0
    assert data.texts == ["No passing", "禁止超车"]


def _sample(rules: tuple[str, ...], meta: list[dict[str, object]]) -> Sample:
    return Sample(
        "car-1", 1, 1, 30.0, b"", rules, "v1", None, None, "test", scene={"rule_meta": meta}
    )


def test_collect_weighs_only_targeted_understood_rules_of_the_asked_wording() -> None:
    rule = {"kind": "speed_limit", "limit": 50}
    m = {"class": "speed_limit", "lang": "en", "rule": rule, "targeted": True, "held_out": True}
    samples = [
        _sample(("Max 50",), [m]),
        _sample(("Max 50",), [m]),
        _sample(("Max 50",), [{**m, "targeted": False}]),
        _sample(("Limit 50",), [{**m, "held_out": False}]),  # training wording
        _sample(("Gibberish",), [{**m, "class": "not_understood", "understood": False}]),
    ]
    got = collect(samples, "held-out")
    assert got.texts == ["Max 50", "Limit 50", "Gibberish"]
    assert got.weights == {0: {("speed_limit", "en", "held-out"): 2}}
    assert got.params[0][list(RULE_PARAMS).index("rule_limit")] == RULE_PARAMS["rule_limit"].index(
        "50"
    )


def test_missing_recipe_data_is_a_named_configuration_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["bench", "reader", "--work", str(tmp_path), "--no-write"]) == 2
    err = capsys.readouterr().err
    assert "no train, train-counterfactual, test, heldout-phrasing" in err
    assert "ruledrive train-default --work" in err


def test_withheld_families_take_one_member_of_each_concept_with_three_or_more() -> None:
    data = ReaderData()
    fams = [
        ("en.stop.halt",),
        ("en.stop.stop", "en.amber.yellow"),
        ("en.stop.come_to_rest",),
        ("en.amber.amber",),  # en.amber has two members: nothing withheld of it
        ("zh.pass.chaoche",),
        ("zh.pass.chaoyue",),
        ("zh.pass.chaoguo",),
        ("plain",),  # no concept part
    ]
    for k, f in enumerate(fams):
        data.add(f"text {k}", "speed_limit", _params(), f)
    held = withheld_families(data)
    assert len(held) == 2
    assert len(held & {"en.stop.halt", "en.stop.stop", "en.stop.come_to_rest"}) == 1
    assert len(held & {"zh.pass.chaoche", "zh.pass.chaoyue", "zh.pass.chaoguo"}) == 1
    assert held == withheld_families(data)  # a fixed draw: variants are compared on one set


def test_score_withheld_reads_predictions_in_the_order_of_the_set_aside_texts() -> None:
    data = ReaderData()
    data.add("kept", "speed_limit", _params("50"), ("en.limit.max",))
    data.add("a", "speed_limit", _params("50"), ("en.limit.cap",))
    data.add("b", "speed_limit", _params("60"), ("en.limit.cap", "en.kmh.kph"))
    data.add("c", "lane_closed", _params(lane="L1"), ("en.kmh.kph",))
    ix = np.array([1, 2, 3])  # "kept" is not scored
    cls, params = _read(
        ("speed_limit", _params("50")),  # a: right
        ("speed_limit", _params("60")),  # b: right
        ("lane_closed", _params(lane="L2")),  # c: wrong lane
    )
    got = score_withheld(data, ix, {"en.limit.cap", "en.kmh.kph"}, CLASSES, cls, params)
    assert got.texts == 3
    assert got.read == pytest.approx(2 / 3)
    assert (got.worst, got.worst_family) == (0.5, "en.kmh.kph")


def _corpus(path: Path, lines: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


def test_a_corpus_adds_its_texts_less_those_of_withheld_families(tmp_path: Path) -> None:
    rule = {"kind": "speed_limit", "limit": 50}
    path = _corpus(
        tmp_path / "c.jsonl",
        [
            {"text": "Max 50", "class": "speed_limit", "rule": rule, "families": ["en.s.max"]},
            {"text": "Cap 50", "class": "speed_limit", "rule": rule, "families": ["en.s.cap"]},
            {"text": "Limit 50", "class": "speed_limit", "rule": rule, "families": ["en.s.lim"]},
        ],
    )
    train = ReaderData()
    train.add("Max 50", "speed_limit", _params("50"), ("en.s.max",))  # already there
    assert add_corpus(train, path, {"en.s.cap"}) == 1
    assert train.texts == ["Max 50", "Limit 50"]  # the withheld family's text stays out
    assert train.families[1] == ("en.s.lim",)
    assert train.params[1] == _params("50")


def test_withholding_refuses_a_corpus_that_names_no_families(tmp_path: Path) -> None:
    rule = {"kind": "speed_limit", "limit": 50}
    line = {"text": "Max 50", "class": "speed_limit", "rule": rule}
    path = _corpus(tmp_path / "old.jsonl", [line])
    with pytest.raises(DataError, match="names its wording families"):
        add_corpus(ReaderData(), path, {"en.s.cap"})
    assert add_corpus(ReaderData(), path, set()) == 1  # without --withhold it trains as before


@pytest.mark.parametrize(
    "flag",
    [
        ["--token-dropout", "1.5"],
        ["--token-dropout", "x"],
        ["--seeds", ","],
        ["--state-noise", "2"],
        ["--state-noise", "-0.1"],
        ["--rule-head", "deep"],
        ["--rule-head", ","],
        ["--members", "0"],
        ["--members", "x"],
        ["--readers", "0"],
        ["--readers", "6"],  # TrainConfig.readers allows 1-5
        ["--encoder-layer", "0"],
        ["--encoder-layer", "x"],
        ["--class-balance", "1.5"],  # TrainConfig.reader_class_balance allows 0-1
        ["--class-balance", "-0.5"],
        ["--class-balance", "nan"],
        ["--class-balance", "x"],
        ["--sentence-input", "2"],
        ["--sentence-input", "yes"],
        ["--sentence-input", ","],
    ],
)
def test_bad_flags_are_usage_errors(flag: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["bench", "reader", *flag]) == 2
    assert "usage:" in capsys.readouterr().err


class _SameTokens:
    """A rule table whose every rule has the same token states: only another input can tell
    two rules apart."""

    def gather(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from perception.spec import MODEL_SPEC

        _, t, d = MODEL_SPEC.rules.shape
        present = (idx >= 0).astype(np.float32)
        masks = np.zeros((*idx.shape, t), np.float32)
        masks[..., :3] = 1.0
        masks *= present[..., None]
        return np.full((*idx.shape, t, d), 0.1, np.float32) * masks[..., None], masks

    def sentence_feeds(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        return {}  # no vectors of its own (RuleTable.sentence_feeds): the bench feeds them


@pytest.mark.tf
def test_a_reader_with_sentence_input_reads_what_only_the_sentence_vector_says() -> None:
    n = 600
    train = ReaderData()
    kinds = ["lane_closed", "speed_limit"]
    for i in range(n):
        train.add(f"rule {i}", kinds[i % 2], _params())
    vectors = np.random.default_rng(0).normal(size=(n, 512)).astype(np.float32)
    vectors[:, 0] = np.where(np.arange(n) % 2 == 0, 3.0, -3.0)  # the class, in the vector only
    classes = sorted({*kinds, "not_binding", "not_understood"})
    ix = np.arange(n, dtype=np.int32)
    right = {}
    for with_vectors in (False, True):
        variant = (0.0, 0.0, "flat", 1, 1, None, 0.0, with_vectors)
        feed = SentenceFeed(vectors) if with_vectors else None
        cls, _ = _train_and_read(_SameTokens(), train, ix, ix, classes, variant, 1, 15, feed)
        right[with_vectors] = float(
            np.mean([classes[c] for c in cls.argmax(-1)] == np.array(train.cls))
        )
    assert right[True] >= 0.95
    assert right[False] <= 0.5  # the same input for every rule: one answer for all
    with pytest.raises(ValueError, match="sentence vectors"):
        _train_and_read(
            _SameTokens(), train, ix, ix, classes, (0.0, 0.0, "flat", 1, 1, None, 0.0, True), 1, 1
        )


@pytest.mark.tf
@pytest.mark.slow
def test_reader_bench_end_to_end_writes_its_section(tmp_path: Path) -> None:
    work = tmp_path / "w"
    for name, split, n, seed in (
        ("train", "train", 200, 1),
        ("train-counterfactual", "counterfactual", 40, 2),
        ("test", "test", 80, 3),
        ("heldout-phrasing", "heldout-phrasing", 80, 4),
    ):
        args = ["generate", "--out", str(work / "data" / name), "--scenes", str(n)]
        args += ["--seed", str(seed), "--split", split, "--rule-language", "bilingual"]
        assert cli([*args, "--no-progress"]) == 0
    doc = tmp_path / "bench.md"
    doc.write_text("# Benchmarks\n\n## Node\n\nkept\n")
    argv = ["bench", "reader", "--work", str(work), "--seeds", "1", "--epochs", "1"]
    # Each flag's non-default value once; two lists of two give the 2 x 2 grid of variants
    # (four, not the eight of three lists: this test was one of the suite's two slowest).
    argv += ["--token-dropout", "0.15", "--state-noise", "0.1", "--withhold"]
    argv += ["--rule-head", "factorized", "--readers", "2", "--members", "1,2"]
    argv += ["--encoder-layer", "12,9", "--class-balance", "0.5", "--sentence-input", "1"]
    corpus = work / "corpus.jsonl"
    assert cli(["rule-corpus", "--out", str(corpus), "--sets", "50", "--seed", "3"]) == 0
    argv += ["--corpus", str(corpus)]
    example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "wordings.yaml"
    argv += ["--probe", str(example)]
    assert cli([*argv, "--output", str(doc)]) == 0
    text = doc.read_text()
    assert "## Node\n\nkept" in text  # other sections untouched
    assert "## Rule reader\n" not in text  # a --withhold run has its own section
    section = text.split("## Rule reader, choosing on withheld training families", 1)[1]
    assert "Command: `ruledrive bench reader" in section
    for lang in ("en", "zh"):
        for wording in ("training", "held-out"):
            assert f"| worst kind, {wording} wording, {lang}, per seed |" in section
    labels = [
        f"token dropout 0.15, state noise 0.1, factorized rule head, 2 readers in the model{k}"
        f", encoder layer {n}, class balance 0.5, sentence vectors"
        for n in (12, 9)
        for k in ("", ", 2 trained readers averaged")
    ]
    assert "| figure | " + " | ".join(labels) + " |" in section
    assert "| held-out wording: constructions read worst (worst seed; targeted frames) |" in section
    assert "| withheld training families (" in section
    assert "| withheld training families: worst family, per seed |" in section
    assert f"of them from the rule corpus `{corpus}`" in section
    for lang in ("en", "zh"):
        assert f"| worst kind, probe wordings wording, {lang}, per seed |" in section
        assert (
            "| readable rules read unsure (top class < 0.85) or as not understood, held-out "
            f"split, {lang}, per seed |" in section
        )
    assert f"`--probe` `{example}`: on the test split's frames" in section
    assert (work / "rule-table-reader.npz").is_file()  # encodings cached for the next run
    assert (work / "rule-table-reader-L9.npz").is_file()  # one cache per layer
    assert (work / "sentence-vectors.npz").is_file()


def test_a_probe_rewords_each_targeted_rule_and_keeps_its_meaning(tmp_path: Path) -> None:
    """``--probe``: the rules bench wording re-words, with bench wording's templates and
    draws, each rendering labelled with the rule's own class and parameters and counted once
    per frame and language, under the probe's own wording."""
    from bus.recording_reader import read_samples
    from ruledrive.bench_wording import load_templates, targeted_rules
    from simulator.generate import generate
    from training.ruleparams import param_labels

    generate(tmp_path / "d", "test", 150, 5, progress=False, rule_language="bilingual")
    samples = list(read_samples(sorted((tmp_path / "d").glob("*.mcap"))))
    example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "wordings.yaml"
    from ruledrive.written_corpus import KINDS

    classes = list(KINDS)
    data = ReaderData()
    frames = add_probe(data, samples, example, classes)
    templates = load_templates(example, tuple(classes))
    want = sum(
        sum(m["class"] in kinds for kinds in templates.rules.values())
        for _, m in targeted_rules(samples)
    )
    assert frames == want > 0
    # bench wording's own renderings, draw for draw (the same frames, templates and seed)
    from ruledrive.bench_wording import DEFAULT_SEED, targeted_jobs

    _, keys = targeted_jobs(samples, templates, seed=DEFAULT_SEED)
    rendered = sorted(
        t for i, t in enumerate(data.texts) for _ in range(sum(data.weights[i].values()))
    )
    assert rendered == sorted(k[3] for k in keys)
    wording = probe_wording(example)
    assert wording == "probe wordings"
    assert sum(n for w in data.weights.values() for n in w.values()) == frames
    by_text = {t: i for i, t in enumerate(data.texts)}
    metas = [m for _, m in targeted_rules(samples)]
    for text, i in by_text.items():
        (kind, lang, w), = data.weights[i]  # fmt: skip
        assert w == wording and data.cls[i] == kind and lang in ("en", "zh")
        # Its parameters are those of a targeted rule of that kind, whose template it fills.
        assert any(m["class"] == kind and param_labels(m) == data.params[i] for m in metas), text
    with pytest.raises(DataError, match="no targeted rule"):
        add_probe(ReaderData(), [], example, classes)


def test_unsure_share_counts_readable_occurrences_read_unsure_or_not_understood() -> None:
    """The proxy of the node's readable-set flags: every time a readable rule occurs in a
    split (targeted or not), whether its reading is below the check's threshold or says
    not understood."""
    from ruledrive.bench_reader import unsure_share

    data = ReaderData()
    for text, cls, where in (
        ("Max 50", "speed_limit", {("en", "held-out"): 3}),  # sure and right
        ("Trucks: max 40", "not_binding", {("en", "held-out"): 1}),  # unsure
        ("限速70", "speed_limit", {("zh", "held-out"): 2}),  # read as not understood
    ):
        data.readable[data.add(text, cls, _params())] = where
    probs = np.array(
        [
            [0.0, 0.05, 0.0, 0.95],
            [0.2, 0.7, 0.0, 0.1],
            [0.0, 0.0, 0.9, 0.1],
        ]
    )
    got = unsure_share(data, CLASSES, probs, 0.85)
    assert got == {("en", "held-out"): 0.25, ("zh", "held-out"): 1.0}
    assert unsure_share(data, CLASSES, probs, 0.5)[("en", "held-out")] == 0.0


def test_collect_counts_every_readable_rule_of_an_evaluation_split() -> None:
    metas = [
        {"class": "speed_limit", "lang": "en", "targeted": False, "understood": True},
        {"class": "not_understood", "lang": "und", "targeted": False, "understood": False},
    ]
    s = _sample(("Max 50", "xq zz"), metas)
    data = collect([s, s], "held-out")
    assert data.readable == {0: {("en", "held-out"): 2}}  # untargeted, but readable: counted
    assert collect([s], None).readable == {}  # training texts: not counted
