"""Fixtures of the secure-deployment tests: the credentials and the fake node model."""

from __future__ import annotations

from pathlib import Path

import pytest

from policy.model import PolicyModel
from tests.deploy.secure_helpers import make_credentials


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> PolicyModel:
    from tests.policy.fakemodel import build_fake_model

    return PolicyModel.load(build_fake_model(tmp_path_factory.mktemp("m") / "fake.onnx"), "cpu")


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_credentials(tmp_path_factory.mktemp("secrets") / "secrets")
