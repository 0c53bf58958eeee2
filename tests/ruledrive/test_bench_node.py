"""The benchmark's pieces that do not need minutes (the doc writer is tested in tests/ruledrive)."""

from __future__ import annotations

from perception.image import preprocess_jpeg
from ruledrive.bench_node import synthetic_frames


def test_synthetic_frames_decode() -> None:
    frames = synthetic_frames(3)
    assert len(set(frames)) == 3
    assert preprocess_jpeg(frames[0]).shape == (96, 160, 3)
