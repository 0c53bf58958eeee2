"""The pretrained word-vector prior: the packaged table, its alignment to a tokenizer, the
build from a (tiny, synthetic) BERT-style model directory, and the CLI's bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import DataError
from perception.text import PAD_ID, UNK_ID, RuleTokenizer, tokenize
from ruledrive.cli import main as cli
from simulator.rules import catalogue_words
from training.wordvectors import (
    DEFAULT_TABLE,
    build_table,
    load_table,
    text_prior,
)


@pytest.fixture(scope="module")
def table():  # type: ignore[no-untyped-def]
    return load_table()


def test_packaged_table_is_well_formed(table) -> None:  # type: ignore[no-untyped-def]
    assert len(table.stems) > 10_000 and table.dim == 64
    assert len(set(table.stems)) == len(table.stems)
    np.testing.assert_allclose(np.linalg.norm(table.vectors, axis=1), 1.0, atol=1e-2)
    digits = [s for s in table.stems if s.isdigit()]
    assert table.stems[: len(digits)] == digits  # digit runs first, then words
    assert "MiniLM" in table.source


def test_table_covers_every_training_phrasing_word(table) -> None:  # type: ignore[no-untyped-def]
    stems = set(table.stems)
    missing = [w for w in catalogue_words() if tokenize(w)[0] not in stems]
    assert missing == []


def test_held_out_words_sit_next_to_their_training_synonyms(table) -> None:  # type: ignore[no-untyped-def]
    """What the prior is for: among the words the model trains on, the nearest to a held-out
    word is the one with its meaning."""
    train_stems = sorted({tokenize(w)[0] for w in catalogue_words()} - {"shut", "forbidden"})
    idx = {s: i for i, s in enumerate(table.stems)}
    rows = table.vectors[[idx[s] for s in train_stems]]
    for held, meaning in (("shut", "close"), ("forbidden", "prohibit")):
        sims = rows @ table.vectors[idx[held]]
        assert train_stems[int(np.argmax(sims))] == meaning, held


def test_text_prior_aligns_vectors_and_learned_slots(table) -> None:  # type: ignore[no-untyped-def]
    tok = RuleTokenizer.from_texts(
        ["Lane 2 closed, merge left", "Zorbly lane closed"], base=table.stems
    )
    prior = text_prior(tok, table)
    assert prior.vocab_size == tok.vocab_size and prior.dim == table.dim
    row = {s: i for i, s in enumerate(table.stems)}
    close, two, zorbly = tok.index["close"], tok.index["2"], tok.index[tokenize("Zorbly")[0]]
    np.testing.assert_array_equal(prior.vectors[close], table.vectors[row["close"]])
    assert prior.slots[close] == 0 and prior.slots[PAD_ID] == 0  # table words share slot 0
    assert not prior.vectors[PAD_ID].any() and not prior.vectors[zorbly].any()
    own = [prior.slots[UNK_ID], prior.slots[two], prior.slots[zorbly]]
    assert len(set(own)) == 3 and 0 not in own and max(own) < prior.n_slots
    # A word never seen in training still has its own id (not <unk>).
    assert tok.encode_rule("The left lane is shut ahead")[4] == tok.index["shut"] != UNK_ID


def test_no_prior_learns_every_token() -> None:
    tok = RuleTokenizer.from_texts(["No overtaking", "Speed limit 50 km/h"])
    prior = text_prior(tok, None)
    assert prior.n_slots == tok.vocab_size and not prior.vectors.any()
    assert sorted(prior.slots.tolist()) == list(range(tok.vocab_size))


def _tiny_bert(root: Path, words: list[str], dim: int = 16) -> Path:
    """A BERT-style directory: a WordPiece tokenizer.json and a word-embedding matrix."""
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(["[UNK]", *words, "##s", "##ed"])}
    wp = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    root.mkdir()
    wp.save(str(root / "tokenizer.json"))
    rng = np.random.default_rng(0)
    save_file(
        {"embeddings.word_embeddings.weight": rng.normal(size=(len(vocab), dim)).astype("f4")},
        str(root / "model.safetensors"),
    )
    return root


def test_build_groups_by_stem_and_reduces(tmp_path: Path) -> None:
    words = ["close", "closed", "closing", "merge", "lane", "left", "right", "bus", "50", "ahead"]
    model = _tiny_bert(tmp_path / "bert", words)
    arrays = build_table(model, dim=4, extra_words=["zone"])  # "zone" -> [UNK] piece, kept
    stems = arrays["stems"].tolist()
    assert stems[0] == "50" and stems.count("close") == 1  # close/closed/closing: one stem
    assert "zone" in stems and "##s" not in stems and "[UNK]" not in stems
    assert arrays["vectors"].shape == (len(stems), 4)
    out = tmp_path / "t.npz"
    np.savez_compressed(out, **arrays)
    again = load_table(out)
    assert again.stems == stems and again.sha256 == load_table(out).sha256


def test_build_and_load_reject_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="tokenizer.json"):
        build_table(tmp_path, dim=4)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a table")
    with pytest.raises(DataError, match="not a word-vector table"):
        load_table(bad)
    np.savez(bad, stems=np.array(["a", "a"]), vectors=np.zeros((2, 3)), source=np.array("x"))
    with pytest.raises(DataError, match="do not line up"):
        load_table(bad)


def test_cli_build_writes_the_table_and_neighbours_reads_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _tiny_bert(tmp_path / "bert", ["close", "closed", "merge", "lane", "left", "right"])
    out = tmp_path / "wv.npz"
    assert (
        cli(["wordvectors", "build", "--model-dir", str(model), "--dim", "3", "--out", str(out)])
        == 0
    )
    assert load_table(out).dim == 3
    assert cli(["wordvectors", "neighbours", "closed", "-k", "2", "--table", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("closed: ")
    assert cli(["wordvectors", "neighbours", "qwxz", "--table", str(out)]) != 0
    assert "not one word of the table" in capsys.readouterr().err
    assert (
        cli(["wordvectors", "build", "--model-dir", str(model), "--dim", "0", "--out", str(out)])
        != 0
    )
    assert cli(["wordvectors", "build", "--model-dir", str(tmp_path), "--out", str(out)]) != 0
    assert load_table(out).dim == 3  # a failed build leaves the old table in place


def test_packaged_table_is_the_default(table) -> None:  # type: ignore[no-untyped-def]
    assert DEFAULT_TABLE.is_file() and table.sha256 == load_table(DEFAULT_TABLE).sha256
    assert json.dumps(table.source)  # a printable provenance string
