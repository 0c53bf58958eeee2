"""Evaluation maps an ONNX model's outputs by label name from its metadata, not by position."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bus.recording import Sample
from bus.schema import DecisionLabel
from simulator.render import render_jpeg
from simulator.scene import Scene
from tests.policy.fakemodel import RULE_TEXTS, build_fake_model
from training.evaluate import MISREAD_SHOWN, OnnxPredictor, evaluate_samples


def _samples() -> list[Sample]:
    out = []
    labels = list(DecisionLabel)
    for i in range(24):
        scene = Scene() if i % 2 else Scene(light="red", stop_line_m=20.0)
        out.append(
            Sample(
                vehicle_id="car-1",
                frame_id=i,
                stamp_ns=i,
                speed_kph=float(10 * (i % 7)),
                jpeg=render_jpeg(scene),
                rules=tuple(RULE_TEXTS[: i % 4]),
                rules_version="v1",
                label=labels[i % 3],
                reason=None,
                split="test",
            )
        )
    return out


def test_label_order_in_the_metadata_does_not_change_the_result(tmp_path: Path) -> None:
    samples = _samples()
    reordered = tuple(reversed(DecisionLabel))
    plain = OnnxPredictor(build_fake_model(tmp_path / "plain.onnx"))
    permuted = OnnxPredictor(build_fake_model(tmp_path / "perm.onnx", label_order=reordered))
    assert permuted.labels == reordered
    rep_plain = evaluate_samples(plain, samples)["splits"]["test"]
    rep_perm = evaluate_samples(permuted, samples)["splits"]["test"]
    assert rep_plain == rep_perm
    # Not a vacuous comparison: the fake model gets some frames right and some wrong.
    assert 0.0 < rep_plain["accuracy"] < 1.0
    from perception.rule_encoder import RuleEncoder
    from perception.spec import MODEL_SPEC
    from training.data import RuleTable, encode_samples

    table = RuleTable.build(RULE_TEXTS, RuleEncoder.load(Path("models/text-encoder")))
    inputs = encode_samples(samples, table, plain.rule_classes).inputs()
    np.testing.assert_allclose(
        plain.predict(inputs)[MODEL_SPEC.output],
        permuted.predict(inputs)[MODEL_SPEC.output],
        atol=1e-6,
    )


def test_evaluation_counts_a_rule_in_an_unread_script_as_the_node_does(tmp_path: Path) -> None:
    """The model card's flag rate is the node's: a rule in a script the model does not read is
    flagged whatever the model's score (the test double reads short texts as understood)."""
    cyrillic = "Обгон запрещён"
    base = _samples()[:6]
    samples = []
    for s in base:
        rules = (RULE_TEXTS[0], cyrillic)
        meta = [
            {"class": "speed_limit", "text": rules[0]},
            {"class": "not_understood", "text": cyrillic},
        ]
        samples.append(Sample(**{**s.__dict__, "rules": rules, "scene": {"rule_meta": meta}}))
    rep = evaluate_samples(OnnxPredictor(build_fake_model(tmp_path / "m.onnx")), samples)
    nu = rep["splits"]["test"]["rules_not_understood"]
    assert nu["unreadable_rules"] == 6 and nu["unreadable_rules_flagged"] == 1.0


def test_readable_flags_are_broken_down_by_kind_language_wording_and_construction(
    tmp_path: Path,
) -> None:
    """A readable rule set's flag is reported under the flagged rule's kind, language and
    wording, and its construction is named: the model card's one "readable sets flagged"
    figure cannot say which wordings it falls on. Here a readable rule in a script the node
    does not read is flagged (the node's own check); the English rule beside it is not."""
    cyrillic = "Обгон запрещён"
    samples = []
    for s in _samples()[:6]:
        rules = (RULE_TEXTS[0], cyrillic)
        meta = [
            {"class": "speed_limit", "lang": "en", "held_out": False, "construction": "en.s.a"},
            {
                "class": "overtaking:prohibited",
                "lang": "ru",
                "held_out": True,
                "construction": "ru.o.x",
            },
        ]
        samples.append(Sample(**{**s.__dict__, "rules": rules, "scene": {"rule_meta": meta}}))
    rep = evaluate_samples(OnnxPredictor(build_fake_model(tmp_path / "m.onnx")), samples)
    nu = rep["splits"]["test"]["rules_not_understood"]
    assert nu["readable_sets"] == 6 and nu["readable_sets_flagged"] == 1.0
    assert nu["readable_rules_flagged_by_kind"] == {
        "overtaking:prohibited|ru|held-out": {"rules": 6, "flagged": 6},
        "speed_limit|en|training": {"rules": 6, "flagged": 0},
    }
    assert nu["flagged_constructions"] == {"ru.o.x": 6}


def test_wrong_answers_on_targeted_frames_are_counted_by_construction(tmp_path: Path) -> None:
    """Per construction of a targeted rule: its frames, those answered wrong, and those wrong
    with valid=true (no fallback fired); a rule that targets no frame, or one nobody can
    read, is not counted; constructions with no wrong answer are left out."""
    base = _samples()[:12]
    samples = []
    for i, s in enumerate(base):
        meta = [
            {"class": "speed_limit", "targeted": True, "construction": f"en.s.{i % 2}"},
            {"class": "speed_limit", "targeted": False, "construction": "en.s.untargeted"},
        ]
        rules = (RULE_TEXTS[0], RULE_TEXTS[1])
        samples.append(Sample(**{**s.__dict__, "rules": rules, "scene": {"rule_meta": meta}}))
    pred = OnnxPredictor(build_fake_model(tmp_path / "m.onnx"))
    rep = evaluate_samples(pred, samples)["splits"]["test"]
    got = rep["unsafe_constructions"]
    assert "en.s.untargeted" not in got
    assert set(got) <= {"en.s.0", "en.s.1"} and got
    assert sum(v["frames"] for v in got.values()) <= 12
    wrong = round(12 * (1 - rep["accuracy"]))
    assert sum(v["wrong"] for v in got.values()) == wrong > 0
    for v in got.values():
        assert v["frames"] == 6 and 0 < v["wrong"] <= 6 and 0 <= v["unsafe"] <= v["wrong"]
    unsafe = round(wrong * (1 - (rep["errors_caught_by_fallbacks"] or 0)))
    assert sum(v["unsafe"] for v in got.values()) == unsafe
    order = [(-v["unsafe"], -v["wrong"]) for v in got.values()]
    assert order == sorted(order)


def test_readable_flags_of_frames_without_scene_records_count_as_unknown(
    tmp_path: Path,
) -> None:
    """Recordings from the bus carry no per-rule scene records: their rules are counted, as
    "unknown", never dropped."""
    samples = [s for s in _samples() if s.rules]
    rep = evaluate_samples(OnnxPredictor(build_fake_model(tmp_path / "m.onnx")), samples)
    nu = rep["splits"]["test"]["rules_not_understood"]
    by = nu["readable_rules_flagged_by_kind"]
    assert set(by) == {"unknown|unknown|unknown"}
    assert by["unknown|unknown|unknown"]["rules"] == sum(len(s.rules) for s in samples)


def test_chunked_prediction_equals_one_call(tmp_path: Path) -> None:
    """Evaluation and training's validation pass predict a split a chunk at a time (the rule
    states of a whole split do not fit in memory); every output, frame for frame, is what one
    call over all frames gives."""
    from perception.rule_encoder import RuleEncoder
    from training.data import RuleTable, encode_samples

    samples = _samples()
    model = OnnxPredictor(build_fake_model(tmp_path / "plain.onnx"))
    table = RuleTable.build(RULE_TEXTS, RuleEncoder.load(Path("models/text-encoder")))
    data = encode_samples(samples, table, model.rule_classes)
    whole = model.predict(data.inputs())
    chunked = data.predict(model.predict, chunk=5)  # 24 frames: 4 full chunks and a part
    assert chunked.keys() == whole.keys()
    for name, out in whole.items():
        assert chunked[name].shape == out.shape
        np.testing.assert_allclose(chunked[name], out, atol=1e-6)


def test_wider_rule_states_are_predicted_in_smaller_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk holds about as many bytes of rule states whatever the model reads: three encoder
    layers side by side (1,152 wide) a third of the frames of one layer's chunk."""
    from training import data as d
    from training.data import RuleTable, encode_samples

    monkeypatch.setattr(d, "PREDICT_CHUNK", 12)
    samples = _samples()  # 24 frames
    sizes: dict[int, list[int]] = {}
    for width in (384, 1152):
        states = np.zeros((len(RULE_TEXTS), 40, width), np.float16)
        table = RuleTable(list(RULE_TEXTS), states, np.ones((len(RULE_TEXTS), 40), np.uint8))
        data = encode_samples(samples, table, ("speed_limit", "not_understood"))
        got = sizes.setdefault(width, [])
        data.predict(lambda x, got=got: got.append(len(x["speed_kph"])) or {"o": x["speed_kph"]})
    assert sizes[384] == [12, 12] and sizes[1152] == [4] * 6


def test_token_dropout_hides_tokens_of_training_batches_only() -> None:
    """Training batches hide a share of each rule's tokens (TrainConfig.token_dropout): never a
    rule's first token, so no rule becomes an empty slot and no empty slot a rule; the hidden
    tokens' states are zero; without dropout (evaluation, serving) every token is fed."""
    from perception.rule_encoder import RuleEncoder
    from perception.spec import MODEL_SPEC as S
    from training.data import RuleTable, encode_samples

    table = RuleTable.build(RULE_TEXTS, RuleEncoder.load(Path("models/text-encoder")))
    data = encode_samples(_samples(), table, ("not_binding", "not_understood", "speed_limit"))
    full = data.inputs()
    got = data.inputs(None, 0.3, np.random.default_rng(0))
    m_full, m_got = full[S.rule_mask_input], got[S.rule_mask_input]
    assert ((m_got == 1) <= (m_full == 1)).all()  # only hides, never adds
    present = m_full.max(axis=2) > 0
    assert present.any() and (~present).any()
    np.testing.assert_array_equal(m_got.max(axis=2) > 0, present)  # slots keep their state
    np.testing.assert_array_equal(m_got[..., 0], m_full[..., 0])
    hidden = (m_full == 1) & (m_got == 0)
    share = hidden.sum() / (m_full[..., 1:] == 1).sum()
    assert 0.2 < share < 0.4, share
    assert not got[S.rules_input][hidden].any()
    kept = m_got == 1
    np.testing.assert_array_equal(got[S.rules_input][kept], full[S.rules_input][kept])
    again = data.inputs()
    np.testing.assert_array_equal(again[S.rule_mask_input], m_full)
    with np.testing.assert_raises(ValueError):
        data.inputs(None, 0.3)


@pytest.mark.parametrize("distinct", [True, False])
def test_targeted_cells_count_the_texts_behind_their_frames(tmp_path: Path, distinct: bool) -> None:
    """A cell says how many distinct rule texts its frames hold and on how many of them a
    frame is answered wrong: frames that all repeat one text are one reading, not many."""
    base = _samples()[:12]
    samples = []
    for i, s in enumerate(base):
        text = f"speed text {i}" if distinct else "speed text"
        meta = [{"class": "speed_limit", "lang": "en", "targeted": True, "text": text}]
        rules = (RULE_TEXTS[0],)
        samples.append(Sample(**{**s.__dict__, "rules": rules, "scene": {"rule_meta": meta}}))
    pred = OnnxPredictor(build_fake_model(tmp_path / "m.onnx"))
    cell = evaluate_samples(pred, samples)["splits"]["test"]["targeted"]["speed_limit|en|training"]
    wrong = round(12 * (1 - cell["accuracy"]))
    assert cell["frames"] == 12 and 0 < wrong < 12  # the fake model gets some frames wrong
    misread = cell["misread_texts"]
    if distinct:
        assert cell["texts"] == 12 and cell["texts_wrong"] == wrong
        assert len(misread) == min(wrong, MISREAD_SHOWN)
        assert all(m["frames"] == m["wrong"] == 1 for m in misread)
    else:
        assert cell["texts"] == 1 and cell["texts_wrong"] == 1
        got = [(m["text"], m["frames"], m["wrong"]) for m in misread]
        assert got == [("speed text", 12, wrong)]
    assert all(0 <= m["unsafe"] <= m["wrong"] for m in misread)
    lo, hi = cell["accuracy_ci95"]
    assert lo <= cell["accuracy"] <= hi
    # one text on every frame is one reading: the interval spans most of [0, 1]
    assert (hi - lo > 0.6) == (not distinct), (lo, hi)
    order = [(-m["unsafe"], -m["wrong"]) for m in misread]
    assert order == sorted(order)
