"""Node replicas sharing vehicles through an MQTT 5 shared subscription (``share_group``).

Every frame is answered exactly once, by one replica; every replica holds every rule set (the
retained ones included); a replica that stops or dies hands its share to the others; a replica on
another model version says so in its status and in each decision it makes.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.codec import encode
from bus.envelope import pack_frame
from bus.memory import MemoryBus, Recorder
from bus.mqtt import MqttBus
from bus.schema import DecisionMsg, NodeStatus
from bus.topics import CAMERA, DECISION, RULES, STATUS
from core.errors import ConfigError
from policy.model import PolicyModel
from policy.node import Node, serve_in_thread
from policy.settings import load_settings
from ruledrive.bench_node import serve_command
from tests.policy.conftest import header, jpeg, rules
from tests.policy.fakemodel import build_fake_model

ROOT = Path(__file__).resolve().parents[2]
VEHICLES = 6


@pytest.fixture(scope="module")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> PolicyModel:
    """The fake model under another version: a replica started on a different model."""
    path = build_fake_model(tmp_path_factory.mktemp("model-2") / "fake-2.onnx", version="fake-2")
    return PolicyModel.load(path, "auto")


def _settings(url: str, prefix: str, node_id: str, group: str | None) -> dict[str, object]:
    return {
        "mqtt_url": url,
        "topic_prefix": prefix,
        "node_id": node_id,
        "share_group": group,
        "heartbeat_s": 0.5,
        "reload_poll_s": 0,
        "max_frame_age_ms": 5000,  # a loaded machine must not turn answers into stale fallbacks
    }


class Fleet:
    """Vehicles on one connection: retained rule sets, frames, and every decision and status."""

    def __init__(self, url: str, prefix: str) -> None:
        self.prefix = prefix
        self.vids = [f"car-{i}" for i in range(VEHICLES)]
        self.decisions, self.status = Recorder(), Recorder()
        self.sent: list[tuple[str, int]] = []
        self.rules_version: dict[tuple[str, int], str] = {}  # the rule set a frame was sent under
        self.version = ""
        self.bus = MqttBus(url)
        self.bus.subscribe(DECISION.subscription(prefix), self.decisions, 1)
        self.bus.subscribe(STATUS.subscription(prefix), self.status, 1)
        self.bus.connect()

    def publish_rules(self, version: str = "r1") -> None:
        self.version = version
        for v in self.vids:
            topic = RULES.topic(self.prefix, vehicle_id=v)
            self.bus.publish(topic, encode(rules(v, version=f"{version}-{v}")), 1, retain=True)

    def round(self, frame_id: int, timeout: float = 10.0) -> None:
        """One frame per vehicle, then wait for as many decisions: one frame in flight per
        vehicle, so a replica never conflates two of a vehicle's frames."""
        for v in self.vids:
            self.bus.publish(
                CAMERA.topic(self.prefix, vehicle_id=v), pack_frame(header(v, frame_id), jpeg())
            )
            self.sent.append((v, frame_id))
            self.rules_version[(v, frame_id)] = f"{self.version}-{v}"
        n = len(self.sent)
        assert self.decisions.wait_count(n, timeout), f"{len(self.got())} of {n} frames answered"

    def got(self) -> list[DecisionMsg]:
        return [DecisionMsg.model_validate_json(p) for _, p in self.decisions.messages]

    def statuses(self, node_id: str) -> list[NodeStatus]:
        topic = STATUS.topic(self.prefix, node_id=node_id)
        return [
            NodeStatus.model_validate_json(p) for t, p in self.status.messages if t == topic and p
        ]

    def wait_state(self, node_id: str, state: str, timeout: float = 20.0) -> NodeStatus:
        def seen(_m: object) -> bool:
            return any(s.state == state for s in self.statuses(node_id))

        assert self.status.wait_for(seen, timeout), f"{node_id} never said {state}"
        return [s for s in self.statuses(node_id) if s.state == state][-1]

    def assert_each_frame_answered_once(self) -> list[DecisionMsg]:
        time.sleep(0.3)  # a duplicate would arrive now
        got = self.got()
        counts = Counter((d.vehicle_id, d.frame_id) for d in got)
        twice = {k: c for k, c in counts.items() if c > 1}
        assert not twice, f"answered more than once: {twice}"
        assert set(counts) == set(self.sent), f"missing: {set(self.sent) - set(counts)}"
        for d in got:  # the replica held the vehicle's newest rule set when its frame came
            assert d.rules_version == self.rules_version[(d.vehicle_id, d.frame_id)], d
        return got

    def close(self) -> None:
        for v in self.vids:  # leave no retained message behind on the shared broker
            self.bus.publish(RULES.topic(self.prefix, vehicle_id=v), b"", 1, retain=True)
        for topic in {t for t, p in self.status.messages if p}:
            self.bus.publish(topic, b"", 1, retain=True)
        time.sleep(0.05)
        self.bus.close()


@pytest.fixture
def fleet(broker_url: str) -> Iterator[Fleet]:
    f = Fleet(broker_url, f"test/{uuid.uuid4().hex[:12]}")
    yield f
    f.close()


def _replica(url: str, prefix: str, node_id: str, group: str, model: PolicyModel) -> Node:
    s = load_settings(_settings(url, prefix, node_id, group))
    return Node(s, MqttBus(url, client_id=f"{node_id}-{uuid.uuid4().hex[:6]}"), model)


def _wait_rules(nodes: list[Node], vids: list[str], version: str, timeout: float = 10.0) -> None:
    """Until every replica holds rule set ``version`` of every vehicle."""

    def missing(n: Node) -> list[str]:
        held = {v: r.version for v, r in n.rules.items()}
        return [v for v in vids if held.get(v) != f"{version}-{v}"]

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(missing(n) for n in nodes):
            return
        time.sleep(0.02)
    lost = {n.settings.node_id: missing(n) for n in nodes}
    raise AssertionError(f"rule sets {version} a replica never got: {lost}")


def test_share_group_setting() -> None:
    assert load_settings().share_group is None
    assert load_settings({"share_group": ""}).share_group is None
    assert load_settings({"share_group": "nodes-a_1"}).share_group == "nodes-a_1"
    for bad in ("a/b", "a+", "#", "-a", "x" * 65):
        with pytest.raises(ConfigError, match="RULEDRIVE_SHARE_GROUP"):
            load_settings({"share_group": bad})


def test_share_group_from_flag_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from ruledrive.cli import build_parser
    from ruledrive.serve_cli import settings_from_args

    monkeypatch.setenv("RULEDRIVE_SHARE_GROUP", "from-env")
    assert load_settings().share_group == "from-env"
    args = build_parser().parse_args(["serve", "--share-group", "from-flag"])
    assert settings_from_args(args).share_group == "from-flag"  # the flag wins


def test_node_subscribes_frames_shared_and_rules_plain(model: PolicyModel) -> None:
    subscribed: list[str] = []

    class Spy(MemoryBus):
        def subscribe(self, pattern, handler, qos=0):  # type: ignore[no-untyped-def]
            subscribed.append(pattern)
            super().subscribe(pattern, handler, qos)

    node = Node(load_settings({"topic_prefix": "p", "share_group": "g"}), Spy(), model)
    node.start()
    assert sorted(subscribed) == ["$share/g/p/vehicles/+/camera/front", "p/vehicles/+/rules"]
    assert NodeStatus.model_validate_json(node.bus.retained(node.status_topic)).share_group == "g"


@pytest.mark.parametrize("group", ["g", None])
def test_a_stopping_replica_leaves_its_group_before_its_last_answers(
    model: PolicyModel, group: str | None
) -> None:
    """Stop: leave the group, answer what came until the broker confirmed the leave, then say
    offline. A frame the broker handed over just before the leave is answered, not lost."""
    calls: list[tuple[str, object]] = []

    class Spy(MemoryBus):
        def unsubscribe(self, pattern, handler):  # type: ignore[no-untyped-def]
            calls.append(("leave", pattern))
            late = pack_frame(header("car-1", 7), jpeg())  # sent before the leave was confirmed
            handler(CAMERA.topic("p", vehicle_id="car-1"), late)
            super().unsubscribe(pattern, handler)

        def publish(self, topic, payload, qos=0, retain=False):  # type: ignore[no-untyped-def]
            if topic.endswith("/decision"):
                calls.append(("decision", DecisionMsg.model_validate_json(payload).frame_id))
            elif topic.endswith("/status") and b'"offline"' in payload:
                calls.append(("offline", topic))
            super().publish(topic, payload, qos, retain)

    node = Node(load_settings({"topic_prefix": "p", "share_group": group}), Spy(), model)
    with serve_in_thread(node):
        pass
    if group is None:  # a node alone takes every frame: nothing to leave
        assert [c[0] for c in calls] == ["offline"]
    else:
        assert calls == [
            ("leave", "$share/g/p/vehicles/+/camera/front"),
            ("decision", 7),
            ("offline", "p/nodes/node-1/status"),
        ]


@pytest.mark.parametrize("group", ["g", None])
def test_a_replica_keeps_the_rules_of_vehicles_served_elsewhere(
    model: PolicyModel, group: str | None
) -> None:
    """A replica hears nothing from a vehicle whose frames go to another replica; if it forgot
    that vehicle's rules after vehicle_ttl_s, the vehicle would get no_rules fallbacks on the
    day its replica fails. A node alone keeps them too (the broker would not send them again),
    and lets a silent vehicle's rule set go only for a new vehicle when it is full; a replica
    never does."""
    bus = MemoryBus()
    bus.connect()
    bus.publish(RULES.topic("p", vehicle_id="car-1"), encode(rules("car-1")), 1, retain=True)
    s = load_settings(
        {"topic_prefix": "p", "share_group": group, "vehicle_ttl_s": 1, "max_vehicles": 1}
    )
    node = Node(s, bus, model)
    node.start()
    assert "car-1" in node.rules
    node.housekeeping(time.monotonic() + 3600)
    assert "car-1" in node.rules
    bus.publish(RULES.topic("p", vehicle_id="car-2"), encode(rules("car-2")), 1, retain=True)
    assert sorted(node.rules) == (["car-1"] if group is not None else ["car-2"])


def test_two_replicas_on_the_memory_bus(model: PolicyModel, other_model: PolicyModel) -> None:
    bus, prefix = MemoryBus(), "mem/v1"
    decisions = Recorder()
    bus.subscribe(DECISION.subscription(prefix), decisions)
    bus.connect()
    vids = [f"car-{i}" for i in range(4)]
    for v in vids:  # retained before either replica subscribes
        bus.publish(RULES.topic(prefix, vehicle_id=v), encode(rules(v, "r1-" + v)), 1, retain=True)
    a = Node(load_settings(_settings("mqtt://x:1", prefix, "rep-a", "g")), bus, model)
    b = Node(load_settings(_settings("mqtt://x:1", prefix, "rep-b", "g")), bus, other_model)
    with serve_in_thread(a), serve_in_thread(b):
        _wait_rules([a, b], vids, "r1")
        for v in vids:  # and a live update: both replicas take it too
            bus.publish(RULES.topic(prefix, vehicle_id=v), encode(rules(v, "r2-" + v)), 1, True)
        _wait_rules([a, b], vids, "r2")
        for fid in range(3):
            for v in vids:
                bus.publish(CAMERA.topic(prefix, vehicle_id=v), pack_frame(header(v, fid), jpeg()))
            assert decisions.wait_count(len(vids) * (fid + 1))
    got = [DecisionMsg.model_validate_json(p) for _, p in decisions.messages]
    assert Counter((d.vehicle_id, d.frame_id) for d in got) == Counter(
        (v, f) for f in range(3) for v in vids
    )
    assert {d.node_id: d.model_version for d in got} == {"rep-a": "fake-1", "rep-b": "fake-2"}


@pytest.mark.broker
def test_two_replicas_answer_each_frame_once_and_hand_over_on_stop(
    fleet: Fleet, broker_url: str, model: PolicyModel, other_model: PolicyModel
) -> None:
    """Rule sets first (retained), then two replicas in one group, the second on another model
    version; frames in rounds, a live rule-set update between them; then one replica stops and
    the other answers everything."""
    group = f"nodes-{uuid.uuid4().hex[:8]}"
    fleet.publish_rules()
    a = _replica(broker_url, fleet.prefix, "rep-a", group, model)
    b = _replica(broker_url, fleet.prefix, "rep-b", group, other_model)
    threads = []
    for node in (a, b):
        node.start()
        threads.append(threading.Thread(target=node.run, daemon=True))
        threads[-1].start()
    try:
        for node_id, version in (("rep-a", "fake-1"), ("rep-b", "fake-2")):
            online = fleet.wait_state(node_id, "online")
            assert (online.share_group, online.model_version) == (group, version)
        _wait_rules([a, b], fleet.vids, "r1")
        for fid in range(3):
            fleet.round(fid)
        fleet.publish_rules("r2")  # live, while both serve: each replica must take it
        _wait_rules([a, b], fleet.vids, "r2")
        for fid in range(3, 5):
            fleet.round(fid)
        both = fleet.assert_each_frame_answered_once()
        by_node = Counter(d.node_id for d in both)
        assert set(by_node) == {"rep-a", "rep-b"}, f"one replica did all the work: {by_node}"
        versions = {d.node_id: d.model_version for d in both}
        assert versions == {"rep-a": "fake-1", "rep-b": "fake-2"}, "a decision hid its model"

        a.stop()
        threads[0].join(10)
        assert fleet.wait_state("rep-a", "offline").share_group == group
        before = len(fleet.sent)
        for fid in range(5, 8):
            fleet.round(fid)
        after = fleet.assert_each_frame_answered_once()
        assert {d.node_id for d in after[before:]} == {"rep-b"}
    finally:
        for node, t in zip((a, b), threads, strict=True):
            node.stop()
            t.join(10)


@pytest.mark.broker
def test_a_killed_replica_hands_its_vehicles_to_the_other(
    fleet: Fleet, broker_url: str, model: PolicyModel, fake_model_path: Path
) -> None:
    """A replica process killed (SIGKILL: no clean disconnect) leaves the group as soon as the
    broker sees its socket close (its last will says offline); every frame sent after that is
    answered, exactly once, by the replica left."""
    group = f"nodes-{uuid.uuid4().hex[:8]}"
    fleet.publish_rules()
    cmd = serve_command(broker_url, fake_model_path, fleet.prefix, "rep-k", "--share-group", group)
    proc = subprocess.Popen(
        [*cmd, "--max-frame-age-ms", "5000"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    survivor = _replica(broker_url, fleet.prefix, "rep-s", group, model)
    try:
        with serve_in_thread(survivor):
            fleet.wait_state("rep-k", "online", timeout=60)
            fleet.wait_state("rep-s", "online")
            _wait_rules([survivor], fleet.vids, "r1")
            # The killed replica's rule sets are seen in its answers (no no_rules fallback).
            deadline = time.monotonic() + 10
            fid = 0
            while time.monotonic() < deadline:
                fleet.round(fid)
                fid += 1
                if {d.node_id for d in fleet.got()} == {"rep-k", "rep-s"}:
                    break
            assert {d.node_id for d in fleet.got()} == {"rep-k", "rep-s"}
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            fleet.wait_state("rep-k", "offline", timeout=10)  # the broker published its will
            before = len(fleet.sent)
            for _ in range(4):
                fleet.round(fid)
                fid += 1
            got = fleet.assert_each_frame_answered_once()
            assert {d.node_id for d in got[before:]} == {"rep-s"}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_the_contracts_rule_for_late_decisions() -> None:
    """The consumer code in docs/contract.md ("Replicas") keeps the newest decision per vehicle
    by (frame_stamp_ns, frame_id) and drops late and repeated ones, whatever their arrival."""
    import re

    text = (ROOT / "docs" / "contract.md").read_text()
    section = text[text.index("## Replicas") :]
    section = section[: section.index("\n## ")]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code, "the Replicas section lost its consumer code"
    ns: dict[str, object] = {"DecisionMsg": DecisionMsg}
    exec(code.group(1), ns)
    take = ns["take"]

    def d(vid: str, fid: int, stamp: int, node: str) -> DecisionMsg:
        return DecisionMsg(
            vehicle_id=vid,
            frame_id=fid,
            frame_stamp_ns=stamp,
            stamp_ns=stamp + 10**6,
            decision="PROCEED",
            probabilities={},
            confidence=0.0,
            valid=False,
            reason="no_rules",
            rules_version=None,
            model_version="m",
            node_id=node,
            timings={
                "frame_age_ms": 0,
                "queue_ms": 0,
                "decode_ms": 0,
                "inference_ms": 0,
                "total_ms": 0,
                "batch_size": 1,
            },
        )

    arrivals = [
        (d("car-1", 2, 2_000, "rep-a"), True),
        (d("car-1", 1, 1_000, "rep-b"), False),  # late: an older frame, from the slower replica
        (d("car-2", 1, 1_000, "rep-b"), True),  # another vehicle is not compared with car-1
        (d("car-1", 2, 2_000, "rep-a"), False),  # the same decision again (QoS 1)
        (d("car-1", 0, 3_000, "rep-b"), True),  # camera restarted: frame id 0, newer stamp
        (d("car-1", 5, 2_500, "rep-a"), False),  # higher id, older picture: late
    ]
    assert [take(m) for m, _ in arrivals] == [want for _, want in arrivals]
