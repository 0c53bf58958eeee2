"""Decode-ahead (NodeSettings.decode_ahead, off by default): a worker decodes waiting frames
while the serving loop runs the model. What a user relies on: the same decisions as decoding in
the loop, a frame decoded the way the model reads it (never with another decode), the decode
time still in the decision's timings, a bad JPEG still answered and reported, and no thread left
behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

import policy.decider
from bus.envelope import pack_frame
from bus.memory import MemoryBus, Recorder
from bus.schema import DecisionMsg
from bus.topics import CAMERA, DECISION
from perception.image import preprocess_jpeg
from policy.decider import Decider, FrameJob
from policy.model import PolicyModel
from policy.node import Node
from tests.policy.conftest import header, jpeg, rules, rules_encoded
from tests.policy.test_node_memory import decisions, send_rules, settings

P = "ruledrive/v1"


def _serve(bus: MemoryBus, model: PolicyModel, **kw: object) -> Iterator[Node]:
    node = Node(settings(**kw), bus, model)
    node.start()
    t = threading.Thread(target=node.run, daemon=True)
    t.start()
    try:
        yield node
    finally:
        node.stop()
        t.join(5)
        assert not t.is_alive()


def _answers(model: PolicyModel, decode_ahead: bool, frames: list[bytes]) -> list[DecisionMsg]:
    """Serve a rule set and ``frames`` (frame ids 0..), one at a time; the decisions."""
    bus = MemoryBus()
    rec = Recorder()
    bus.subscribe(DECISION.subscription(P), rec)
    for node in _serve(bus, model, decode_ahead=decode_ahead):
        send_rules(bus)
        assert rules_encoded(node)
        for i, image in enumerate(frames):
            bus.publish(CAMERA.topic(P, vehicle_id="car-1"), pack_frame(header(frame_id=i), image))
            assert rec.wait_count(i + 1)
    return decisions(rec)


def _decide_all(model: PolicyModel, decode_ahead: bool) -> dict[int, tuple[str, float]]:
    got = _answers(model, decode_ahead, [jpeg(v) for v in (20, 90, 160, 230)])
    assert all(d.valid and d.timings.decode_ms > 0 for d in got)
    return {d.frame_id: (str(d.decision), d.confidence) for d in got}


def test_decisions_are_the_same_with_and_without_decode_ahead(model: PolicyModel) -> None:
    ahead, inline = _decide_all(model, True), _decide_all(model, False)
    assert ahead.keys() == inline.keys() == {0, 1, 2, 3}
    for k in ahead:
        assert ahead[k][0] == inline[k][0]
        assert ahead[k][1] == pytest.approx(inline[k][1], abs=1e-6)


def test_a_frame_decoded_ahead_is_not_decoded_again(
    model: PolicyModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker decodes the waiting frame; the serving loop then uses it as it is."""
    node = Node(settings(decode_ahead=True), MemoryBus(), model)
    node.on_message(CAMERA.topic(P, vehicle_id="car-1"), pack_frame(header(frame_id=5), jpeg(70)))
    worker = threading.Thread(target=node._decode_ahead, daemon=True)
    worker.start()
    deadline = time.monotonic() + 5
    while node._pending["car-1"].decoded is None and time.monotonic() < deadline:
        time.sleep(0.002)
    node._stop.set()
    with node._cond:
        node._cond.notify_all()
    worker.join(5)
    assert not worker.is_alive()
    pending = node._pending.pop("car-1")
    assert pending.decoded is not None
    decode, image, ms = pending.decoded
    assert decode == model.meta.decode and ms > 0
    np.testing.assert_array_equal(image, preprocess_jpeg(jpeg(70), model.meta.decode))

    def no_decode(*_: object, **__: object) -> np.ndarray:
        raise AssertionError("decoded again in the serving loop")

    monkeypatch.setattr(policy.decider, "preprocess_jpeg", no_decode)
    node.rules["car-1"] = rules()
    (d,) = node.process([pending])
    assert d.valid and d.frame_id == 5
    assert d.timings.decode_ms >= ms  # the decode it had, though it ran on the worker


def test_a_frame_decoded_another_way_is_decoded_again(model: PolicyModel) -> None:
    """After a hot reload to a model that decodes differently, a frame decoded for the old one
    is decoded again: the model never sees pixels prepared another way."""
    decider = Decider(model, "node-t")
    job = FrameJob(header(frame_id=1), jpeg(200), rules())
    wrong = np.zeros_like(preprocess_jpeg(jpeg(200), model.meta.decode))
    other = "full" if model.meta.decode != "full" else "reduced"
    stale = FrameJob(job.header, job.jpeg, job.rules, decoded=(other, wrong, 1.0))
    plain, again = decider.decide_batch([job, stale])
    assert plain.probabilities == again.probabilities
    blank = FrameJob(job.header, job.jpeg, job.rules, decoded=(model.meta.decode, wrong, 1.0))
    (used,) = decider.decide_batch([blank])
    assert used.probabilities != plain.probabilities  # the decoded pixels were what it read


def test_a_bad_jpeg_is_still_answered_and_no_worker_outlives_the_node(model: PolicyModel) -> None:
    (d,) = _answers(model, True, [b"\xff\xd8junk"])
    assert (d.frame_id, d.valid, d.reason) == (0, False, "bad_image")
    assert not [t for t in threading.enumerate() if t.name == "decode-ahead" and t.is_alive()]
