"""The neighbour reading (perception.neighbours): the graph's votes are the nearest training
rules' classes, a reading is overruled only when no neighbour shares its kind and enough agree,
and the node, the evaluation and the command that attaches an index use it as documented."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from core.errors import ConfigError
from perception.neighbours import (
    NEIGHBOUR_OUTPUT,
    attach,
    build_index,
    detach,
    index_of,
    overrides,
    sentence_vectors,
    support_numpy,
)
from perception.readcheck import ReadingCheck, reread
from perception.spec import MODEL_SPEC as S
from perception.splitgraph import split_model
from policy.model import PolicyModel
from ruledrive.cli import main as cli

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models/ruledrive-default.onnx"
GOLDEN = ROOT / "tests/golden/drive.mcap"
CPU = ["CPUExecutionProvider"]
CLASSES = (
    "amber:always_stop",
    "not_binding",
    "not_understood",
    "overtaking:permitted",
    "overtaking:prohibited",
    "speed_limit",
)
AMBER, NB, NU, OT_OK, OT_NO, LIMIT = range(len(CLASSES))
N_CLASSES = 13  # the shipped model's rule classes


@pytest.fixture(scope="module")
def bare() -> onnx.ModelProto:
    """The shipped model without its index."""
    model = onnx.load(str(MODEL))
    assert index_of(model) is not None, "the shipped model carries a neighbour index"
    return detach(model)


def _rules(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    states = rng.normal(size=(n, S.max_rules, S.max_rule_tokens, 384)).astype(np.float32)
    mask = np.zeros((n, S.max_rules, S.max_rule_tokens), np.float32)
    for i in range(n):
        for r in range(rng.integers(1, S.max_rules + 1)):
            mask[i, r, : rng.integers(3, S.max_rule_tokens)] = 1.0
    return states * mask[..., None], mask


def _with(bare: onnx.ModelProto, index) -> bytes:  # type: ignore[no-untyped-def]
    model = onnx.ModelProto()
    model.CopyFrom(bare)
    return attach(model, index, N_CLASSES).SerializeToString()


def test_the_graphs_votes_are_the_nearest_training_rules_classes(bare) -> None:
    rng = np.random.default_rng(0)
    vectors = sentence_vectors(*_rules(rng, 60))[..., :, :].reshape(-1, 384)
    vectors = vectors[np.linalg.norm(vectors, axis=1) > 0]
    labels = rng.integers(0, N_CLASSES, len(vectors))
    index = build_index(vectors, labels, dim=32, k=7, min_votes=4)
    parts = split_model(_with(bare, index))
    assert parts is not None and parts.neighbours is not None
    graph = ort.InferenceSession(parts.neighbours, providers=CPU)
    states, mask = _rules(np.random.default_rng(1), 8)
    (got,) = graph.run([NEIGHBOUR_OUTPUT], {S.rules_input: states, S.rule_mask_input: mask})
    want = support_numpy(index, sentence_vectors(states, mask).reshape(-1, 384), N_CLASSES)
    present = mask.max(axis=2).reshape(-1) > 0
    np.testing.assert_array_equal(got.reshape(-1, N_CLASSES)[present], want[present])
    assert (got.reshape(-1, N_CLASSES)[present].sum(axis=1) == 7).all()


def test_the_index_travels_in_the_model_and_detaches(bare) -> None:
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(40, 384)).astype(np.float32)
    labels = np.r_[rng.integers(0, N_CLASSES, 30), -np.ones(10, int)]  # unknown class: left out
    index = build_index(vectors, labels, dim=16)
    model = onnx.load_from_string(_with(bare, index))
    back = index_of(model)
    assert back is not None and len(back.labels) == 30 and back.vectors.shape == (30, 16)
    assert (back.k, back.min_votes) == (index.k, index.min_votes)
    np.testing.assert_array_equal(back.vectors, index.vectors)
    with pytest.raises(ConfigError, match="already"):
        attach(model, index, N_CLASSES)
    again = detach(model)
    assert NEIGHBOUR_OUTPUT not in {o.name for o in again.graph.output}
    assert index_of(again) is None
    ort.InferenceSession(again.SerializeToString(), providers=CPU)  # still a whole model


def test_bad_index_settings_are_refused() -> None:
    vectors = np.random.default_rng(3).normal(size=(20, 384)).astype(np.float32)
    with pytest.raises(ConfigError, match="at least"):
        build_index(vectors[:5], np.zeros(5, int), k=10)
    with pytest.raises(ConfigError, match="min_votes"):
        build_index(vectors, np.zeros(20, int), k=10, min_votes=11)


def _reading(top: int, p: float = 0.97) -> np.ndarray:
    row = np.full(len(CLASSES), (1 - p) / (len(CLASSES) - 1), np.float32)
    row[top] = p
    return row


def _votes(**by_class: int) -> np.ndarray:
    row = np.zeros(len(CLASSES), np.float32)
    for name, n in by_class.items():
        row[globals()[name]] = n
    return row


def test_a_reading_is_overruled_only_when_no_neighbour_shares_its_kind() -> None:
    classes = np.stack([_reading(NB), _reading(OT_NO), _reading(NB), _reading(NU), _reading(NB)])
    support = np.stack(
        [
            _votes(AMBER=7, LIMIT=3),  # a kind none of them has, 7 agree: overruled
            _votes(OT_OK=10),  # permitted and prohibited are one kind: kept
            _votes(AMBER=5, LIMIT=5),  # no class has min_votes: kept
            _votes(AMBER=9, LIMIT=1),  # the reader cannot read it, 9 of 10 agree: kept
            _votes(AMBER=10),  # an empty slot
        ]
    )
    mask = np.zeros((5, S.max_rule_tokens), np.float32)
    mask[:4, :3] = 1.0
    assert overrides(classes, support, mask, CLASSES, 6) == [(0, AMBER)]
    assert overrides(classes, support, mask, CLASSES, 8) == []
    # Neighbours that say a rule cannot be read overrule a reading (it is then flagged).
    support[1] = _votes(NU=9, AMBER=1)
    assert overrides(classes, support, mask, CLASSES, 6) == [(0, AMBER), (1, NU)]
    # A rule read as not understood: only every one of its neighbours overrules it, whatever
    # min_votes, and never towards not_understood itself.
    support[1] = _votes(OT_OK=10)
    support[3] = _votes(AMBER=10)
    assert overrides(classes, support, mask, CLASSES, 6) == [(0, AMBER), (3, AMBER)]
    assert overrides(classes, support, mask, CLASSES, 10) == [(3, AMBER)]
    support[3] = _votes(NU=10)
    assert overrides(classes, support, mask, CLASSES, 6) == [(0, AMBER)]
    support[3] = _votes(AMBER=9, NU=1)
    assert overrides(classes, support, mask, CLASSES, 6) == [(0, AMBER)]


@pytest.fixture(scope="module")
def all_amber(bare) -> bytes:
    """The shipped model with an index whose every rule is amber:always_stop: every rule the
    reader reads as another kind is overruled (min_votes 6 of 10)."""
    vectors = np.random.default_rng(4).normal(size=(30, 384)).astype(np.float32)
    return _with(bare, build_index(vectors, np.zeros(30, int), dim=16))


TEXTS = ("Overtaking is prohibited", "Speed limit 50 km/h", "zzqx vlorp 3#@!")


def test_the_node_reads_a_rule_as_its_neighbours_do(all_amber: bytes, tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(all_amber)
    on = PolicyModel.load(path, "cpu", reading_threshold=0.0)
    off = PolicyModel.load(path, "cpu", encoder=on.encoder, neighbour_reading=False)
    assert on.neighbours_session is not None and off.neighbours_session is None
    names = on.meta.rule_classes
    amber, nu = names.index("amber:always_stop"), names.index("not_understood")
    mine, theirs = off.encode_rules(TEXTS), on.encode_rules(TEXTS)
    assert mine.classes is not None and theirs.classes is not None
    read = mine.classes.argmax(axis=1)[: len(TEXTS)]
    assert read[0] != amber and read[1] != amber and read[2] == nu
    got = theirs.classes.argmax(axis=1)[: len(TEXTS)]
    # Every neighbour of every rule is amber here, so even the rule the reader could not read
    # is overruled (unanimous); the reading check then asks whether that changes the decision.
    assert list(got) == [amber, amber, amber]
    # The features are the reading graph's on the overruled classes, not the reader's.
    assert not np.allclose(theirs.features, mine.features)  # type: ignore[arg-type]
    params = on.rules_session.run(  # type: ignore[union-attr]
        list(on.reading_inputs[1:]),
        {S.rules_input: mine.states[None], S.rule_mask_input: mine.mask[None]},
    )
    feats, classes = reread(
        on.reading_session,
        on.reading_inputs,
        [mine.classes, *(p[0] for p in params)],
        mine.mask,
        [(0, amber), (1, amber), (2, amber)],
    )
    np.testing.assert_allclose(theirs.features, feats, atol=1e-6)  # type: ignore[arg-type]
    np.testing.assert_allclose(theirs.classes, classes, atol=1e-6)
    # The evaluation's graphs read the rule set the same way.
    check = ReadingCheck.from_model(all_amber)
    assert check is not None and check.neighbours is not None
    image = np.zeros((1, S.image_height, S.image_width, 3), np.uint8)
    speed = np.full((1, 1), 40.0, np.float32)
    feeds = S.feeds(image, mine.states[None], mine.mask[None], speed)
    _, _, _, scanned, _, _ = check.scan(feeds, 0.0)
    np.testing.assert_allclose(scanned[0], theirs.classes, atol=1e-6)


def test_the_check_asks_whether_the_readers_own_reading_would_decide_otherwise(
    all_amber: bytes, tmp_path: Path
) -> None:
    """Each overruled rule gets an alternative for the reading check: the rule set with that
    rule read as the reader read it (the others still overruled), checked at any threshold."""
    path = tmp_path / "m.onnx"
    path.write_bytes(all_amber)
    checked = PolicyModel.load(path, "cpu", reading_threshold=0.01)
    amber = checked.meta.rule_classes.index("amber:always_stop")
    enc = checked.encode_rules(TEXTS)
    # Each rule's first alternative is the neighbour reading's; what the words write comes after
    # ("Overtaking is prohibited" read as amber is also asked as the ban its words name).
    alts: dict[int, np.ndarray] = {}
    for r, f in enc.alternatives:
        alts.setdefault(r, f)
    assert set(alts) == {0, 1, 2}  # every rule was overruled (all neighbours amber)
    plain = PolicyModel.load(path, "cpu", encoder=checked.encoder, neighbour_reading=False)
    mine = plain.encode_rules(TEXTS)
    params = checked.rules_session.run(  # type: ignore[union-attr]
        list(checked.reading_inputs[1:]),
        {S.rules_input: mine.states[None], S.rule_mask_input: mine.mask[None]},
    )
    readings = [mine.classes, *(p[0] for p in params)]
    for r in (0, 1, 2):
        others = [(o, amber) for o in (0, 1, 2) if o != r]
        want, _ = reread(
            checked.reading_session, checked.reading_inputs, readings, mine.mask, others
        )
        np.testing.assert_allclose(alts[r], want, atol=1e-6)
    # The check off: no alternatives, the neighbour reading still applied.
    off = PolicyModel.load(path, "cpu", encoder=checked.encoder, reading_threshold=0.0)
    got = off.encode_rules(TEXTS)
    assert got.alternatives == () and got.classes is not None
    assert got.classes.argmax(axis=1)[0] == amber


def test_the_command_attaches_an_index_once(bare, tmp_path: Path, capsys) -> None:
    from simulator.generate import generate

    generate(tmp_path / "d", "train", 80, 7, workers=1, progress=False, rule_language="bilingual")
    data = str(tmp_path / "d")
    plain = tmp_path / "plain.onnx"
    plain.write_bytes(bare.SerializeToString())
    out = tmp_path / "with.onnx"
    assert cli(["neighbours", str(plain), "--data", data, "--out", str(out)]) == 0
    assert "training rules indexed" in capsys.readouterr().out
    index = index_of(onnx.load(str(out)))
    assert index is not None and len(index.labels) >= 10
    assert NEIGHBOUR_OUTPUT in {o.name for o in ort.InferenceSession(str(out)).get_outputs()}
    # Bad inputs: a clear error, nothing written.
    for argv, rc, says in (
        ([str(out), "--data", data, "--out", str(tmp_path / "x.onnx")], 1, "already"),
        ([str(tmp_path / "nope.onnx"), "--data", data, "--out", str(out)], 2, "no such"),
        ([str(plain), "--data", data, "--out", str(out), "--min-votes", "11"], 2, "1..--k"),
        # A recording whose rules carry no class (the catalogue world) gives no index.
        ([str(plain), "--data", str(GOLDEN), "--out", str(tmp_path / "x.onnx")], 2, "at least"),
    ):
        assert cli(["neighbours", *argv]) == rc
        assert says in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_the_shipped_model_carries_the_index_within_the_size_limit() -> None:
    index = index_of(onnx.load(str(MODEL)))
    assert index is not None and len(index.labels) > 10_000 and index.vectors.dtype == np.float16
    assert MODEL.stat().st_size <= 10 * 1024 * 1024


def test_a_neighbour_graph_without_valid_settings_is_refused(
    all_amber: bytes, tmp_path: Path
) -> None:
    from core.errors import ModelError
    from perception.neighbours import META_KEY

    bad = (None, "not json", '{"k": 10}', '{"k": 10, "min_votes": 0}', '{"k": 0, "min_votes": 6}')
    for value in bad:
        model = onnx.load_from_string(all_amber)
        props = [(e.key, e.value) for e in model.metadata_props if e.key != META_KEY]
        if value is not None:
            props.append((META_KEY, value))
        onnx.helper.set_model_props(model, dict(props))
        path = tmp_path / "bad.onnx"
        path.write_bytes(model.SerializeToString())
        with pytest.raises(ModelError, match=META_KEY):
            PolicyModel.load(path, "cpu")


def test_rules_nobody_can_read_stay_unread_with_the_neighbour_reading() -> None:
    """A `not_understood` reading is overruled only by a unanimous neighbourhood; the index
    holds the training negatives, so the test pool's negatives (languages, gibberish, emoji,
    scripts, off-topic sentences never trained on) must all still be flagged by the shipped
    model, as the node reads them."""
    import random

    from simulator.language.negatives import sample_negative

    model = PolicyModel.load(MODEL, "cpu")
    nu = model.meta.not_understood_index
    rng = random.Random(5)
    texts = sorted({sample_negative(rng, "test")[0] for _ in range(200)})
    missed = []
    for i in range(0, len(texts), S.max_rules):
        chunk = texts[i : i + S.max_rules]
        enc = model.encode_rules(chunk)
        assert enc.classes is not None
        for j, text in enumerate(chunk):
            read = enc.classes[j, nu] >= model.meta.thresholds.not_understood
            if not (read or j in enc.unreadable):
                missed.append(text)
    assert len(texts) >= 100 and missed == []
