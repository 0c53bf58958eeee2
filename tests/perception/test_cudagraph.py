"""The frame graph replayed per batch bucket (perception.cudagraph). CI has no GPU, so the
runner is tested on the CPU provider without capture: the padding to a bucket, the binding of
every input and output, the check against the plain run that refuses a bad capture, and the
model's use of it and of the small-batch head. The capture itself is measured on a GPU by
``ruledrive bench gpu`` (docs/benchmarks.md, "GPU")."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from perception import cudagraph
from perception.cudagraph import CapturedRunner, buckets_up_to
from perception.spec import MODEL_SPEC as S
from perception.splitgraph import split_model
from policy.model import HEAD_ON_CPU_UP_TO, PolicyModel
from tests.perception.test_readcheck import _golden_batch

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models/ruledrive-default.onnx"


@pytest.fixture(scope="module")
def frame() -> tuple[bytes, ort.InferenceSession, list[str]]:
    parts = split_model(MODEL.read_bytes())
    assert parts is not None
    plain = ort.InferenceSession(parts.frame, providers=["CPUExecutionProvider"])
    return parts.frame, plain, [o.name for o in plain.get_outputs()]


@pytest.fixture(scope="module")
def model() -> PolicyModel:
    return PolicyModel.load(MODEL, "cpu", reading_threshold=1.0)


FEATURES = PolicyModel.load(MODEL, "cpu").encode_rules(("Stop",)).features


def _feeds(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    assert FEATURES is not None
    return {
        S.image_input: rng.integers(0, 256, (n, *S.image.shape), dtype=np.uint8),
        S.speed_input: rng.uniform(0, 120, (n, 1)).astype(np.float32),
        S.rule_set_output: rng.standard_normal((n, FEATURES.shape[-1])).astype(np.float32),
    }


def test_buckets_are_powers_of_two_up_to_the_largest_batch() -> None:
    assert buckets_up_to(1) == (1,)
    assert buckets_up_to(8) == (1, 2, 4, 8)
    assert buckets_up_to(9) == (1, 2, 4, 8, 16)
    assert buckets_up_to(256)[-1] == 256


@pytest.mark.parametrize("n", [1, 3, 5, 8])
def test_a_padded_batch_gets_the_plain_runs_answers(frame, n: int) -> None:  # type: ignore[no-untyped-def]
    graph, plain, names = frame
    runner = CapturedRunner.build(graph, plain, 8, capture=False)
    assert runner is not None and runner.sizes == (1, 2, 4, 8)
    feeds = _feeds(n, seed=n)
    got, want = runner.run(names, feeds), plain.run(names, feeds)
    assert got is not None
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape  # the padding's answers are cut off
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_a_batch_above_the_largest_bucket_is_left_to_the_plain_session(frame) -> None:  # type: ignore[no-untyped-def]
    graph, plain, names = frame
    runner = CapturedRunner.build(graph, plain, 4, capture=False)
    assert runner is not None
    assert runner.run(names, _feeds(5, seed=0)) is None


def test_answers_are_not_overwritten_by_the_next_run(frame) -> None:  # type: ignore[no-untyped-def]
    graph, plain, names = frame
    runner = CapturedRunner.build(graph, plain, 2, capture=False)
    assert runner is not None
    first = runner.run(names, _feeds(2, seed=1))
    assert first is not None
    kept = [a.copy() for a in first]
    runner.run(names, _feeds(2, seed=2))  # same bucket, other frames
    for a, k in zip(first, kept, strict=True):
        np.testing.assert_array_equal(a, k)


def test_a_replay_that_differs_from_the_plain_run_is_not_used(frame, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    graph, plain, _ = frame
    real = cudagraph.Bucket.run

    def off(self: Any, names: Any, feeds: Any, n: int) -> list[np.ndarray]:
        return [a + 0.05 for a in real(self, names, feeds, n)]

    monkeypatch.setattr(cudagraph.Bucket, "run", off)
    assert CapturedRunner.build(graph, plain, 4, capture=False) is None
    assert "not captured" in caplog.text


def test_the_model_gives_the_same_answers_through_the_runner(model: PolicyModel, frame) -> None:  # type: ignore[no-untyped-def]
    """run_encoded with a runner (as on the CUDA provider): the same decisions and the same
    reading-check flags as through the plain frame session; fails if the runner's outputs were
    taken in another order."""
    graph, plain, _ = frame
    runner = CapturedRunner.build(graph, plain, 32, capture=False)
    assert runner is not None and model.frame_session is not None
    images, speeds, rules = _golden_batch(model)
    with_runner = dataclasses.replace(model, captured=runner).run_encoded(images, rules, speeds)
    without = model.run_encoded(images, rules, speeds)
    np.testing.assert_allclose(with_runner.probabilities, without.probabilities, atol=1e-6)
    np.testing.assert_allclose(with_runner.image_ood, without.image_ood, atol=1e-6)
    assert with_runner.unsure == without.unsure and any(without.unsure)


class _Counting:
    def __init__(self, session: ort.InferenceSession) -> None:
        self.session, self.calls = session, 0

    def run(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.session.run(*args, **kwargs)


def test_beside_a_gpu_model_small_batches_rerun_the_head_on_the_cpu_copy(model) -> None:  # type: ignore[no-untyped-def]
    assert model.head_session is not None
    small, big = _Counting(model.head_session), _Counting(model.head_session)
    m = dataclasses.replace(model, head_session=big, head_small=small)
    images, speeds, rules = _golden_batch(model, HEAD_ON_CPU_UP_TO + 1)
    assert len(rules) == HEAD_ON_CPU_UP_TO + 1
    m.run_encoded(images[:HEAD_ON_CPU_UP_TO], rules[:HEAD_ON_CPU_UP_TO], speeds[:HEAD_ON_CPU_UP_TO])
    assert small.calls > 0 and big.calls == 0
    small.calls = 0
    m.run_encoded(images, rules, speeds)
    assert big.calls > 0 and small.calls == 0


def test_a_cpu_model_has_neither_captured_graphs_nor_a_second_head(model: PolicyModel) -> None:
    assert model.captured is None and model.head_small is None
    assert PolicyModel.load(MODEL, "cpu", cuda_graphs=True).captured is None
