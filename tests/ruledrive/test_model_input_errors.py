"""Bad models, checkpoints, configs, outputs and URLs given to the commands end in one line
before any work, never in a traceback or after the work is done (ruledrive evaluate, train,
export, neighbours, serve, rules sign)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from core.errors import ConfigError
from ruledrive.cli import main
from tests.policy.fakemodel import build_fake_model
from tests.ruledrive.test_cli_errors import GOLDEN, one_line


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    return one_line(capsys.readouterr().err)


def test_evaluate_refuses_a_model_without_the_contracts_inputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = build_fake_model(tmp_path / "m.onnx", image_name="pixels")
    assert main(["evaluate", str(model), "--data", str(GOLDEN)]) == 1
    assert "inputs" in _err(capsys)


def test_evaluate_and_train_refuse_a_file_where_their_directory_goes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = build_fake_model(tmp_path / "m.onnx")
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    t0 = time.monotonic()
    assert main(["evaluate", str(model), "--data", str(GOLDEN), "--out", str(taken)]) == 2
    assert "is a file" in _err(capsys)
    assert main(["train", "--data", str(GOLDEN), "--out", str(taken)]) == 2
    assert "is a file" in _err(capsys)
    assert taken.read_text() == "keep me" and time.monotonic() - t0 < 30


@pytest.mark.tf
def test_train_refuses_a_run_whose_export_must_fail_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    gen = ["generate", "--out", str(data), "--scenes", "40", "--split", "train"]
    assert main([*gen, "--workers", "1", "--no-progress"]) == 0
    capsys.readouterr()
    out = tmp_path / "ckpt"
    assert main(["train", "--data", str(data), "--out", str(out), "--max-samples", "20"]) == 1
    line = _err(capsys)
    assert "parity check needs >= 512" in line and "--no-export" in line
    assert not (out / "model.keras").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"seed": 2**40}, "seed"),
        ({"threads": 100_000}, "threads"),
        ({"batch_size": True}, "batch_size: a number or a name, not true/false"),
    ],
)
def test_train_settings_out_of_range_are_config_errors(
    overrides: dict[str, object], message: str
) -> None:
    from training.config import load_config

    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_train_config_files_are_read_by_their_suffix_in_any_case(tmp_path: Path) -> None:
    from training.config import load_config

    path = tmp_path / "c.YAML"
    path.write_text("epochs: 3\n")
    assert load_config(path, {}).epochs == 3
    with pytest.raises(ConfigError, match=r"config: rule_corpus trains only the reader"):
        load_config(None, {"rule_corpus": "c.jsonl"})  # no empty location before it


@pytest.mark.parametrize(
    ("file", "content"),
    [("config.json", "{garbage"), ("config.json", '{"epochs": "many"}'), ("checkpoint.json", "[")],
)
def test_export_of_a_garbled_checkpoint_names_the_file(
    tmp_path: Path, file: str, content: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for name in ("model.keras", "config.json", "checkpoint.json"):
        (ckpt / name).write_text("{}")
    (ckpt / file).write_text(content)
    assert main(["export", str(ckpt), "--out", str(tmp_path / "m.onnx")]) == 2
    assert file in _err(capsys)


def test_neighbours_checks_its_output_and_cache_before_the_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = build_fake_model(tmp_path / "m.onnx")
    base = ["neighbours", str(model), "--data", str(GOLDEN)]
    assert main([*base, "--out", str(tmp_path)]) == 2
    assert "is a directory" in _err(capsys)
    assert main([*base, "--out", str(tmp_path / "no" / "m.onnx")]) == 2
    assert "no directory" in _err(capsys)
    assert main([*base, "--out", str(tmp_path / "o.onnx"), "--k", "1000"]) == 2
    assert "--k must be at most" in _err(capsys)


def test_a_garbled_rule_cache_is_a_data_error(tmp_path: Path) -> None:
    from core.errors import DataError
    from perception.rule_encoder import RuleEncoder
    from training.data import RuleTable

    cache = tmp_path / "cache.npz"
    cache.write_bytes(b"PK\x03\x04 not a zip")
    encoder = RuleEncoder.load(Path("models/text-encoder"), "cpu", cache_size=0)
    with pytest.raises(DataError, match="is not a rule table"):
        RuleTable.build(["Max 50"], encoder, cache)


def test_a_login_inside_the_broker_url_is_refused_and_never_echoed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = build_fake_model(tmp_path / "m.onnx")
    url = "mqtt://alice:s3cret@127.0.0.1:1"
    assert main(["serve", "--mqtt-url", url, "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert "must not carry a login" in err and "s3cret" not in err


def test_rules_sign_refuses_a_rule_set_with_a_key_given_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rules", "keygen", "--out", str(tmp_path), "--name", "authority"]) == 0
    capsys.readouterr()
    body = {"vehicle_id": "car-1", "version": "v1", "issued_at_ns": 1, "rules": ["Stop"]}
    ruleset = tmp_path / "rs.json"
    ruleset.write_text(json.dumps(body)[:-1] + ', "rules": []}')
    key = tmp_path / "authority.key"
    assert main(["rules", "sign", str(ruleset), "--key", str(key)]) == 1
    assert "appears twice" in _err(capsys)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"RULEDRIVE_HEARTBEAT_S": "nan"},
            "RULEDRIVE_HEARTBEAT_S / --heartbeat-s: Input should be a finite",
        ),
        ({"RULEDRIVE_MODEL_PATH": ""}, "RULEDRIVE_MODEL_PATH / --model-path: is empty"),
    ],
)
def test_node_settings_errors_say_what_is_wrong_in_one_line(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from policy.settings import load_settings

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=message) as err:
        load_settings()
    assert "\n" not in str(err.value)
