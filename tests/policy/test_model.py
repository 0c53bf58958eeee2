"""The model loader refuses anything that does not match the contract."""

from __future__ import annotations

from pathlib import Path

import pytest
from onnx import TensorProto

from core.errors import ConfigError, ModelError
from perception.spec import META_KEYS
from policy.model import PolicyModel, choose_providers
from tests.policy.fakemodel import build_fake_model


def test_loads_and_reads_metadata(model: PolicyModel) -> None:
    assert model.version == "fake-1"
    assert model.provider == "CPUExecutionProvider"
    assert model.meta.rule_classes[-1] == "not_understood"
    assert model.encoder.identity() == model.meta.encoder


def test_a_model_trained_on_another_text_encoder_is_refused(tmp_path: Path) -> None:
    import json

    from tests.policy.fakemodel import encoder_id

    other = {**encoder_id(), "model_sha256": "0" * 64}
    path = build_fake_model(
        tmp_path / "other.onnx", metadata={META_KEYS["encoder"]: json.dumps(other)}
    )
    with pytest.raises(ModelError, match="trained on text encoder 000000000000"):
        PolicyModel.load(path)


def test_the_model_says_how_its_frames_are_decoded(tmp_path: Path) -> None:
    """A model trained on full-size decodes keeps them; a new one gets the reduced decode;
    a preprocessing this build does not know is refused."""
    import json

    from perception.image import PREPROCESSINGS

    old = build_fake_model(
        tmp_path / "old.onnx",
        metadata={META_KEYS["preprocessing"]: json.dumps(PREPROCESSINGS["full"])},
    )
    assert PolicyModel.load(old).meta.decode == "full"
    assert PolicyModel.load(build_fake_model(tmp_path / "new.onnx")).meta.decode == "reduced"
    odd = {**PREPROCESSINGS["full"], "resize": "nearest"}
    bad = build_fake_model(
        tmp_path / "odd.onnx", metadata={META_KEYS["preprocessing"]: json.dumps(odd)}
    )
    with pytest.raises(ModelError, match="preprocessing"):
        PolicyModel.load(bad)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"drop_meta": (META_KEYS["labels"],)}, "missing"),
        ({"metadata": {META_KEYS["schema_version"]: "2"}}, "schema version"),
        ({"metadata": {META_KEYS["labels"]: '["PROCEED"]'}}, "labels"),
        ({"metadata": {META_KEYS["rule_classes"]: '["speed_limit"]'}}, "not_understood"),
        ({"metadata": {META_KEYS["thresholds"]: '{"nope": 1}'}}, "cannot be parsed"),
        # A threshold outside [0, 1] flags every frame or none; a string is not a number.
        ({"metadata": {META_KEYS["thresholds"]: '{"confidence": 7}'}}, "confidence must be"),
        ({"metadata": {META_KEYS["thresholds"]: '{"image_ood": -3}'}}, "image_ood must be"),
        ({"metadata": {META_KEYS["thresholds"]: '{"confidence": NaN}'}}, "confidence must be"),
        ({"metadata": {META_KEYS["thresholds"]: '{"confidence": "high"}'}}, "confidence must"),
        ({"metadata": {META_KEYS["thresholds"]: '{"confidence": true}'}}, "confidence must be"),
        ({"metadata": {META_KEYS["labels"]: '"PROCEED"'}}, "list of strings"),
        ({"metadata": {META_KEYS["rule_classes"]: '"not_understood"'}}, "list of strings"),
        ({"drop_meta": (META_KEYS["encoder"],)}, "missing"),
        # echoed in every decision: no terminal escapes, nothing a decision may not carry
        ({"metadata": {META_KEYS["model_version"]: "v\x1b[2J"}}, "model version"),
        ({"metadata": {META_KEYS["model_version"]: "v" * 200}}, "model version"),
        ({"image_name": "pixels"}, "inputs"),
        ({"image_shape": (1, 96, 160, 3)}, "fixed batch"),
        ({"image_shape": ("N", 64, 64, 3)}, "shape"),
        ({"speed_type": TensorProto.DOUBLE}, "tensor\\(double\\)"),
        ({"n_out": 5}, "shape"),
    ],
)
def test_refuses_mismatched_models(tmp_path: Path, kwargs: dict, match: str) -> None:
    path = build_fake_model(tmp_path / "bad.onnx", **kwargs)
    with pytest.raises(ModelError, match=match):
        PolicyModel.load(path)


def test_a_flag_threshold_of_never_loads(tmp_path: Path) -> None:
    """training.thresholds writes 1.01 ("never flag") for a model whose rule head never trained."""
    never = '{"confidence": 0.5, "not_understood": 1.01, "image_ood": 1.01}'
    path = build_fake_model(tmp_path / "m.onnx", metadata={META_KEYS["thresholds"]: never})
    assert PolicyModel.load(path).meta.thresholds.not_understood == 1.01


def test_missing_and_garbage_files(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        PolicyModel.load(tmp_path / "nope.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load"):
        PolicyModel.load(tmp_path / "junk.onnx")


def test_a_model_file_too_large_or_not_a_file_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reload reads the model in the serving loop: a huge file (a 1 GiB one paused every
    vehicle's decisions for 1.7 s), a named pipe (blocks for ever) or a link to a device is
    refused without reading it whole."""
    import os

    import policy.model as pm

    monkeypatch.setattr(pm, "MAX_MODEL_BYTES", 1024 * 1024)
    big = tmp_path / "big.onnx"
    with big.open("wb") as fh:  # sparse: no disk used
        fh.truncate(2 * 1024 * 1024)
    with pytest.raises(ModelError, match="too large"):
        PolicyModel.load(big)
    os.mkfifo(tmp_path / "pipe.onnx")
    with pytest.raises(ModelError, match="not a regular file"):
        PolicyModel.load(tmp_path / "pipe.onnx")
    (tmp_path / "zero.onnx").symlink_to("/dev/zero")
    with pytest.raises(ModelError, match="not a regular file"):
        PolicyModel.load(tmp_path / "zero.onnx")


def test_provider_choice() -> None:
    cpu = "CPUExecutionProvider"
    assert choose_providers("auto", ["AzureExecutionProvider", cpu]) == [cpu]
    cuda, trt = "CUDAExecutionProvider", "TensorrtExecutionProvider"
    assert choose_providers("auto", [cuda, cpu]) == [cuda, cpu]
    assert choose_providers("auto", [trt, cuda, cpu]) == [trt, cuda, cpu]
    assert choose_providers("cpu", ["CUDAExecutionProvider", cpu]) == [cpu]
    with pytest.raises(ConfigError, match="cuda"):
        choose_providers("cuda", [cpu])


@pytest.mark.parametrize(("threads", "spinning"), [(1, False), (2, True)])
def test_onnxruntime_threads_and_spinning_are_what_the_settings_say(
    model: PolicyModel, threads: int, spinning: bool
) -> None:
    """Spinning off by default: the node's CPU follows its load (issue 12)."""
    loaded = PolicyModel.load(model.path, threads=threads, spinning=spinning)
    opts = loaded.session.get_session_options()
    assert opts.intra_op_num_threads == threads
    want = "1" if spinning else "0"
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == want


def test_spinning_is_off_unless_asked_and_settings_parse_it() -> None:
    from policy.settings import load_settings

    assert load_settings({}).ort_spinning is False
    assert load_settings({"ort_spinning": "true", "ort_threads": "2"}).ort_threads == 2
    with pytest.raises(ConfigError, match="RULEDRIVE_ORT_THREADS"):
        load_settings({"ort_threads": "-1"})


def test_the_encoder_is_loaded_at_the_layer_the_model_was_trained_to_read(tmp_path: Path) -> None:
    import json

    import numpy as np

    from tests.policy.fakemodel import encoder_id

    def at(layer: str) -> Path:
        ident = {**encoder_id(), "layer": layer}
        return build_fake_model(
            tmp_path / f"l{layer}.onnx", metadata={META_KEYS["encoder"]: json.dumps(ident)}
        )

    last = PolicyModel.load(build_fake_model(tmp_path / "last.onnx"))
    mid = PolicyModel.load(at("9"))
    assert (last.encoder.layer, mid.encoder.layer) == (None, 9)
    assert mid.encoder.identity() == mid.meta.encoder
    rules = ("Overtaking is prohibited",)
    assert np.abs(mid.encode_rules(rules).states - last.encode_rules(rules).states).max() > 0.5
    # A hot reload onto a model of another layer gets a new encoder, not the old one's.
    again = PolicyModel.load(at("9"), encoder=last.encoder)
    assert again.encoder is not last.encoder and again.encoder.layer == 9
    assert PolicyModel.load(at("9"), encoder=mid.encoder).encoder is mid.encoder
    with pytest.raises(ModelError, match="reads text encoder layer 40: .*layers 1 to 12"):
        PolicyModel.load(at("40"))
    with pytest.raises(ModelError, match="not a layer number"):
        PolicyModel.load(at("nine"))


@pytest.mark.parametrize("fails", [False, True])
def test_preloading_the_cuda_libraries_never_stops_a_load(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, fails: bool
) -> None:
    """onnxruntime-gpu's pip-installed CUDA libraries are loaded before a GPU session is made;
    a failing preload is logged (the session then comes up on what it finds, and says so)."""
    import onnxruntime as ort

    from policy.model import preload_gpu_libraries

    calls: list[int] = []

    def preload() -> None:
        calls.append(1)
        if fails:
            raise OSError("libcudart.so.13: cannot open shared object file")

    monkeypatch.setattr(ort, "preload_dlls", preload, raising=False)
    preload_gpu_libraries()
    assert calls == [1]
    assert ("preload_dlls failed" in caplog.text) == fails
    monkeypatch.delattr(ort, "preload_dlls")
    preload_gpu_libraries()  # an onnxruntime older than 1.21: nothing to do


@pytest.mark.parametrize(
    ("providers", "preloads"),
    [(["CUDAExecutionProvider", "CPUExecutionProvider"], 1), (["CPUExecutionProvider"], 0)],
)
def test_only_a_gpu_provider_preloads(
    model: PolicyModel, monkeypatch: pytest.MonkeyPatch, providers: list[str], preloads: int
) -> None:
    import policy.model as pm

    calls: list[int] = []
    monkeypatch.setattr(pm, "preload_gpu_libraries", lambda: calls.append(1))
    monkeypatch.setattr(pm, "choose_providers", lambda _: providers)
    try:
        PolicyModel.load(model.path)
    except ModelError as exc:  # this onnxruntime has no CUDA provider to make the session on
        assert "CUDAExecutionProvider" in str(exc)
    assert len(calls) == preloads
