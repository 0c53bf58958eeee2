"""The shipped secure broker config on a real Mosquitto: the node works end to end over TLS with
its login, and nobody else can inject rules, read another vehicle's decisions, spoof the node's
status or take its client id.

Each attack is shown to fail by its EFFECT on the node or the victim (the node's decision still
carries the authority's rules_version, the victim's decisions never reach the attacker, the
node's connection is never replaced), not only by the attacker's error code.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from bus.broker import MosquittoProcess
from bus.codec import encode
from bus.envelope import pack_frame
from bus.memory import Recorder
from bus.mqtt import MqttBus
from bus.schema import DecisionMsg, NodeState, NodeStatus
from bus.topics import CAMERA, DECISION, DEFAULT_PREFIX, RULES, STATUS
from core.errors import BusError
from policy.model import PolicyModel
from policy.node import Node
from policy.settings import load_settings
from ruledrive.credentials import passwd_file
from tests.deploy.secure_helpers import login_bus, make_credentials, password, secure_broker
from tests.policy.conftest import header, jpeg, rules

pytestmark = pytest.mark.broker
P = DEFAULT_PREFIX


@pytest.fixture
def broker(tmp_path: Path, secrets: Path) -> Iterator[MosquittoProcess]:
    with secure_broker(tmp_path, secrets) as b:
        yield b


class Deployment:
    """node-1 (fake model) + the rule authority + vehicle car-1, all logged in over TLS."""

    def __init__(self, url: str, secrets: Path, model: PolicyModel) -> None:
        self.url, self.secrets = url, secrets
        settings = load_settings(
            {
                "mqtt_url": url,
                "node_id": "node-1",
                "heartbeat_s": 0.5,
                "reload_poll_s": 0,
                # the default 200 ms would let a loaded machine turn an answer into stale_frame
                "max_frame_age_ms": 5000,
            }
        )
        self.node_bus = login_bus(url, secrets, "node-1", reconnect_max_s=1)
        self.connects: list[float] = []  # every (re)connection of the node
        self.node_bus.add_connect_hook(lambda: self.connects.append(time.monotonic()))
        self.node = Node(settings, self.node_bus, model)
        self.node.start()
        self.thread = threading.Thread(target=self.node.run, daemon=True)
        self.thread.start()
        self.authority = login_bus(url, secrets, "rule-authority")
        self.authority.connect()
        self.car1 = login_bus(url, secrets, "car-1")
        self.decisions = Recorder()
        self.car1.subscribe(DECISION.topic(P, vehicle_id="car-1"), self.decisions, 1)
        self.car1.connect()
        self.frame_id = 0

    def publish_rules(self, version: str) -> None:
        self.authority.publish(
            RULES.topic(P, vehicle_id="car-1"), encode(rules("car-1", version)), 1, True
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            held = self.node.rules.get("car-1")
            if held is not None and held.version == version:
                return
            time.sleep(0.01)
        raise AssertionError(f"the node never took rules {version}")

    def ask(self) -> DecisionMsg:
        """car-1 sends a frame; its decision (the vehicle receives it over its own login)."""
        self.frame_id += 1
        n = len(self.decisions.messages)
        self.car1.publish(
            CAMERA.topic(P, vehicle_id="car-1"), pack_frame(header("car-1", self.frame_id), jpeg())
        )
        assert self.decisions.wait_count(n + 1), "no decision reached the vehicle"
        d = DecisionMsg.model_validate_json(self.decisions.messages[n][1])
        assert d.frame_id == self.frame_id
        return d

    def close(self) -> None:
        self.node.stop()
        self.thread.join(5)
        self.car1.close()
        self.authority.close()


@pytest.fixture
def dep(broker: MosquittoProcess, secrets: Path, model: PolicyModel) -> Iterator[Deployment]:
    d = Deployment(broker.url, secrets, model)
    yield d
    d.close()


def test_node_answers_over_tls_with_its_login(dep: Deployment) -> None:
    dep.publish_rules("r1")
    d = dep.ask()
    assert d.valid and d.rules_version == "r1" and d.node_id == "node-1"
    assert dep.node_bus.client_id == "node-1"


def test_anonymous_and_wrong_password_cannot_connect(
    broker: MosquittoProcess, secrets: Path
) -> None:
    with pytest.raises(BusError, match="refused the login of 'anonymous'.*[Nn]ot authori"):
        login_bus(broker.url, secrets, None).connect()
    bad = MqttBus(broker.url, username="car-1", password="guess", tls_ca=str(secrets / "ca.crt"))
    with pytest.raises(BusError, match="refused the login of 'car-1'"):
        bad.connect()
    plain = MqttBus(f"mqtt://127.0.0.1:{broker.port}", connect_timeout_s=1)
    with pytest.raises(BusError, match="no connection"):
        plain.connect()  # no plaintext listener
    untrusted = MqttBus(broker.url, username="car-1", password=password(secrets, "car-1"))
    with pytest.raises(BusError, match="TLS handshake failed.*certificate verify failed"):
        untrusted.connect()  # system CAs do not know the private CA


def test_vehicles_cannot_inject_rules(dep: Deployment, secrets: Path) -> None:
    dep.publish_rules("r1")
    evil = encode(rules("car-1", "evil"))
    car2 = login_bus(dep.url, secrets, "car-2")
    car2.connect()
    car2.publish(RULES.topic(P, vehicle_id="car-1"), evil, 1, True)  # another vehicle
    # the vehicle itself (on its own connection: a second login of car-1 would replace it)
    dep.car1.publish(RULES.topic(P, vehicle_id="car-1"), evil, 1, True)
    time.sleep(0.3)
    car2.close()
    assert dep.ask().rules_version == "r1"
    assert dep.node.rules["car-1"].version == "r1"
    # what a restarted node would get: the authority's retained set, not the attacker's
    seen = Recorder()
    rec = login_bus(dep.url, secrets, "recorder")
    rec.subscribe(RULES.topic(P, vehicle_id="car-1"), seen, 1)
    rec.connect()
    assert seen.wait_count(1)
    rec.close()
    assert b'"r1"' in seen.messages[0][1] and b"evil" not in seen.messages[0][1]


def test_vehicle_cannot_read_another_vehicles_decisions(dep: Deployment, secrets: Path) -> None:
    spy, recorder = Recorder(), Recorder()
    car2 = login_bus(dep.url, secrets, "car-2")
    car2.subscribe(DECISION.subscription(P), spy, 1)
    car2.subscribe(DECISION.topic(P, vehicle_id="car-1"), spy, 1)
    car2.subscribe(f"{P}/#", spy, 1)
    car2.connect()
    rec = login_bus(dep.url, secrets, "recorder")
    rec.subscribe(DECISION.subscription(P), recorder, 1)
    rec.connect()
    try:
        dep.publish_rules("r1")
        for _ in range(3):
            dep.ask()
        assert recorder.wait_count(3)  # the decisions were on the bus
        time.sleep(0.2)
        assert [t for t, _ in spy.messages if "/decision" in t] == []
    finally:
        car2.close()
        rec.close()


def test_nobody_else_can_set_the_node_status(dep: Deployment, secrets: Path) -> None:
    # A watcher subscribed throughout: the node's heartbeat overwrites the retained status every
    # 0.5 s, so a fresh subscriber alone could miss a spoof that got through.
    seen = Recorder()
    watcher = login_bus(dep.url, secrets, "recorder")
    watcher.subscribe(STATUS.topic(P, node_id="node-1"), seen, 1)
    watcher.connect()
    offline = NodeStatus(node_id="node-1", state=NodeState.OFFLINE, stamp_ns=time.time_ns())
    try:
        for attacker in ("car-2", "node-2", "rule-authority"):
            bus = login_bus(dep.url, secrets, attacker)
            bus.connect()
            bus.publish(STATUS.topic(P, node_id="node-1"), encode(offline), 1, True)
            time.sleep(0.2)
            bus.close()
        assert seen.wait_count(2)
        states = {NodeStatus.model_validate_json(p).state for _, p in seen.messages}
        assert states == {NodeState.ONLINE}
    finally:
        watcher.close()


def test_nobody_can_take_the_node_client_id(dep: Deployment, secrets: Path) -> None:
    dep.publish_rules("r1")
    assert len(dep.connects) == 1
    attackers = []
    for _ in range(3):  # what knocked the node off 3 times in 3 s
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="node-1", protocol=mqtt.MQTTv5)
        c.username_pw_set("car-2", password(secrets, "car-2"))
        c.tls_set(ca_certs=str(secrets / "ca.crt"))
        connected = threading.Event()
        c.on_connect = lambda *a, ev=connected: ev.set() if not a[3].is_failure else None
        c.connect("127.0.0.1", int(dep.url.rsplit(":", 1)[1]))
        c.loop_start()
        assert connected.wait(5), "the attacker's login itself must succeed"
        attackers.append(c)
        time.sleep(0.5)
    time.sleep(1.5)  # the node's reconnect delay is 1 s: a kick would show as a reconnection
    try:
        assert dep.node_bus.connected and len(dep.connects) == 1
        assert dep.ask().valid
    finally:
        for c in attackers:
            c.disconnect()
            c.loop_stop()


def test_health_login_reads_only_the_uptime(broker: MosquittoProcess, secrets: Path) -> None:
    base = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "--cafile"]
    base += [str(secrets / "ca.crt"), "-u", "health", "-P", password_of_health(secrets)]
    ok = subprocess.run([*base, "-t", "$SYS/broker/uptime", "-C", "1", "-W", "3"], timeout=10)
    assert ok.returncode == 0
    other = subprocess.run([*base, "-t", f"{P}/#", "-C", "1", "-W", "1"], timeout=10)
    assert other.returncode != 0  # timed out: nothing readable there


def password_of_health(secrets: Path) -> str:
    return (secrets / "broker/health.password").read_text().strip()


def test_password_file_hashed_without_mosquitto_passwd(tmp_path: Path, secrets: Path) -> None:
    """The hashlib fallback writes hashes the real Mosquitto accepts."""
    import shutil

    copy = tmp_path / "secrets"
    shutil.copytree(secrets, copy)
    logins = {u: password(secrets, u) for u in ("car-1", "node-1")}
    assert passwd_file(copy / "broker/passwd", logins, tool=None) == "hashlib"
    assert "$7$101$" in (copy / "broker/passwd").read_text()
    with secure_broker(tmp_path, copy) as b:
        bus = login_bus(b.url, copy, "car-1")
        bus.connect()
        bus.close()
        with pytest.raises(BusError, match="refused"):
            login_bus(b.url, copy, "car-2").connect()  # not in this password file


def test_a_host_name_missing_from_the_certificate_is_said(tmp_path: Path) -> None:
    secrets = make_credentials(tmp_path / "s", "--hosts", "mosquitto")  # not 127.0.0.1
    with secure_broker(tmp_path, secrets) as b:
        bus = login_bus(b.url, secrets, "car-1")
        with pytest.raises(BusError, match="TLS handshake failed.*mismatch.*127.0.0.1"):
            bus.connect()
