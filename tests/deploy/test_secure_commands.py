"""``serve``, ``record``, ``replay`` and ``demo`` against the shipped secure broker config, each
logged in the documented way: the env file ``ruledrive credentials init`` writes
(RULEDRIVE_MQTT_USERNAME, RULEDRIVE_MQTT_PASSWORD, RULEDRIVE_TLS_CA) or the flags
``--mqtt-username`` / ``--tls-ca`` with the password in the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.broker import MosquittoProcess
from bus.codec import encode
from bus.envelope import pack_frame
from bus.memory import Recorder
from bus.recording_reader import read_events
from bus.schema import DecisionMsg
from bus.topics import CAMERA, DECISION, DEFAULT_PREFIX, RULES
from ruledrive.cli import main as cli_main
from tests.deploy.secure_helpers import env_of, login_bus, secure_broker
from tests.policy.conftest import header, jpeg, rules

pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests/golden/drive.mcap"
P = DEFAULT_PREFIX


@pytest.fixture(scope="module")
def fake_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.policy.fakemodel import build_fake_model

    return build_fake_model(tmp_path_factory.mktemp("m") / "fake.onnx")


@pytest.fixture
def broker(tmp_path: Path, secrets: Path) -> Iterator[MosquittoProcess]:
    with secure_broker(tmp_path, secrets) as b:
        yield b


def _env(secrets: Path, user: str, url: str, **extra: str) -> dict[str, str]:
    """The process environment of a command run as ``user`` from its env file."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("RULEDRIVE_")}
    return {**base, **env_of(secrets, user), "RULEDRIVE_MQTT_URL": url, **extra}


def _ruledrive(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``ruledrive ARGS`` in a subprocess, its output in ``log`` (a pipe could fill and block)."""
    with log.open("wb") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "ruledrive.cli", *args],
            cwd=ROOT,
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
        )


def test_serve_and_record_over_tls_from_their_env_files(
    broker: MosquittoProcess, secrets: Path, fake_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bus.mcap"
    node = _ruledrive(
        ["serve"],
        _env(
            secrets,
            "node-1",
            broker.url,
            RULEDRIVE_NODE_ID="node-1",
            RULEDRIVE_MODEL_PATH=str(fake_model),
            RULEDRIVE_PROVIDERS="cpu",
            RULEDRIVE_RELOAD_POLL_S="0",
        ),
        tmp_path / "serve.log",
    )
    record = _ruledrive(
        ["record", "--out", str(out), "--duration-s", "8"],
        _env(secrets, "recorder", broker.url),
        tmp_path / "record.log",
    )
    authority, car = login_bus(broker.url, secrets, "rule-authority"), None
    try:
        authority.connect()
        authority.publish(RULES.topic(P, vehicle_id="car-1"), encode(rules("car-1", "r7")), 1, True)
        car = login_bus(broker.url, secrets, "car-1")
        decisions = Recorder()
        car.subscribe(DECISION.topic(P, vehicle_id="car-1"), decisions, 1)
        car.connect()
        deadline, frame_id = time.monotonic() + 20, 0
        while record.poll() is None and time.monotonic() < deadline:
            frame_id += 1
            car.publish(
                CAMERA.topic(P, vehicle_id="car-1"), pack_frame(header("car-1", frame_id), jpeg())
            )
            time.sleep(0.2)
        rc = record.wait(10)
        assert rc == 0, (tmp_path / "record.log").read_text()[-3000:]
        got = [DecisionMsg.model_validate_json(p) for _, p in decisions.messages]
        assert got, "the served node answered no frame"
        assert {d.rules_version for d in got if d.valid} == {"r7"} and got[-1].node_id == "node-1"
    finally:
        node.terminate()
        node.wait(15)
        record.kill() if record.poll() is None else None
        authority.close()
        if car is not None:
            car.close()
    assert node.returncode == 0, (tmp_path / "serve.log").read_text()[-3000:]
    recorded = Counter(e.channel for e in read_events(out))
    assert recorded["/rules"] >= 1 and recorded["/decision"] >= 1, recorded
    assert recorded["/camera/front"] >= 1, recorded


def test_replay_with_the_replay_login(
    broker: MosquittoProcess,
    secrets: Path,
    fake_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from policy.node import Node, serve_in_thread
    from policy.settings import load_settings

    settings = load_settings(
        {"mqtt_url": broker.url, "node_id": "node-2", "model_path": fake_model, "reload_poll_s": 0}
    )
    node = Node(settings, login_bus(broker.url, secrets, "node-2"))
    monkeypatch.setenv(
        "RULEDRIVE_MQTT_PASSWORD", env_of(secrets, "replay")["RULEDRIVE_MQTT_PASSWORD"]
    )
    with serve_in_thread(node):
        rc = cli_main(
            [
                "replay", str(GOLDEN), "--vehicles", "2", "--limit", "30", "--rate", "max",
                "--mqtt-url", broker.url, "--mqtt-username", "replay",
                "--tls-ca", str(secrets / "ca.crt"), "--out", str(tmp_path / "out"),
                "--no-progress", "--wait-node-s", "5",
            ]
        )  # fmt: skip
    report = json.loads((tmp_path / "out/report.json").read_text())
    assert rc == 0, report
    assert report["decisions_matched"] == report["frames_planned"] > 0 and report["missing"] == 0


@pytest.mark.parametrize("command", ["demo", "replay-serve-model"])
def test_in_process_node_commands_with_the_demo_login(
    command: str,
    broker: MosquittoProcess,
    secrets: Path,
    fake_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The demo and ``replay --serve-model`` host a node and a replayer on ONE connection
    (a login holds one connection): both work as the `demo` user on its own prefix."""
    monkeypatch.setenv(
        "RULEDRIVE_MQTT_PASSWORD", env_of(secrets, "demo")["RULEDRIVE_MQTT_PASSWORD"]
    )
    login = [
        "--mqtt-url",
        broker.url,
        "--mqtt-username",
        "demo",
        "--tls-ca",
        str(secrets / "ca.crt"),
    ]
    out = tmp_path / "out"
    if command == "demo":
        argv = ["demo", "--model", str(fake_model), "--recording", str(GOLDEN), "--vehicles", "2"]
        argv += ["--rate", "max", "--out", str(out), *login]
    else:
        argv = [
            "replay",
            str(GOLDEN),
            "--serve-model",
            str(fake_model),
            "--prefix",
            "ruledrive/demo",
        ]
        argv += ["--vehicles", "2", "--limit", "30", "--rate", "max", "--no-progress", "--out"]
        argv += [str(out), *login]
    rc = cli_main(argv)
    report = json.loads((out / "report.json").read_text())
    assert rc == 0, report
    assert report["decisions_matched"] > 0 and report["missing"] == 0


def test_commands_say_what_is_wrong_with_the_login(
    broker: MosquittoProcess,
    secrets: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = str(tmp_path / "x.mcap")
    ca = str(secrets / "ca.crt")
    monkeypatch.delenv("RULEDRIVE_MQTT_PASSWORD", raising=False)
    assert cli_main(["record", "--out", out, "--mqtt-url", broker.url, "--tls-ca", ca]) == 1
    assert "refused the login of 'anonymous'" in capsys.readouterr().err
    plain = f"mqtt://127.0.0.1:{broker.port}"
    assert cli_main(["record", "--out", out, "--mqtt-url", plain, "--tls-ca", ca]) == 2
    assert "is not mqtts://" in capsys.readouterr().err
    monkeypatch.setenv("RULEDRIVE_MQTT_PASSWORD", "x")
    assert cli_main(["record", "--out", out, "--mqtt-url", broker.url]) == 2
    assert "without --mqtt-username" in capsys.readouterr().err
    argv = ["record", "--out", out, "--mqtt-url", broker.url, "--mqtt-username", "recorder"]
    assert cli_main([*argv, "--tls-ca", ca]) == 1  # wrong password
    assert "refused the login of 'recorder'" in capsys.readouterr().err
    assert cli_main(argv) == 1  # system CAs: the private CA is unknown
    assert "certificate verify failed" in capsys.readouterr().err
