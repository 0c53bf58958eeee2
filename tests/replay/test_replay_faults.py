"""Fault test: a real (private) Mosquitto is killed and restarted in the middle of a
``ruledrive replay`` with an in-process node (fake model, a TEST DOUBLE). The replay goes on, the
node resumes, the report is written and its numbers add up, and no retained rule set is left."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

import replay.drives as drives_mod
from bus.memory import Recorder
from bus.mqtt import MqttBus
from bus.topics import DECISION, RULES
from ruledrive.cli import main as cli_main
from tests.policy.fakemodel import build_fake_model
from tests.replay.replay_helpers import drive

pytestmark = pytest.mark.broker

FRAMES = 90  # 3 s per vehicle in real time


@pytest.fixture(scope="module")
def fake_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fake_model(tmp_path_factory.mktemp("model") / "fake.onnx")


def _kill_after_decisions(broker, url: str, n: int, down_s: float) -> tuple[threading.Thread, dict]:
    """Once ``n`` decisions went by, SIGKILL the broker, keep it away ``down_s``, restart it on
    the same port (no persistence: it comes back empty)."""
    seen, when = Recorder(), {}
    watcher = MqttBus(url)
    watcher.subscribe(DECISION.subscription("ruledrive/v1"), seen, 1)
    watcher.connect()

    def fault() -> None:
        try:
            if not seen.wait_count(n, timeout=20):
                return
            broker.kill()
            when["killed"] = time.monotonic()
            time.sleep(down_s)
            broker.start()
            when["back"] = time.monotonic()
        finally:
            watcher.close()

    t = threading.Thread(target=fault, daemon=True)
    t.start()
    return t, when


@pytest.mark.parametrize("rate", ["1", "max"])
def test_broker_killed_mid_replay(
    tmp_path: Path, fake_model: Path, private_broker, monkeypatch: pytest.MonkeyPatch, rate: str
) -> None:
    # The rule change comes after the outage: the restarted broker holds it retained until the
    # replay clears it.
    drives = [drive("car-a", FRAMES, rule_change_at=75), drive("car-b", FRAMES)]
    monkeypatch.setattr(drives_mod, "load_drives", lambda paths, limit=None, **_: drives)
    fault, when = _kill_after_decisions(private_broker, private_broker.url, 20, down_s=1.0)
    t0 = time.monotonic()
    rc = cli_main(
        [
            "replay",
            "x.mcap",
            "--mqtt-url",
            private_broker.url,
            "--serve-model",
            str(fake_model),
            "--rate",
            rate,
            "--timeout-s",
            "3",
            "--no-progress",
            "--out",
            str(tmp_path),
        ]
    )
    elapsed = time.monotonic() - t0
    fault.join(10)
    assert "back" in when, "the fault was not injected"
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["aborted"] is None, rep["aborted"]
    # The gate fails exactly when a frame got no decision (at --rate max the frames in flight
    # may still be answered after the outage: paho holds the node's QoS 1 decisions).
    assert (rc == 1) == (rep["lost"] + rep["missing"] > 0), rep["failures"]
    assert elapsed < 20
    published, matched = rep["frames_published"], rep["decisions_matched"]
    assert published == rep["frames_planned"] == 2 * FRAMES
    assert published == matched + rep["missing"] + rep["lost"]
    [outage] = rep["outages"]
    assert outage["back_at_s"] is not None and 0.9 <= outage["down_s"] < 3
    assert rep["lost"] == outage["frames_lost"] and outage["frames_unanswered"] <= rep["missing"]
    if rate == "1":  # both lanes kept their 30 Hz schedule through the 1 s outage: ~60 refused
        assert 30 <= rep["lost"] <= 120
    else:  # publishing waited for the broker and the node: at most the frame in hand per lane
        assert rep["lost"] <= 2 and rep["missing"] <= 2, rep
    # The node resumed: the last frames of both lanes were answered.
    rows = [json.loads(ln) for ln in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    decided = {(r["source_vehicle_id"], r["source_frame_id"]) for r in rows if "decision" in r}
    assert {("car-a", 100 + FRAMES - 1), ("car-b", 100 + FRAMES - 1)} <= decided
    assert sum("lost" in r for r in rows) == rep["lost"]
    assert sum("missing" in r for r in rows) == rep["missing"]
    if rep["lost"]:
        assert any("lost to 1 broker outage" in f for f in rep["failures"])
    # Retained rules cleared on the restarted broker (r2 went out after it came back).
    assert rep["rules_not_cleared"] == []
    retained, probe = Recorder(), MqttBus(private_broker.url)
    probe.subscribe(RULES.subscription("ruledrive/v1"), retained, 1)
    probe.connect()
    time.sleep(0.3)
    probe.close()
    assert [t for t, p in retained.messages if p] == []
