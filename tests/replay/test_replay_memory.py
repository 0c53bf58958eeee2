"""The replayer on the in-memory bus with a real Node (fake model, a TEST DOUBLE)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.memory import MemoryBus
from bus.schema import DecisionLabel, RuleSet
from bus.topics import LABEL, RULES
from policy.node import Node, serve_in_thread
from policy.settings import load_settings
from replay.drives import plan_lanes
from replay.player import Replayer
from tests.policy.fakemodel import build_fake_model
from tests.replay.replay_helpers import drive


@pytest.fixture(scope="module")
def fake_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fake_model(tmp_path_factory.mktemp("model") / "fake.onnx")


@pytest.fixture
def served(fake_model: Path) -> Iterator[tuple[Node, MemoryBus]]:
    bus = MemoryBus()
    settings = load_settings(
        {
            "model_path": fake_model,
            "node_id": "mem-node",
            "heartbeat_s": 60,
            "reload_poll_s": 0,
            "max_wait_us": 0,
        }
    )
    with serve_in_thread(Node(settings, bus), join_s=10) as node:
        yield node, bus


@pytest.fixture
def node_bus(served: tuple[Node, MemoryBus]) -> MemoryBus:
    return served[1]


def _conflated(node: Node) -> int:
    return node.metrics.counters().get("dropped.conflated", 0)


@pytest.mark.parametrize("rate", [None, 2.0])
def test_replay_through_node_on_memory_bus(
    served: tuple[Node, MemoryBus], rate: float | None
) -> None:
    node, node_bus = served
    drives = [drive("car-a", 6, rule_change_at=3), drive("car-b", 4)]
    if rate is not None:
        # A first replay fills the node's rule cache, so the paced one measures the replayer,
        # not the encoder.
        warm = Replayer(node_bus, plan_lanes(drives), None, timeout_s=5)
        warm.attach()
        assert warm.run().decisions_matched == 10
        node_bus.published.clear()
    r = Replayer(node_bus, plan_lanes(drives), rate, timeout_s=5)
    r.attach()
    assert r.wait_for_node(2)
    conflated_before = _conflated(node)
    t0 = time.perf_counter()
    report = r.run()
    assert report.frames_planned == report.frames_published == 10
    if rate is None:  # one frame per vehicle in flight: every frame is answered
        conflated = 0
        assert _conflated(node) == conflated_before
    else:
        # A paced replay does not wait for decisions, and the node answers only a vehicle's
        # newest frame: on a loaded machine a frame can be replaced by the next one before the
        # node takes it. Such a frame is counted by the node (dropped.conflated) and by the
        # replay (missing); any other loss fails. 6 frames at 30 Hz, 2x real time: the last one
        # is sent 83 ms after the first. How many are conflated depends on the machine's load
        # (a CI run saw 3 of 10 with a 57 ms stall; keeping up is `ruledrive bench node`'s
        # to measure, not a timed test's): only each vehicle's last frame, which nothing
        # replaces, must always be answered.
        conflated = _conflated(node) - conflated_before
        assert conflated <= report.frames_planned - len(drives), report
        assert time.perf_counter() - t0 >= 0.08
    assert report.decisions_matched == 10 - conflated, (report, conflated)
    assert report.missing == conflated and report.lost == 0, report
    assert report.labelled == report.decisions_matched and report.accuracy is not None
    assert report.node_ids == ["mem-node"]
    assert report.latency_ms["p99"] is not None
    published = [t for t, *_ in node_bus.published]
    assert sum(t.endswith("/label") for t in published) == 10
    for vid in ("car-a", "car-b"):  # retained rules are cleared after the replay
        assert node_bus.retained(RULES.topic(vehicle_id=vid)) is None
    versions = [
        RuleSet.model_validate_json(p).version
        for t, p, _, _ in node_bus.published
        if t == RULES.topic(vehicle_id="car-a") and p
    ]
    assert versions == ["r1", "r2"]
    assert LABEL.topic(vehicle_id="car-a") in published
    assert report.check(min_accuracy=0.0, max_missing=conflated / 10) == []


def test_replay_many_vehicles(node_bus: MemoryBus) -> None:
    r = Replayer(
        node_bus,
        plan_lanes([drive("car-a", 3)], vehicles=4),
        None,
        timeout_s=5,
        publish_labels=False,
    )
    r.attach()
    report = r.run()
    assert report.vehicles == 4 and report.decisions_matched == 12
    assert not any(t.endswith("/label") for t, *_ in node_bus.published)


def test_expired_rules_are_expired_in_replay(node_bus: MemoryBus) -> None:
    r = Replayer(node_bus, plan_lanes([drive("car-x", 5, expires_after=2)]), None, timeout_s=5)
    r.attach()
    r.run()
    reasons = [m.reason for _, m, _ in r.board.matched()]
    assert reasons[:2] != ["rules_expired"] * 2
    assert reasons[3:] == ["rules_expired", "rules_expired"]


def test_node_down_aborts_with_partial_report() -> None:
    bus = MemoryBus()
    bus.connect()
    r = Replayer(bus, plan_lanes([drive("car-a", 3), drive("car-b", 3)]), None, timeout_s=0.5)
    r.attach()
    assert not r.wait_for_node(0.1)
    t0 = time.perf_counter()
    report = r.run()
    assert time.perf_counter() - t0 < 3
    assert report.aborted and "no decision" in report.aborted
    assert report.decisions_matched == 0 and report.missing == report.frames_published == 2
    assert report.check()[0].startswith("aborted")


def test_labels_used_for_accuracy(node_bus: MemoryBus) -> None:
    all_stop = drive("car-s", 4, labels=(DecisionLabel.STOP,))
    r = Replayer(node_bus, plan_lanes([all_stop]), None, timeout_s=5)
    r.attach()
    report = r.run()
    stop = list(DecisionLabel).index(DecisionLabel.STOP)
    assert sum(report.confusion_matrix[stop]) == 4


def _drop_at(
    bus: MemoryBus, nth_frame: int, back_after_s: float | None, hook_late_s: float = 0.0
) -> None:
    """The connection is lost just before the nth camera frame is published (that publish then
    fails), and comes back ``back_after_s`` later (None: never). ``hook_late_s``: publishes fail
    that long before the disconnect hooks run (as with paho)."""
    publish, frames = bus.publish, [0]

    def wrapped(topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        if topic.endswith("/camera/front"):
            frames[0] += 1
            if frames[0] == nth_frame:
                if hook_late_s:
                    bus._connected = False
                    threading.Timer(hook_late_s, bus.lost).start()
                else:
                    bus.lost()
                if back_after_s is not None:
                    threading.Timer(back_after_s, bus.connect).start()
        publish(topic, payload, qos, retain)

    bus.publish = wrapped  # type: ignore[method-assign]


@pytest.mark.parametrize("rate", [None, 2.0])
def test_broker_outage_is_counted_and_the_replay_goes_on(
    node_bus: MemoryBus, rate: float | None
) -> None:
    # timeout_s: a loaded CI machine (three jobs on two cores) once went 3 s without a decision
    # here and the replay ended as "node down"
    # 90 frames: 1.5 s at 60 frames/s, so frames are still due after the 0.25 s outage even
    # when a loaded machine delays the reconnect's timer (a CI run once lost every frame after
    # the drop of a 30-frame drive, 0.5 s long)
    n = 90
    r = Replayer(node_bus, plan_lanes([drive("car-a", n)]), rate, timeout_s=5)
    r.attach()
    assert r.wait_for_node(2)
    _drop_at(node_bus, 6, back_after_s=0.25)
    report = r.run()
    assert report.aborted is None, report.aborted
    assert report.frames_published == report.frames_planned == n
    assert report.frames_published == report.decisions_matched + report.missing + report.lost
    [outage] = report.outages
    assert outage["back_at_s"] is not None and 0.2 <= outage["down_s"] < 2
    assert outage["frames_lost"] == report.lost
    # at 60 frames/s the node may conflate a frame anywhere: not all missing ones are the outage's
    assert outage["frames_unanswered"] <= report.missing
    if rate is None:  # publishing waited for the broker: only the frame in hand was lost
        assert report.lost == 1 and report.missing == 0 and report.decisions_matched == n - 1
    else:  # the schedule went on (60 frames/s): the frames due in the 0.25 s gap were lost
        assert 5 <= report.lost <= n - 6 - 10, report.lost  # and later ones got through
        assert r.board.is_decided("car-a", n - 1), "no decision after the broker came back"
    assert report.rules_not_cleared == []
    assert node_bus.retained(RULES.topic(vehicle_id="car-a")) is None
    assert any(f.startswith("--max-missing") for f in report.check())


def test_refused_publish_before_the_disconnect_hook_loses_one_frame(node_bus: MemoryBus) -> None:
    # At --rate max a refused frame is not in flight: without waiting for the hook the replay
    # would lose every remaining frame in the moment before the bus says it is disconnected.
    r = Replayer(node_bus, plan_lanes([drive("car-a", 30)]), None, timeout_s=3)
    r.attach()
    assert r.wait_for_node(2)
    _drop_at(node_bus, 6, back_after_s=0.3, hook_late_s=0.1)
    report = r.run()
    assert report.aborted is None and len(report.outages) == 1
    assert report.lost == 1 and report.decisions_matched == 29
    assert report.outages[0]["frames_lost"] == 1  # refused before the hook: still this outage's


def test_broker_that_never_returns_gives_a_partial_report(node_bus: MemoryBus) -> None:
    # 30 frames in real time take 1 s: the broker is away longer than timeout_s before the end.
    r = Replayer(node_bus, plan_lanes([drive("car-a", 30)]), 1.0, timeout_s=0.5)
    r.attach()
    assert r.wait_for_node(2)
    _drop_at(node_bus, 3, back_after_s=None)
    t0 = time.perf_counter()
    report = r.run()
    assert time.perf_counter() - t0 < 3  # gave up, and waited for the broker to clear rules
    assert report.aborted and report.aborted.startswith("broker unreachable for 0.")
    assert report.frames_published == report.decisions_matched + report.missing + report.lost
    assert report.lost >= 1 and report.outages[0]["back_at_s"] is None
    assert report.frames_published < 30  # the frames after it gave up were never tried
    assert report.rules_not_cleared == ["car-a"]


def test_one_unanswered_frame_at_rate_max_is_missing_not_the_end_of_the_replay(
    served: tuple[Node, MemoryBus],
) -> None:
    """One frame in flight per vehicle: a single decision that never comes was taken for a
    node that is gone, and the replay ended after 6 of 40 frames. It is given up (missing),
    and the replay goes on; a node that answers nothing still ends it (the test above)."""
    from bus.topics import CAMERA

    node, bus = served
    real = node.on_message

    def drop_frame_2_of_car_a(topic: str, payload: bytes) -> None:
        from bus.envelope import unpack_frame

        if topic == CAMERA.topic(vehicle_id="replay-000"):
            header, _ = unpack_frame(payload)
            if header.frame_id == 2:
                return  # lost between the broker and the node
        real(topic, payload)

    node.on_message = drop_frame_2_of_car_a  # type: ignore[method-assign]
    bus.unsubscribe(CAMERA.subscription(node.settings.topic_prefix), real)
    bus.subscribe(CAMERA.subscription(node.settings.topic_prefix), drop_frame_2_of_car_a, 0)
    r = Replayer(bus, plan_lanes([drive("car-a", 8)], vehicles=1), None, timeout_s=0.5)
    r.attach()
    report = r.run()
    assert report.aborted is None
    assert (report.frames_published, report.decisions_matched, report.missing) == (8, 7, 1)


def test_decisions_on_another_vehicles_topic_or_for_another_frame_are_not_answers() -> None:
    """A vehicle reads only its own decision topic: a node that publishes replay-000's answer
    on replay-001's topic (and the reverse) passed as 80 of 80 matched. Now such decisions,
    and ones naming a frame's ids with another capture stamp, are counted and fail the run."""
    from bus.codec import encode
    from bus.envelope import unpack_frame
    from bus.topics import CAMERA, DECISION
    from tests.replay.replay_helpers import decision

    bus = MemoryBus()
    bus.connect()

    def fake_node(topic: str, payload: bytes) -> None:
        header, _ = unpack_frame(payload)
        other = "replay-001" if header.vehicle_id == "replay-000" else "replay-000"
        wrong_stamp = header.frame_id == 2  # frame 2 of each: an answer to another capture
        msg = decision(header.vehicle_id, header.frame_id, DecisionLabel.STOP).model_copy(
            update={"frame_stamp_ns": header.stamp_ns + (1 if wrong_stamp else 0)}
        )
        routed = other if header.frame_id == 1 else header.vehicle_id  # frame 1: wrong topic
        bus.publish(DECISION.topic(vehicle_id=routed), encode(msg), 1)

    bus.subscribe(CAMERA.subscription(), fake_node, 0)
    r = Replayer(bus, plan_lanes([drive("a", 4), drive("b", 4)], vehicles=2), None, timeout_s=0.3)
    r.attach()
    report = r.run()
    assert report.aborted is None
    assert (report.misrouted, report.wrong_frame) == (2, 2)
    assert report.decisions_matched == 4  # frames 0 and 3 of each vehicle
    assert any("another vehicle's topic" in f for f in report.check())
