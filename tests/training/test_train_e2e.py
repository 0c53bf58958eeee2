"""Tiny end-to-end training: generate -> train -> export (parity) -> metadata -> evaluate.

CI-sized (a few hundred scenes, one epoch): it checks the pipeline, not the accuracy; the shipped
default model's accuracy is in models/MODEL_CARD.md and docs/benchmarks.md.
"""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from core.errors import ConfigError, DataError, TrainingError
from perception.modelmeta import parse_metadata
from perception.neighbours import NEIGHBOUR_OUTPUT
from perception.spec import MODEL_SPEC
from ruledrive.cli import main as cli
from training.config import TrainConfig

pytestmark = [pytest.mark.tf, pytest.mark.slow]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for split, n, seed in (("train", 640, 11), ("test", 160, 12), ("counterfactual", 80, 13)):
        assert (
            cli(
                [
                    "generate",
                    "--out",
                    str(root / split),
                    "--scenes",
                    str(n),
                    "--seed",
                    str(seed),
                    "--split",
                    split,
                    "--rule-language",
                    "bilingual",
                ]
            )
            == 0
        )
    return root


def _config() -> TrainConfig:
    """The fixture's config, also what the reuse test asks for again. The factorized rule head,
    two readers, the encoder's layers 6, 9 and 12 side by side, weight averaging and split
    Chinese words (not the
    shipped options until a model reads them): the flat head's single-reader export on the
    last layer is trained and checked by tests/training/test_distributed.py's two-worker run,
    so one training here serves both."""
    return TrainConfig(
        epochs=1,
        batch_size=64,
        seed=7,
        rule_head="factorized",
        readers=2,
        encoder_layer=(6, 9, 12),
        ema_momentum=0.9,  # the checkpoint, export and parity of averaged weights
        split_words=0.5,  # Chinese rules also read in characters while training
    )


SPLIT_SEEN: list[float] = []  # split_words of every batch the fixture's training built


@pytest.fixture(scope="module")
def trained(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.data import ArrayDataset
    from training.train import train

    out = tmp_path_factory.mktemp("ckpt")
    inputs = ArrayDataset.inputs

    def spy(self: ArrayDataset, *a: object, **k: object) -> object:
        SPLIT_SEEN.append(float(a[3] if len(a) > 3 else k.get("split_words", 0.0)))  # type: ignore[arg-type]
        return inputs(self, *a, **k)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ArrayDataset, "inputs", spy)
        train(_config(), [data / "train"], out, export_to=out / "model.onnx")
    return out


def test_training_batches_read_split_forms_and_validation_does_not(trained: Path) -> None:
    """TrainConfig.split_words reaches the training batches (tests/training/
    test_split_words.py: what it does there); validation and the parity inputs read plain."""
    assert SPLIT_SEEN.count(0.5) >= 9  # 640 frames less validation, 64 a batch
    assert 0.0 in SPLIT_SEEN
    assert set(SPLIT_SEEN) == {0.0, 0.5}
    assert (trained / "rule-table.split.npz").is_file()
    assert json.loads((trained / "config.json").read_text())["split_words"] == 0.5
    # the checkpoint counts rule texts, not their split forms
    with np.load(trained / "rule-table.npz") as z:
        texts = len(z["texts"])
    assert json.loads((trained / "checkpoint.json").read_text())["n_rule_texts"] == texts


def test_checkpoint_has_everything_export_needs(trained: Path) -> None:
    for name in (
        "model.keras",
        "config.json",
        "checkpoint.json",
        "parity.npz",
        "curves.png",
        "history.csv",
        "model.onnx",
        "neighbours.npz",
    ):
        assert (trained / name).is_file(), name
    info = json.loads((trained / "checkpoint.json").read_text())
    # A fresh output directory holds no rule cache: every text was encoded, within the run.
    assert 0 < info["rule_encoding_seconds"] < info["train_seconds"]


def test_onnx_has_named_dynamic_inputs_and_readable_metadata(trained: Path) -> None:
    sess = ort.InferenceSession(str(trained / "model.onnx"), providers=["CPUExecutionProvider"])
    ins = {i.name: i for i in sess.get_inputs()}
    assert set(ins) == {i.name for i in MODEL_SPEC.inputs}
    assert ins["image"].type == "tensor(uint8)" and ins["image"].shape[1:] == [96, 160, 3]
    assert all(isinstance(i.shape[0], str) for i in ins.values())  # dynamic batch
    # The fused model also exports the rule set's features, which the node caches per rule set,
    # and its training rules' neighbour votes (perception.neighbours).
    assert sorted(o.name for o in sess.get_outputs()) == sorted(
        (*MODEL_SPEC.outputs, MODEL_SPEC.rule_set_output, NEIGHBOUR_OUTPUT)
    )
    meta = parse_metadata(sess.get_modelmeta().custom_metadata_map)
    info = json.loads((trained / "checkpoint.json").read_text())
    assert meta.model_version == info["model_version"]
    # the environment that trained it, for whoever retrains it: checkpoint and ONNX agree
    import tensorflow as tf

    env = info["training_environment"]
    assert env["keras"] == metadata.version("keras") and env["python"] == platform.python_version()
    assert env["tensorflow"].startswith(tf.__version__ + " (tensorflow")
    assert meta.training_environment == env
    assert meta.training_config["epochs"] == 1
    parity = meta.metrics["onnx_parity"]
    assert parity["samples"] >= 512 and parity["max_abs_diff"] <= 1e-4
    assert parity["argmax_agreement"] == 1.0
    assert (
        meta.rule_classes == tuple(info["rule_classes"]) and "not_understood" in meta.rule_classes
    )
    assert meta.encoder == info["encoder"]
    # The layers it was trained to read travel with it, and its rule input is 3 x 384 wide.
    assert meta.encoder["layer"] == "6+9+12"
    wide = MODEL_SPEC.with_rule_width(1152)
    rules_in = {i.name: i.shape for i in sess.get_inputs()}[MODEL_SPEC.rules_input]
    assert rules_in[1:] == [MODEL_SPEC.max_rules, MODEL_SPEC.max_rule_tokens, 1152]
    probs, classes = sess.run(
        [MODEL_SPEC.output, MODEL_SPEC.rule_output],
        wide.feeds(*(i.zeros(3) for i in wide.inputs)),
    )
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert classes.shape == (3, MODEL_SPEC.max_rules, len(meta.rule_classes))


def test_the_node_loads_the_export_and_reads_both_languages(trained: Path) -> None:
    """The exported model runs in the node's own decision path, with the committed encoder."""
    import time

    from bus.schema import FrameHeader, RuleSet
    from policy.decider import Decider
    from policy.model import PolicyModel
    from simulator.render import render_jpeg
    from simulator.scene import Scene

    model = PolicyModel.load(trained / "model.onnx")
    assert model.encoder.layer == (6, 9, 12)  # the encoder at the layers the model reads
    d = Decider(model, "n")
    now = time.time_ns()
    header = FrameHeader(vehicle_id="car-1", frame_id=1, stamp_ns=now, speed_kph=40.0)
    for texts in (("Speed limit 30 km/h",), ("限速三十公里",), ()):
        rules = RuleSet(vehicle_id="car-1", version=str(texts), issued_at_ns=now, rules=list(texts))
        msg = d.step(header, render_jpeg(Scene()), rules)
        assert msg.model_version == model.version and len(msg.probabilities) == 6


def test_the_node_runs_the_rule_graph_once_per_rule_set_with_the_same_outputs(
    trained: Path, data: Path
) -> None:
    """The node splits the export into its rule graph (once per rule set) and frame graph (per
    frame); on real frames and rules the split gives what the whole graph gives."""
    from bus.recording_reader import read_samples
    from perception.image import preprocess_jpeg
    from policy.model import PolicyModel

    # The neighbour reading changes what the split graphs compute (perception.neighbours):
    # compared without it; with it, the node has the neighbour graph of the fresh export.
    assert PolicyModel.load(trained / "model.onnx").neighbours_session is not None
    model = PolicyModel.load(trained / "model.onnx", neighbour_reading=False)
    assert model.split and model.neighbours_session is None
    samples = list(read_samples([data / "test" / "test.mcap"], require_labels=True))[:24]
    encoded = [model.encode_rules(tuple(s.rules)) for s in samples]
    images = np.stack([preprocess_jpeg(s.jpeg) for s in samples])
    speeds = np.array([[s.speed_kph] for s in samples], np.float32)
    split = model.run_encoded(images, encoded, speeds)
    whole = model.run(
        images, np.stack([e.states for e in encoded]), np.stack([e.mask for e in encoded]), speeds
    )
    for a, b in (
        (split.probabilities, whole.probabilities),
        (split.rule_classes, whole.rule_classes),
        (split.image_ood, whole.image_ood),
    ):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert {i.name for i in model.frame_session.get_inputs()} == {  # type: ignore[union-attr]
        MODEL_SPEC.image_input,
        MODEL_SPEC.speed_input,
        MODEL_SPEC.rule_set_output,
    }
    # A fresh export carries the reading graph (tf2onnx still names the parameter softmaxes as
    # perception.splitgraph looks for them), so the node's reading check is on for it; every
    # rule it names is one of the frame's rules.
    checked = PolicyModel.load(trained / "model.onnx", reading_threshold=1.0)
    assert checked.reading_session is not None
    got = checked.run_encoded(
        images, [checked.encode_rules(tuple(s.rules)) for s in samples], speeds
    )
    assert len(got.unsure) == len(samples)
    for s, rules in zip(samples, got.unsure, strict=True):
        assert all(0 <= r < len(s.rules) for r in rules)


def test_reuse_keeps_a_finished_checkpoint_of_the_same_model_only(
    trained: Path, data: Path
) -> None:
    from training.train import train

    before = (trained / "model.keras").stat().st_mtime_ns
    info = train(_config(), [data / "train"], trained, reuse=True)
    assert (trained / "model.keras").stat().st_mtime_ns == before
    assert info.pop("reused_checkpoint") is True
    assert info == json.loads((trained / "checkpoint.json").read_text())
    from training.train import _finished_checkpoint

    assert _finished_checkpoint(trained, info["model_version"]) is not None
    assert _finished_checkpoint(trained, "fused-other-version") is None  # config/data changed


def test_evaluate_onnx_and_keras_agree_and_write_reports(
    trained: Path, data: Path, tmp_path: Path
) -> None:
    from training.data import load_samples
    from training.evaluate import OnnxPredictor, evaluate_samples, load_predictor

    samples = load_samples([data / "test", data / "counterfactual"])
    rep_onnx = evaluate_samples(load_predictor(trained / "model.onnx"), samples, tmp_path)
    rep_keras = evaluate_samples(load_predictor(trained), samples, None)
    # Keras has no neighbour reading (perception.neighbours): compared with the ONNX model
    # evaluated without it.
    own = OnnxPredictor(trained / "model.onnx", neighbour_reading=False)
    assert own.neighbours is None and load_predictor(trained / "model.onnx").neighbours is not None
    rep_own = evaluate_samples(own, samples, None)
    assert set(rep_onnx["splits"]) == {"test", "counterfactual"}
    for split in rep_onnx["splits"]:
        assert rep_own["splits"][split]["accuracy"] == rep_keras["splits"][split]["accuracy"]
    cf = rep_onnx["splits"]["counterfactual"]["counterfactual_consistency"]
    assert cf["pairs"] > 0 and 0.0 <= cf["both_right"] <= 1.0
    assert (tmp_path / "confusion_test.png").stat().st_size > 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["splits"]["test"]["n"] == 160
    test = report["splits"]["test"]
    assert test["targeted"] and all("|en|" in k or "|zh|" in k for k in test["targeted"])
    assert 0.0 <= test["ece"] <= 1.0 and "rules_not_understood" in test
    assert set(report["pictures"]["by_kind"]) >= {"checkerboard", "portrait", "sideways"}
    # The exported model is evaluated as the node runs it, reading check included; a Keras
    # checkpoint without it, and the report says which. The check only adds flags.
    assert rep_onnx["reading_check"] is not None and rep_keras["reading_check"] is None
    for split in rep_onnx["splits"]:
        a, b = rep_onnx["splits"][split], rep_keras["splits"][split]
        assert a["valid_false_share"] >= b["valid_false_share"]


def test_rule_order_does_not_change_probabilities(trained: Path, data: Path) -> None:
    from perception.rule_encoder import RuleEncoder
    from training.checkpoint import load_checkpoint
    from training.data import RuleTable, encode_samples, load_samples

    ckpt = load_checkpoint(trained)
    samples = load_samples([data / "test"])[:64]
    encoder = RuleEncoder.load(layer=ckpt.config.encoder_layer)
    table = RuleTable.build((r for s in samples for r in s.rules), encoder)
    x = encode_samples(samples, table, ckpt.rule_classes).inputs()
    rng = np.random.default_rng(0)
    perm = [rng.permutation(MODEL_SPEC.max_rules) for _ in range(len(samples))]
    shuffled = dict(x)
    for name in (MODEL_SPEC.rules_input, MODEL_SPEC.rule_mask_input):
        shuffled[name] = np.stack([t[p] for t, p in zip(x[name], perm, strict=True)])
    a = ckpt.model.predict(x, verbose=0)[MODEL_SPEC.output]
    b = ckpt.model.predict(shuffled, verbose=0)[MODEL_SPEC.output]
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_failed_parity_leaves_no_model_file(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training import export
    from training.checkpoint import load_checkpoint

    def broken(*args: object, **kwargs: object) -> dict:
        raise TrainingError("ONNX parity failed: injected")

    monkeypatch.setattr(export, "parity_check", broken)
    out = tmp_path / "m.onnx"
    with pytest.raises(TrainingError):
        export.export_onnx(load_checkpoint(trained), out)
    assert list(tmp_path.iterdir()) == []


def test_export_of_an_incomplete_checkpoint_is_refused(trained: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "ckpt"
    shutil.copytree(trained, broken)
    (broken / "config.json").unlink()
    assert cli(["export", str(broken), "--out", str(tmp_path / "x.onnx")]) == 2
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize(
    "damage",
    [
        lambda info: {**info, "rule_classes": 5},
        lambda info: {**info, "rule_classes": []},
        lambda info: {**info, "encoder": ["x"]},
        lambda info: "[" * 100_000 + "]" * 100_000,  # nested past the parser's recursion
    ],
)
def test_a_damaged_checkpoint_json_is_refused_in_one_line(
    trained: Path, tmp_path: Path, damage: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """An outside pass: ``"rule_classes": 5`` ended export in a TypeError traceback."""
    import shutil

    broken = tmp_path / "ckpt"
    shutil.copytree(trained, broken, ignore=shutil.ignore_patterns("rule-table*"))
    info = json.loads((trained / "checkpoint.json").read_text())
    got = damage(info)  # type: ignore[operator]
    (broken / "checkpoint.json").write_text(got if isinstance(got, str) else json.dumps(got))
    assert cli(["export", str(broken), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "checkpoint.json" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_parity_needs_enough_samples(trained: Path) -> None:
    from training.checkpoint import load_checkpoint
    from training.export import parity_check

    ckpt = load_checkpoint(trained)
    small = {k: v[:10] for k, v in ckpt.parity_inputs().items()}
    with pytest.raises(TrainingError, match="512"):
        parity_check(b"", ckpt.model, small)


def test_bad_data_inputs_are_clear(tmp_path: Path) -> None:
    from training.config import TrainConfig
    from training.train import train

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no .mcap"):
        train(TrainConfig(epochs=1), [empty], tmp_path / "out")
    with pytest.raises(DataError, match="no such recording"):
        train(TrainConfig(epochs=1), [tmp_path / "missing.mcap"], tmp_path / "out")


def test_unknown_config_key_is_a_config_error(tmp_path: Path) -> None:
    from training.config import load_config

    f = tmp_path / "c.yaml"
    f.write_text("epochs: 3\nlearnig_rate: 0.1\n")
    with pytest.raises(ConfigError, match="learnig_rate"):
        load_config(f, {})
    assert load_config(None, {"epochs": 2}).epochs == 2


def test_a_factorized_rule_head_and_two_readers_export_and_serve_split(trained: Path) -> None:
    """TrainConfig.rule_head="factorized" and readers=2 keep what the node relies on: the
    rule-class output by name, the split into rule and frame graphs, and the reading check's
    alternatives (the reading graph is cut at the readers' averaged parameter readings)."""
    import time

    from bus.schema import FrameHeader, RuleSet
    from policy.decider import Decider
    from policy.model import PolicyModel
    from simulator.render import render_jpeg
    from simulator.scene import Scene

    config = json.loads((trained / "config.json").read_text())
    assert (config["rule_head"], config["readers"]) == ("factorized", 2)
    model = PolicyModel.load(trained / "model.onnx", reading_threshold=1.0)
    assert model.frame_session is not None  # split: the rule graph runs once per rule set
    assert model.head_session is not None  # the reading check reruns only the head
    encoded = model.encode_rules(("No overtaking", "不再禁止超车"))
    np.testing.assert_allclose(encoded.classes.sum(-1), 1.0, atol=1e-5)  # a distribution
    assert encoded.alternatives  # at threshold 1 every present rule has an alternative reading
    now = time.time_ns()
    header = FrameHeader(vehicle_id="car-1", frame_id=1, stamp_ns=now, speed_kph=40.0)
    rules = RuleSet(vehicle_id="car-1", version="1", issued_at_ns=now, rules=["No overtaking"])
    msg = Decider(model, "n").step(header, render_jpeg(Scene()), rules)
    assert msg.model_version == model.version and len(msg.probabilities) == 6  # the model ran
