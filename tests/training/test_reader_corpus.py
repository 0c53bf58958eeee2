"""The rule corpus (rule texts without frames) and the reader trained on it alone first."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import ConfigError, DataError
from ruledrive.cli import main as cli
from simulator.generate import write_rule_corpus
from simulator.language import POOLS, held_out_families
from simulator.language.ruleset import rule_corpus
from simulator.oracle import RULE_CLASSES
from training.reader import load_rule_corpus
from training.ruleparams import RULE_PARAMS


def test_corpus_draws_training_families_only_and_is_reproducible() -> None:
    recs = list(rule_corpus(400, 3))
    held = held_out_families()
    assert len(recs) > 400
    assert not any(r["held_out"] for r in recs)
    assert not {f for r in recs for f in r["families"]} & held
    assert {r["lang"] for r in recs if r["understood"]} == {"en", "zh"}
    # rules nobody can read come from the training pool only (the test pool differs)
    assert {r["construction"] for r in recs if not r["understood"]} <= set(POOLS["train"])
    # every kind of the world, readable or not, binding or not
    assert {r["class"] for r in recs} == set(RULE_CLASSES)
    assert recs == list(rule_corpus(400, 3))
    assert recs != list(rule_corpus(400, 4))
    with pytest.raises(DataError, match="positive number of rule sets"):
        next(rule_corpus(0, 3))


def test_corpus_file_round_trips_with_each_rules_meaning(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    counts = write_rule_corpus(path, 200, 9)
    corpus = load_rule_corpus(path)
    assert len(corpus.texts) == counts["distinct_texts"] == len(set(corpus.texts))
    assert counts["rules"] == len(path.read_text(encoding="utf-8").splitlines())
    assert not list(tmp_path.glob("*.tmp"))
    # A text can be written by two families (十五米 by dist_unit "米" and by "m", which writes 米
    # after a Chinese numeral); the corpus keeps the first line's families, so compare with it.
    recs: dict[str, dict] = {}
    for r in map(json.loads, path.read_text(encoding="utf-8").splitlines()):
        recs.setdefault(r["text"], r)
    limits = RULE_PARAMS["rule_limit"]
    checked = 0
    for text, cls, params, fams in zip(
        corpus.texts, corpus.classes, corpus.params, corpus.families, strict=True
    ):
        assert cls == recs[text]["class"]
        assert fams and fams == tuple(recs[text]["families"])  # for bench reader --withhold
        rule = recs[text]["rule"]
        if rule is None:  # a rule nobody can read names no parameter to learn
            assert cls == "not_understood" and params == [-1] * len(RULE_PARAMS)
        elif rule["limit"] is not None:
            assert limits[params[0]] == str(rule["limit"])
            checked += 1
    assert checked > 10
    assert load_rule_corpus(path).digest == corpus.digest
    write_rule_corpus(path, 200, 10)
    assert load_rule_corpus(path).digest != corpus.digest


GOOD = {"text": "Max 50", "class": "speed_limit", "rule": {"limit": 50}}


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["{not json"], "line 1: not a corpus record"),
        ([json.dumps(GOOD), json.dumps({"text": "x", "rule": None})], "line 2: .*class"),
        ([json.dumps({**GOOD, "text": ""})], "line 1: .*text"),
        ([json.dumps({**GOOD, "rule": "fifty"})], "line 1: .*rule"),
        ([json.dumps({**GOOD, "held_out": True})], "held-out wording"),
        ([json.dumps(GOOD), json.dumps({**GOOD, "class": "school_zone"})], "earlier line"),
        (["", "   "], "no rule texts"),
        # What would train on something the node never sees, or be dropped without a word:
        ([json.dumps({**GOOD, "text": "x" * 201})], "line 1: a rule of 201 characters"),
        ([json.dumps({**GOOD, "rule": {"kind": "teleport"}})], "does not match its rule"),
        ([json.dumps({**GOOD, "rule": {"kind": "speed_limit", "limit": "fast"}})], "rule_limit"),
        ([json.dumps({**GOOD, "rule": {"limit": 55}})], "rule_limit 55 is not one it reads"),
    ],
)
def test_bad_corpus_files_are_named_data_errors(
    tmp_path: Path, lines: list[str], message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_rule_corpus(path)


def test_a_corpus_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"text": "\xff\xfe"}')
    with pytest.raises(DataError, match="line 2: not UTF-8"):
        load_rule_corpus(path)


def test_missing_corpus_file_and_a_corpus_without_reader_epochs_are_clear(tmp_path: Path) -> None:
    from training.config import load_config

    with pytest.raises(DataError, match="cannot read it"):
        load_rule_corpus(tmp_path / "nope.jsonl")
    with pytest.raises(ConfigError, match="reader_epochs > 0"):
        load_config(None, {"rule_corpus": str(tmp_path / "c.jsonl")})
    assert load_config(None, {"rule_corpus": "c.jsonl", "reader_epochs": 2}).reader_epochs == 2


def test_rule_corpus_command_writes_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sub" / "c.jsonl"
    assert cli(["rule-corpus", "--out", str(out), "--sets", "20", "--seed", "1"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["sets"] == 20 and counts["rules"] == len(out.read_text().splitlines())
    assert cli(["rule-corpus", "--out", str(out), "--sets", "0"]) == 2
    assert "--sets: must be a whole number >= 1" in capsys.readouterr().err


@pytest.mark.tf
@pytest.mark.slow
def test_the_reader_trained_alone_is_the_whole_models_reader(tmp_path: Path) -> None:
    """fit_reader on reader_of(model) learns the corpus and changes the whole model's rule
    outputs (shared layers), not a copy."""
    import keras

    from perception.rule_encoder import RuleEncoder
    from perception.spec import MODEL_SPEC
    from training.config import TrainConfig
    from training.data import RuleTable
    from training.model import create_fused_model
    from training.reader import ReaderSet, fit_reader, reader_of

    write_rule_corpus(tmp_path / "c.jsonl", 60, 2)
    corpus = load_rule_corpus(tmp_path / "c.jsonl")
    cfg = TrainConfig(token_dropout=0.0, learning_rate=3e-3, batch_size=4)
    encoder = RuleEncoder.load(Path(cfg.encoder_dir), "cpu", cache_size=0)
    table = RuleTable.build(corpus.texts, encoder)
    classes = sorted(RULE_CLASSES)
    keras.utils.set_random_seed(0)
    model = create_fused_model(6, len(classes))
    reader = reader_of(model)
    data = ReaderSet(
        np.array([table.index[t] for t in corpus.texts], np.int32),
        np.array([classes.index(c) for c in corpus.classes], np.int32),
        np.array(corpus.params, np.int32),
    )
    n = len(corpus.texts)
    idx = np.full((n, MODEL_SPEC.max_rules), -1, np.int32)
    idx[:, 0] = data.rows  # one rule per row, in corpus order
    states, masks = table.gather(idx)
    feeds = MODEL_SPEC.feeds(
        MODEL_SPEC.image.zeros(n),
        states,
        masks,
        np.zeros((n, 1), np.float32),
    )

    def read() -> np.ndarray:
        return np.asarray(model.predict(feeds, verbose=0)[MODEL_SPEC.rule_output])[:, 0]

    before = read()
    fit_reader(reader, table, data, 25, 0, cfg)
    after = read()
    alone = np.asarray(
        reader.predict(
            {k: feeds[k] for k in (MODEL_SPEC.rules_input, MODEL_SPEC.rule_mask_input)}, verbose=0
        )[MODEL_SPEC.rule_output]
    )[:, 0]
    np.testing.assert_allclose(after, alone, atol=1e-5)
    assert not np.allclose(before, after)
    right = (after.argmax(-1) == data.classes).mean()
    assert right >= 0.9, right
    with pytest.raises(DataError, match="no labelled rule text"):
        fit_reader(
            reader, table, ReaderSet(data.rows[:0], data.classes[:0], data.params[:0]), 1, 0, cfg
        )


@pytest.mark.tf
@pytest.mark.slow
def test_train_reads_the_corpus_first_and_its_fingerprint_counts_it(tmp_path: Path) -> None:
    from training.config import TrainConfig
    from training.data import fingerprint, load_samples
    from training.train import train

    rec = tmp_path / "rec"
    args = ["--scenes", "40", "--seed", "3", "--rule-language", "bilingual", "--no-progress"]
    assert cli(["generate", "--out", str(rec), *args]) == 0
    write_rule_corpus(tmp_path / "c.jsonl", 15, 1)
    corpus = load_rule_corpus(tmp_path / "c.jsonl")
    samples = load_samples([rec])
    frame_texts = {r for smp in samples for r in smp.rules}
    base = dict(epochs=1, batch_size=4, val_fraction=0.0, negatives_fraction=0.0)
    cfg = TrainConfig(**base, reader_epochs=1, rule_corpus=str(tmp_path / "c.jsonl"))
    read = train(cfg, [rec], tmp_path / "b")
    assert read["n_rule_texts"] == len(frame_texts | set(corpus.texts)) > len(frame_texts)
    # no validation frames: the figure says it was measured on the training frames
    assert read["n_val"] == 0 and set(read["metrics"]) == {"train_accuracy"}
    assert read["data_fingerprint"] not in ("", fingerprint(samples))
    bad = cfg.model_copy(update={"rule_corpus": str(tmp_path / "missing.jsonl")})
    with pytest.raises(DataError, match="missing.jsonl"):
        train(bad, [rec], tmp_path / "c")


def test_the_reader_alone_is_refused_under_a_multi_worker_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training.config import TrainConfig
    from training.train import train

    workers = ["127.0.0.1:1", "127.0.0.1:2"]
    tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    with pytest.raises(ConfigError, match="reader_epochs .* multi-worker"):
        train(TrainConfig(reader_epochs=2), [tmp_path], tmp_path / "out")


def test_class_weights_weigh_rare_classes_more_by_the_power_asked() -> None:
    from training.reader import class_weights

    labels = np.array([0, 0, 0, 2, -1])  # class 1 absent, -1 not trained on
    np.testing.assert_allclose(class_weights(labels, 0.0), [1, 1, 1])
    # Counts 3 and 1 (mean 2): weights 2/3 and 2; an absent class keeps 1.
    np.testing.assert_allclose(class_weights(labels, 1.0), [2 / 3, 1, 2], rtol=1e-6)
    np.testing.assert_allclose(class_weights(labels, 0.5), [(2 / 3) ** 0.5, 1, 2**0.5], rtol=1e-6)
    assert class_weights(np.array([-1, -1]), 1.0).tolist() == [1.0]
