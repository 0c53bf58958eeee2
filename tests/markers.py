"""Markers that are true: checked, not trusted.

* A test that uses a broker fixture must be marked ``broker``; a test that imports TensorFlow
  must be marked ``tf`` (caught when it is the first to import it, as in ``make test-fast``).
* In CI (``CI=true``) a missing broker or mosquitto binary fails the run instead of skipping
  the tests that need it: a green CI must mean those tests ran.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

__all__ = ["BROKER_FIXTURES", "in_ci", "skip_or_fail"]

BROKER_FIXTURES = frozenset({"broker_url", "private_broker"})


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def skip_or_fail(reason: str) -> None:
    """Skip on a developer machine; fail in CI, where every test must run."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: tests that need it must run, not skip)", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    wrong = [
        item.nodeid
        for item in items
        if set(getattr(item, "fixturenames", ())) & BROKER_FIXTURES
        and item.get_closest_marker("broker") is None
    ]
    if wrong:
        raise pytest.UsageError(
            "these tests use a broker fixture but are not marked `broker`:\n  " + "\n  ".join(wrong)
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    had_tf = "tensorflow" in sys.modules
    result = yield
    if not had_tf and "tensorflow" in sys.modules and item.get_closest_marker("tf") is None:
        pytest.fail(f"{item.nodeid} imported TensorFlow but is not marked `tf`", pytrace=False)
    return result
