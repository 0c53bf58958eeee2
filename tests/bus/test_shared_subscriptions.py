"""MQTT 5 shared subscriptions (``$share/GROUP/FILTER``) on both buses: one member of a group
gets each message, on its real topic; a plain subscriber beside the group still gets them all."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import pytest

from bus.memory import MemoryBus, Recorder
from bus.mqtt import MqttBus
from bus.topics import CAMERA, RULES, shared_filter, split_shared
from core.errors import BusError


def test_shared_filter_round_trip_and_refusals() -> None:
    f = shared_filter("nodes", "p/vehicles/+/camera/front")
    assert f == "$share/nodes/p/vehicles/+/camera/front"
    assert split_shared(f) == ("nodes", "p/vehicles/+/camera/front")
    assert split_shared("p/vehicles/+/rules") == (None, "p/vehicles/+/rules")
    assert CAMERA.subscription("p", share_group="g") == "$share/g/p/vehicles/+/camera/front"
    assert RULES.subscription("p") == "p/vehicles/+/rules"
    for bad in ("", "a/b", "a+", "#", "-x"):
        with pytest.raises(ValueError):
            shared_filter(bad, "t")
    for bad in ("$share/", "$share/g", "$share//t", "$share/g/"):
        with pytest.raises(ValueError):
            split_shared(bad)


def test_memory_bus_hands_each_message_to_one_member() -> None:
    bus = MemoryBus()
    bus.connect()
    bus.publish("p/v/old/f", b"retained", retain=True)
    one, two, plain = Recorder(), Recorder(), Recorder()
    bus.subscribe("$share/g/p/v/+/f", one)
    bus.subscribe("$share/g/p/v/+/f", two)
    bus.subscribe("p/v/+/f", plain)
    assert not one.messages and not two.messages, "a shared subscription gets no retained message"
    for i in range(10):
        bus.publish(f"p/v/car-{i}/f", str(i).encode())
    got = one.messages + two.messages
    assert sorted(p for _, p in got) == sorted(str(i).encode() for i in range(10))
    assert len(one.messages) == len(two.messages) == 5, "round robin"
    assert all(t.startswith("p/v/car-") for t, _ in got), "delivered on the real topic"
    assert len(plain.messages) == 11  # the retained one and all ten
    with pytest.raises(BusError):
        bus.subscribe("$share/no-filter", Recorder())


def _connect_subscribed(buses: list[MqttBus], pub: MqttBus, prefix: str) -> None:
    """Connect ``buses`` and return once the broker has their subscriptions: each also subscribes
    to a sync topic of its own, sent in the same SUBSCRIBE, and gets a message there."""
    syncs = []
    for i, bus in enumerate(buses):
        rec = Recorder()
        bus.subscribe(f"{prefix}/sync/{i}", rec, 1)
        bus.connect()
        syncs.append(rec)
    pub.connect()
    for i, rec in enumerate(syncs):
        deadline = time.monotonic() + 5
        while not rec.messages:  # resent: a publish before the SUBSCRIBE reached no one
            assert time.monotonic() < deadline, f"subscriber {i} never subscribed"
            pub.publish(f"{prefix}/sync/{i}", b"sync", qos=1)
            rec.wait_count(1, 0.2)


def _group_of_two(
    url: str, first: Recorder, second: Recorder
) -> tuple[str, str, tuple[MqttBus, MqttBus, MqttBus]]:
    """Two members of a fresh share group (handlers ``first``, ``second``) and a publisher, all
    connected and subscribed: (topic prefix, shared pattern, (member 1, member 2, publisher))."""
    prefix, group = f"test/{uuid.uuid4().hex[:12]}", f"g{uuid.uuid4().hex[:8]}"
    pattern = f"$share/{group}/{prefix}/+/f"
    one, two, pub = MqttBus(url), MqttBus(url), MqttBus(url)
    one.subscribe(pattern, first, 1)
    two.subscribe(pattern, second, 1)
    _connect_subscribed([one, two], pub, prefix)
    return prefix, pattern, (one, two, pub)


@pytest.mark.broker
def test_mqtt_bus_shared_subscription_on_the_broker(broker_url: str) -> None:
    prefix, group = f"test/{uuid.uuid4().hex[:12]}", f"g{uuid.uuid4().hex[:8]}"
    members = [MqttBus(broker_url), MqttBus(broker_url)]
    got = [Recorder(), Recorder()]
    plain, pub = MqttBus(broker_url), MqttBus(broker_url)
    everything = Recorder()
    for bus, rec in zip(members, got, strict=True):
        bus.subscribe(f"$share/{group}/{prefix}/+/f", rec, 1)
    plain.subscribe(f"{prefix}/+/f", everything, 1)
    _connect_subscribed([*members, plain], pub, prefix)
    try:
        for i in range(20):
            pub.publish(f"{prefix}/car-{i}/f", str(i).encode(), qos=1)
        assert everything.wait_count(20)
        deadline = time.monotonic() + 5
        while len(got[0].messages) + len(got[1].messages) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # a duplicate would come now
        shared = got[0].messages + got[1].messages
        assert Counter(p for _, p in shared) == Counter(str(i).encode() for i in range(20))
        assert got[0].messages and got[1].messages, "the broker used one member only"
        assert all(t.startswith(prefix + "/car-") for t, _ in shared)
    finally:
        for bus in (*members, plain, pub):
            bus.close()


@pytest.mark.broker
def test_mqtt_bus_member_leaves_its_group_without_losing_a_message(broker_url: str) -> None:
    """While messages stream in, one member unsubscribes: what the broker sent it before its
    UNSUBACK still reaches its handler, the rest goes to the other member; none is lost, none
    comes twice, and none reaches the member after unsubscribe() returned."""
    left, stayed = Recorder(), Recorder()
    prefix, pattern, (leaving, staying, pub) = _group_of_two(broker_url, left, stayed)
    n, sent = 400, threading.Event()

    def stream() -> None:
        for i in range(n):
            pub.publish(f"{prefix}/car-{i % 7}/f", str(i).encode(), qos=1)
            if i % 20 == 0:
                time.sleep(0.002)
        sent.set()

    t = threading.Thread(target=stream, daemon=True)
    try:
        t.start()
        assert left.wait_count(30), "the leaving member got nothing before it left"
        leaving.unsubscribe(pattern, left)
        after_leave = len(left.messages)
        assert sent.wait(20)
        assert stayed.wait_for(lambda _m: len(left.messages) + len(stayed.messages) >= n, 10)
        time.sleep(0.2)
        got = Counter(p for _, p in left.messages + stayed.messages)
        assert got == Counter(str(i).encode() for i in range(n))
        assert len(left.messages) == after_leave, "a message reached the member after it left"
    finally:
        t.join(20)
        for bus in (leaving, staying, pub):
            bus.close()


@pytest.mark.broker
def test_mqtt_bus_member_behind_leaves_without_losing_what_the_broker_queued(
    broker_url: str,
) -> None:
    """A member that handles messages slowly has a backlog queued at the broker beyond its
    in-flight window; Mosquitto sends that backlog after the UNSUBACK. unsubscribe() hands it
    to the handler before it returns, so the group loses none (before the drain, 11-84 of 400
    were lost here), none comes twice, and none reaches the handler afterwards."""

    class Slow(Recorder):
        def __call__(self, topic: str, payload: bytes) -> None:
            time.sleep(0.004)
            super().__call__(topic, payload)

    left, stayed = Slow(), Recorder()
    prefix, pattern, (leaving, staying, pub) = _group_of_two(broker_url, left, stayed)
    n = 400
    try:
        for i in range(n):
            pub.publish(f"{prefix}/car-{i % 7}/f", str(i).encode(), qos=1)
        assert left.wait_count(5), "the slow member got nothing"
        leaving.unsubscribe(pattern, left, timeout_s=10)
        after_leave = len(left.messages)
        assert stayed.wait_for(lambda _m: len(left.messages) + len(stayed.messages) >= n, 10), (
            f"{n - len(left.messages) - len(stayed.messages)} messages lost"
        )
        time.sleep(0.3)
        got = Counter(p for _, p in left.messages + stayed.messages)
        assert got == Counter(str(i).encode() for i in range(n))
        assert len(left.messages) == after_leave, "a message reached the member after it left"
    finally:
        for bus in (leaving, staying, pub):
            bus.close()
