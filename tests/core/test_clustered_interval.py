"""The interval of an accuracy whose answers come in clusters (a rule text's frames)."""

from __future__ import annotations

import pytest

from core.metrics import clustered_interval


def _wilson(p: float, n: float) -> tuple[float, float]:
    z = 1.96
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5 / (1 + z * z / n)
    return centre - half, centre + half


def test_independent_answers_get_wilsons_interval() -> None:
    lo, hi = clustered_interval([(1, 1)] * 50 + [(1, 0)] * 50)
    assert (round(lo, 4), round(hi, 4)) == (0.4034, 0.5966)  # Wilson, p = 0.5, n = 100


def test_answers_that_repeat_one_reading_are_fewer_observations() -> None:
    """26 texts of 3 frames, 8 texts wrong on every frame: 78 frames but 26 readings; the
    interval is that of ~26 answers (25: the variance's small-sample factor k / (k - 1)), far
    wider than 78 independent ones would give."""
    clustered = clustered_interval([(3, 3)] * 18 + [(3, 0)] * 8)
    assert clustered is not None
    independent = _wilson(54 / 78, 78)
    as_texts = _wilson(18 / 26, 25)
    assert clustered[0] < independent[0] and clustered[1] > independent[1]
    assert clustered == pytest.approx(as_texts, abs=1e-9)


def test_all_right_counts_each_text_once() -> None:
    """No variance to estimate: 26 texts all read right say as much as 26 answers, whatever
    their frames; a single text is a single reading."""
    lo, hi = clustered_interval([(3, 3)] * 26)
    assert hi == 1.0 and lo == pytest.approx(_wilson(1.0, 26)[0])
    assert clustered_interval([(3, 3)] * 26) == clustered_interval([(1, 1)] * 26)
    one = clustered_interval([(40, 40)])
    assert one is not None and one[0] == pytest.approx(_wilson(1.0, 1)[0]) and one[0] < 0.25


def test_no_answers_no_interval() -> None:
    assert clustered_interval([]) is None
