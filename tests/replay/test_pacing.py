"""A replay at a given rate says whether it kept its schedule (issue 12: replay at fleet scale
holds its rate or says it cannot), with the client's own cost measured."""

from __future__ import annotations

import time

from bus.memory import MemoryBus
from replay.drives import plan_lanes
from replay.player import Replayer
from replay.scoreboard import HOLD_P99_MS, pacing
from tests.replay.replay_helpers import drive


class _SlowBus(MemoryBus):
    """A bus whose every publish costs ``cost_s`` of the caller's time (a client that cannot
    keep up, made deterministic)."""

    def __init__(self, cost_s: float) -> None:
        super().__init__()
        self.cost_s = cost_s

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        time.sleep(self.cost_s)
        super().publish(topic, payload, qos, retain)


def _replay(bus: MemoryBus, vehicles: int, rate: float):  # type: ignore[no-untyped-def]
    lanes = plan_lanes([drive(f"car-{i}", 10) for i in range(vehicles)])
    r = Replayer(bus, lanes, rate, timeout_s=0.2)
    r.attach()
    return r.run()


def test_a_replay_that_keeps_up_says_so() -> None:
    report = _replay(MemoryBus(), 2, 1.0)
    assert report.pacing["held"] and report.pacing["behind_p99_ms"] < HOLD_P99_MS
    assert 0 <= report.pacing["client_cpu_pct"] <= 200
    assert not any("not held" in f for f in report.check(max_missing=1.0))


def test_a_replay_that_falls_behind_says_it_cannot_hold_the_rate() -> None:
    # 64 vehicles x 10 frames due within 0.3 s (rate 1), each publish costing 2 ms: ~1.3 s of
    # publishing for a 0.3 s schedule.
    report = _replay(_SlowBus(0.002), 64, 1.0)
    assert not report.pacing["held"]
    assert report.pacing["behind_p99_ms"] > HOLD_P99_MS
    failures = report.check(max_missing=1.0)
    assert any("--rate 1 not held" in f and "client, not the node" in f for f in failures)
    assert report.to_dict()["pacing"]["held"] is False


def test_pacing_of_a_rate_max_replay_is_empty() -> None:
    assert pacing([1.0, 2.0], 0.1, 1.0, None) == {}
    assert pacing([], 0.1, 1.0, 2.0) == {}
    got = pacing([0.5] * 99 + [150.0] * 2, 0.5, 1.0, 2.0)
    assert got["held"] is False and got["behind_max_ms"] == 150.0 and got["client_cpu_pct"] == 50.0
