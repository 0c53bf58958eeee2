"""Bounded work under hostile load: rate-limited reports, fair service, bounded state."""

from __future__ import annotations

import pytest

from bus.codec import encode
from bus.envelope import pack_frame
from bus.memory import MemoryBus, Recorder
from bus.schema import DecisionMsg, ErrorReport
from bus.topics import CAMERA, DECISION, ERRORS, RULES
from policy.model import PolicyModel
from policy.node import Node
from policy.reports import ReportLimiter
from policy.settings import FRAME_OVERHEAD_BYTES, load_settings
from tests.policy.conftest import header, jpeg, rules, rules_encoded

P = "ruledrive/v1"


class Clock:
    def __init__(self) -> None:
        self.ns = 10**18

    def __call__(self) -> int:
        return self.ns


def test_limiter_reports_the_first_then_one_aggregate_per_interval() -> None:
    clock = Clock()
    lim = ReportLimiter("n", interval_s=1.0, clock=clock)
    first = lim.offer("t/a", "t/a", "bad_json", "x")
    assert first is not None and first.count == 1 and first.window_ms == 0
    assert [lim.offer("t/a", "t/a", "bad_json", f"x{i}") for i in range(999)] == [None] * 999
    other = lim.offer("t/b", "t/b", "bad_json", "y")  # another source is not held back
    assert other is not None
    assert lim.flush() == []  # the interval has not ended
    clock.ns += 10**9
    (agg,) = lim.flush()
    assert (agg.code, agg.count, agg.detail, agg.window_ms) == ("bad_json", 999, "x998", 1000.0)
    assert lim.offer("t/a", "t/a", "bad_json", "z") is not None  # a new interval


def test_limiter_memory_is_bounded_whatever_the_sources() -> None:
    clock = Clock()
    lim = ReportLimiter("n", interval_s=1.0, max_keys=16, clock=clock, max_immediate=10**6)
    published = [lim.offer(f"t/{i}", f"t/{i}", "bad_json", "x") for i in range(10_000)]
    assert len(lim) <= 17  # 16 sources + the shared '*' entry of the code
    assert sum(r is not None for r in published) == 17
    clock.ns += 10**9
    (agg,) = lim.flush()
    assert agg.count == 10_000 - 17


def test_an_attacker_varying_the_source_gets_a_bounded_number_of_reports() -> None:
    clock = Clock()
    lim = ReportLimiter("n", interval_s=1.0, clock=clock, max_immediate=20)
    for second in range(3):
        now_reports = [lim.offer(f"t/{second}/{i}", "t", "bad_json", "x") for i in range(5000)]
        assert sum(r is not None for r in now_reports) == 21  # 20 sources + the shared entry
        clock.ns += 10**9
        (agg,) = lim.flush()
        assert agg.count == 5000 - 21


@pytest.fixture
def bus() -> MemoryBus:
    return MemoryBus()


def _node(bus: MemoryBus, model: PolicyModel, **kw: object) -> Node:
    base = {
        "node_id": "node-o",
        "heartbeat_s": 60,
        "reload_poll_s": 0,
        "max_wait_us": 0,
        "max_batch_size": 1,
    }
    node = Node(load_settings({**base, **kw}), bus, model)
    node.start()
    return node


def _reports(bus: MemoryBus) -> list[ErrorReport]:
    return [
        ErrorReport.model_validate_json(p)
        for t, p, _, _ in bus.published
        if t == ERRORS.topic(P, node_id="node-o")
    ]


def test_a_flood_of_bad_messages_gives_one_report_per_interval(
    bus: MemoryBus, model: PolicyModel
) -> None:
    node = _node(bus, model, error_report_interval_s=60)
    for _ in range(5000):
        node.on_message(CAMERA.topic(P, vehicle_id="evil"), b"garbage")
    assert [(r.code, r.count) for r in _reports(bus)] == [("bad_envelope", 1)]
    assert node.metrics.counters()["rejected.bad_envelope"] == 5000


def test_a_waiting_vehicle_keeps_its_place_in_line(bus: MemoryBus, model: PolicyModel) -> None:
    node = _node(bus, model)
    rec = Recorder()
    bus.subscribe(DECISION.subscription(P), rec)
    for vid in ("steady", "busy"):
        bus.publish(RULES.topic(P, vehicle_id=vid), encode(rules(vid)), 1, True)
    assert rules_encoded(node)
    bus.publish(CAMERA.topic(P, vehicle_id="steady"), pack_frame(header("steady", 1), jpeg()))
    for i in range(3):  # the busy vehicle's newer frames arrive after the steady one's
        bus.publish(CAMERA.topic(P, vehicle_id="busy"), pack_frame(header("busy", 10 + i), jpeg()))
    first = node._collect(0)
    assert [p.header.vehicle_id for p in first] == ["steady"]
    second = node._collect(0)
    assert [(p.header.vehicle_id, p.header.frame_id) for p in second] == [("busy", 12)]


def test_frames_beyond_the_byte_budget_are_refused_and_reported(
    bus: MemoryBus, model: PolicyModel
) -> None:
    frame = jpeg()
    node = _node(
        bus,
        model,
        max_payload_bytes=len(frame) + 1024,
        max_pending_bytes=3 * (len(frame) + FRAME_OVERHEAD_BYTES) + 1024,
    )
    for i in range(5):
        vid = f"car-{i}"
        bus.publish(CAMERA.topic(P, vehicle_id=vid), pack_frame(header(vid, 1), frame))
    assert len(node._pending) == 3
    assert [r.code for r in _reports(bus)] == ["node_overloaded", "node_overloaded"]
    # A waiting vehicle's newer frame still replaces its old one (no growth).
    bus.publish(CAMERA.topic(P, vehicle_id="car-0"), pack_frame(header("car-0", 2), frame))
    assert node._pending["car-0"].header.frame_id == 2


def test_frames_without_a_picture_count_against_the_budget_too(
    bus: MemoryBus, model: PolicyModel
) -> None:
    """A frame's header and queue entry cost memory and work whatever its JPEG: a flood of
    header-only frames from new vehicle ids is refused past the budget (it once queued 20,000
    and delayed a steady vehicle's answer by 43 s), and each queued one is answered."""
    node = _node(
        bus, model, max_payload_bytes=1024, max_pending_bytes=10 * FRAME_OVERHEAD_BYTES + 1023
    )
    for i in range(40):
        bus.publish(CAMERA.topic(P, vehicle_id=f"n{i}"), pack_frame(header(f"n{i}", 1), b""))
    assert len(node._pending) == 10
    assert {r.code for r in _reports(bus)} == {"node_overloaded"}
    rec = Recorder()
    bus.subscribe(DECISION.subscription(P), rec)
    while node._pending:
        node.process(node._collect(0))
    got = [DecisionMsg.model_validate_json(p) for _, p in rec.messages]
    assert [d.vehicle_id for d in got] == [f"n{i}" for i in range(10)]  # in line order
    assert {(d.valid, d.reason, d.decision) for d in got} == {(False, "bad_image", "STOP")}
    assert node._pending_bytes == 0


def test_rule_sets_are_bounded_and_silent_vehicles_give_up_their_place(
    bus: MemoryBus, model: PolicyModel
) -> None:
    """max_vehicles bounds the rule sets held. A vehicle silent for vehicle_ttl_s sheds its
    encodings but keeps its rule set (the broker sends a retained one only at subscription, so
    a dropped one never came back: the vehicle was answered no_rules for good), and gives up
    its place only to a new vehicle when the node is full, the longest silent first."""
    import time

    node = _node(bus, model, max_vehicles=3, vehicle_ttl_s=5)
    for i in range(5):
        bus.publish(RULES.topic(P, vehicle_id=f"car-{i}"), encode(rules(f"car-{i}")), 1, True)
    assert sorted(node.rules) == ["car-0", "car-1", "car-2"]
    assert [r.code for r in _reports(bus)] == ["too_many_vehicles"] * 2
    assert node.decider.pending_encodings == 3  # encoded on arrival, no frame used them yet
    node._last_heard["car-1"] -= 1  # car-1 went silent first
    node.housekeeping(time.monotonic() + 10)
    assert sorted(node.rules) == ["car-0", "car-1", "car-2"]  # rule sets kept
    assert node.decider.pending_encodings == 0  # their encodings are not kept
    assert node.metrics.counters()["vehicles.dormant"] == 3
    # A new vehicle takes the place of the one silent longest.
    bus.publish(RULES.topic(P, vehicle_id="car-4"), encode(rules("car-4")), 1, True)
    assert sorted(node.rules) == ["car-0", "car-2", "car-4"]
    assert node.metrics.counters()["vehicles.forgotten"] == 1
    # A silent vehicle that comes back is decided under its rule set, encoded again.
    rec = Recorder()
    bus.subscribe(DECISION.subscription(P), rec)
    bus.publish(CAMERA.topic(P, vehicle_id="car-0"), pack_frame(header("car-0", 9), jpeg()))
    assert rules_encoded(node)
    while node._pending:
        node.process(node._collect(0))
    (d,) = [DecisionMsg.model_validate_json(p) for _, p in rec.messages]
    assert d.vehicle_id == "car-0" and d.reason != "no_rules" and d.rules_version == "r1"
    bus.publish(RULES.topic(P, vehicle_id="car-4"), b"", 1, True)  # cleared
    assert "car-4" not in node.rules


def test_decisions_still_flow_after_the_flood(bus: MemoryBus, model: PolicyModel) -> None:
    node = _node(bus, model)
    rec = Recorder()
    bus.subscribe(DECISION.subscription(P), rec)
    bus.publish(RULES.topic(P, vehicle_id="car-1"), encode(rules()), 1, True)
    for _ in range(2000):
        node.on_message(RULES.topic(P, vehicle_id="car-1"), b"{not json")
    assert rules_encoded(node)
    bus.publish(CAMERA.topic(P, vehicle_id="car-1"), pack_frame(header("car-1", 7), jpeg()))
    node.process(node._collect(0))
    (d,) = [DecisionMsg.model_validate_json(p) for _, p in rec.messages]
    assert d.valid and d.frame_id == 7


def test_a_budget_smaller_than_one_frame_is_refused_at_start() -> None:
    """Each waiting frame counts its JPEG plus FRAME_OVERHEAD_BYTES: a budget below the largest
    frame the node takes would answer such frames node_overloaded for ever."""
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="max_pending_bytes 1500 is less than one frame"):
        load_settings({"max_pending_bytes": 1500, "max_payload_bytes": 1024})
    with pytest.raises(ConfigError, match="less than one frame"):
        load_settings({"max_pending_bytes": 2 * 1024 * 1024})  # the default payload limit
    ok = load_settings(
        {"max_pending_bytes": 1024 + FRAME_OVERHEAD_BYTES, "max_payload_bytes": 1024}
    )
    assert ok.max_pending_bytes == 1024 + FRAME_OVERHEAD_BYTES
