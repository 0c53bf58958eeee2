"""The in-memory bus and the MQTT bus behave the same (wildcards, retained, reconnect)."""

from __future__ import annotations

import contextlib
import gc
import os
import time
import uuid
from pathlib import Path

import pytest

from bus.memory import MemoryBus, Recorder
from bus.mqtt import FLAP_STREAK, MqttBus, parse_mqtt_url
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


def _open_sockets() -> set[str]:
    """This process's open sockets, as /proc names them (``socket:[inode]``)."""
    names = set()
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):  # the directory's own fd is gone by now
            target = os.readlink(fd)
            if target.startswith("socket:"):
                names.add(target)
    return names


def _sockets_of(bus: MqttBus) -> set[str]:
    """The sockets ``bus``'s paho client holds open now, by /proc name: its connection and the
    socket pair that wakes its network thread (paho's private attributes, read here only to
    name them; by inode, so a descriptor number reused by another test's thread is not them)."""
    c = bus._client
    held = (c.socket(), getattr(c, "_sockpairR", None), getattr(c, "_sockpairW", None))
    return {os.readlink(f"/proc/self/fd/{x.fileno()}") for x in held if x and x.fileno() >= 0}


@pytest.mark.broker
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
def test_a_closed_bus_holds_no_socket(broker_url: str) -> None:
    """A long-running process opens and closes buses (a replay per run, a reconnecting
    tool): each close gives back every socket at once, not when the garbage collector
    happens to run (paho keeps its wake-up socket pair open until then, eclipse-paho
    issue 627, and the collector closing it raised ResourceWarning in unrelated tests).
    So does a connect that fails."""
    gc.disable()  # only close() may give the sockets back
    try:
        for _ in range(3):
            bus = MqttBus(broker_url)
            bus.connect()
            held = _sockets_of(bus)
            assert len(held) == 3 and held <= _open_sockets()  # the connection and the pair
            bus.close()
            assert held & _open_sockets() == set()
        failed = MqttBus("mqtt://127.0.0.1:1", connect_timeout_s=0.3)
        client, seen = failed._client, set()
        start = client.loop_start

        def spy() -> object:  # what the failing connect opened, named while it is open
            rc = start()
            seen.update(_sockets_of(failed))
            return rc

        client.loop_start = spy  # type: ignore[method-assign]
        with pytest.raises(BusError, match="no connection"):
            failed.connect()
        assert len(seen) >= 2 and seen & _open_sockets() == set()
    finally:
        gc.enable()
        gc.collect()  # now, not as a pause in whatever thread of a later test allocates next


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
def test_connect_returns_after_the_connect_hooks_have_run(broker_url: str) -> None:
    """A caller of connect() may rely on what the hooks do (the node's online status is out)."""
    bus = MqttBus(broker_url)
    done: list[str] = []

    def slow_hook() -> None:
        time.sleep(0.3)
        done.append("hook")

    bus.add_connect_hook(slow_hook)
    bus.connect()
    try:
        assert done == ["hook"]
    finally:
        bus.close()


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
        # The hook runs in paho's thread just after `connected` turns false: wait for both.
        while (bus.connected or pub.connected or not lost) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not bus.connected and len(lost) == 1
        with pytest.raises(BusError, match="not currently connected"):
            pub.publish("t/lost", b"qos0", qos=0)  # nothing holds a QoS 0 message
        # paho holds it until the reconnect: no error. Retained, so that it reaches the
        # subscriber whichever of the two clients is back first.
        pub.publish("t/2", b"held", qos=1, retain=True)
        private_broker.start()
        deadline = time.monotonic() + 10
        while not (bus.connected and pub.connected and len(hooks) == 2):
            if time.monotonic() > deadline:  # the connect hook, too, runs just after the flag
                break
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


@pytest.mark.broker
def test_mqtt_bus_two_clients_with_one_id_back_off_and_say_why(private_broker, caplog) -> None:
    """Two clients with one client id: the broker closes one for the other, each reconnect
    takes the id back. Debian's Mosquitto 2.0.11 just closes the socket (no 'Session taken
    over'), so the bus sees connections lost within seconds of being made; from the third in a
    row it names the likely cause and waits before reconnecting (paho alone retried within
    0.1-0.5 s: tens of swaps a second)."""
    first = MqttBus(private_broker.url, client_id="node-same")
    second = MqttBus(private_broker.url, client_id="node-same")
    first.connect()
    try:
        with caplog.at_level("ERROR", logger="bus.mqtt"):
            second.connect()
            deadline = time.monotonic() + 10
            while first.flaps + second.flaps < FLAP_STREAK * 2 - 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            waiting = first if first.flaps >= FLAP_STREAK else second
            holder = second if waiting is first else first
            assert waiting.flaps == FLAP_STREAK, (first.flaps, second.flaps)

            def named() -> bool:
                errors = (r.getMessage() for r in caplog.records if r.levelname == "ERROR")
                return any("'node-same'" in m and "another process" in m for m in errors)

            # Said in paho's thread just after it counts the flap: wait for the line too.
            deadline = time.monotonic() + 2
            while not named() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert named(), [r.getMessage() for r in caplog.records]
            # The one that backs off waits 1 s: the other keeps the id meanwhile.
            deadline = time.monotonic() + 2
            while not holder.connected and time.monotonic() < deadline:
                time.sleep(0.01)
            start, swaps = time.monotonic(), holder.flaps
            while time.monotonic() - start < 0.6:
                assert holder.connected and not waiting.connected and holder.flaps == swaps
                time.sleep(0.05)
        assert first.takeovers == second.takeovers == 0  # this broker never said so
    finally:
        t0 = time.monotonic()
        second.close()
        first.close()
        assert time.monotonic() - t0 < 3, "close() must cut a back-off short"


def test_mqtt_bus_names_a_takeover_the_broker_reports(monkeypatch, caplog) -> None:
    """An MQTT 5 broker that says 'Session taken over' (0x8E; Mosquitto >= 2.0.15): named and
    backed off from the first, doubling while they come (each is a flap too)."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    import bus.mqtt as mqtt_mod

    waits: list[float] = []
    bus = MqttBus("mqtt://127.0.0.1:1", client_id="node-7")
    monkeypatch.setattr(bus._closing, "wait", lambda t: waits.append(t))
    taken = ReasonCode(PacketTypes.DISCONNECT, identifier=mqtt_mod.SESSION_TAKEN_OVER)
    lost = ReasonCode(PacketTypes.DISCONNECT, "Unspecified error")
    with caplog.at_level("ERROR", logger="bus.mqtt"):
        for _ in range(3):
            bus._now_up()
            bus._on_disconnect(None, None, None, taken, None)
    assert bus.takeovers == 3 and waits == [1.0, 2.0, 4.0]
    assert "Session taken over" in caplog.records[0].getMessage()
    assert "'node-7'" in caplog.records[0].getMessage()
    # A connection that lasts ends the streak: the next loss is an ordinary one, no wait.
    bus._now_up()
    bus._up_since -= mqtt_mod.FLAP_S
    bus._on_disconnect(None, None, None, lost, None)
    assert waits == [1.0, 2.0, 4.0] and bus.flaps == 3
    # ... and a later takeover starts again at the first wait.
    bus._now_up()
    bus._on_disconnect(None, None, None, taken, None)
    assert waits[-1] == 1.0


@pytest.mark.broker
def test_a_broker_restarting_again_and_again_is_not_taken_for_a_takeover(
    private_broker, caplog
) -> None:
    """Connections lost within seconds of being made are how a takeover looks on Mosquitto
    2.0.11, but so are quick broker restarts: there the broker refuses the reconnects while it
    is away, which says it was an outage. A third probe saw the node wait 1, 2, 4 s after the
    third, fourth, fifth restart 3 s apart (and blame another process): it reconnects at once."""
    bus = MqttBus(private_broker.url, client_id="node-restarts")
    bus.connect()
    took = []
    try:
        with caplog.at_level("ERROR", logger="bus.mqtt"):
            for _ in range(5):
                private_broker.stop()
                deadline = time.monotonic() + 5
                while bus.connected and time.monotonic() < deadline:
                    time.sleep(0.01)
                time.sleep(0.3)  # away long enough to refuse a reconnect
                private_broker.start()
                t0 = time.monotonic()
                while not bus.connected and time.monotonic() < t0 + 10:
                    time.sleep(0.01)
                took.append(time.monotonic() - t0)
        assert bus.connected and bus.flaps == 5
        assert max(took) < 1.5, took  # 1 + 2 + 4 s of waiting before
        assert not [r for r in caplog.records if "another process" in r.getMessage()]
    finally:
        bus.close()
