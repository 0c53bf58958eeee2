"""The reading check (perception.readcheck) on the shipped model: the reading graph is the rule
graph's own tail, alternatives exist exactly for unsure rules, and the node flags a frame only
when a rule's runner-up reading would change its decision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from bus.recording_reader import read_samples
from bus.schema import FrameHeader, RuleSet
from perception.readcheck import alternatives, decisive
from perception.spec import MODEL_SPEC as S
from perception.splitgraph import split_model
from policy.decider import Decider, FrameJob
from policy.fallback import Reason
from policy.model import PolicyModel

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models/ruledrive-default.onnx"
GOLDEN = ROOT / "tests/golden/drive.mcap"
CPU = ["CPUExecutionProvider"]


@pytest.fixture(scope="module")
def graphs() -> tuple[ort.InferenceSession, ort.InferenceSession, ort.InferenceSession, tuple]:
    parts = split_model(MODEL.read_bytes())
    assert parts is not None and parts.reading is not None
    assert parts.reading_inputs[0] == S.rule_output and len(parts.reading_inputs) == 5
    rules, frame, reading = (
        ort.InferenceSession(g, providers=CPU) for g in (parts.rules, parts.frame, parts.reading)
    )
    return rules, frame, reading, parts.reading_inputs


@pytest.fixture(scope="module")
def model() -> PolicyModel:
    return PolicyModel.load(MODEL, "cpu", reading_threshold=1.0)


def _readings(model: PolicyModel, graphs, texts: tuple[str, ...]):  # type: ignore[no-untyped-def]
    rules, _, _, names = graphs
    states, mask = model.encoder.encode_rule_set(texts)
    feats, *readings = rules.run(
        [S.rule_set_output, *names], {S.rules_input: states[None], S.rule_mask_input: mask[None]}
    )
    return feats[0], [r[0] for r in readings], mask


TEXTS = ("Overtaking is prohibited", "Speed limit 50 km/h", "限速30公里")


def test_the_reading_graph_is_the_rule_graphs_tail(model: PolicyModel, graphs) -> None:
    feats, readings, mask = _readings(model, graphs, TEXTS)
    _, _, reading, names = graphs
    feeds = {n: r[None] for n, r in zip(names, readings, strict=True)}
    (again,) = reading.run([S.rule_set_output], {**feeds, S.rule_mask_input: mask[None]})
    np.testing.assert_allclose(again[0], feats, atol=1e-5)


def test_alternatives_only_for_present_rules_below_the_threshold(model, graphs) -> None:
    feats, readings, mask = _readings(model, graphs, TEXTS)
    _, _, reading, names = graphs
    top = readings[0].max(axis=1)
    assert alternatives(reading, names, readings, mask, 0.0) == ()
    # Just above the surest rule's top probability: every present rule, never an empty slot.
    every = alternatives(reading, names, readings, mask, float(top[: len(TEXTS)].max()) + 1e-6)
    assert [r for r, _ in every] == list(range(len(TEXTS)))
    one = alternatives(reading, names, readings, mask, float(np.sort(top[: len(TEXTS)])[0]) + 1e-6)
    assert [r for r, _ in one] == [int(np.argmin(top[: len(TEXTS)]))]
    for r, alt in every:
        assert alt.shape == feats.shape and not np.allclose(alt, feats), r
        # the reading graph's features with the top class's probability moved to the runner-up
        swapped = readings[0].copy()
        a, b = np.argsort(swapped[r])[::-1][:2]
        swapped[r, b] += swapped[r, a]
        swapped[r, a] = 0.0
        assert swapped[r].sum() == pytest.approx(1.0, abs=1e-5)
        feeds = {n: x[None] for n, x in zip(names, [swapped, *readings[1:]], strict=True)}
        (want,) = reading.run([S.rule_set_output], {**feeds, S.rule_mask_input: mask[None]})
        np.testing.assert_allclose(alt, want[0], atol=1e-6)


class _Frame:
    """A frame graph whose answer to each row is given: row i's alternative gives label k."""

    def __init__(self, labels: list[int]) -> None:
        self.labels = labels

    def run(self, _names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        n = len(feeds[S.rule_set_output])
        assert n == len(self.labels)
        return [np.eye(6, dtype=np.float32)[self.labels]]


def test_decisive_names_the_rules_whose_alternative_changes_the_decision() -> None:
    images, speeds = np.zeros((3, 2), np.uint8), np.zeros((3, 1), np.float32)
    f = np.zeros(4, np.float32)
    per_row = [((0, f), (2, f)), (), ((1, f),)]
    # decisions 4, 1, 3; alternatives: row 0 rule 0 -> 4 (same), rule 2 -> 5; row 2 rule 1 -> 3
    feeds = {S.image_input: images, S.speed_input: speeds}
    got = decisive(_Frame([4, 5, 3]), feeds, np.array([4, 1, 3]), per_row)
    assert got == [(2,), (), ()]
    assert decisive(_Frame([]), feeds, np.array([0, 0, 0]), [(), (), ()]) == [(), (), ()]


def test_the_node_flags_only_frames_an_unsure_rule_decides(model: PolicyModel) -> None:
    samples = [s for s in read_samples([GOLDEN], require_labels=False) if s.rules][:40]
    assert samples
    jobs = [
        FrameJob(
            FrameHeader(
                vehicle_id="car-1",
                frame_id=i,
                stamp_ns=s.stamp_ns,
                speed_kph=s.speed_kph,
            ),
            s.jpeg,
            RuleSet(
                vehicle_id="car-1", version=f"v{i}", rules=list(s.rules), issued_at_ns=s.stamp_ns
            ),
            arrival_ns=s.stamp_ns,
        )
        for i, s in enumerate(samples)
    ]
    off = PolicyModel.load(MODEL, "cpu", encoder=model.encoder, reading_threshold=0.0)
    plain = Decider(off, "n", clock=lambda: samples[0].stamp_ns).decide_batch(jobs)
    # Threshold 1: every rule is checked, so a frame is flagged exactly when reading one of
    # its rules as the runner-up would change the decision.
    checked = Decider(model, "n", clock=lambda: samples[0].stamp_ns).decide_batch(jobs)
    flagged = [d for d in checked if d.reason == Reason.RULES_NOT_UNDERSTOOD]
    assert 0 < len(flagged) < len(checked)
    for a, b in zip(plain, checked, strict=True):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-5)
        if b.reason == Reason.RULES_NOT_UNDERSTOOD and a.reason != b.reason:
            assert a.valid and b.unread_rules and not b.valid and b.decision == "SLOW_DOWN"
        else:
            assert (a.valid, a.reason, a.decision) == (b.valid, b.reason, b.decision)


def test_the_node_setting_reaches_the_model_and_bad_values_are_refused() -> None:
    from core.defaults import READING_THRESHOLD
    from core.errors import ConfigError
    from policy.settings import load_settings

    assert load_settings({}).reading_check_threshold == READING_THRESHOLD
    assert load_settings({"reading_check_threshold": "0"}).reading_check_threshold == 0.0
    for bad in ("1.5", "-0.1", "often"):
        with pytest.raises(ConfigError, match="RULEDRIVE_READING_CHECK_THRESHOLD"):
            load_settings({"reading_check_threshold": bad})


def test_a_model_without_a_reading_graph_runs_without_the_check(tmp_path: Path) -> None:
    from tests.policy.fakemodel import build_fake_model

    fake = PolicyModel.load(build_fake_model(tmp_path / "fake.onnx"), reading_threshold=0.9)
    assert fake.reading_threshold == 0.0 and fake.reading_session is None
    off = PolicyModel.load(MODEL, "cpu", reading_threshold=0.0, neighbour_reading=False)
    assert off.reading_session is None
    # The neighbour reading (perception.neighbours) needs the reading graph; the check stays off.
    nb = PolicyModel.load(MODEL, "cpu", encoder=off.encoder, reading_threshold=0.0)
    assert nb.reading_session is not None and nb.reading_threshold == 0.0


def test_the_node_loads_and_reloads_the_model_with_its_setting(tmp_path: Path) -> None:
    import shutil

    from bus.memory import MemoryBus
    from policy.node import Node
    from policy.settings import load_settings

    path = tmp_path / "model.onnx"
    shutil.copy(MODEL, path)
    s = load_settings(
        {"model_path": str(path), "reading_check_threshold": "0.95", "reload_poll_s": 0}
    )
    node = Node(s, MemoryBus())
    assert node.decider.model.reading_threshold == 0.95
    assert node.decider.model.reading_session is not None
    assert node.maybe_reload(force=True)
    assert node.decider.model.reading_threshold == 0.95


def _golden_batch(model: PolicyModel, n: int = 24):  # type: ignore[no-untyped-def]
    from perception.image import preprocess_jpeg

    samples = [s for s in read_samples([GOLDEN], require_labels=False) if s.rules][:n]
    images = np.stack([preprocess_jpeg(s.jpeg, model.meta.decode) for s in samples])
    speeds = np.array([[s.speed_kph] for s in samples], np.float32)
    rules = [model.encode_rules(tuple(s.rules)) for s in samples]
    return images, speeds, rules


def test_the_head_graph_is_the_frame_graphs_tail(model: PolicyModel) -> None:
    """The reading check's reruns go through the head graph on the image features the frame
    graph output: the same probabilities as the frame graph, so skipping the image encoder
    changes no decision."""
    from perception.splitgraph import IMAGE_FEATURES

    parts = split_model(MODEL.read_bytes())
    assert parts is not None and parts.head is not None
    frame, head = (ort.InferenceSession(g, providers=CPU) for g in (parts.frame, parts.head))
    assert [o.name for o in frame.get_outputs()][-1] == IMAGE_FEATURES
    assert {i.name for i in head.get_inputs()} == {IMAGE_FEATURES, S.speed_input, S.rule_set_output}
    images, speeds, rules = _golden_batch(model)
    feats = np.stack([r.features for r in rules])
    probs, img = frame.run(
        [S.output, IMAGE_FEATURES],
        {S.image_input: images, S.speed_input: speeds, S.rule_set_output: feats},
    )
    # Other rule features on the same frames (what an alternative reading is): still equal.
    for f in (feats, feats[::-1].copy()):
        (want,) = frame.run(
            [S.output], {S.image_input: images, S.speed_input: speeds, S.rule_set_output: f}
        )
        (got,) = head.run(
            [S.output], {IMAGE_FEATURES: img, S.speed_input: speeds, S.rule_set_output: f}
        )
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_the_node_flags_the_same_frames_with_and_without_the_head_graph(model) -> None:
    import dataclasses

    assert model.head_session is not None
    images, speeds, rules = _golden_batch(model)
    assert any(r.alternatives for r in rules)  # threshold 1: every present rule has one
    with_head = model.run_encoded(images, rules, speeds)
    without = dataclasses.replace(model, head_session=None).run_encoded(images, rules, speeds)
    assert with_head.unsure == without.unsure
    assert any(with_head.unsure) and not all(with_head.unsure)
    np.testing.assert_allclose(with_head.probabilities, without.probabilities, atol=1e-6)


@pytest.mark.parametrize("n", [1, 2, 7, 8])
def test_a_model_loaded_for_shares_gives_the_one_runs_answers(model: PolicyModel, n: int) -> None:
    """inference_threads 2, one onnxruntime thread per run: the model each share of a batch runs
    on (policy.decider; the split itself: tests/policy/test_shares.py) gives the default
    model's outputs, at an odd batch and a batch of one too."""
    two = PolicyModel.load(
        MODEL, "cpu", encoder=model.encoder, reading_threshold=1.0, inference_threads=2, threads=1
    )
    assert two.runners is not None and two.runs == 2 and model.runners is None and model.runs == 1
    images, speeds, rules = _golden_batch(model, 24)
    # Frames from far apart in the drive, so rows differ and a swap of shares would show.
    pick = np.linspace(0, len(images) - 1, n).astype(int)
    one = model.run_encoded(images[pick], [rules[i] for i in pick], speeds[pick])
    split = two.run_encoded(images[pick], [rules[i] for i in pick], speeds[pick])
    np.testing.assert_allclose(split.probabilities, one.probabilities, atol=1e-5)
    np.testing.assert_allclose(split.image_ood, one.image_ood, atol=1e-5)
    assert split.unsure == one.unsure


def test_inference_plan_two_runs_on_a_cpu_one_on_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from policy.model import inference_plan
    from policy.settings import load_settings

    cpu, cuda = "CPUExecutionProvider", "CUDAExecutionProvider"
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert inference_plan(cpu, 0, 0) == (2, 1)
    assert inference_plan(cpu, 0, 2) == (2, 2)  # threads as asked
    assert inference_plan(cpu, 1, 0) == (1, 0)  # one run: onnxruntime's own default
    assert inference_plan(cuda, 0, 0) == (1, 0)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert inference_plan(cpu, 0, 0) == (2, 8)
    assert inference_plan(cpu, 4, 0) == (4, 4)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert inference_plan(cpu, 0, 0) == (1, 0)
    assert load_settings({}).inference_threads == 0
    assert load_settings({"inference_threads": "3"}).inference_threads == 3
    from core.errors import ConfigError

    for bad in ("-1", "65", "two"):
        with pytest.raises(ConfigError, match="RULEDRIVE_INFERENCE_THREADS"):
            load_settings({"inference_threads": bad})


def test_an_unsure_rule_is_also_checked_as_its_top_class_outright(model, graphs) -> None:
    """An unsure rule's alternatives: its runner-up (the top class's share moved onto it) and
    its top class outright (perception.readcheck.outright), each the reading graph's
    features of those classes."""
    from perception.readcheck import outright

    feats, readings, mask = _readings(model, graphs, TEXTS)
    _, _, reading, names = graphs
    top = readings[0].max(axis=1)
    assert outright(reading, names, readings, mask, 0.0) == ()
    got = outright(reading, names, readings, mask, float(top[: len(TEXTS)].max()) + 1e-6)
    assert [r for r, _ in got] == list(range(len(TEXTS)))
    for r, alt in got:
        sure = readings[0].copy()
        sure[r] = np.eye(sure.shape[1], dtype=np.float32)[int(sure[r].argmax())]
        feeds = {n: x[None] for n, x in zip(names, [sure, *readings[1:]], strict=True)}
        (want,) = reading.run([S.rule_set_output], {**feeds, S.rule_mask_input: mask[None]})
        np.testing.assert_allclose(alt, want[0], atol=1e-6)


def test_a_blend_of_an_unsure_reading_is_not_acted_on_where_its_top_class_decides_otherwise(
    node,  # type: ignore[no-untyped-def]
) -> None:
    """The shipped model reads this bilingual turn-on-red sign as a permission at 0.55; the
    decision sees the blend of permission and ban, which stopped the car at a red light on a
    golden frame where a permission lets it turn, with valid=true (the runner-up, a ban, stops
    it too, so the runner-up check saw nothing; an outside probe, forty-ninth session). Every
    frame it answers valid is answered as the rule read as a permission outright (the
    control, read so at 1.00), and the frame the blend decides otherwise is flagged."""
    read, got = node("右转车辆红灯时停车观察后可通行 Right turn on red after stop")
    assert read == "turn_on_red:permitted"
    control_read, control = node("Right turn on red permitted after a full stop")
    assert control_read == "turn_on_red:permitted"
    assert 1 <= sum(not d.valid for d in got) <= 10
    for d, c in zip(got, control, strict=True):
        assert (not d.valid and d.reason == "rules_not_understood") or d.decision == c.decision


def test_a_rule_split_between_two_polarities_is_read_as_the_ban_its_words_write(
    model, graphs
) -> None:
    """The shipped model reads "Turning right on red is no longer authorised" as a permission at
    about 0.73, the rest on the ban; its negations write the ban (perception.polarity), so it is
    read as the ban outright (perception.readcheck.agreed). Not 红灯时不禁止右转, split the same
    way but whose words write the permission (left to the reading check: the words' reading
    of permissions is not trusted to let the car go), nor a rule read surely, one whose words
    write nothing, or an empty slot."""
    from perception.readcheck import agreed

    classes = list(model.meta.rule_classes)
    texts = (
        "Turning right on red is no longer authorised",
        "Speed limit 50 km/h",
        "红灯时不禁止右转",
    )
    _, readings, mask = _readings(model, graphs, texts)
    read = readings[0]
    permitted = classes.index("turn_on_red:permitted")
    prohibited = classes.index("turn_on_red:prohibited")
    for r in (0, 2):  # both split: the permission first, the ban second, below 0.85
        assert int(read[r].argmax()) == permitted and 0.5 < read[r, permitted] < 0.85
        assert int(np.argsort(read[r])[-2]) == prohibited
    assert agreed(read, mask, 0.85, texts, classes) == [(0, prohibited)]
    assert agreed(read, mask, 0.5, texts, classes) == []  # read surely enough: nothing to settle
    # words that write no polarity, or no text: left to the reading check
    assert agreed(read, mask, 0.85, ("Turning right on red", *texts[1:]), classes) == []
    assert agreed(read, mask, 0.85, ("", *texts[1:]), classes) == []


def test_the_node_acts_on_a_split_rule_as_the_ban_its_words_write(node) -> None:  # type: ignore[no-untyped-def]
    """The node answers "Turning right on red is no longer authorised" (read as a permission at
    about 0.73) on every golden frame as it answers the same ban read surely ("Right turn on
    red is prohibited"); before the fiftieth session it was refused on the frames its
    runner-up decides. A split rule whose words write the permission (红灯时不禁止右转) is still
    refused where the ban would decide otherwise, and answered as the permission elsewhere."""
    ban_read, ban = node("Right turn on red is prohibited")
    assert ban_read == "turn_on_red:prohibited"
    _, got = node("Turning right on red is no longer authorised")
    assert [(d.decision, d.valid) for d in got] == [(b.decision, b.valid) for b in ban]
    permission_read, permission = node("Right turn on red is not forbidden")
    assert permission_read == "turn_on_red:permitted"
    assert any(b.decision != p.decision for b, p in zip(ban, permission, strict=True))
    _, split = node("红灯时不禁止右转")
    assert any(not d.valid and d.reason == "rules_not_understood" for d in split)
    for d, p in zip(split, permission, strict=True):
        assert not d.valid or d.decision == p.decision
