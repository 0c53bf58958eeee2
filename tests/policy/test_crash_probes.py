"""Crash probes against a real node process (`ruledrive serve` on a private Mosquitto).

Each probe is one hostile message of a kind that once stopped or stalled the node (decompression
bombs, huge integers, NaN/inf, odd encodings, boundary sizes). After every group the node process
must still be alive and must answer a valid frame of a steady vehicle; at the end it must exit 0
on SIGTERM. The property-based test beside it checks the schema bounds on the parse path.
"""

from __future__ import annotations

import json
import math
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.codec import encode, parse_incoming
from bus.envelope import pack_frame
from bus.memory import Recorder
from bus.mqtt import MqttBus
from bus.schema import INT64_MAX, DecisionMsg
from bus.topics import CAMERA, DECISION, RULES, STATUS
from core.errors import MessageError
from core.rejects import RejectCode
from ruledrive.bench_node import serve_command
from tests.perception.jpeg_bombs import hidden_frame_header, scan_bomb
from tests.policy.conftest import header, jpeg, rules

ROOT = Path(__file__).resolve().parents[2]
P = "probe/v1"


def _envelope(head: bytes, image: bytes = b"") -> bytes:
    return b"RDF1" + struct.pack(">I", len(head)) + head + (image or jpeg())


def _head(**fields: object) -> bytes:
    base = {"vehicle_id": "evil", "frame_id": 1, "stamp_ns": time.time_ns(), "speed_kph": 10.0}
    return json.dumps({**base, **fields}).encode()


def _bomb(w: int, h: int) -> bytes:
    data = bytearray(jpeg())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", h, w)
    return bytes(data)


CAM = CAMERA.topic(P, vehicle_id="evil")
RUL = RULES.topic(P, vehicle_id="evil")
PROBES: dict[str, list[tuple[str, bytes]]] = {
    "decompression bombs": [
        (CAM, pack_frame(header("evil"), _bomb(60000, 60000))),
        (CAM, pack_frame(header("evil"), _bomb(30000, 30000))),
        (CAM, pack_frame(header("evil"), _bomb(65535, 1))),
        # A frame header the size check did not see (1.6 KB, 20000x20000: 2.6 GB, 7 s), and a
        # progressive JPEG repeating one scan 2,000 times (350 KB, ~15 s of decoding).
        (CAM, pack_frame(header("evil"), hidden_frame_header(b"\xff\x00"))),
        (CAM, pack_frame(header("evil"), scan_bomb(4096, 2304, 2000))),
    ],
    "huge integers": [
        (CAM, _envelope(_head(stamp_ns=int("9" * 401)))),
        (CAM, _envelope(_head(frame_id=2**64))),
        (CAM, _envelope(_head(frame_id=-(2**70)))),
        (
            RUL,
            json.dumps(
                {"vehicle_id": "evil", "version": "v", "issued_at_ns": 10**500, "rules": ["Stop"]}
            ).encode(),
        ),
    ],
    "NaN and infinity": [
        (CAM, _envelope(b'{"vehicle_id":"evil","frame_id":1,"stamp_ns":1,"speed_kph":NaN}')),
        (CAM, _envelope(b'{"vehicle_id":"evil","frame_id":1,"stamp_ns":1,"speed_kph":Infinity}')),
        (CAM, _envelope(_head(speed_kph=1e308 * 10))),
    ],
    "odd encodings": [
        (CAM, _envelope('{"vehicle_id":"évil"}'.encode("utf-16"))),
        (CAM, _envelope(b"\xff\xfe\x00\x00" * 10)),
        (RUL, '{"vehicle_id":"evil","version":"\ud800"}'.encode("utf-8", "surrogatepass")),
        (RUL, b"\xef\xbb\xbf" + encode(rules("evil"))),
        (CAM, b"RDF1\xff\xff\xff\xff"),
        (RUL, b"[" * 100_000),
    ],
    "boundary sizes": [
        (CAM, b""),
        (CAM, b"RDF1"),
        (CAM, _envelope(_head(), b"\xff\xd8")),
        (CAM, b"RDF1" + struct.pack(">I", 4096) + b" " * 4096),
        (CAM, b"RDF1" + bytes(3 * 1024 * 1024)),
        (RUL, encode(rules("evil", texts=("x" * 200,) * 5))),
    ],
}


@pytest.mark.broker
def test_no_probe_stops_or_stalls_the_node(private_broker, fake_model_path: Path) -> None:
    url = private_broker.url
    proc = subprocess.Popen(
        serve_command(url, fake_model_path, P, "probe-node", "--max-frame-age-ms", "5000"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    bus = MqttBus(url)
    decisions, status = Recorder(), Recorder()
    bus.subscribe(DECISION.topic(P, vehicle_id="steady"), decisions, 1)
    bus.subscribe(STATUS.topic(P, node_id="probe-node"), status, 1)
    bus.connect()
    try:
        assert status.wait_for(lambda m: any(b'"online"' in p for _, p in m), 20)
        bus.publish(RULES.topic(P, vehicle_id="steady"), encode(rules("steady")), 1, retain=True)
        time.sleep(0.2)
        for frame_id, (group, probes) in enumerate(PROBES.items(), 1):
            for topic, payload in probes:
                bus.publish(topic, payload, 0)
            bus.publish(
                CAMERA.topic(P, vehicle_id="steady"),
                pack_frame(header("steady", frame_id), jpeg()),
                0,
            )
            assert decisions.wait_for(
                lambda m, fid=frame_id: any(
                    DecisionMsg.model_validate_json(p).frame_id == fid for _, p in m
                ),
                5,
            ), f"no decision for the steady vehicle after the {group}"
            assert proc.poll() is None, f"node exited after the {group}"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0, out.decode()[-3000:]
        assert "Traceback" not in out.decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        bus.publish(RULES.topic(P, vehicle_id="steady"), b"", 1, retain=True)
        bus.close()


_ints = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, INT64_MAX, INT64_MAX + 1, -(2**63), 2**64, 10**30]),
)
_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 300.0, 300.0001, -1e-9, 1e308]),
)


@settings(max_examples=300, deadline=None)
@given(frame_id=_ints, stamp_ns=_ints, speed=_floats)
def test_schema_bounds_hold_on_the_parse_path(frame_id: int, stamp_ns: int, speed: float) -> None:
    head = json.dumps(
        {"vehicle_id": "car-1", "frame_id": frame_id, "stamp_ns": stamp_ns, "speed_kph": speed}
    ).encode()  # json writes NaN / Infinity as-is
    try:
        msg = parse_incoming(CAMERA.topic("ruledrive/v1", vehicle_id="car-1"), _envelope(head))
    except MessageError as exc:
        assert exc.code in set(RejectCode)
        in_bounds = (
            0 <= frame_id <= INT64_MAX
            and 0 <= stamp_ns <= INT64_MAX
            and math.isfinite(speed)
            and 0.0 <= speed <= 300.0
        )
        assert not in_bounds, f"in-bounds header refused: {exc}"
        return
    h = msg.message
    assert 0 <= h.frame_id <= INT64_MAX and 0 <= h.stamp_ns <= INT64_MAX
    assert math.isfinite(h.speed_kph) and 0.0 <= h.speed_kph <= 300.0
