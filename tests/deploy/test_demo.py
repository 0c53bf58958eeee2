"""``ruledrive demo`` end to end in a subprocess (private broker, fake model).

Broker discovery and the private broker are tested in tests/bus/test_broker.py."""

from __future__ import annotations

import json
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
            "1",
            # Real time (1x): at 4x, with a fresh venv (onnxruntime 1.32, opencv 5.0) and the
            # new rule language, the node kept up with only ~10 new rule sets a second, so 33-47 %
            # of frames were conflated (dropped on purpose, newest frame wins) while rule sets
            # were encoded, for the previous model as much as for this one: a measured limit,
            # noted in README "Limits", not hidden by a looser gate. The first frames of each
            # vehicle can still be conflated while its first rule set is encoded.
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
    # the drives are in both languages, and the scoreboard says how each fared
    assert "by rule text" in proc.stdout
    assert "Chinese " in proc.stdout and "Latin script " in proc.stdout
    for name in ("report.json", "latency_hist.png", "confusion.png"):
        assert (tmp_path / "out" / name).is_file()
    # The node ran in the demo's process: the missing frames it dropped on purpose are known.
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert isinstance(report["conflated"], int) and report["conflated"] >= 0
    assert "conflated by the node on purpose" in proc.stdout
    assert wall < 120


def test_the_demo_drives_read_english_and_chinese_rules_by_default(tmp_path: Path) -> None:
    """What the demo shows is the world the shipped model is trained on: its default drives
    carry English, Chinese and mixed rule sets and some rules nobody can read (the catalogue,
    English only, on request)."""
    import json

    from ruledrive.cli import build_parser
    from ruledrive.demo import _generate

    args = build_parser().parse_args(["demo"])
    assert args.rule_language == "bilingual"
    _generate(tmp_path / "bi", 60, args.seed, args.rule_language)
    language = json.loads((tmp_path / "bi" / "test.json").read_text())["rule_language"]
    assert language["rules_per_language"]["zh"] > 0 and language["rules_per_language"]["en"] > 0
    assert language["not_understood"] > 0
    _generate(tmp_path / "cat", 60, args.seed, "catalogue")
    assert "rule_language" not in json.loads((tmp_path / "cat" / "test.json").read_text())
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--rule-language", "klingon"])
