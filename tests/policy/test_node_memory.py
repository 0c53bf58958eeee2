"""The node's service loop on the in-memory bus: conflation, batching, rejects, status, reload."""

from __future__ import annotations

import json
import shutil
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.codec import encode
from bus.envelope import pack_frame
from bus.memory import MemoryBus, Recorder
from bus.schema import DecisionMsg, ErrorReport, NodeState, NodeStatus
from bus.topics import CAMERA, DECISION, ERRORS, RULES, STATUS
from core.errors import ConfigError
from policy.model import PolicyModel
from policy.node import Node
from policy.settings import NodeSettings, load_settings
from tests.policy.conftest import header, jpeg, rules, rules_encoded
from tests.policy.fakemodel import build_fake_model

P = "ruledrive/v1"


def settings(**kw: object) -> NodeSettings:
    base = {"node_id": "node-t", "heartbeat_s": 0.2, "reload_poll_s": 0, "max_wait_us": 1000}
    return load_settings({**base, **kw})


@pytest.fixture
def bus() -> MemoryBus:
    return MemoryBus()


@pytest.fixture
def node(bus: MemoryBus, model: PolicyModel) -> Node:
    n = Node(settings(), bus, model)
    n.start()
    return n


@pytest.fixture
def running(node: Node) -> Iterator[Node]:
    t = threading.Thread(target=node.run, daemon=True)
    t.start()
    yield node
    node.stop()
    t.join(5)
    assert not t.is_alive()


def decisions(rec: Recorder) -> list[DecisionMsg]:
    return [DecisionMsg.model_validate_json(p) for _, p in rec.messages]


def errors(bus: MemoryBus) -> list[ErrorReport]:
    return [
        ErrorReport.model_validate_json(p)
        for t, p, _, _ in bus.published
        if t == ERRORS.topic(P, node_id="node-t")
    ]


def send_frame(
    bus: MemoryBus, vid: str = "car-1", frame_id: int = 0, image: bytes | None = None, **kw: object
) -> None:
    payload = pack_frame(header(vid, frame_id, **kw), jpeg() if image is None else image)
    bus.publish(CAMERA.topic(P, vehicle_id=vid), payload)


def send_rules(bus: MemoryBus, vid: str = "car-1", **kw: object) -> None:
    bus.publish(RULES.topic(P, vehicle_id=vid), encode(rules(vid, **kw)), 1, retain=True)


def test_end_to_end_and_status(bus: MemoryBus, running: Node) -> None:
    rec = Recorder()
    bus.subscribe(DECISION.subscription(P), rec)
    send_frame(bus, frame_id=1)  # before any rules -> fallback, still answered
    assert rec.wait_count(1)
    send_rules(bus, version="r7")
    send_frame(bus, frame_id=2)
    assert rec.wait_count(2)
    first, second = decisions(rec)
    assert (first.frame_id, first.reason, first.valid) == (1, "no_rules", False)
    assert (second.frame_id, second.valid, second.rules_version) == (2, True, "r7")
    status = NodeStatus.model_validate_json(bus.retained(STATUS.topic(P, node_id="node-t")))
    assert status.state == "online" and status.provider == "CPUExecutionProvider"
    assert status.model_version == "fake-1"
    time.sleep(0.3)  # one heartbeat with counters
    status = NodeStatus.model_validate_json(bus.retained(STATUS.topic(P, node_id="node-t")))
    assert status.counters["decisions"] == 2 and status.counters["fallback.no_rules"] == 1
    assert status.uptime_s > 0


def test_stop_publishes_offline_and_will_on_loss(bus: MemoryBus, model: PolicyModel) -> None:
    node = Node(settings(), bus, model)
    node.start()
    t = threading.Thread(target=node.run)
    t.start()
    node.stop()
    t.join(5)
    topic = STATUS.topic(P, node_id="node-t")
    assert NodeStatus.model_validate_json(bus.retained(topic)).state == "offline"
    other = Node(settings(node_id="node-u"), bus, model)
    other.start()
    assert (
        NodeStatus.model_validate_json(bus.retained(STATUS.topic(P, node_id="node-u"))).state
        == "online"
    )
    bus.lost()  # crash: the broker publishes the will
    assert (
        NodeStatus.model_validate_json(bus.retained(STATUS.topic(P, node_id="node-u"))).state
        == "offline"
    )


def test_conflation_keeps_newest_frame_per_vehicle(bus: MemoryBus, node: Node) -> None:
    send_rules(bus)
    assert rules_encoded(node)
    for i in range(5):
        send_frame(bus, "car-1", i)
    send_frame(bus, "car-2", 0)
    batch = node._collect(timeout=0.1)
    assert sorted((p.header.vehicle_id, p.header.frame_id) for p in batch) == [
        ("car-1", 4),
        ("car-2", 0),
    ]
    assert node.metrics.counters()["dropped.conflated"] == 4
    out = node.process(batch)
    assert [d.timings.batch_size for d in out if d.valid] == [1]  # car-2 has no rules
    assert node._collect(timeout=0.01) == []


def test_a_rule_set_being_encoded_holds_up_only_its_own_vehicle(
    bus: MemoryBus, node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    encode_rules = node.decider.model.encode_rules

    def gated(texts):  # type: ignore[no-untyped-def]
        if texts == ("Slow rule",):
            assert release.wait(10)
        return encode_rules(texts)

    monkeypatch.setattr(node.decider.model, "encode_rules", gated)
    send_rules(bus, "car-fast")
    assert rules_encoded(node)
    send_rules(bus, "car-slow", texts=("Slow rule",))
    send_frame(bus, "car-slow", 0)
    send_frame(bus, "car-fast", 0)
    batch = node._collect(timeout=0.5)  # car-slow's rule set is still being encoded
    assert [p.header.vehicle_id for p in batch] == ["car-fast"]
    assert all(d.valid for d in node.process(batch))
    send_frame(bus, "car-slow", 1)  # the newer frame replaces the waiting one
    assert node._collect(timeout=0.05) == []
    t0 = time.monotonic()
    threading.Timer(0.05, release.set).start()
    batch = node._collect(timeout=5)  # woken by the end of the encoding, not by the timeout
    assert [(p.header.vehicle_id, p.header.frame_id) for p in batch] == [("car-slow", 1)]
    assert time.monotonic() - t0 < 2
    assert [d.frame_id for d in node.process(batch)] == [1]
    assert node.metrics.counters()["dropped.conflated"] == 1


def test_frames_waiting_too_long_on_their_rule_set_are_answered_rules_pending(
    bus: MemoryBus, model: PolicyModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An outside probe held one vehicle's new rule set behind 20 other vehicles' long rule
    sets on the node's one encoder thread: its frames were replaced one by another and it got
    no answer at all for 10-13 s (and none while its rules changed faster than they were
    read). After max_rules_wait_ms its frames are answered rules_pending (SLOW_DOWN,
    valid=false), also while newer rule sets keep superseding the one in flight; once the
    newest is read, decisions are valid again."""
    node = Node(settings(max_rules_wait_ms=150), bus, model)
    node.start()
    release = threading.Event()
    encode_rules = node.decider.model.encode_rules

    def gated(texts):  # type: ignore[no-untyped-def]
        if texts[0].startswith("Slow"):
            assert release.wait(10)
        return encode_rules(texts)

    monkeypatch.setattr(node.decider.model, "encode_rules", gated)
    rec = Recorder()
    bus.subscribe(DECISION.subscription(P), rec)
    t = threading.Thread(target=node.run, daemon=True)
    t.start()
    try:
        send_rules(bus, version="r1")
        send_frame(bus, frame_id=0)
        assert rec.wait_count(1) and decisions(rec)[0].valid
        t0 = time.monotonic()
        send_rules(bus, version="r2", texts=("Slow rule 2",))
        send_frame(bus, frame_id=1)
        assert rec.wait_count(2, timeout=5)
        took = time.monotonic() - t0
        assert 0.12 < took < 3, took  # answered once the wait has passed: not before, not never
        for i in range(2, 12):  # 20 fps; a newer rule set every 0.1 s, none read meanwhile
            if i % 2 == 0:
                send_rules(bus, version=f"r{i + 1}", texts=(f"Slow rule {i + 1}",))
            send_frame(bus, frame_id=i)
            time.sleep(0.05)
        assert rec.wait_count(5, timeout=5)
        waited = decisions(rec)[1:]
        assert all(d.reason == "rules_pending" and not d.valid for d in waited), waited
        assert all(d.decision == "SLOW_DOWN" for d in waited)
        release.set()
        time.sleep(0.3)
        n = len(decisions(rec))
        send_frame(bus, frame_id=20)
        assert rec.wait_count(n + 1, timeout=5)
        last = decisions(rec)[-1]
        assert last.frame_id == 20 and last.valid and last.rules_version == "r11"
        waited = [d for d in decisions(rec) if d.reason == "rules_pending"]
        assert node.metrics.counters()["fallback.rules_pending"] == len(waited)
    finally:
        release.set()
        node.stop()
        t.join(5)


def test_micro_batch_across_vehicles(bus: MemoryBus, model: PolicyModel) -> None:
    node = Node(settings(max_batch_size=4), bus, model)
    node.start()
    for v in range(6):
        send_rules(bus, f"v{v}")
    assert rules_encoded(node)
    for v in range(6):
        send_frame(bus, f"v{v}")
    first = node._collect(0.1)
    assert len(first) == 4
    out = node.process(first)
    assert all(d.valid and d.timings.batch_size == 4 for d in out)
    assert len(node._collect(0.1)) == 2


def test_micro_batch_waits_for_active_vehicles(bus: MemoryBus, model: PolicyModel) -> None:
    node = Node(settings(max_batch_size=8, max_wait_us=200_000), bus, model)
    node.start()
    send_frame(bus, "a")
    assert len(node._collect(0.1)) == 1  # one active vehicle: no waiting
    send_frame(bus, "b")
    t0 = time.monotonic()
    threading.Timer(0.05, lambda: send_frame(bus, "a")).start()
    batch = node._collect(0.1)  # two active vehicles: waits (<= 200 ms) for the second
    assert len(batch) == 2 and time.monotonic() - t0 < 0.19


def test_stale_frames_skipped_and_answered(bus: MemoryBus, running: Node) -> None:
    rec = Recorder()
    bus.subscribe(DECISION.subscription(P), rec)
    send_rules(bus)
    send_frame(bus, stamp_ns=time.time_ns() - 10**10)
    assert rec.wait_count(1)
    assert decisions(rec)[0].reason == "stale_frame"
    assert running.metrics.counters()["dropped.stale"] == 1


def raw_frame(**fields: object) -> bytes:
    head = header().model_dump(mode="json") | fields
    return envelope(json.dumps({k: v for k, v in head.items() if v is not None}).encode())


def envelope(body: bytes) -> bytes:
    return b"RDF1" + struct.pack(">I", len(body)) + body + jpeg()


HUGE = b"9" * 401  # a 401-digit integer


BAD = [
    (CAMERA.topic(P, vehicle_id="car-1"), b"garbage", "bad_envelope"),
    (CAMERA.topic(P, vehicle_id="car-1"), b"RDF1\x00\x00\x00\x05{bad}" + jpeg(), "bad_json"),
    (
        CAMERA.topic(P, vehicle_id="car-1"),
        pack_frame(header(), jpeg()).replace(b'"schema_version":1', b'"schema_version":9'),
        "unsupported_schema_version",
    ),
    (CAMERA.topic(P, vehicle_id="car-1"), raw_frame(speed_kph=float("nan")), "bad_header"),
    (CAMERA.topic(P, vehicle_id="car-1"), raw_frame(speed_kph="fast"), "bad_header"),
    (CAMERA.topic(P, vehicle_id="car-1"), raw_frame(frame_id=None), "bad_header"),
    (CAMERA.topic(P, vehicle_id="car-2"), pack_frame(header("car-1"), jpeg()), "id_mismatch"),
    (CAMERA.topic(P, vehicle_id="car-1"), b"RDF1" + bytes(3 * 1024 * 1024), "payload_too_large"),
    (f"{P}/vehicles/bad$id/rules", encode(rules()), "bad_vehicle_id"),
    (RULES.topic(P, vehicle_id="car-1"), b"{not json", "bad_json"),
    (
        RULES.topic(P, vehicle_id="car-1"),
        json.dumps({"vehicle_id": "car-1"}).encode(),
        "bad_schema",
    ),
    (
        RULES.topic(P, vehicle_id="car-1"),
        encode(rules()).replace(b'"issued_at_ns":', b'"issued_at_ns":"x",  "_":'),
        "bad_schema",
    ),
    (f"{P}/vehicles/car-1/camera/rear", b"x", "unknown_topic"),
    # Integers beyond int64 once ended the node (OverflowError converting the frame age).
    (
        CAMERA.topic(P, vehicle_id="car-1"),
        envelope(b'{"vehicle_id":"car-1","frame_id":0,"speed_kph":3,"stamp_ns":' + HUGE + b"}"),
        "bad_header",
    ),
    (CAMERA.topic(P, vehicle_id="car-1"), raw_frame(frame_id=2**63), "bad_header"),
    (CAMERA.topic(P, vehicle_id="car-1"), raw_frame(stamp_ns=-1), "bad_header"),
    (
        RULES.topic(P, vehicle_id="car-1"),
        encode(rules()).replace(b'"issued_at_ns":', b'"issued_at_ns":' + HUGE + b', "_x":'),
        "bad_schema",
    ),
    (
        RULES.topic(P, vehicle_id="car-1"),
        encode(rules().model_copy(update={"issued_at_ns": time.time_ns() + 3600 * 10**9})),
        "rules_from_future",
    ),
]


@pytest.mark.parametrize(
    ("topic", "payload", "code"), BAD, ids=[b[2] + str(i) for i, b in enumerate(BAD)]
)
def test_bad_input_rejected_reported_and_node_keeps_serving(
    bus: MemoryBus, running: Node, topic: str, payload: bytes, code: str
) -> None:
    rec = Recorder()
    bus.subscribe(DECISION.subscription(P), rec)
    send_rules(bus)
    running.on_message(topic, payload)  # also topics the node would not subscribe to
    reports = errors(bus)
    assert [r.code for r in reports] == [code], reports
    assert reports[0].topic == topic
    assert running.metrics.counters()[f"rejected.{code}"] == 1
    send_frame(bus, frame_id=3)
    assert rec.wait_count(1)
    assert decisions(rec)[0].valid


def test_corrupt_jpeg_gets_stop_and_report(bus: MemoryBus, running: Node) -> None:
    rec = Recorder()
    bus.subscribe(DECISION.subscription(P), rec)
    send_rules(bus)
    send_frame(bus, frame_id=5, image=b"\xff\xd8\xff\xe0corrupt")
    # No rules for car-9 and a stale stamp: an unreadable picture is STOP whatever else is wrong.
    send_frame(bus, "car-9", frame_id=6, image=b"", stamp_ns=time.time_ns() - 10**10)
    assert rec.wait_count(2)
    got = {d.frame_id: (d.decision, d.reason, d.valid) for d in decisions(rec)}
    assert got[5] == ("STOP", "bad_image", False)
    assert got[6] == ("STOP", "bad_image", False)
    assert [r.code for r in errors(bus)] == ["bad_image", "bad_image"]


def bomb_jpeg(width: int, height: int) -> bytes:
    """A small JPEG whose frame header declares width x height (a decompression bomb)."""
    data = bytearray(jpeg())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def test_decompression_bomb_is_refused_before_decoding(bus: MemoryBus, running: Node) -> None:
    rec = Recorder()
    bus.subscribe(DECISION.subscription(P), rec)
    send_rules(bus)
    send_frame(bus, frame_id=1, image=bomb_jpeg(60000, 60000))
    assert rec.wait_count(1)
    send_frame(bus, frame_id=2, image=bomb_jpeg(30000, 30000))
    assert rec.wait_count(2)
    send_frame(bus, frame_id=3)
    assert rec.wait_count(3)
    got = {d.frame_id: (d.decision, d.reason, d.valid) for d in decisions(rec)}
    assert got[1] == got[2] == ("STOP", "image_too_large", False)
    assert got[3][1:] == (None, True)
    # Both counted, one reported: the second falls into the first one's report interval.
    assert [r.code for r in errors(bus)] == ["image_too_large"]
    assert running.metrics.counters()["rejected.image_too_large"] == 2


def test_frame_from_the_future_is_not_trusted(bus: MemoryBus, running: Node) -> None:
    rec = Recorder()
    bus.subscribe(DECISION.subscription(P), rec)
    send_rules(bus)
    send_frame(bus, frame_id=1, stamp_ns=time.time_ns() + 10 * 365 * 86400 * 10**9)
    assert rec.wait_count(1)
    d = decisions(rec)[0]
    assert (d.decision, d.reason, d.valid) == ("SLOW_DOWN", "bad_timestamp", False)
    assert [r.code for r in errors(bus)] == ["bad_timestamp"]


def test_a_failing_frame_is_answered_and_the_others_still_decided(
    bus: MemoryBus, running: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = Recorder()
    bus.subscribe(DECISION.subscription(P), rec)
    send_rules(bus)
    check = running.decider._check

    def flaky(job, now, ahead=None):
        if job.header.frame_id == 13:
            raise RuntimeError("a bug on one frame")
        return check(job, now, ahead)

    monkeypatch.setattr(running.decider, "_check", flaky)
    send_frame(bus, frame_id=13)
    assert rec.wait_count(1)
    send_frame(bus, frame_id=14)
    assert rec.wait_count(2)
    got = {d.frame_id: (d.decision, d.reason) for d in decisions(rec)}
    assert got == {13: ("STOP", "internal_error"), 14: (got[14][0], None)}


def test_a_failing_batch_is_answered_and_the_node_keeps_serving(
    bus: MemoryBus, running: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = Recorder()
    bus.subscribe(DECISION.subscription(P), rec)
    send_rules(bus)
    decide = running.decider.decide_batch
    calls = []

    def broken_once(jobs):
        calls.append(len(jobs))
        if len(calls) == 1:
            raise RuntimeError("a bug in the batch path")
        return decide(jobs)

    monkeypatch.setattr(running.decider, "decide_batch", broken_once)
    send_frame(bus, frame_id=1)
    assert rec.wait_count(1)
    send_frame(bus, frame_id=2)
    assert rec.wait_count(2)
    got = {d.frame_id: (d.decision, d.reason, d.valid) for d in decisions(rec)}
    assert got[1] == ("STOP", "internal_error", False)
    assert got[2][1:] == (None, True)


def test_rules_retained_cleared_and_older_refused(bus: MemoryBus, node: Node) -> None:
    send_rules(bus, version="new")
    old = rules(version="old").model_copy(update={"issued_at_ns": 1})
    bus.publish(RULES.topic(P, vehicle_id="car-1"), encode(old), 1, retain=False)
    assert node.rules["car-1"].version == "new"
    assert [e.code for e in errors(bus)] == ["rules_replayed"]  # reported, not only counted
    bus.publish(RULES.topic(P, vehicle_id="car-1"), b"", 1, retain=True)
    assert "car-1" not in node.rules
    send_rules(bus, "car-3")  # a node that subscribes later gets retained rules
    late = Node(settings(node_id="late"), bus, node.decider.model)
    late.start()
    assert set(late.rules) == {"car-3"}


def test_hot_reload_keeps_old_model_on_failure(
    tmp_path: Path, bus: MemoryBus, fake_model_path: Path
) -> None:
    path = tmp_path / "m.onnx"
    shutil.copy(fake_model_path, path)
    node = Node(settings(model_path=path, reload_poll_s=0.05), bus)
    node.start()
    t = threading.Thread(target=node.run)
    t.start()
    try:
        assert node.decider.model.version == "fake-1"
        build_fake_model(tmp_path / "m2.onnx", version="fake-2").replace(path)  # atomic swap
        deadline = time.monotonic() + 5
        while node.decider.model.version != "fake-2" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert node.decider.model.version == "fake-2"
        status = NodeStatus.model_validate_json(bus.retained(STATUS.topic(P, node_id="node-t")))
        assert status.model_version == "fake-2"
        path.write_bytes(b"broken")
        node.request_reload()  # what SIGHUP does
        deadline = time.monotonic() + 5
        while "reloads.failed" not in node.metrics.counters() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert node.decider.model.version == "fake-2"
        assert "model_reload_failed" in [r.code for r in errors(bus)]
    finally:
        node.stop()
        t.join(5)


def test_settings_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RULEDRIVE_MAX_BATCH_SIZE", "3")
    assert load_settings().max_batch_size == 3
    assert load_settings({"max_batch_size": "5"}).max_batch_size == 5  # flags win
    for bad in (
        {"mqtt_url": "http://x"},
        {"max_batch_size": 0},
        {"node_id": "a b"},
        {"providers": "gpu"},
        {"topic_prefix": "a/#"},
        # MQTT and brokers carry neither: found out only as "no connection" (outside probe)
        {"topic_prefix": "p" * 70_000},
        {"topic_prefix": "/".join(["l"] * 250)},
        {"heartbeat_s": 0.0001},  # thousands of retained statuses a second to every vehicle
        {"tls_ca": "/nope"},
        {"confidence_threshold": 2},
    ):
        with pytest.raises(ConfigError, match="invalid settings"):
            load_settings(bad)
    assert load_settings({"topic_prefix": "/".join(["l"] * 32)}).topic_prefix.count("/") == 31


def test_metrics_endpoint(bus: MemoryBus, model: PolicyModel) -> None:
    import urllib.request

    from tests.conftest import free_port

    port = free_port()
    node = Node(settings(metrics_port=port), bus, model)
    node.start()
    send_rules(bus)
    assert rules_encoded(node)
    send_frame(bus)
    node.process(node._collect(0.1))
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert "ruledrive_decisions_total{decision=" in body
    assert "ruledrive_inference_ms_bucket" in body and "ruledrive_batch_size_count 1.0" in body


def test_the_metrics_endpoint_closes_idle_connections_and_bounds_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A connection that sends half a request held a thread and a file descriptor for ever
    (1,000 of them starved the node of files); now one idle for the handler's timeout is
    closed, connections past the bound are closed at once, and a scrape is answered again as
    soon as the idle ones are gone."""
    import socket
    import urllib.request

    import policy.metrics as pm
    from policy.metrics import NodeMetrics
    from tests.conftest import free_port

    monkeypatch.setattr(pm._MetricsHandler, "timeout", 1.0)
    monkeypatch.setattr(pm, "METRICS_CONNECTIONS", 3)
    port = free_port()
    NodeMetrics().serve(port)
    idle = []
    for _ in range(3):  # every slot, each with half a request
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /metrics HTTP/1.1\r\n")
        idle.append(s)
    time.sleep(0.2)  # the server has taken all three
    over = socket.create_connection(("127.0.0.1", port), timeout=10)
    over.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    assert over.recv(64) == b""  # closed unanswered: no slot
    assert all(s.recv(64) == b"" for s in idle)  # closed after a second idle
    url = f"http://127.0.0.1:{port}/metrics"
    assert b"ruledrive_" in urllib.request.urlopen(url, timeout=5).read()
    for s in (*idle, over):
        s.close()


def test_status_counts_a_clash_of_node_ids(model: PolicyModel) -> None:
    """The bus's takeovers and flaps (another process with this node id, bus.mqtt) reach the
    status, where an operator looks; none are there when there are none."""

    class Clashing(MemoryBus):
        takeovers, flaps = 0, 0

    bus = Clashing()
    node = Node(settings(), bus, model)
    node.start()
    topic = STATUS.topic(P, node_id="node-t")
    counters = NodeStatus.model_validate_json(bus.retained(topic)).counters
    assert "mqtt_takeovers" not in counters and "mqtt_flaps" not in counters
    bus.takeovers, bus.flaps = 1, 4
    node.publish_status(NodeState.ONLINE)
    counters = NodeStatus.model_validate_json(bus.retained(topic)).counters
    assert counters["mqtt_takeovers"] == 1 and counters["mqtt_flaps"] == 4
    node.stop()
