"""Fuzz the node's message path and decider step on the in-memory bus: it never crashes, every
frame whose header parsed is answered exactly once, and every reject is reported."""

from __future__ import annotations

import json
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus.codec import encode
from bus.envelope import pack_frame
from bus.memory import MemoryBus, Recorder
from bus.schema import DecisionMsg, FrameHeader, RuleSet
from bus.topics import CAMERA, DECISION, ERRORS, RULES
from policy.model import PolicyModel
from policy.node import Node
from policy.settings import load_settings
from tests.policy.conftest import jpeg, rules_encoded

P = "ruledrive/v1"
VIDS = ["car-1", "car-2", "car-3"]
GOOD_JPEG = jpeg(90)

_header = st.builds(
    FrameHeader,
    vehicle_id=st.sampled_from(VIDS),
    frame_id=st.integers(0, 10**6),
    stamp_ns=st.integers(0, 2**62),
    speed_kph=st.floats(0, 300),
)
_image = st.one_of(
    st.just(GOOD_JPEG),
    st.binary(max_size=64),
    st.builds(lambda b: b"\xff\xd8" + b, st.binary(max_size=64)),
    st.builds(lambda n: GOOD_JPEG[:n], st.integers(0, len(GOOD_JPEG))),
)
_rules = st.builds(
    RuleSet,
    vehicle_id=st.sampled_from(VIDS),
    version=st.text("abc123", min_size=1, max_size=4),
    issued_at_ns=st.integers(0, 2**62),
    expires_at_ns=st.none() | st.integers(0, 2**63 - 1),
    rules=st.lists(st.text(max_size=40).filter(str.strip), max_size=5),
)
_garbage = st.tuples(
    st.sampled_from(
        [
            CAMERA.topic(P, vehicle_id="car-1"),
            RULES.topic(P, vehicle_id="car-2"),
            f"{P}/vehicles/x y/rules",
            f"{P}/nope",
        ]
    ),
    st.one_of(
        st.binary(max_size=100),
        st.builds(
            lambda d: b"RDF1" + struct.pack(">I", len(d)) + d,
            st.builds(
                lambda o: json.dumps(o).encode(),
                st.dictionaries(st.text(max_size=8), st.integers() | st.text(), max_size=4),
            ),
        ),
    ),
)
_event = st.one_of(
    st.tuples(st.just("frame"), _header, _image),
    st.tuples(st.just("rules"), _rules),
    st.tuples(st.just("raw"), _garbage),
)


@pytest.fixture(scope="module")
def fuzz_model(fake_model_path) -> PolicyModel:
    return PolicyModel.load(fake_model_path)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=st.lists(_event, max_size=25), batch=st.integers(1, 4))
def test_node_survives_any_message_sequence(
    fuzz_model: PolicyModel, events: list, batch: int
) -> None:
    bus = MemoryBus()
    # Interval 0: every rejection is reported (rate limiting is tested in test_overload.py).
    node = Node(
        load_settings(
            {
                "node_id": "fz",
                "max_batch_size": batch,
                "error_report_interval_s": 0,
                "max_frame_age_ms": 10**12,
            }
        ),
        bus,
        fuzz_model,
    )
    node.start()
    decided, reports = Recorder(), Recorder()
    bus.subscribe(DECISION.subscription(P), decided)
    bus.subscribe(ERRORS.subscription(P), reports)
    sent_frames: list[tuple[str, int]] = []
    expected_reports: list[str] = []  # topics, in order, of inputs that must be reported
    accepted: dict[str, RuleSet] = {}  # the newest rule set taken per vehicle (a clear keeps it)
    for ev in events:
        if ev[0] == "frame":
            _, h, img = ev
            topic = CAMERA.topic(P, vehicle_id=h.vehicle_id)
            bus.publish(topic, pack_frame(h, img))
            sent_frames.append((h.vehicle_id, h.frame_id))
            # process now, so no conflation: every frame must be answered
            assert rules_encoded(node)
            while items := node._collect(0):
                for d in node.process(items):
                    if d.reason in ("bad_image", "image_too_large", "bad_timestamp"):
                        expected_reports.append(topic)
        elif ev[0] == "rules":
            topic = RULES.topic(P, vehicle_id=ev[1].vehicle_id)
            bus.publish(topic, encode(ev[1]), 1, True)
            r, newest = ev[1], accepted.get(ev[1].vehicle_id)
            future = r.issued_at_ns > time.time_ns() + 10**9  # beyond the 500 ms clock skew
            replayed = newest is not None and (  # not newer than the one accepted
                r.issued_at_ns < newest.issued_at_ns
                or (r.issued_at_ns == newest.issued_at_ns and r != newest)
            )
            if future or replayed:
                expected_reports.append(topic)
            else:
                accepted[r.vehicle_id] = r
        else:
            topic, payload = ev[1]
            node.on_message(topic, payload)
            if payload or topic != RULES.topic(P, vehicle_id="car-2"):  # empty rules = a clear
                expected_reports.append(topic)
    answers = [DecisionMsg.model_validate_json(p) for _, p in decided.messages]
    assert sorted((a.vehicle_id, a.frame_id) for a in answers) == sorted(sent_frames)
    assert all(a.valid or a.reason for a in answers)
    assert [json.loads(p)["topic"] for _, p in reports.messages] == expected_reports
