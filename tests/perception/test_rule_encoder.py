"""The committed pretrained text encoder (models/text-encoder) through perception.rule_encoder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.errors import ConfigError, DataError, ModelError
from perception.rule_encoder import (
    MANIFEST,
    MODEL_FILE,
    TOKENIZER_FILE,
    RuleEncoder,
    encoder_providers,
)

ROOT = Path(__file__).resolve().parents[2]
ENCODER = ROOT / "models/text-encoder"
DIM = 384

# The same rule in English and Chinese, written for this test (not the docs' pairs).
PAIRS = [
    ("Do not pass other vehicles", "不得超越其他车辆"),
    ("Maximum speed 50 km/h", "最高时速50公里"),
    ("The right lane is closed", "右侧车道已关闭"),
    ("Vehicles must halt on a yellow signal", "黄灯亮时车辆必须停车"),
    ("Give way to people on the zebra crossing", "在斑马线上给行人让路"),
    ("Bus lane, buses only", "公交车专用车道"),
    ("School zone, drive slowly", "学校区域，减速慢行"),
    ("Trucks over 7.5 tonnes must keep to the right lane", "7.5吨以上货车必须靠右侧车道行驶"),
]

ODD = [
    "",
    " ",
    "😀🚗🚦",
    "\x00\x07\x1b[31m\t\n\r",
    "Right turn on red 禁止 after 22:00 Uhr — ok?",
    "學校區域限速每小時30公里",
    "추월 금지",
    "bad escape \ud800 here",
    "x" * 200,
    ("学校区域上学日七点到十七点限速每小时30公里，" * 10)[:200],
    ("No overtaking. " * 20)[:200],
]


@pytest.fixture(scope="module")
def encoder() -> RuleEncoder:
    return RuleEncoder.load(ENCODER)


def test_committed_encoder_fits_the_size_budget() -> None:
    total = sum(f.stat().st_size for f in ENCODER.iterdir())
    assert total <= 30_000_000
    manifest = json.loads((ENCODER / MANIFEST).read_text())
    assert manifest["prefix"] == "query: " and manifest["pooling"] == "mean"
    assert manifest["licence"] == "MIT"


def test_encode_shape_unit_length_and_deterministic(encoder: RuleEncoder) -> None:
    texts = [en for en, _ in PAIRS[:3]]
    first = encoder.encode(texts)
    assert first.shape == (3, DIM) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    fresh = RuleEncoder.load(ENCODER, cache_size=0)
    assert np.array_equal(fresh.encode(texts), first)
    # a text's vector hardly depends on what it is encoded with (padded together: the pooling
    # sums a longer row; its token states do not depend on it at all, tested below)
    np.testing.assert_allclose(fresh.encode([texts[1], "禁止超车"])[0], first[1], atol=1e-6)
    assert encoder.encode([]).shape == (0, DIM)


def test_same_rule_in_chinese_and_english_is_closer_than_unrelated_rules(
    encoder: RuleEncoder,
) -> None:
    en = encoder.encode([e for e, _ in PAIRS])
    zh = encoder.encode([z for _, z in PAIRS])
    sims = zh @ en.T  # [zh i, en j]
    n = len(PAIRS)
    matched = np.diag(sims)
    unmatched = sims[~np.eye(n, dtype=bool)].reshape(n, n - 1)
    # measured: matched 0.854, unmatched 0.791 (margin 0.063); per rule 0.032..0.136
    assert matched.mean() - unmatched.mean() > 0.04
    assert np.all(matched > unmatched.mean(axis=1))
    # measured top-1: en->zh 8/8, zh->en 7/8
    assert (sims.argmax(axis=0) == np.arange(n)).sum() >= 7
    assert (sims.argmax(axis=1) == np.arange(n)).sum() >= 6


def test_token_states_agree_with_the_pooled_vector(encoder: RuleEncoder) -> None:
    texts = ["No overtaking", "最高时速50公里，学校区域"]
    out = encoder.token_states(texts)
    lengths = [len(encoder.token_ids(t)) for t in texts]
    assert out.states.shape == (2, max(lengths), DIM) and out.states.dtype == np.float32
    assert out.mask.sum(axis=1).tolist() == lengths
    assert out.ids[0, : lengths[0]].tolist() == encoder.token_ids(texts[0])
    for i, n in enumerate(lengths):
        mean = out.states[i, :n].mean(axis=0)
        np.testing.assert_allclose(
            mean / np.linalg.norm(mean), encoder.encode([texts[i]])[0], atol=1e-5
        )
        assert not out.states[i, n:].any()


@pytest.mark.parametrize("text", ODD, ids=range(len(ODD)))
def test_odd_text_encodes(encoder: RuleEncoder, text: str) -> None:
    vec = encoder.encode([text])
    assert vec.shape == (1, DIM) and np.isfinite(vec).all()
    assert abs(float(np.linalg.norm(vec)) - 1.0) < 1e-4


def test_long_text_is_truncated_to_max_tokens(encoder: RuleEncoder) -> None:
    assert encoder.max_tokens == 40  # what the decision model reads (MODEL_SPEC.max_rule_tokens)
    full = RuleEncoder.load(ENCODER, cache_size=0, read_tokens=None)
    assert full.max_tokens == 512  # the manifest's
    for enc in (encoder, full):
        ids = enc.token_ids("no overtaking " * 400)
        assert len(ids) == enc.max_tokens and ids[-1] == 2  # </s> kept
    # no rule the contract allows (200 characters) comes near the encoder's own limit
    worst = max(len(full.token_ids(t)) for t in ODD)
    assert worst < full.max_tokens // 2


def test_vocabulary_reads_the_rule_catalogue_and_chinese_without_unknowns(
    encoder: RuleEncoder,
) -> None:
    from simulator.rules import TEMPLATES

    unk = encoder.manifest["unk_id"]
    texts = [p.text for ps in TEMPLATES.values() for p in ps]
    texts += [z for _, z in PAIRS] + ["學校區域限速", "紅燈禁止右轉", "Überholen verboten"]
    missing = [t for t in texts if unk in encoder.token_ids(t)]
    assert not missing
    assert unk in encoder.token_ids("추월 금지")  # Korean was pruned: documented


def test_non_strings_are_refused(encoder: RuleEncoder) -> None:
    with pytest.raises(DataError):
        encoder.encode("a single string, not a list")  # type: ignore[arg-type]
    with pytest.raises(DataError):
        encoder.encode(["ok", None])  # type: ignore[list-item]


def test_cache_hits_skip_the_session() -> None:
    enc = RuleEncoder.load(ENCODER, cache_size=2)
    calls = []
    real = enc.session

    class Counting:
        def run(self, *args: object, **kwargs: object) -> object:
            calls.append(1)
            return real.run(*args, **kwargs)

    enc.session = Counting()  # type: ignore[assignment]
    first = enc.encode(["No overtaking", "禁止超车"])  # both missing: one run
    again = enc.encode(["禁止超车", "No overtaking"])
    assert len(calls) == 1 and enc.cache_info()[:3] == (2, 2, 2)
    assert np.array_equal(again[::-1], first)
    enc.token_states(["No overtaking"])  # shares the cache
    assert len(calls) == 1
    enc.encode(["Keep right"])  # evicts the least recently used ("禁止超车")
    enc.encode(["No overtaking"])
    assert len(calls) == 2
    enc.encode(["禁止超车", "禁止超车"])  # one miss, encoded once
    assert len(calls) == 3 and enc.cache_info()[:2] == (5, 4)  # the second copy: a hit


def test_texts_encoded_together_get_the_states_they_get_alone(encoder: RuleEncoder) -> None:
    """The table of a training encodes texts in padded batches, the node a rule set in one run:
    a text's token states must not depend on the texts beside it or on the padding."""
    texts = [
        "No overtaking",
        "左侧车道封闭，请向右并线",
        "School zone: 30 km/h on weekdays between 07:00 and 17:00, enforced by camera",
        "Max 50",
        "学校区域，工作日七点到十七点限速三十公里/小时",
        "Right turn on red prohibited",
    ] * 4  # more than a batch, and each text again
    texts += [f"Speed limit {k} km/h for trucks over 7.5 t" for k in range(20, 120, 5)]
    alone = [encoder._run_many([t])[0] for t in texts]
    together = encoder._run_many(texts)
    assert len(texts) > encoder.BATCH and len(together) == len(texts)
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.states, b.states)
        np.testing.assert_allclose(a.vector, b.vector, atol=1e-6)
    states, mask = encoder.encode_rule_set(texts[:5])
    for r, a in enumerate(alone[:5]):
        n = min(len(a.ids), states.shape[1])
        np.testing.assert_array_equal(states[r, :n], a.states[:n])
        assert mask[r].sum() == n and not states[r, n:].any()


def _copy(tmp_path: Path) -> Path:
    out = tmp_path / "enc"
    shutil.copytree(ENCODER, out)
    return out


def test_missing_directory_and_manifest_are_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such directory"):
        RuleEncoder.load(tmp_path / "nope")
    with pytest.raises(ModelError, match="no manifest.json"):
        RuleEncoder.load(tmp_path)


@pytest.mark.parametrize("victim", [MODEL_FILE, TOKENIZER_FILE])
def test_changed_file_is_refused(tmp_path: Path, victim: str) -> None:
    d = _copy(tmp_path)
    data = bytearray((d / victim).read_bytes())
    data[len(data) // 2] ^= 0x01
    (d / victim).write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        RuleEncoder.load(d)
    (d / victim).unlink()
    with pytest.raises(ModelError, match="missing"):
        RuleEncoder.load(d)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m.update(format="other/9"), "not a ruledrive-text-encoder"),
        (lambda m: m.pop("files"), "lacks"),
        (lambda m: m.update(prefix="passage: "), "metadata differs"),
        (lambda m: m.update(vocab_size=250002), "tokenizer size"),
    ],
    ids=["format", "files", "prefix", "vocab"],
)
def test_manifest_mismatch_is_refused(tmp_path: Path, edit: object, match: str) -> None:
    d = _copy(tmp_path)
    manifest = json.loads((d / MANIFEST).read_text())
    edit(manifest)  # type: ignore[operator]
    (d / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match=match):
        RuleEncoder.load(d)
    (d / MANIFEST).write_text("{not json")
    with pytest.raises(ModelError, match="unreadable"):
        RuleEncoder.load(d)


def test_providers() -> None:
    cpu, cuda = "CPUExecutionProvider", "CUDAExecutionProvider"
    assert encoder_providers("cpu", [cuda, cpu]) == [cpu]
    assert encoder_providers("auto", [cuda, cpu]) == [cuda, cpu]
    assert encoder_providers("auto", [cpu]) == [cpu]
    with pytest.raises(ConfigError, match="only"):
        encoder_providers("cuda", [cpu])
    with pytest.raises(ConfigError, match="unknown"):
        encoder_providers("tpu", [cpu])
    with pytest.raises(ConfigError):
        RuleEncoder.load(ENCODER, threads=0)


def test_rules_are_read_with_the_query_prefix(encoder: RuleEncoder) -> None:
    ids = encoder.token_ids("No overtaking")
    assert encoder.tokenizer.decode(ids) == "query: No overtaking"
    assert ids[0] == 0 and ids[-1] == 2  # <s> ... </s>


@pytest.mark.parametrize(
    ("text", "unreadable"),
    [
        ("Right turn on red prohibited", False),
        ("左侧车道封闭，请向右并线", False),
        ("school zone: 30 km/h on weekdays", False),
        ("限速50 km/h（仅限小客车）", False),
        ("ＭＡＸ ５０", False),  # full-width Latin
        ("Überholen verboten", False),  # Latin script: the model's to flag
        ("Ограничение скорости 50 км/ч", True),
        ("追い越し禁止です", True),  # kana
        ("최고 속도 50", True),
        ("Όριο ταχύτητας 50", True),
        ("الحد الأقصى للسرعة 50", True),
        ("गति सीमा 50", True),
        ("จำกัดความเร็ว 50", True),
        ("🚗🚲💨", True),
        ("50 / 60 !!", True),
        ("", True),
        ("  \t ", True),
        ("Maximum speed 50 km/h (мин 30)", False),  # a few letters of another script
        ("Cafe\u0301 ahead: max 30", False),  # an accent that composes to a letter (é)
        ("".join(c + "\u0336" for c in "No overtaking"), True),  # struck through
        ("No overtaking".replace("o", "o\u0332"), True),  # underlined in part
        ("限速\u20dd50", True),  # an enclosing circle
        ("N\u0489o overtaking", True),  # a "Zalgo" mark
    ],
)
def test_unreadable_script_flags_rules_no_reader_of_english_or_chinese_can_read(
    text: str, unreadable: bool
) -> None:
    from perception.rule_encoder import unreadable_script

    assert unreadable_script(text) is unreadable


# The encoder layer a reader reads (RuleEncoder.load(layer=k), TrainConfig.encoder_layer).


@pytest.fixture(scope="module")
def layer9() -> RuleEncoder:
    return RuleEncoder.load(ENCODER, layer=9, cache_size=0)


def test_an_earlier_layer_gives_its_own_states_under_its_own_identity(
    encoder: RuleEncoder, layer9: RuleEncoder
) -> None:
    rules = ["Overtaking is prohibited", "限速50公里"]
    last, mid = encoder.encode_rule_set(rules), layer9.encode_rule_set(rules)
    np.testing.assert_array_equal(last[1], mid[1])  # the same tokens
    assert np.abs(last[0] - mid[0]).max() > 0.5  # other states
    # A layer's output is a layer norm of the residual stream: per real token, zero mean.
    rows = mid[0][mid[1] > 0]
    assert rows.shape[0] > 4
    assert np.abs(rows.mean(axis=1)).max() < 0.2
    # The sentence vector stays the last layer's pooled one (what e5 trained for similarity).
    np.testing.assert_allclose(layer9.encode(rules), encoder.encode(rules), atol=1e-6)
    # Encodings of one layer are never mistaken for another's: identity and cache key say it.
    assert "layer" not in encoder.identity()
    assert layer9.identity() == {**encoder.identity(), "layer": "9"}
    assert layer9.cache_key != encoder.cache_key
    assert (layer9.layer, encoder.layer) == (9, None)


def test_each_layer_differs_and_the_last_one_named_is_the_default(encoder: RuleEncoder) -> None:
    rule = ["Vehicles must halt on a yellow signal"]
    states = {k: RuleEncoder.load(ENCODER, layer=k, cache_size=0) for k in (1, 6, 12)}
    got = {k: e.encode_rule_set(rule)[0] for k, e in states.items()}
    assert np.abs(got[1] - got[6]).max() > 0.5
    # Naming the last layer is the default encoder: same states, same identity, same cache.
    np.testing.assert_array_equal(got[12], encoder.encode_rule_set(rule)[0])
    assert states[12].identity() == encoder.identity()
    assert states[12].cache_key == encoder.cache_key


def test_several_layers_read_side_by_side_are_each_layer_s_own_states(
    encoder: RuleEncoder, layer9: RuleEncoder
) -> None:
    rules = ["No overtaking", "限速50公里"]
    mix = RuleEncoder.load(ENCODER, layer=(6, 9, 12), cache_size=0)
    six = RuleEncoder.load(ENCODER, layer=6, cache_size=0)
    assert mix.width == 3 * mix.dim == 1152
    states, mask = mix.encode_rule_set(rules)
    assert states.shape == (5, 40, 1152)
    # One pass of the graph gives each layer's states, in the order named.
    for part, one in zip(np.split(states, 3, axis=-1), (six, layer9, encoder), strict=True):
        np.testing.assert_allclose(part, one.encode_rule_set(rules)[0], atol=1e-5)
    np.testing.assert_array_equal(mask, encoder.encode_rule_set(rules)[1])
    tok = mix.token_states(rules)
    assert tok.states.shape[-1] == 1152
    np.testing.assert_allclose(mix.encode(rules), encoder.encode(rules), atol=1e-6)
    assert mix.identity() == {**encoder.identity(), "layer": "6+9+12"}
    assert mix.cache_key not in {encoder.cache_key, layer9.cache_key, six.cache_key}
    # The order is part of what the model reads: another order is another encoder.
    other = RuleEncoder.load(ENCODER, layer=(12, 9, 6), cache_size=0)
    assert other.identity() != mix.identity() and other.cache_key != mix.cache_key
    np.testing.assert_allclose(
        other.encode_rule_set(rules)[0][..., :384], states[..., 768:], atol=1e-5
    )
    # A one-layer tuple is that layer.
    assert RuleEncoder.load(ENCODER, layer=(9,), cache_size=0).identity() == layer9.identity()


@pytest.mark.parametrize("bad", [(), (6, 6), (6, 13), (6, True), (6, "9"), tuple(range(1, 10))])
def test_a_bad_list_of_layers_is_a_configuration_error(bad: object) -> None:
    with pytest.raises(ConfigError, match="layer"):
        RuleEncoder.load(ENCODER, layer=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, 13, -1, True, "9", 9.0])
def test_a_layer_the_encoder_does_not_have_is_a_configuration_error(bad: object) -> None:
    with pytest.raises(ConfigError, match="layer"):
        RuleEncoder.load(ENCODER, layer=bad)  # type: ignore[arg-type]


def test_a_model_names_its_encoder_layer_or_none() -> None:
    from perception.rule_encoder import encoder_layer

    ident = {"model_sha256": "a", "tokenizer_sha256": "b", "prefix": "query: "}
    assert encoder_layer(ident) is None  # models from before the key: the last layer
    assert encoder_layer({**ident, "layer": "9"}) == 9
    assert encoder_layer({**ident, "layer": "6+9+12"}) == (6, 9, 12)
    for bad in ("", "nine", "-1", "0", "9.5", "1000", "6+", "+9", "6++9", "6 + 9"):
        with pytest.raises(ModelError, match="not a layer number"):
            encoder_layer({**ident, "layer": bad}, "m.onnx")
    with pytest.raises(ModelError, match="twice"):
        encoder_layer({**ident, "layer": "9+9"}, "m.onnx")


# Shouted rules (road signs, sign-recognition feeds) are read in sentence case.


@pytest.mark.parametrize(
    ("text", "read_as"),
    [
        ("YIELD TO PEDESTRIANS IN CROSSWALK", "Yield to pedestrians in crosswalk"),
        ("SPEED LIMIT 70", "Speed limit 70"),
        ('  "NO U-TURN"', '  "No u-turn"'),
        ("SCHOOL ZONE 30 KM/H 7AM-5PM", "School zone 30 km/h 7am-5pm"),
        ("ÉCOLE", "École"),
        ("STOP", "Stop"),
        ("ＳＴＯＰ ５０", "Ｓｔｏｐ ５０"),  # full-width Latin is cased too
        # Not shouted: unchanged.
        ("CCTV in operation", "CCTV in operation"),
        ("No overtaking", "No overtaking"),
        ("Speed Limit 70", "Speed Limit 70"),
        ("OK", "OK"),  # fewer than four cased letters
        ("限速 70 KM/H", "限速 70 KM/H"),
        ("左侧车道封闭，请向右并线", "左侧车道封闭，请向右并线"),
        ("", ""),
        ("\ud800 NO", "? NO"),  # a lone surrogate becomes ?
    ],
)
def test_normalise_reads_shouted_rules_in_sentence_case(text: str, read_as: str) -> None:
    from perception.rule_encoder import normalise

    assert normalise(text) == read_as


def test_a_shouted_rule_encodes_as_its_sentence_case(encoder: RuleEncoder) -> None:
    from perception.rule_encoder import TEXT_FORM

    shouted, plain = "YIELD TO PEDESTRIANS IN CROSSWALK", "Yield to pedestrians in crosswalk"
    assert encoder.token_ids(shouted) == encoder.token_ids(plain)
    a, b = encoder.encode_rule_set([shouted]), encoder.encode_rule_set([plain])
    np.testing.assert_array_equal(a[0], b[0])
    # Caches of encodings made before the text form changed are not reused.
    assert encoder.cache_key.split("/")[2] == TEXT_FORM


def test_the_shipped_model_reads_a_shouted_rule_as_it_reads_it_in_sentence_case() -> None:
    from policy.model import PolicyModel

    model = PolicyModel.load(ROOT / "models/ruledrive-default.onnx", providers="cpu")
    for shouted in ("YIELD TO PEDESTRIANS IN CROSSWALK", "SPEED LIMIT 70", "NO OVERTAKING"):
        loud = model.encode_rules((shouted,))
        calm = model.encode_rules((shouted.capitalize(),))
        assert loud.classes is not None and calm.classes is not None
        np.testing.assert_array_equal(loud.classes, calm.classes)
        assert not loud.alternatives  # nothing left unsure to check frame by frame
        assert model.meta.rule_classes[int(loud.classes[0].argmax())] != "not_understood"


@pytest.mark.parametrize(
    ("text", "read_as"),
    [
        ("N\u200bo overtaking", "No overtaking"),  # zero-width space
        ("N\u200co overtaking", "No overtaking"),  # zero-width non-joiner
        ("N\u200do overtaking", "No overtaking"),  # zero-width joiner
        ("N\ufeffo overtaking", "No overtaking"),  # byte-order mark inside
        ("Overtaking pro\u00adhibited", "Overtaking prohibited"),  # soft hyphen
        ("\u202eNo overtaking\u202c", "No overtaking"),  # bidi override and pop
        ("禁\u200b止超车", "禁止超车"),
        ("禁\u2060止超车\U000e0041", "禁止超车"),  # word joiner, a tag character
        ("\u200b\u200d", ""),  # nothing visible: nothing read (unreadable_script flags it)
        ("Café, naïve, 限速５０", "Café, naïve, 限速５０"),  # letters and marks stay
        ("禁\u200a止超车", "禁止超车"),  # a hair space between Chinese characters
        ("禁 止\u3000超车", "禁止超车"),  # Chinese is written without spaces
        ("N\u200ao overtaking", "No overtaking"),  # a thin space inside a word
        ("No\u00a0overtaking\tahead\u2028", "No overtaking ahead "),  # other spaces: plain
        ("限速 70 公里", "限速 70 公里"),  # a space beside a number stays
    ],
)
def test_normalise_drops_invisible_format_characters(text: str, read_as: str) -> None:
    from perception.rule_encoder import normalise, unreadable_script

    assert normalise(text) == read_as
    if not read_as:
        assert unreadable_script(text)


def test_the_shipped_model_reads_a_rule_with_invisible_characters_as_without() -> None:
    """An outside probe hid a zero-width space in the negation: "N\\u200bo overtaking" was read
    as overtaking permitted at 0.94-1.00 and the car overtook (valid=true)."""
    from policy.model import PolicyModel

    model = PolicyModel.load(ROOT / "models/ruledrive-default.onnx", providers="cpu")
    for hidden, plain in (
        ("N\u200bo overtaking", "No overtaking"),
        ("Overtaking is n\u200bot permitted", "Overtaking is not permitted"),
        ("禁\u200d止超车", "禁止超车"),
        ("禁\u200a止超车", "禁止超车"),  # a hair space (Zs, not Cf): a second probe
        ("N\u202fo overtaking", "No overtaking"),
    ):
        a, b = model.encode_rules((hidden,)), model.encode_rules((plain,))
        assert a.classes is not None and b.classes is not None
        np.testing.assert_array_equal(a.classes, b.classes)
        assert model.meta.rule_classes[int(a.classes[0].argmax())] == "overtaking:prohibited"


def test_a_rule_is_encoded_no_further_than_the_model_reads(encoder: RuleEncoder) -> None:
    """The encoder stops at the model's 40 tokens: a 200-character rule costs what a short one
    does (it took ~0.15 s and starved other vehicles' rule sets), is still flagged as read in
    part, and a rule within 40 tokens is encoded exactly as with the encoder's full 512."""
    from perception.rule_encoder import read_in_part
    from perception.spec import MODEL_SPEC

    long_rule = "本路段因道路施工" * 25  # 200 characters, far past 40 tokens
    assert len(encoder.token_ids(long_rule)) == MODEL_SPEC.max_rule_tokens
    _, mask = encoder.encode_rule_set([long_rule, "No overtaking"])
    assert read_in_part(mask).tolist()[:2] == [True, False]
    full = RuleEncoder.load(ENCODER, cache_size=0, read_tokens=None)
    assert len(full.token_ids(long_rule)) > 100 and full.cache_key != encoder.cache_key
    for text in ("No overtaking", "左侧车道封闭，请向右并线", "Lane 2 closed ahead, merge left"):
        np.testing.assert_array_equal(
            encoder.encode_rule_set([text])[0], full.encode_rule_set([text])[0]
        )
    with pytest.raises(ConfigError, match="read_tokens"):
        RuleEncoder.load(ENCODER, read_tokens=2)


def test_split_ids_write_chinese_words_in_characters(encoder: RuleEncoder) -> None:
    """TrainConfig.split_words' second segmentation (training only)."""
    from perception.rule_encoder import split_han_words

    text = "驾驶人可以在本路段超过前方车辆，不受限制"
    ids, split = encoder.token_ids(text), encoder.split_ids(text)
    assert split == encoder.split_ids(text)  # one split form per text
    piece = encoder.tokenizer.id_to_token
    assert len(split) > len(ids)
    assert "".join(map(piece, split)) == "".join(map(piece, ids))  # the same characters
    assert {piece(i) for i in split} - {piece(i) for i in ids} <= set(text)  # new: one each
    english = "No overtaking on the left lane, max 50 km/h"
    assert encoder.split_ids(english) == encoder.token_ids(english)
    # a split form longer than the model reads is not made: cut, it would be read in part
    assert split_han_words(ids, encoder.tokenizer, text, len(split) - 1) == ids
    assert split_han_words(ids, encoder.tokenizer, text, len(split)) == split
    states, mask = encoder.encode_ids([ids])
    want_states, want_mask = encoder.encode_rule_set([text], max_rules=1)
    assert np.array_equal(states, want_states) and np.array_equal(mask, want_mask)


TRADITIONAL = [
    ("第一車道封閉，請向右併線", "第一车道封闭，请向右并线"),
    ("紅燈時准許右轉", "红灯时准许右转"),
    ("黃燈亮時，距停止線15米以內可繼續通行", "黄灯亮时，距停止线15米以内可继续通行"),
    ("公車專用道 全日", "公车专用道全日"),
    ("學校區域 限速30公里 上午7時至下午5時", "学校区域限速30公里上午7时至下午5时"),
]


@pytest.mark.parametrize(("traditional", "simplified"), TRADITIONAL)
def test_traditional_characters_are_read_as_simplified(traditional: str, simplified: str) -> None:
    from perception.rule_encoder import normalise

    assert normalise(traditional) == simplified
    assert normalise(simplified) == simplified


def test_the_simplified_conversion_leaves_the_rule_language_unchanged() -> None:
    """Every Chinese rule the generator writes (training and held-out families, both pools of
    rules nobody can read) and the recipe's written wording: the model reads exactly the text it
    was trained on. Only Japanese negatives change (優先 -> 优先), and those hold kana: flagged
    whatever the model reads (unreadable_script)."""
    import random

    from perception.rule_encoder import _simplified, unreadable_script
    from simulator.language.ruleset import sample_language_rule_set

    convert = _simplified().convert
    seen: set[str] = set()
    for held_out, negatives in ((False, "train"), (True, "test")):
        rng = random.Random(7)
        for _ in range(4000):
            for rule in sample_language_rule_set(rng, rng.choice((2, 3)), held_out, negatives):
                seen.add(rule.text)
    han = [t for t in seen if any("\u4e00" <= c <= "\u9fff" for c in t)]
    assert len(han) > 3000
    changed = [t for t in han if convert(t) != t]
    assert all(unreadable_script(t) for t in changed), changed
    written = Path(__file__).resolve().parents[2] / "training/written"
    for path in sorted(written.iterdir()):
        text = path.read_text(encoding="utf-8")
        assert convert(text) == text, path.name
