"""A model that reads each rule's sentence vector as an input (TrainConfig.sentence_input).

Tiny end to end: generate -> train (the reader alone first, then the whole model) with the
USE-m-v3 vectors -> export (parity) -> the node's split and whole graphs -> evaluation. It checks
the pipeline, not the accuracy (docs/training.md has the recipe's figures).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from core.errors import ConfigError, ModelError
from perception.spec import MODEL_SPEC
from ruledrive.cli import main as cli
from training.config import TrainConfig

pytestmark = [pytest.mark.tf, pytest.mark.slow]
_S = MODEL_SPEC


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for split, n, seed in (("train", 600, 21), ("test", 120, 22)):
        args = ["generate", "--out", str(root / split), "--scenes", str(n), "--seed", str(seed)]
        assert cli([*args, "--split", split, "--rule-language", "bilingual"]) == 0
    return root


@pytest.fixture(scope="module")
def trained(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.train import train

    out = tmp_path_factory.mktemp("ckpt")
    cfg = TrainConfig(epochs=1, batch_size=64, seed=5, reader_epochs=1, sentence_input="use-m-v3")
    train(cfg, [data / "train"], out, export_to=out / "model.onnx")
    return out


def _frames(data: Path, n: int = 24) -> tuple[list, np.ndarray, np.ndarray]:
    from bus.recording_reader import read_samples
    from perception.image import preprocess_jpeg

    samples = list(read_samples([data / "test" / "test.mcap"], require_labels=True))[:n]
    images = np.stack([preprocess_jpeg(s.jpeg) for s in samples])
    speeds = np.array([[s.speed_kph] for s in samples], np.float32)
    return samples, images, speeds


def test_the_export_has_the_sentence_input_and_caches_the_vectors(trained: Path) -> None:
    session = ort.InferenceSession(str(trained / "model.onnx"), providers=["CPUExecutionProvider"])
    inputs = {i.name: i.shape for i in session.get_inputs()}
    assert inputs[_S.rule_sentence_input] == ["batch", _S.max_rules, _S.rule_sentence_dim]
    # Beside the rule table's cache, one vector per distinct training text.
    with np.load(trained / "rule-table.sentences.npz") as z:
        assert z["vectors"].shape[1] == _S.rule_sentence_dim
        with np.load(trained / "rule-table.npz") as rt:
            assert set(z["texts"].tolist()) == set(rt["texts"].tolist())


def test_the_node_reads_the_vectors_once_per_rule_set_split_as_whole(
    trained: Path, data: Path
) -> None:
    from policy.model import PolicyModel
    from training.sentence import vectors

    model = PolicyModel.load(trained / "model.onnx", neighbour_reading=False)
    assert model.split and model.vectors is not None
    rule_inputs = {i.name for i in model.rules_session.get_inputs()}  # type: ignore[union-attr]
    assert _S.rule_sentence_input in rule_inputs
    assert _S.rule_sentence_input not in {i.name for i in model.frame_session.get_inputs()}  # type: ignore[union-attr]
    samples, images, speeds = _frames(data)
    encoded = [model.encode_rules(tuple(s.rules)) for s in samples]
    # The node's vectors are training's (the same encoder, each text alone).
    s0 = next(s for s in samples if s.rules)
    e0 = model.encode_rules(tuple(s0.rules))
    assert e0.sentences is not None and e0.sentences.shape == (_S.max_rules, 512)
    np.testing.assert_allclose(e0.sentences[: len(s0.rules)], vectors(s0.rules), atol=1e-6)
    assert not e0.sentences[len(s0.rules) :].any()
    split = model.run_encoded(images, encoded, speeds)
    vecs = np.stack([e.sentences for e in encoded])  # type: ignore[misc]
    states, masks = np.stack([e.states for e in encoded]), np.stack([e.mask for e in encoded])
    whole = model.run(images, states, masks, speeds, vecs)
    np.testing.assert_allclose(split.probabilities, whole.probabilities, atol=1e-5)
    np.testing.assert_allclose(split.rule_classes, whole.rule_classes, atol=1e-5)
    # The reading depends on the vectors: without them (zeros) the rule classes move.
    blind = model.run(images, states, masks, speeds, np.zeros_like(vecs))
    assert np.abs(blind.rule_classes - whole.rule_classes).max() > 1e-3
    with pytest.raises(ModelError, match="sentence-vector input"):
        model.run(images, states, masks, speeds)


def test_the_decider_decides_with_it(trained: Path) -> None:
    import time

    from bus.schema import FrameHeader, RuleSet
    from policy.decider import Decider
    from policy.model import PolicyModel
    from simulator.render import render_jpeg
    from simulator.scene import Scene

    d = Decider(PolicyModel.load(trained / "model.onnx"), "n")
    now = time.time_ns()
    header = FrameHeader(vehicle_id="car-1", frame_id=1, stamp_ns=now, speed_kph=40.0)
    sets = (("Speed limit 30 km/h",), ("禁止超车", "🚗" * 3, "x" * 200), ())
    for k, texts in enumerate(sets):
        rules = RuleSet(vehicle_id="car-1", version=f"v{k}", issued_at_ns=now, rules=list(texts))
        msg = d.step(header, render_jpeg(Scene()), rules)
        assert msg.model_version == d.model.version and len(msg.probabilities) == 6


def test_evaluation_feeds_the_vectors_and_onnx_agrees_with_keras(trained: Path, data: Path) -> None:
    from training.data import load_samples
    from training.evaluate import OnnxPredictor, evaluate_samples, load_predictor

    samples = load_samples([data / "test"])
    own = OnnxPredictor(trained / "model.onnx", reading_check=False, neighbour_reading=False)
    keras_pred = load_predictor(trained)
    assert own.sentence_input and keras_pred.sentence_input  # type: ignore[attr-defined]
    a = evaluate_samples(own, samples, None)["splits"]["test"]
    b = evaluate_samples(keras_pred, samples, None)["splits"]["test"]
    assert a["accuracy"] == b["accuracy"] and a["n"] == 120


def test_merging_readers_of_sentence_models_is_refused(trained: Path, tmp_path: Path) -> None:
    from training.ensemble import merge_readers

    with pytest.raises(ConfigError, match="sentence input"):
        merge_readers(tmp_path / "merged", [trained, trained])


def test_a_bad_sentence_input_value_is_a_config_error() -> None:
    from training.config import load_config

    with pytest.raises(ConfigError, match="sentence_input"):
        load_config(None, {"sentence_input": "bert"})


def test_the_node_reloads_it_with_the_encoder_it_has_loaded(trained: Path, tmp_path: Path) -> None:
    import shutil

    from bus.memory import MemoryBus
    from policy.node import Node
    from policy.settings import load_settings

    path = tmp_path / "model.onnx"
    shutil.copy(trained / "model.onnx", path)
    node = Node(load_settings({"model_path": str(path), "reload_poll_s": 0}), MemoryBus())
    first = node.decider.model.vectors
    assert first is not None
    assert node.maybe_reload(force=True)
    # The USE-m-v3 tables (~117 MB) are not loaded a second time on a reload.
    assert node.decider.model.vectors is first
