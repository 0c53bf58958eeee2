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


def test_local_brokers_share_one_config(tmp_path) -> None:
    # bus/broker.py and deploy/local-broker.sh both start from bus/mosquitto-local.conf; neither
    # spells a setting of its own that the other would lack.
    from pathlib import Path

    settings = [
        ln
        for ln in broker.LOCAL_CONFIG.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert "set_tcp_nodelay true" in settings
    conf = broker.local_config(1234, "max_keepalive 30").splitlines()
    assert conf[0] == "listener 1234 127.0.0.1" and conf[-1] == "max_keepalive 30"
    assert all(s in conf for s in settings)
    script = (Path(__file__).parents[2] / "deploy" / "local-broker.sh").read_text()
    assert "bus/mosquitto-local.conf" in script
    assert not any(s in script for s in settings), "local-broker.sh repeats a shared setting"
