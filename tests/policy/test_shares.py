"""A batch split into shares (``inference_threads``): each share decoded, checked and run on its
own runner thread gives the answers of the whole batch run at once, in the batch's order, with
the same fallbacks for the frames that fail a check."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus.recording_reader import read_samples
from bus.schema import FrameHeader, RuleSet
from policy.decider import Decider, FrameJob
from policy.model import PolicyModel
from tests.policy.conftest import decoding_threads

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models/ruledrive-default.onnx"
GOLDEN = ROOT / "tests/golden/drive.mcap"


@pytest.fixture(scope="module")
def models() -> tuple[PolicyModel, PolicyModel]:
    one = PolicyModel.load(MODEL, "cpu", reading_threshold=1.0)  # every rule checked
    two = PolicyModel.load(
        MODEL, "cpu", encoder=one.encoder, reading_threshold=1.0, inference_threads=2, threads=1
    )
    assert one.runners is None and two.runners is not None
    return one, two


def _jobs() -> tuple[list[FrameJob], int]:
    samples = [s for s in read_samples([GOLDEN], require_labels=False) if s.rules][::4][:10]
    now = samples[0].stamp_ns
    jobs = []
    for i, s in enumerate(samples):
        vid = f"car-{i}"
        rules = RuleSet(vehicle_id=vid, version="1", rules=list(s.rules), issued_at_ns=now)
        h = FrameHeader(vehicle_id=vid, frame_id=i, stamp_ns=now, speed_kph=s.speed_kph)
        jobs.append(FrameJob(h, s.jpeg, rules, arrival_ns=now))
    # A bad JPEG, a frame without rules and a stale frame among the good ones.
    jobs[1] = FrameJob(jobs[1].header, b"\xff\xd8garbage", jobs[1].rules, now)
    jobs[4] = FrameJob(jobs[4].header, jobs[4].jpeg, None, now)
    old = jobs[7].header.model_copy(update={"stamp_ns": now - 10_000_000_000})
    jobs[7] = FrameJob(old, jobs[7].jpeg, jobs[7].rules, now)
    return jobs, now


@pytest.mark.parametrize("n", [2, 3, 10])
def test_shares_give_the_whole_batchs_answers_in_order(
    models: tuple[PolicyModel, PolicyModel], n: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = models
    jobs, now = _jobs()
    assert len(jobs) == 10
    jobs = jobs[:n]
    whole = Decider(one, "n", clock=lambda: now, max_frame_age_ms=200).decide_batch(jobs)
    where = decoding_threads(monkeypatch)
    shared = Decider(
        two, "n", clock=lambda: now, max_frame_age_ms=200, decode_threads=2
    ).decide_batch(jobs)
    assert where and all(name.startswith("infer") for name in where)  # decoded in the shares
    assert [d.frame_id for d in shared] == [j.header.frame_id for j in jobs]
    for a, b in zip(whole, shared, strict=True):
        assert (a.decision, a.reason, a.valid, a.unread_rules) == (
            b.decision,
            b.reason,
            b.valid,
            b.unread_rules,
        )
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-5)
    reasons = {d.frame_id: d.reason for d in shared}
    if n == 10:
        assert (reasons[1], reasons[4], reasons[7]) == ("bad_image", "no_rules", "stale_frame")
        assert sum(d.timings.inference_ms > 0 for d in shared) == 7
        assert any(d.reason == "rules_not_understood" for d in shared)  # the check ran
