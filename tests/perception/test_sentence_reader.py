"""The sentence reader (perception.sentence_reader): its metadata, head graph and averaging, the
encoder it reads with, and the node and the evaluation applying it the same way."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from core.errors import ModelError
from perception import sentence_reader as sr
from perception.readcheck import SENTENCE_CLASSES, ReadingCheck, reread
from perception.spec import MODEL_SPEC as S
from policy.model import PolicyModel

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models/ruledrive-default.onnx"
CPU = ["CPUExecutionProvider"]


@pytest.fixture(scope="module")
def classes() -> tuple[str, ...]:
    session = ort.InferenceSession(str(MODEL), providers=CPU)
    meta = session.get_modelmeta().custom_metadata_map
    return tuple(json.loads(meta["ruledrive.rule_classes"]))


def _head_saying(cls: int, n: int, strength: float = 30.0) -> bytes:
    """A head that reads every rule as class ``cls`` (softmax ~1 on it)."""
    w1 = np.zeros((sr.DIM, 4), np.float32)
    w2 = np.zeros((4, n), np.float32)
    b2 = np.zeros(n, np.float32)
    b2[cls] = strength
    return sr.head_graph(w1, np.zeros(4, np.float32), w2, b2)


def _with_reader(path: Path, graph: bytes, classes: tuple[str, ...], weight: float) -> Path:
    model = onnx.load(str(MODEL))
    entry = model.metadata_props.add()
    entry.key, entry.value = sr.META_KEY, sr.metadata_value(graph, classes, weight)
    path.write_bytes(model.SerializeToString())
    return path


def test_the_head_graph_is_the_numpy_head() -> None:
    from math import erf

    rng = np.random.default_rng(3)
    w1, b1 = rng.normal(size=(sr.DIM, 8)).astype(np.float32) * 0.1, rng.normal(size=8)
    w2, b2 = rng.normal(size=(8, 5)).astype(np.float32), rng.normal(size=5)
    x = rng.normal(size=(6, sr.DIM)).astype(np.float32)
    session = ort.InferenceSession(sr.head_graph(w1, b1, w2, b2), providers=CPU)
    (got,) = session.run(["classes"], {"sentences": x})
    h = x @ w1 + b1
    h = 0.5 * h * (1 + np.vectorize(lambda v: erf(v / np.sqrt(2)))(h))
    logits = h @ w2 + b2
    want = np.exp(logits - logits.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_the_metadata_round_trips_and_bad_values_are_refused(classes) -> None:
    graph = _head_saying(0, len(classes))
    value = sr.metadata_value(graph, classes, 0.5)
    spec = sr.spec_of({sr.META_KEY: value}, classes)
    assert spec is not None and spec.graph == graph and spec.weight == 0.5
    assert spec.encoder == f"{sr.PACKAGE}=={sr.VERSION}" and spec.classes == classes
    assert sr.spec_of({}, classes) is None  # a model without one reads as before
    obj = json.loads(value)
    bad = [
        "{not json",
        json.dumps({**obj, "weight": 1.0}),
        json.dumps({**obj, "weight": "x"}),
        json.dumps({**obj, "graph": "%%%"}),
        json.dumps({**obj, "classes": list(reversed(classes))}),
        json.dumps({k: v for k, v in obj.items() if k != "encoder"}),
        json.dumps({**obj, "classes": [1, 2]}),
    ]
    bad += [  # hostile values: each a ModelError, never another exception (a node reloads)
        json.dumps({**obj, "weight": int("9" * 400)}),
        "[" * 100_000 + "]" * 100_000,
        json.dumps([obj]),
        json.dumps({**obj, "classes": "".join(classes)}),
        json.dumps({**obj, "weight": "0.5"}),
        json.dumps({**obj, "weight": True}),
        json.dumps({**obj, "mode": ["check"]}),
        json.dumps({**obj, "graph": None}),
    ]
    for raw in bad:
        with pytest.raises(ModelError):
            sr.spec_of({sr.META_KEY: raw}, classes)
    with pytest.raises(ModelError, match="weight"):
        sr.metadata_value(graph, classes, 0.0)


def test_fuse_averages_the_rules_present_only() -> None:
    mine = np.array([[1.0, 0.0], [0.2, 0.8], [1.0, 0.0]], np.float32)
    theirs = np.array([[0.0, 1.0], [0.2, 0.8], [0.0, 1.0]], np.float32)
    mask = np.array([[1, 1], [1, 0], [0, 0]], np.float32)
    got = sr.fuse(mine, theirs, mask, 0.25)
    np.testing.assert_allclose(got, [[0.75, 0.25], [0.2, 0.8], [1.0, 0.0]])
    assert mine[0, 0] == 1.0  # not in place


def test_the_encoder_reads_both_languages_and_any_string() -> None:
    enc = sr.SentenceEncoder(cache_size=4)
    texts = ["Overtaking is prohibited", "禁止超车", "Left lane closed ahead", "", "\ud800 🚗" * 40]
    v = enc.encode(texts)
    assert v.shape == (5, sr.DIM) and v.dtype == np.float32 and np.isfinite(v).all()
    np.testing.assert_allclose(np.linalg.norm(v[:3], axis=1), 1.0, atol=1e-4)
    # A rule and its translation are nearer than two unrelated rules.
    assert v[0] @ v[1] > v[1] @ v[2] + 0.1
    again = enc.encode(texts[:2])  # the same vectors, cached or not
    np.testing.assert_array_equal(again, v[:2])
    assert len(enc._cache) == 4  # the cache's size
    assert set(enc._cache) >= set(texts[:2])  # the last used are kept
    hostile = ["\x00\x01\x7f", "\u202e\u200b" * 50, "限速" * 100, "a" * 5000]
    assert np.isfinite(enc.encode(hostile)).all()
    none = sr.SentenceEncoder(cache_size=0)
    np.testing.assert_allclose(none.encode(texts[:1]), v[:1], atol=1e-6)
    assert len(none._cache) == 0


def test_a_missing_or_other_package_is_a_clear_model_error(monkeypatch) -> None:
    def gone(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(sr.importlib.metadata, "version", gone)
    with pytest.raises(ModelError, match="pip install"):
        sr.SentenceEncoder()
    monkeypatch.setattr(sr.importlib.metadata, "version", lambda _: "9.9")
    with pytest.raises(ModelError, match="9.9"):
        sr.SentenceEncoder()


TEXTS = ("No overtaking", "Speed limit 50 km/h")


def _feeds(rules) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """The model inputs of one blank frame at 40 km/h under an encoded rule set."""
    image = np.zeros((1, S.image_height, S.image_width, 3), np.uint8)
    return S.feeds(image, rules.states[None], rules.mask[None], np.full((1, 1), 40.0, np.float32))


def test_the_node_averages_the_two_readings(classes, tmp_path: Path) -> None:
    permitted = classes.index("overtaking:permitted")
    # Weight 0.4: each rule keeps the token reader's class on top, at ~0.6.
    path = _with_reader(tmp_path / "m.onnx", _head_saying(permitted, len(classes)), classes, 0.4)
    plain = PolicyModel.load(MODEL, "cpu", reading_threshold=0.85)
    model = PolicyModel.load(path, "cpu", encoder=plain.encoder, reading_threshold=0.85)
    assert model.sentence is not None and plain.sentence is None
    mine, both = plain.encode_rules(TEXTS), model.encode_rules(TEXTS)
    assert mine.classes is not None and both.classes is not None
    assert mine.classes[0].argmax() == classes.index("overtaking:prohibited")
    head = np.zeros_like(mine.classes)
    head[: len(TEXTS), permitted] = 1.0
    # The neighbour reading overrules neither rule (their top class keeps its kind), so the
    # node's classes are the plain average, and its features the reading graph's on them;
    # except that "No overtaking", split between the ban (0.6) and the permission (0.4), is
    # read as the ban its words write (perception.readcheck.agreed: a third reader settles it).
    average = sr.fuse(mine.classes, head, mine.mask, 0.4)
    assert average[0].max() < 0.85 and int(np.argsort(average[0])[-2]) == permitted
    settled = average.copy()
    settled[0] = np.eye(len(classes), dtype=np.float32)[classes.index("overtaking:prohibited")]
    np.testing.assert_allclose(both.classes, settled, atol=1e-5)
    params = model.rules_session.run(  # type: ignore[union-attr]
        list(model.reading_inputs[1:]),
        {S.rules_input: mine.states[None], S.rule_mask_input: mine.mask[None]},
    )
    want, _ = reread(
        model.reading_session,
        model.reading_inputs,
        [both.classes, *(p[0] for p in params)],
        mine.mask,
        [],
    )
    np.testing.assert_allclose(both.features, want, atol=1e-5)  # type: ignore[arg-type]
    # Two readers that disagree: such a rule is an unsure reading, so the reading check has
    # its alternative (the frame is flagged where that rule decides it); not the one its words
    # settled.
    assert 1 in {r for r, _ in both.alternatives} and 0 not in {r for r, _ in both.alternatives}
    assert mine.alternatives == ()
    # The evaluation's graphs read the rule set the same way, given the head's readings.
    check = ReadingCheck.from_model(path.read_bytes())
    assert check is not None and check.sentence is not None and check.sentence.weight == 0.4
    feeds = _feeds(mine)
    _, _, _, scanned, _, _ = check.scan({**feeds, SENTENCE_CLASSES: head[None]}, 0.0)
    np.testing.assert_allclose(scanned[0], average, atol=1e-5)  # the check off: no words asked
    with pytest.raises(ModelError, match="sentence"):
        check.scan(feeds, 0.0)  # its readings not given: refused, not skipped


def test_in_check_mode_the_node_decides_on_its_own_reading_and_checks_the_others(
    classes, tmp_path: Path
) -> None:
    permitted = classes.index("overtaking:permitted")
    model = onnx.load(str(MODEL))
    entry = model.metadata_props.add()
    graph = _head_saying(permitted, len(classes))
    entry.key, entry.value = sr.META_KEY, sr.metadata_value(graph, classes, 0.5, "check")
    path = tmp_path / "check.onnx"
    path.write_bytes(model.SerializeToString())
    plain = PolicyModel.load(MODEL, "cpu", reading_threshold=0.01)
    checked = PolicyModel.load(path, "cpu", encoder=plain.encoder, reading_threshold=0.01)
    texts = (*TEXTS, "Overtaking permitted")
    mine, got = plain.encode_rules(texts), checked.encode_rules(texts)
    assert mine.classes is not None and got.classes is not None
    np.testing.assert_allclose(got.classes, mine.classes, atol=1e-6)
    np.testing.assert_allclose(got.features, mine.features, atol=1e-6)  # type: ignore[arg-type]
    assert mine.alternatives == ()  # every rule read surely: nothing to check without the head
    alts = dict(got.alternatives)
    assert set(alts) == {0, 1}  # the third rule the head reads alike: not checked
    params = checked.rules_session.run(  # type: ignore[union-attr]
        list(checked.reading_inputs[1:]),
        {S.rules_input: mine.states[None], S.rule_mask_input: mine.mask[None]},
    )
    readings = [mine.classes, *(p[0] for p in params)]
    for r in (0, 1):
        want, _ = reread(
            checked.reading_session, checked.reading_inputs, readings, mine.mask, [(r, permitted)]
        )
        np.testing.assert_allclose(alts[r], want, atol=1e-6)
    with pytest.raises(ModelError, match="mode"):
        sr.metadata_value(graph, classes, 0.5, "vote")
    # The evaluation's graphs check the same rules: the head's differing readings are checked
    # at any threshold (top 0), the rule it reads alike is not, and the classes are the model's.
    check = ReadingCheck.from_model(path.read_bytes())
    assert check is not None and check.sentence is not None and check.sentence.mode == "check"
    feeds = _feeds(mine)
    head = np.zeros_like(mine.classes)
    head[: len(texts), permitted] = 1.0
    _, top, _, scanned, _, _ = check.scan({**feeds, SENTENCE_CLASSES: head[None]}, 0.01)
    np.testing.assert_allclose(scanned[0], mine.classes, atol=1e-6)
    assert top[0, 0] == top[0, 1] == 0.0 and top[0, 2] > 0.5


def test_the_evaluation_applies_the_reader_without_the_check_or_neighbours(
    classes, tmp_path: Path
) -> None:
    from training.evaluate import OnnxPredictor

    permitted = classes.index("overtaking:permitted")
    path = _with_reader(tmp_path / "m.onnx", _head_saying(permitted, len(classes)), classes, 0.4)
    node = PolicyModel.load(path, "cpu", reading_threshold=0.0, neighbour_reading=False)
    bare = OnnxPredictor(path, reading_check=False, neighbour_reading=False)
    got = node.encode_rules(TEXTS)
    feeds = _feeds(got)
    head = np.zeros((1, *got.classes.shape), np.float32)  # type: ignore[union-attr]
    head[0, : len(TEXTS), permitted] = 1.0
    outs = bare.predict({**feeds, SENTENCE_CLASSES: head})
    np.testing.assert_allclose(outs[S.rule_output][0], got.classes, atol=1e-5)


def test_a_model_whose_reader_cannot_be_applied_is_refused(classes, tmp_path: Path) -> None:
    graph = _head_saying(0, len(classes))
    model = onnx.load(str(MODEL))
    entry = model.metadata_props.add()
    obj = json.loads(sr.metadata_value(graph, classes, 0.5))
    entry.key, entry.value = sr.META_KEY, json.dumps({**obj, "encoder": "other==1.0"})
    (tmp_path / "other.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(ModelError, match="other==1.0"):
        PolicyModel.load(tmp_path / "other.onnx", "cpu")
    entry.value = json.dumps({**obj, "graph": "bm90IGFuIG9ubng="})  # "not an onnx"
    (tmp_path / "broken.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(ModelError, match="does not load"):
        PolicyModel.load(tmp_path / "broken.onnx", "cpu")
    # A head of the wrong width is refused at load, not on a vehicle's first rule set.
    entry.value = sr.metadata_value(_head_saying(0, len(classes) + 2), classes, 0.5)
    (tmp_path / "wide.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(ModelError, match="for one rule"):
        PolicyModel.load(tmp_path / "wide.onnx", "cpu")


@pytest.mark.tf
@pytest.mark.slow
def test_the_command_attaches_a_reader_the_evaluation_applies(tmp_path: Path, capsys) -> None:
    from ruledrive.cli import main as cli
    from simulator.generate import generate, write_rule_corpus
    from training.data import load_samples
    from training.evaluate import OnnxPredictor, evaluate_samples

    generate(tmp_path / "d", "train", 60, 7, workers=1, progress=False, rule_language="bilingual")
    write_rule_corpus(tmp_path / "c.jsonl", 400, 5)
    data, corpus = str(tmp_path / "d"), str(tmp_path / "c.jsonl")
    out, cache = tmp_path / "with.onnx", tmp_path / "vec.npz"
    argv = ["--data", data, "--corpus", corpus, "--epochs", "3", "--sentence-cache", str(cache)]
    assert cli(["sentence-reader", str(MODEL), *argv, "--out", str(out)]) == 0
    assert "sentence reader of" in capsys.readouterr().out
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert sr.META_KEY in props and out.stat().st_size <= 10 * 1024 * 1024
    with np.load(cache) as z:  # the vectors were kept for the next run
        assert len(z["texts"]) == len(z["vectors"]) > 100
    # The evaluation runs the node's reading: the head's readings of each frame's rules go in.
    samples = load_samples([tmp_path / "d"])[:20]
    with_reader, plain = OnnxPredictor(out), OnnxPredictor(MODEL)
    assert with_reader.sentence is not None and plain.sentence is None
    rep = evaluate_samples(with_reader, samples)
    assert rep["splits"]["train"]["accuracy"] > 0.5
    # Bad inputs: a clear error, nothing written.
    bad = tmp_path / "x.onnx"
    for args, rc, says in (
        ([str(out), *argv, "--out", str(bad)], 1, "already"),
        ([str(tmp_path / "nope.onnx"), *argv, "--out", str(bad)], 2, "no such"),
        ([str(MODEL), *argv, "--weight", "1.5", "--out", str(bad)], 2, "within"),
        ([str(MODEL), "--data", data, "--corpus", data + "/nope", "--out", str(bad)], 2, "no such"),
        ([str(MODEL), "--data", data, "--sentence-cache", "v.cache", "--out", str(bad)], 2, "npz"),
        (
            [str(MODEL), "--data", data, "--sentence-cache", str(tmp_path / "no/v.npz")]
            + ["--out", str(bad)],
            2,
            "no directory",
        ),
    ):
        assert cli(["sentence-reader", *args]) == rc
        assert says in capsys.readouterr().err
    assert not bad.exists()
