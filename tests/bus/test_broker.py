"""Local broker helpers used by the demo and the node benchmark."""

from __future__ import annotations

import pytest

from bus import broker
from core.errors import BusError
from ruledrive.demo import find_broker
from tests.markers import skip_or_fail


def test_no_broker_and_no_binary_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker, "mosquitto_binary", lambda: None)
    url = f"mqtt://127.0.0.1:{broker.free_port()}"
    with pytest.raises(BusError, match="apt-get install mosquitto"), find_broker(url):
        pass


@pytest.mark.broker
def test_private_broker_starts_and_stops() -> None:
    if broker.mosquitto_binary() is None:
        skip_or_fail("mosquitto binary not installed")
    with broker.private_mosquitto() as url:
        assert broker.broker_answers(url)
    assert not broker.broker_answers(url)
