"""Rule-set integrity in the node (in-memory bus): issue times only go forward, also across a
restart with ``state_dir``; with trusted keys only rule sets signed by one of them are taken."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bus.codec import encode
from bus.memory import MemoryBus
from bus.schema import ErrorReport, RuleSet
from bus.signing import public_pem, sign
from bus.topics import ERRORS, RULES
from core.errors import ConfigError
from policy.model import PolicyModel
from policy.node import Node
from policy.settings import load_settings
from ruledrive.cli import main as cli_main
from tests.policy.conftest import rules

P = "ruledrive/v1"
TOPIC = RULES.topic(P, vehicle_id="car-1")


def node_on(bus: MemoryBus, model: PolicyModel, **kw: object) -> Node:
    # Interval 0: every refusal is its own report, so the tests can count them.
    base = {"node_id": "node-t", "reload_poll_s": 0, "error_report_interval_s": 0}
    node = Node(load_settings({**base, **kw}), bus, model)
    node.start()
    return node


def connected_bus() -> MemoryBus:
    bus = MemoryBus()
    bus.connect()  # to publish retained messages before the node starts
    return bus


def publish(bus: MemoryBus, rs: RuleSet | None, vid: str = "car-1") -> None:
    bus.publish(RULES.topic(P, vehicle_id=vid), b"" if rs is None else encode(rs), 1, True)


def codes(bus: MemoryBus) -> list[str]:
    return [
        ErrorReport.model_validate_json(p).code
        for t, p, _, _ in bus.published
        if t == ERRORS.topic(P, node_id="node-t")
    ]


def at(t_ns: int, version: str, texts: tuple[str, ...] = ("Stop at the red light",)) -> RuleSet:
    return rules(version=version, texts=texts).model_copy(update={"issued_at_ns": t_ns})


@pytest.fixture(scope="module")
def authority() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def keys(tmp_path: Path, authority: Ed25519PrivateKey) -> Path:
    path = tmp_path / "keys"
    path.mkdir()
    (path / "authority.pub").write_bytes(public_pem(authority.public_key()))
    return path


# issue times only go forward ------------------------------------------------------------------


def test_older_and_same_time_other_content_are_refused_and_reported(model: PolicyModel) -> None:
    bus = MemoryBus()
    node = node_on(bus, model)
    now = time.time_ns()
    publish(bus, at(now, "r2"))
    publish(bus, at(now, "r2"))  # the same one again (a redelivery): taken, not reported
    publish(bus, at(now - 10**9, "r1"))  # older
    publish(bus, at(now, "r2-forged", ("Proceed through the red light",)))  # same time
    assert node.rules["car-1"].version == "r2"
    assert codes(bus) == ["rules_replayed", "rules_replayed"]
    publish(bus, None)  # a clear does not lower the mark
    assert "car-1" not in node.rules
    publish(bus, at(now - 10**9, "r1"))
    assert "car-1" not in node.rules and codes(bus)[-1] == "rules_replayed"
    publish(bus, at(now + 1, "r3"))
    assert node.rules["car-1"].version == "r3" and len(codes(bus)) == 3


def test_a_replayed_old_retained_rule_set_is_refused_after_a_restart_with_state_dir(
    model: PolicyModel, tmp_path: Path
) -> None:
    now = time.time_ns()
    bus = MemoryBus()
    first = node_on(bus, model, state_dir=tmp_path)
    publish(bus, at(now, "r2"))
    assert first.rules["car-1"].version == "r2"
    # While the node is down someone re-publishes the old rule set retained; the restarted
    # node gets it from the broker first thing.
    bus = connected_bus()
    publish(bus, at(now - 10**9, "r1"))
    restarted = node_on(bus, model, state_dir=tmp_path)
    assert "car-1" not in restarted.rules
    assert codes(bus) == ["rules_replayed"]
    # The genuine rule set, retained, is taken again after a restart (no report).
    bus = connected_bus()
    publish(bus, at(now, "r2"))
    again = node_on(bus, model, state_dir=tmp_path)
    assert again.rules["car-1"].version == "r2" and codes(bus) == []
    # Without a state directory the restarted node has no memory and takes the replay.
    bus = connected_bus()
    publish(bus, at(now - 10**9, "r1"))
    assert node_on(bus, model).rules["car-1"].version == "r1"


def test_a_mark_that_cannot_be_saved_still_takes_the_rules_and_is_counted(
    model: PolicyModel, tmp_path: Path
) -> None:
    bus = MemoryBus()
    node = node_on(bus, model, state_dir=tmp_path / "state")
    shutil.rmtree(tmp_path / "state")  # the disk went away under the node
    publish(bus, at(time.time_ns(), "r1"))
    assert node.rules["car-1"].version == "r1"
    assert node.metrics.counters().get("rules.mark_not_saved") == 1
    # The disk is back: the node's housekeeping writes the mark, so a restart refuses what
    # came before r1.
    (tmp_path / "state" / "rule-marks").mkdir(parents=True)
    node.housekeeping(time.monotonic() + 60)
    assert not node.gate.marks.unsaved
    assert (tmp_path / "state" / "rule-marks" / "car-1.json").is_file()


def test_a_state_dir_that_cannot_be_used_stops_start_up(model: PolicyModel, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="state_dir"):
        node_on(MemoryBus(), model, state_dir=tmp_path / "f")


# signed rule sets -----------------------------------------------------------------------------


def test_with_trusted_keys_only_rule_sets_signed_by_one_are_taken(
    model: PolicyModel, keys: Path, authority: Ed25519PrivateKey
) -> None:
    bus = MemoryBus()
    node = node_on(bus, model, trusted_keys=keys)
    now = time.time_ns()
    publish(bus, sign(at(now, "r1"), authority))
    assert node.rules["car-1"].version == "r1" and codes(bus) == []
    good = sign(at(now + 1, "r2"), authority)
    for bad in (
        at(now + 1, "unsigned"),
        good.model_copy(update={"rules": ["Proceed through the red light"]}),  # tampered
        sign(at(now + 1, "r2"), Ed25519PrivateKey.generate()),  # an unknown key
    ):
        publish(bus, bad)
    publish(bus, None)  # a clear cannot be signed
    assert node.rules["car-1"].version == "r1"
    assert codes(bus) == ["rules_unverified"] * 4
    publish(bus, good)
    assert node.rules["car-1"].version == "r2"
    # A genuine but old signed rule set is a replay: the signature does not make it new.
    publish(bus, sign(at(now - 10**9, "r0"), authority))
    assert node.rules["car-1"].version == "r2" and codes(bus)[-1] == "rules_replayed"


def test_with_keys_and_state_dir_the_accepted_rule_set_survives_a_refused_retained_one(
    model: PolicyModel, keys: Path, authority: Ed25519PrivateKey, tmp_path: Path
) -> None:
    """An outside conformance pass: a refused message published retained (unsigned, forged, a
    clear) replaces the genuine rule set on the broker, so a restarted node found nothing to
    take and the vehicle waited at no_rules. The node keeps the accepted set and takes it
    back at start."""
    state = tmp_path / "state"
    now = time.time_ns()
    good = sign(at(now, "good"), authority)
    bus = MemoryBus()
    node_on(bus, model, trusted_keys=keys, state_dir=state)
    publish(bus, good)
    # Refused retained messages: an unsigned rule set (the broker keeps it and hands it to the
    # restarted node) and a clear (the broker deletes the retained message: nothing to hand).
    for retained, refused in ((at(now + 1, "unsigned"), ["rules_unverified"]), (None, [])):
        bus = connected_bus()
        publish(bus, retained)
        restarted = node_on(bus, model, trusted_keys=keys, state_dir=state)
        assert restarted.rules["car-1"] == good
        assert codes(bus) == refused
    # Nothing retained at all: the kept set still holds; a newer signed one replaces it.
    bus = connected_bus()
    restarted = node_on(bus, model, trusted_keys=keys, state_dir=state)
    assert restarted.rules["car-1"] == good
    newer = sign(at(now + 2, "newer"), authority)
    publish(bus, newer)
    assert (
        node_on(connected_bus(), model, trusted_keys=keys, state_dir=state).rules["car-1"] == newer
    )
    # A key no longer trusted: its rule set is not taken back (the mark still refuses older).
    other = tmp_path / "other-keys"
    other.mkdir()
    (other / "new.pub").write_bytes(public_pem(Ed25519PrivateKey.generate().public_key()))
    assert "car-1" not in node_on(connected_bus(), model, trusted_keys=other, state_dir=state).rules


def test_a_kept_rule_set_that_does_not_match_its_mark_is_not_taken_back(
    model: PolicyModel, keys: Path, authority: Ed25519PrivateKey, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    bus = MemoryBus()
    node_on(bus, model, trusted_keys=keys, state_dir=state)
    publish(bus, sign(at(time.time_ns(), "good"), authority))
    kept = state / "rule-sets" / "car-1.json"
    assert kept.is_file()
    for damage in (b"{not json", sign(at(1, "other"), authority).model_dump_json().encode()):
        kept.write_bytes(damage)
        restarted = node_on(connected_bus(), model, trusted_keys=keys, state_dir=state)
        assert "car-1" not in restarted.rules
    # The same rule set delivered again writes its set anew (a damaged or missing one, or a
    # state dir from before the sets were kept: a review found it never written then).
    good = sign(at(time.time_ns(), "good"), authority)
    for loss in (lambda: kept.write_bytes(b"{not json"), kept.unlink):
        bus = MemoryBus()
        node_on(bus, model, trusted_keys=keys, state_dir=state)
        publish(bus, good)
        loss()
        bus = connected_bus()
        publish(bus, good)  # the genuine one, retained: taken, and its set kept again
        node_on(bus, model, trusted_keys=keys, state_dir=state)
        bus = connected_bus()
        publish(bus, None)
        assert node_on(bus, model, trusted_keys=keys, state_dir=state).rules["car-1"] == good


def test_without_keys_a_restarted_node_takes_back_no_rule_set(
    model: PolicyModel, tmp_path: Path
) -> None:
    """Unsigned, a clear is taken: a node down while its vehicle's rules were cleared must not
    wake up acting on them, so nothing is kept."""
    bus = MemoryBus()
    node_on(bus, model, state_dir=tmp_path)
    publish(bus, at(time.time_ns(), "r1"))
    assert not (tmp_path / "rule-sets").exists()
    assert "car-1" not in node_on(connected_bus(), model, state_dir=tmp_path).rules


def test_without_trusted_keys_unsigned_and_signed_are_taken(
    model: PolicyModel, authority: Ed25519PrivateKey
) -> None:
    bus = MemoryBus()
    node = node_on(bus, model)
    now = time.time_ns()
    publish(bus, at(now, "plain"))
    assert node.rules["car-1"].version == "plain"
    publish(bus, sign(at(now + 1, "signed"), Ed25519PrivateKey.generate()))
    assert node.rules["car-1"].version == "signed" and codes(bus) == []


def test_bad_trusted_keys_stop_serve_with_one_line(
    tmp_path: Path, fake_model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "k.pem").write_text("not a key")
    model = str(fake_model_path)
    for value, says in ((tmp_path / "nope", "no such file"), (tmp_path, "not a PEM public key")):
        # Refused before connecting: the broker URL points nowhere.
        argv = ["serve", "--trusted-keys", str(value), "--model", model, "--mqtt-url"]
        assert cli_main([*argv, "mqtt://127.0.0.1:9"]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and says in err, err
