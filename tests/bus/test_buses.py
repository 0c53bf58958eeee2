"""The in-memory bus and the MQTT bus behave the same (wildcards, retained, reconnect)."""

from __future__ import annotations

import time
import uuid

import pytest

from bus.memory import MemoryBus, Recorder
from bus.mqtt import MqttBus, parse_mqtt_url
from core.errors import BusError, ConfigError


def test_url_parsing() -> None:
    assert parse_mqtt_url("mqtt://127.0.0.1") == ("127.0.0.1", 1883, False)
    assert parse_mqtt_url("mqtts://broker:9000") == ("broker", 9000, True)
    for bad in ("http://x", "mqtt://", "mqtt://h:99999", "mqtt://h/path"):
        with pytest.raises(ConfigError):
            parse_mqtt_url(bad)


def test_memory_bus_wildcards_and_retained() -> None:
    bus = MemoryBus()
    bus.connect()
    bus.publish("a/1/r", b"kept", retain=True)
    bus.publish("a/2/r", b"x", retain=True)
    bus.publish("a/2/r", b"", retain=True)  # cleared
    rec = Recorder()
    bus.subscribe("a/+/r", rec)
    assert rec.messages == [("a/1/r", b"kept")]
    bus.publish("a/3/r", b"live")
    bus.publish("b/3/r", b"other")
    assert rec.messages[-1] == ("a/3/r", b"live") and len(rec.messages) == 2
    with pytest.raises(BusError):
        bus.publish("a/#", b"")
    bus.close()
    with pytest.raises(BusError):
        bus.publish("a/1/r", b"")


def test_mqtt_unreachable_broker_is_bus_error() -> None:
    bus = MqttBus("mqtt://127.0.0.1:1", connect_timeout_s=0.5)
    with pytest.raises(BusError, match="no connection"):
        bus.connect()


@pytest.mark.broker
def test_mqtt_bus_shared_broker(broker_url: str) -> None:
    prefix = f"test/{uuid.uuid4().hex}"
    a, b = MqttBus(broker_url), MqttBus(broker_url)
    a.connect()
    try:
        a.publish(f"{prefix}/x/r", b"kept", qos=1, retain=True)
        rec = Recorder()
        b.subscribe(f"{prefix}/+/r", rec, qos=1)
        b.connect()
        assert rec.wait_count(1)
        a.publish(f"{prefix}/y/r", b"live", qos=1)
        assert rec.wait_count(2)
        assert sorted(rec.messages) == [(f"{prefix}/x/r", b"kept"), (f"{prefix}/y/r", b"live")]
        a.publish(f"{prefix}/x/r", b"", qos=1, retain=True)  # leave no retained litter
    finally:
        a.close()
        b.close()


@pytest.mark.broker
def test_mqtt_bus_reconnects_and_resubscribes(private_broker) -> None:
    bus, pub = MqttBus(private_broker.url), MqttBus(private_broker.url)
    hooks: list[float] = []
    lost: list[float] = []
    bus.add_connect_hook(lambda: hooks.append(time.monotonic()))
    pub.add_disconnect_hook(lambda: lost.append(time.monotonic()))
    rec = Recorder()
    bus.subscribe("t/#", rec, qos=1)
    bus.connect()
    pub.connect()
    try:
        pub.publish("t/1", b"before", qos=1)
        assert rec.wait_count(1)
        private_broker.stop()
        deadline = time.monotonic() + 5
        while (bus.connected or pub.connected) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not bus.connected and len(lost) == 1
        with pytest.raises(BusError, match="not currently connected"):
            pub.publish("t/lost", b"qos0", qos=0)  # nothing holds a QoS 0 message
        # paho holds it until the reconnect: no error. Retained, so that it reaches the
        # subscriber whichever of the two clients is back first.
        pub.publish("t/2", b"held", qos=1, retain=True)
        private_broker.start()
        deadline = time.monotonic() + 10
        while not (bus.connected and pub.connected) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert bus.connected and len(hooks) == 2
        pub.publish("t/3", b"after", qos=1)
        assert rec.wait_count(3), "no resubscribe after reconnect, or the held message lost"
        assert sorted(p for _, p in rec.messages) == [b"after", b"before", b"held"]
        pub.close()
        assert len(lost) == 1, "a clean close is not a lost connection"
    finally:
        bus.close()
        pub.close()
