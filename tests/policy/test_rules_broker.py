"""Rule-set integrity through a real (private) Mosquitto: a node restarted with its state
directory refuses an old signed rule set replayed retained, and a forged unsigned one."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bus.codec import encode
from bus.envelope import pack_frame
from bus.memory import Recorder
from bus.mqtt import MqttBus
from bus.schema import DecisionMsg, ErrorReport, RuleSet
from bus.signing import public_pem, sign
from bus.topics import CAMERA, DECISION, ERRORS, RULES
from policy.model import PolicyModel
from policy.node import Node
from policy.settings import load_settings
from tests.policy.conftest import header, jpeg, rules

pytestmark = pytest.mark.broker


def start(url: str, prefix: str, model: PolicyModel, **kw: object) -> tuple[Node, threading.Thread]:
    s = load_settings(
        {"mqtt_url": url, "topic_prefix": prefix, "node_id": "node-r", "reload_poll_s": 0, **kw}
    )
    node = Node(s, MqttBus(url, client_id=f"node-r-{uuid.uuid4().hex[:6]}"), model)
    node.start()
    t = threading.Thread(target=node.run, daemon=True)
    t.start()
    return node, t


def wait(cond, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(cond())


def test_restarted_node_refuses_replayed_and_forged_rule_sets(
    private_broker, model: PolicyModel, tmp_path: Path
) -> None:
    url, prefix = private_broker.url, "test/integrity"
    authority = Ed25519PrivateKey.generate()
    (tmp_path / "authority.pub").write_bytes(public_pem(authority.public_key()))
    state = {"state_dir": tmp_path / "state", "trusted_keys": tmp_path / "authority.pub"}
    client = MqttBus(url)
    decisions, errors = Recorder(), Recorder()
    client.subscribe(DECISION.subscription(prefix), decisions, 1)
    client.subscribe(ERRORS.subscription(prefix), errors, 1)
    client.connect()

    def put(vid: str, rs: RuleSet) -> None:
        client.publish(RULES.topic(prefix, vehicle_id=vid), encode(rs), 1, True)

    def frame(frame_id: int) -> DecisionMsg:
        n = len(decisions.messages)
        client.publish(
            CAMERA.topic(prefix, vehicle_id="car-1"), pack_frame(header(frame_id=frame_id), jpeg())
        )
        assert decisions.wait_count(n + 1)
        return DecisionMsg.model_validate_json(decisions.messages[-1][1])

    now = time.time_ns()
    old = sign(rules(version="r1").model_copy(update={"issued_at_ns": now - 10**9}), authority)
    new = sign(rules(version="r2").model_copy(update={"issued_at_ns": now}), authority)
    node, t = start(url, prefix, model, **state)
    try:
        put("car-1", old)
        assert wait(lambda: "car-1" in node.rules)
        put("car-1", new)
        assert wait(lambda: node.rules["car-1"].version == "r2")
        assert frame(1).rules_version == "r2"
    finally:
        node.stop()
        t.join(5)
    # While the node is down: the old (genuinely signed) rule set is put back retained, and a
    # forged unsigned one for another vehicle.
    put("car-1", old)
    put("car-2", rules("car-2", version="forged"))
    time.sleep(0.2)
    node, t = start(url, prefix, model, **state)
    try:
        assert errors.wait_count(2)
        got = {ErrorReport.model_validate_json(p).code: p for _, p in errors.messages}
        assert set(got) == {"rules_replayed", "rules_unverified"}
        assert b"car-1" in got["rules_replayed"] and b"car-2" in got["rules_unverified"]
        # The rule set accepted before the restart is kept (trusted keys and a state dir) and
        # taken back, whatever the broker now retains: neither the replay nor no_rules.
        assert node.rules == {"car-1": new}
        assert frame(2).rules_version == "r2"
        newer = sign(rules(version="r3").model_copy(update={"issued_at_ns": now + 1}), authority)
        put("car-1", newer)
        assert wait(lambda: "car-1" in node.rules)
        assert frame(3).rules_version == "r3"
    finally:
        node.stop()
        t.join(5)
        client.close()
