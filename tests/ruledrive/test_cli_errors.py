"""Errors a user can cause end in one line (``ruledrive: error: ...`` or ``ruledrive:
configuration error: ...``) and exit 1 or 2, never in a Python traceback."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.memory import MemoryBus
from core.errors import ConfigError
from policy.metrics import NodeMetrics
from ruledrive.cli import main
from tests.policy.fakemodel import build_fake_model

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "drive.mcap"


@pytest.fixture(scope="module")
def fake_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fake_model(tmp_path_factory.mktemp("model") / "fake.onnx")


@pytest.fixture(scope="module")
def truncated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The golden drive cut in the middle, as a killed recorder leaves it."""
    data = GOLDEN.read_bytes()
    path = tmp_path_factory.mktemp("rec") / "cut.mcap"
    path.write_bytes(data[: len(data) * 9 // 10])  # the first chunks survive
    return path


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        yield s.getsockname()[1]


def one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("ruledrive")]
    assert len(lines) == 1, err
    return lines[0]


# -- evaluate: a file that is not a model ---------------------------------------------------------


def test_evaluate_garbage_onnx_is_a_model_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "m.onnx"
    bad.write_text("not a model")
    assert main(["evaluate", str(bad), "--data", str(GOLDEN)]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("ruledrive: error: ") and "cannot load it as an ONNX model" in line


def test_evaluate_a_checkpoint_that_fails_to_load_is_named_as_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint directory whose loading fails in a way no check foresaw (here a ValueError
    from the loader) is a one-line model error that calls it a checkpoint, not an ONNX model."""
    import training.evaluate

    def fail(path: Path) -> None:
        raise ValueError("unexpected")

    monkeypatch.setattr(training.evaluate, "load_predictor", fail)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    assert main(["evaluate", str(ckpt), "--data", str(GOLDEN)]) == 1
    line = one_line(capsys.readouterr().err)
    assert "cannot load it as a checkpoint directory (ValueError: unexpected)" in line


def test_evaluate_other_file_says_what_is_expected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "m.txt"
    bad.write_text("x")
    assert main(["evaluate", str(bad), "--data", str(GOLDEN)]) == 2
    line = one_line(capsys.readouterr().err)
    assert "not an ONNX model (*.onnx) or a checkpoint directory" in line


# -- serve / metrics: the metrics port is taken ----------------------------------------------------


def test_metrics_port_in_use_is_a_config_error(busy_port: int) -> None:
    with pytest.raises(ConfigError, match=f"metrics port {busy_port}"):
        NodeMetrics().serve(busy_port)


def test_serve_with_busy_metrics_port_exits_2(
    fake_model: Path,
    busy_port: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import bus.mqtt

    monkeypatch.setattr(bus.mqtt, "MqttBus", lambda *a, **k: MemoryBus())
    rc = main(
        [
            "serve",
            "--model",
            str(fake_model),
            "--metrics-port",
            str(busy_port),
            "--reload-poll-s",
            "0",
        ]
    )
    assert rc == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"ruledrive: configuration error: metrics port {busy_port}")


# -- record: the output directory ------------------------------------------------------------------


@pytest.mark.broker
def test_record_creates_the_output_directory(
    tmp_path: Path, broker_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "new" / "dir" / "x.mcap"
    rc = main(
        [
            "record",
            "--out",
            str(out),
            "--mqtt-url",
            broker_url,
            "--prefix",
            f"test/record-{tmp_path.name}",
            "--duration-s",
            "0.2",
        ]
    )
    assert rc == 0
    assert out.parent.is_dir()  # made before the first message, so a bad --out shows at once
    summary = json.loads(capsys.readouterr().out)
    assert summary == {"files": [], "counts": {}, "reconnects": 0, "gaps": [], "gap_s": 0.0}


@pytest.mark.broker
def test_record_into_an_impossible_directory_is_one_line(
    tmp_path: Path, broker_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("a file, not a directory")
    rc = main(
        [
            "record",
            "--out",
            str(tmp_path / "file" / "sub" / "x.mcap"),
            "--mqtt-url",
            broker_url,
            "--duration-s",
            "0.2",
        ]
    )
    assert rc == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("ruledrive: configuration error: --out ") and "not a directory" in line


# -- truncated recordings: say --allow-truncated, and take it ------------------------------------


def test_scenes_show_truncated_names_the_flag(
    truncated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scenes", "show", str(truncated)]) == 1
    line = one_line(capsys.readouterr().err)
    assert "truncated" in line and "pass --allow-truncated" in line
    assert main(["scenes", "show", str(truncated), "--allow-truncated"]) == 0
    assert json.loads(capsys.readouterr().out)


def test_evaluate_truncated_names_the_flag(
    truncated: Path, fake_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", str(fake_model), "--data", str(truncated)]) == 1
    assert "pass --allow-truncated" in one_line(capsys.readouterr().err)
    assert main(["evaluate", str(fake_model), "--data", str(truncated), "--allow-truncated"]) == 0


def test_replay_truncated_names_the_flag(
    truncated: Path, fake_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "replay",
        str(truncated),
        "--bus",
        "memory",
        "--serve-model",
        str(fake_model),
        "--rate",
        "max",
        "--no-progress",
    ]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert "truncated" in err and "pass --allow-truncated" in err and "Traceback" not in err
    assert main([*argv, "--out", str(tmp_path / "b"), "--allow-truncated", "--limit", "20"]) == 0
    rep = json.loads((tmp_path / "b" / "report.json").read_text())
    assert rep["decisions_matched"] == 20


@pytest.mark.parametrize(
    "argv",
    [
        ["replay", str(GOLDEN), "--mqtt-url", "mqtt://[::1", "--out", "OUT"],
        ["record", "--out", "OUT/r.mcap", "--duration-s", "1", "--mqtt-url", "mqtt://[::1"],
        ["credentials", "init", "OUT/creds", "--url", "mqtts://[::1"],
        ["record", "--out", "OUT/r.mcap", "--duration-s", "1", "--mqtt-username", "u\x1b[31m"],
        ["replay", str(GOLDEN), "--mqtt-username", "u" * 70_000, "--out", "OUT"],
        ["serve", "--mqtt-username", "u\x85x", "--model", "MODEL"],
    ],
)
def test_a_broker_url_or_user_name_mqtt_cannot_carry_is_one_line(
    argv: list[str], tmp_path: Path, fake_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unclosed IPv6 bracket, or a user name (also the client id) with control characters
    or longer than MQTT's 65,535 bytes: refused before connecting, in one line, exit 2 (the
    user name once surfaced 10 s later as "no connection", after a traceback in paho's
    thread), and nothing is written."""
    argv = [str(tmp_path) + a[3:] if a.startswith("OUT") else a for a in argv]
    argv = [str(fake_model) if a == "MODEL" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and "Traceback" not in err
    assert "Invalid IPv6 URL" in err or "user name" in err
    assert not any(tmp_path.iterdir())
