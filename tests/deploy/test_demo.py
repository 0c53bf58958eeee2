"""``ruledrive demo`` end to end in a subprocess (private broker, fake model).

Broker discovery and the private broker are tested in tests/bus/test_broker.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import MOSQUITTO, free_port
from tests.markers import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.broker
def test_demo_runs_and_stops_cleanly(tmp_path: Path) -> None:
    if MOSQUITTO is None:
        skip_or_fail("mosquitto binary not installed")
    from tests.policy.fakemodel import build_fake_model

    model = ROOT / "models/ruledrive-default.onnx"
    if not model.is_file():  # the demo logic does not depend on which model answers
        model = build_fake_model(tmp_path / "fake.onnx")
    env = {
        **os.environ,
        "RULEDRIVE_MQTT_URL": f"mqtt://127.0.0.1:{free_port()}",
        "MPLBACKEND": "Agg",
    }
    t0 = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruledrive.cli",
            "demo",
            "--model",
            str(model),
            "--frames",
            "120",
            "--vehicles",
            "4",
            "--rate",
            "4",
            # The first frames of each vehicle can be conflated (dropped on purpose, newest frame
            # wins) while the node encodes the vehicles' first rule sets: the multilingual
            # encoder takes 10-35 ms a rule, once per rule set, and all four arrive at once. The
            # gate still catches a node that answers little.
            "--max-missing",
            "0.25",
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    wall = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "private mosquitto" in proc.stdout
    assert "ruledrive replay" in proc.stdout and "everything stopped" in proc.stdout
    for name in ("report.json", "latency_hist.png", "confusion.png"):
        assert (tmp_path / "out" / name).is_file()
    assert wall < 120
