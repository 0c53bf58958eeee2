"""The MQTT bus: paho-mqtt 2, MQTT 5, automatic reconnect, resubscribe on connect.

The broker is one URL: ``mqtt://host:1883`` or ``mqtts://host:8883`` (TLS, optional CA file).
With a username the client id IS the username: the secure broker (deploy/mosquitto.conf) sets
``use_username_as_clientid``, so an identity holds one connection and nobody can take a node's
client id without its password. A broker that refuses the login, or a certificate that does not
verify, makes ``connect()`` raise a BusError that says which, at once (not after the timeout).
paho's network thread (``loop_start``) reconnects with backoff by itself; ``on_connect`` restores
the subscriptions, and once the broker acknowledges them (SUBACK) the bus is ``connected`` and runs
the connect hooks (the node republishes its online status there): a message published before the
SUBACK may not be delivered, so "connected" is said only when it would be. ``connect()``
returns once the first connection's hooks have run.
``on_message`` only dispatches to handlers, which must only validate and enqueue.

Reconnect and sessions (docs/contract.md, "Reconnect"):

* paho's own back-off, kept short: first retry ``reconnect_min_s`` (0.1 s) after the loss,
  doubling up to ``reconnect_max_s`` (0.5 s). A client therefore notices a returned broker at
  most ~0.5 s late (measured on loopback: connected again 0.08-0.39 s after the broker answered,
  for outages of 0.2-5 s; the old 1 s doubling to 8 s took up to 8 s), at the cost of two
  refused TCP connects a second while it is away.
* Clean sessions (clean start, session expiry 0): the broker keeps nothing for us between
  connections. Frames are QoS 0 and conflated, so a queue of old frames would only be answered
  stale; rule sets are retained and come back with the resubscription in ``on_connect``; and the
  shipped broker does not persist sessions across a restart anyway. A persistent session would
  not save the frames sent while the node was away either (the broker queues no QoS 0 messages
  for an offline client by default).
* While disconnected, a QoS 0 publish fails (BusError: the message is lost); a QoS 1/2 publish is
  held by paho (at most ``max_queued``) and sent after the reconnect, so it does not raise.
  Disconnect hooks (:meth:`add_disconnect_hook`) say when the connection was lost.
* A client id holds one connection: when a second client connects with ours, the broker closes
  ours and each reconnect takes it back from the other, a loop in which both lose messages. An
  MQTT 5 broker says so ("Session taken over", reason 0x8E; Mosquitto from 2.0.15); older ones,
  Debian 12's Mosquitto 2.0.11 among them, just close the socket, which looks like a flap: a
  connection lost within ``FLAP_S`` of being made and taken again at once (a reconnect the
  broker refuses meanwhile means it was away: a restart, not a takeover, and ends the streak).
  The bus logs an error that names the id and
  counts both (:attr:`MqttBus.takeovers`, :attr:`MqttBus.flaps`, in the node's status counters),
  and after a takeover, or from the third flap in a row, it waits before reconnecting: 1 s,
  doubling to 30 s while they go on (a connection that lasts ``FLAP_S`` ends the streak). Two
  processes configured with one id then swap the connection every few seconds instead of tens
  of times a second, until one is given its own id.

Shared subscriptions (MQTT 5 ``$share/GROUP/FILTER``, node replicas): the broker hands each
matching message to one member of the group, on its real topic; handlers are matched against
FILTER. Session expiry 0 also means a replica that goes away leaves its group as soon as the
broker notices (at once for a closed socket, after 1.5 keep-alives for a silent one), and the
broker hands its share to the others.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.client import topic_matches_sub
from paho.mqtt.enums import CallbackAPIVersion

from bus.base import ConnectHook, DisconnectHook, Handler, Will
from bus.topics import split_shared
from core.defaults import DEFAULT_MQTT_URL
from core.errors import BusError, ConfigError

__all__ = [
    "MAX_MQTT_STRING_BYTES",
    "MqttBus",
    "check_username",
    "mqtt_string_problem",
    "parse_mqtt_url",
]

log = logging.getLogger(__name__)


def parse_mqtt_url(url: str) -> tuple[str, int, bool]:
    """``mqtt[s]://host[:port]`` -> (host, port, tls); raise ConfigError if it is not one."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "mqtt://[::1": an unclosed IPv6 bracket
        raise ConfigError(f"MQTT URL {url!r}: {exc}") from exc
    if "@" in parts.netloc:  # never echoed: it may hold a password
        raise ConfigError(
            "the MQTT URL must not carry a login (user:password@host): give the user with "
            "--mqtt-username / RULEDRIVE_MQTT_USERNAME and the password in "
            "RULEDRIVE_MQTT_PASSWORD"
        )
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigError(f"MQTT URL {url!r} must look like mqtt://host:1883 or mqtts://host:8883")
    if parts.path not in ("", "/") or parts.query:
        raise ConfigError(f"MQTT URL {url!r} must not have a path or query")
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise ConfigError(f"MQTT URL {url!r}: {exc}") from exc
    return parts.hostname, port, tls


# MQTT strings carry a two-byte length: a longer user name or client id cannot be sent.
MAX_MQTT_STRING_BYTES = 65535


def mqtt_string_problem(text: str) -> str | None:
    """Why ``text`` cannot be sent as an MQTT user name or client id, None if it can: more than
    65,535 bytes of UTF-8 (the length field's limit), or control characters or lone surrogates,
    which the broker refuses as a protocol error (seen only as a connection that never comes)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_MQTT_STRING_BYTES:
        return f"is {size} bytes of UTF-8, more than the {MAX_MQTT_STRING_BYTES} bytes MQTT allows"
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF for c in text):
        return "contains control characters or lone surrogates"
    return None


def check_username(name: str) -> str:
    """An MQTT user name (also the client id of a login): not empty, and nothing
    :func:`mqtt_string_problem` refuses. ConfigError otherwise."""
    if not name:
        raise ConfigError("the MQTT user name is empty")
    problem = mqtt_string_problem(name)
    if problem is not None:
        raise ConfigError(f"the MQTT user name {name[:40]!r} {problem}")
    return name


# CONNACK reasons that no retry fixes: the login itself is refused (MQTT 5 codes).
_LOGIN_REFUSED = {0x85, 0x86, 0x87, 0x8A, 0x8C}
# DISCONNECT reason: another connection has taken this client id ("Session taken over").
SESSION_TAKEN_OVER = 0x8E
# A connection lost sooner than this after it was made is a flap; from the FLAP_STREAK-th flap in
# a row (or after a takeover) the bus waits before reconnecting: first wait, doubling to the cap.
FLAP_S = 10.0
FLAP_STREAK = 3
TAKEOVER_WAIT_S = (1.0, 30.0)
# After the UNSUBACK of a shared subscription, Mosquitto still sends what it had queued for this
# client (beyond its in-flight window); the member keeps handling the pattern until it has been
# quiet this long, so those messages are not dropped for the whole group.
SHARED_DRAIN_QUIET_S = 0.25


def _tls_context(tls_ca: str | None) -> ssl.SSLContext:
    """Verify the broker's certificate and host name against ``tls_ca`` (or the system CAs)."""
    try:
        return ssl.create_default_context(cafile=tls_ca)
    except (OSError, ValueError, ssl.SSLError) as exc:
        raise ConfigError(f"TLS setup failed (CA file {tls_ca!r}): {exc}") from exc


class MqttBus:
    def __init__(
        self,
        url: str = DEFAULT_MQTT_URL,
        client_id: str = "",
        username: str | None = None,
        password: str | None = None,
        tls_ca: str | None = None,
        keepalive_s: int = 10,
        connect_timeout_s: float = 10.0,
        reconnect_min_s: float = 0.1,
        reconnect_max_s: float = 0.5,
        max_queued: int = 1000,
    ) -> None:
        self.host, self.port, tls = parse_mqtt_url(url)
        if tls_ca is not None and not tls:
            raise ConfigError(f"a TLS CA file is set but {url!r} is not mqtts://")
        if password is not None and username is None:
            raise ConfigError("an MQTT password is set without a username")
        if username is not None:
            if client_id and client_id != username:
                log.debug("client id %r replaced by the username %r", client_id, username)
            client_id = username
        self.url = url
        self.client_id = client_id
        self._tls: ssl.SSLContext | None = _tls_context(tls_ca) if tls else None
        self._refused: str | None = None
        self._settled = threading.Event()
        self._keepalive = keepalive_s
        self._timeout = connect_timeout_s
        # (filter as subscribed, filter the delivered topics match, handler, qos)
        self._subs: list[tuple[str, str, Handler, int]] = []
        # Being unsubscribed: still delivered, not resubscribed; the value is when a message
        # for it last arrived (the drain of a shared subscription waits for quiet).
        self._leaving: dict[str, float] = {}
        self._unsubacked: set[int] = set()  # message ids of UNSUBACKs not yet waited for
        self._resub_mid: int | None = None  # the (re)subscription on connect, until its SUBACK
        self._acks = threading.Condition()
        self._hooks: list[ConnectHook] = []
        self._lost_hooks: list[DisconnectHook] = []
        self._lock = threading.Lock()
        self._up = threading.Event()
        self._closing = threading.Event()  # cuts a takeover's wait short
        self._takeovers = 0
        self._flaps = 0
        self._flap_streak = 0  # flaps in a row (a connection that lasts FLAP_S ends it)
        self._wait = 0.0  # the wait before the latest reconnect of a streak (0: none yet)
        self._up_since = 0.0
        # A reconnect was refused since the connection was lost: the broker was away (a
        # restart), so the loss was no takeover however soon after connecting it came.
        self._refused_since_loss = False
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        # paho types the delays as int but only adds and compares them as seconds: fractions work,
        # and a whole second of minimum delay is what kept decisions away up to 4 s after a restart.
        self._client.reconnect_delay_set(
            min_delay=reconnect_min_s,  # type: ignore[arg-type]
            max_delay=reconnect_max_s,  # type: ignore[arg-type]
        )
        self._client.max_queued_messages_set(max_queued)
        if username is not None:
            self._client.username_pw_set(username, password)
        if self._tls is not None:
            self._client.tls_set_context(self._tls)
        self._client.on_socket_open = self._on_socket_open
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_message = self._on_message
        self._client.on_unsubscribe = self._on_unsubscribe
        self._client.on_subscribe = self._on_subscribe

    @property
    def connected(self) -> bool:
        return self._up.is_set()

    @property
    def takeovers(self) -> int:
        """How often the broker said it gave this client id to another connection."""
        return self._takeovers

    @property
    def flaps(self) -> int:
        """How often a connection was lost within ``FLAP_S`` of being made (a takeover on a
        broker that does not say so looks like this)."""
        return self._flaps

    def connect(self, will: Will | None = None) -> None:
        if will is not None:
            self._client.will_set(will.topic, will.payload, will.qos, will.retain)
        try:
            # Clean start on every (re)connect, session expiry 0 (paho's default): see the module
            # docstring for why no persistent session.
            self._client.connect_async(
                self.host, self.port, keepalive=self._keepalive, clean_start=True
            )
        except (OSError, ValueError) as exc:
            raise BusError(f"cannot connect to {self.url}: {exc}") from exc
        # A certificate that will never verify (unknown CA, host name not in it) is said now;
        # paho would retry the handshake until the timeout (and leak a socket each time).
        why = self._tls_problem()
        if why:
            raise BusError(f"cannot connect to {self.url}: TLS handshake failed: {why}")
        self._refused = None
        self._settled.clear()
        self._closing.clear()
        self._client.loop_start()
        self._settled.wait(self._timeout)
        if self._up.is_set():
            return
        self._client.disconnect()  # no retry in paho's thread: this connect() has failed
        self._client.loop_stop()
        self._release_sockets()  # a refused login leaves paho's socket open
        if self._refused is not None:
            raise BusError(
                f"the broker at {self.url} refused the login of {self.client_id or 'anonymous'!r}"
                f": {self._refused} (check RULEDRIVE_MQTT_USERNAME / RULEDRIVE_MQTT_PASSWORD)"
            )
        raise BusError(f"no connection to the broker at {self.url} within {self._timeout} s")

    def _tls_problem(self) -> str | None:
        """Over TLS: why the broker's certificate does not verify (unknown CA, host name not in
        it, expired), or None (verified, or nothing to say yet)."""
        if self._tls is None:
            return None
        try:
            with (
                socket.create_connection((self.host, self.port), timeout=2) as raw,
                self._tls.wrap_socket(raw, server_hostname=self.host),
            ):
                return None
        except ssl.SSLCertVerificationError as exc:
            return str(exc)
        except OSError:  # nothing listens yet, or a transient TLS error: paho keeps trying
            return None

    def close(self) -> None:
        self._up.clear()  # a clean close is not a lost connection: no warning
        self._closing.set()
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()
            self._up.clear()
            self._release_sockets()

    def _release_sockets(self) -> None:
        """Close what paho leaves open after ``loop_stop``: the socket of a (re)connect still
        in progress, and the socket pair that wakes its network thread, which paho closes
        only when the client is collected (eclipse-paho/paho.mqtt.python issue 627, open).
        The client and this bus point at each other through the callbacks, so that is
        whenever the garbage collector runs: one bus opened and closed a run leaked two
        descriptors until then, and the collector closing them warned (ResourceWarning) in
        whatever code was running. paho has no public call for this; ``_reset_sockets`` is
        what its own ``__del__`` calls, and ``loop_start`` opens a new pair."""
        sock = self._client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        reset = getattr(self._client, "_reset_sockets", None)
        if reset is not None:  # a paho without it leaves them to the collector, as before
            with contextlib.suppress(OSError):
                reset(sockpair_only=True)

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """Raise BusError if the message is lost: a QoS 0 publish while disconnected, paho's
        queue full (``max_queued``), a bad topic. QoS 1/2 while disconnected is queued by paho
        and sent after the reconnect."""
        try:
            info = self._client.publish(topic, payload, qos=qos, retain=retain)
        except ValueError as exc:
            raise BusError(f"publish to {topic!r}: {exc}") from exc
        if info.rc == mqtt.MQTT_ERR_NO_CONN and qos > 0:
            return  # paho kept it in its queue; it goes out on reconnect (not lost)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise BusError(f"publish to {topic!r}: {mqtt.error_string(info.rc)}")

    def subscribe(self, pattern: str, handler: Handler, qos: int = 0) -> None:
        """``pattern`` may be a shared subscription, ``$share/GROUP/FILTER``."""
        try:
            _, match = split_shared(pattern)
        except ValueError as exc:
            raise BusError(f"subscribe {pattern!r}: {exc}") from exc
        with self._lock:
            self._subs.append((pattern, match, handler, qos))
        if self.connected:
            rc, _ = self._client.subscribe(pattern, qos)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                raise BusError(f"subscribe {pattern!r}: {mqtt.error_string(rc)}")

    def unsubscribe(self, pattern: str, handler: Handler, timeout_s: float = 2.0) -> None:
        """Stop delivering ``pattern`` to ``handler``. When it was the pattern's last handler,
        unsubscribe at the broker and wait (at most ``timeout_s``) for the UNSUBACK: paho hands
        over incoming packets in order, so every message the broker sent before it has reached
        ``handler`` by then. For a shared subscription, ``handler`` also takes what the broker
        had queued for this member and sends after the UNSUBACK, until the pattern has been
        quiet for SHARED_DRAIN_QUIET_S (at most ``timeout_s`` more): this is how a member leaves
        its group without a message falling between it and the others. Nothing reaches
        ``handler`` after this returns."""
        with self._lock:
            mine = [s for s in self._subs if s[0] == pattern and s[2] == handler]
            last = bool(mine) and all(s[2] == handler for s in self._subs if s[0] == pattern)
            if last:
                self._leaving[pattern] = time.monotonic()
        try:
            if last and self.connected:
                try:
                    rc, mid = self._client.unsubscribe(pattern)
                except ValueError as exc:
                    raise BusError(f"unsubscribe {pattern!r}: {exc}") from exc
                if rc == mqtt.MQTT_ERR_SUCCESS and mid is not None:
                    with self._acks:
                        if not self._acks.wait_for(lambda: mid in self._unsubacked, timeout_s):
                            log.warning("no UNSUBACK for %s within %.1f s", pattern, timeout_s)
                        self._unsubacked.discard(mid)
                    if split_shared(pattern)[0] is not None:
                        self._drain(pattern, time.monotonic() + timeout_s)
        finally:
            with self._lock:
                self._subs = [s for s in self._subs if not (s[0] == pattern and s[2] == handler)]
                self._leaving.pop(pattern, None)

    def _drain(self, pattern: str, deadline: float) -> None:
        """Keep handling a shared ``pattern`` after its UNSUBACK until no message for it has
        arrived for SHARED_DRAIN_QUIET_S (or ``deadline``): Mosquitto sends a member what it had
        queued for it even after the UNSUBACK, and a message no handler takes is lost for the
        whole group (measured: 11-84 of 400 QoS 1 messages lost by a member 4 ms per message
        behind, December 2026). ``pattern`` is in ``_leaving`` until unsubscribe() returns."""
        with self._lock:  # quiet is counted from the UNSUBACK at the earliest
            self._leaving[pattern] = max(self._leaving[pattern], time.monotonic())
        while True:
            now = time.monotonic()
            with self._lock:
                quiet = now - self._leaving[pattern]
            if quiet >= SHARED_DRAIN_QUIET_S:
                return
            if now >= deadline:
                log.warning("%s still receiving when unsubscribe gave up waiting", pattern)
                return
            time.sleep(min(SHARED_DRAIN_QUIET_S - quiet, deadline - now))

    def add_connect_hook(self, hook: ConnectHook) -> None:
        self._hooks.append(hook)

    def add_disconnect_hook(self, hook: DisconnectHook) -> None:
        self._lost_hooks.append(hook)

    # paho callbacks (network thread) ---------------------------------------------------------

    def _on_socket_open(self, client, userdata, sock) -> None:
        # Frames and decisions are small and latency-bound: Nagle + delayed ACK would add up to
        # 40 ms per message. (The broker side needs mosquitto's ``set_tcp_nodelay true``.)
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("broker %s refused the connection: %s", self.url, reason_code)
            if reason_code.value in _LOGIN_REFUSED and not self._up.is_set():
                self._refused = str(reason_code)
                self._settled.set()
            return
        with self._lock:
            filters = sorted(
                {(pat, qos) for pat, _, _, qos in self._subs if pat not in self._leaving}
            )
        log.info("connected to %s (%d subscriptions)", self.url, len(filters))
        if filters:
            # Up only once the broker has the subscriptions (its SUBACK): a message published
            # before that is not delivered, and "connected" must not promise that it is.
            _, self._resub_mid = client.subscribe(filters)
            return
        self._now_up()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if mid != self._resub_mid:
            return
        self._resub_mid = None
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if refused:
            log.warning("the broker at %s refused subscriptions: %s", self.url, ", ".join(refused))
        self._now_up()

    def _on_connect_fail(self, client, userdata) -> None:
        self._refused_since_loss = True

    def _now_up(self) -> None:
        if self._refused_since_loss:  # the broker was away: an outage, not a takeover
            self._flap_streak, self._wait = 0, 0.0
            self._refused_since_loss = False
        self._up_since = time.monotonic()
        self._up.set()
        try:
            for hook in list(self._hooks):
                try:
                    hook()
                except Exception:  # a hook must not kill paho's network thread
                    log.exception("connect hook failed")
        finally:
            # connect() returns once the first connection's hooks have run (the node's online
            # status is out when it returns), not while they still run in paho's thread.
            self._settled.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was_up = self._up.is_set()  # close() clears it first: a clean close runs no hook
        self._up.clear()
        if self._closing.is_set():
            return
        taken = getattr(reason_code, "value", None) == SESSION_TAKEN_OVER
        self._refused_since_loss = False
        lasted = time.monotonic() - self._up_since if was_up else None
        flap = lasted is not None and lasted < FLAP_S
        if lasted is not None and not flap:
            self._flap_streak, self._wait = 0, 0.0  # it lasted: whatever came before is over
        self._takeovers += taken
        self._flaps += flap
        self._flap_streak += flap or taken
        if was_up and not taken:
            log.warning("lost the broker at %s (%s); reconnecting", self.url, reason_code)
        if was_up:
            for hook in list(self._lost_hooks):
                try:
                    hook()
                except Exception:  # a hook must not kill paho's network thread
                    log.exception("disconnect hook failed")
        if taken or (flap and self._flap_streak >= FLAP_STREAK):
            self._back_off(taken)

    def _back_off(self, taken: bool) -> None:
        """Say why and wait before paho reconnects (in paho's network thread: nothing else is
        due on a closed connection; close() ends the wait)."""
        first, cap = TAKEOVER_WAIT_S
        self._wait = min(cap, 2 * self._wait) if self._wait else first
        if taken:
            why = "the broker gave it to another connection (MQTT 'Session taken over')"
        else:
            why = (
                f"its connection was lost {self._flap_streak} times in a row within "
                f"{FLAP_S:.0f} s of being made while the broker accepts it again at once; most "
                "likely another process connects with this id (brokers before Mosquitto 2.0.15 "
                "close the connection without saying so)"
            )
        log.error(
            "client id %r at %s: %s. A node's client id is its node id (with a login, its user "
            "name), and two processes with one id take the connection from each other in a "
            "loop: give every node its own RULEDRIVE_NODE_ID. Reconnecting in %.0f s",
            self.client_id,
            self.url,
            why,
            self._wait,
        )
        self._closing.wait(self._wait)

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        with self._acks:
            self._unsubacked.add(mid)
            self._acks.notify_all()

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            subs = [(p, h) for p, m, h, _ in self._subs if topic_matches_sub(m, message.topic)]
            for pattern, _ in subs:
                if pattern in self._leaving:
                    self._leaving[pattern] = time.monotonic()
        handlers = [h for _, h in subs]
        for handler in handlers:
            try:
                handler(message.topic, bytes(message.payload))
            except Exception:
                log.exception("handler for %s failed", message.topic)
