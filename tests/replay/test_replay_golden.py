"""Golden replay: the shipped recording through a node on a real broker, compared with the
reference decisions (ignored fields + tolerance, as openpilot's process replay does).

Update the reference on purpose with ``make golden`` and review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from replay.golden import IGNORED_FIELDS, PROB_TOLERANCE, load_reference
from ruledrive.cli import main as cli_main
from tests.markers import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests/golden/drive.mcap"
REFERENCE = ROOT / "tests/golden/reference.json"
MODEL = ROOT / "models/ruledrive-default.onnx"


def _need_files() -> None:
    if not MODEL.is_file():
        skip_or_fail(f"default model {MODEL.relative_to(ROOT)} absent: the reference depends on it")
    if not GOLDEN.is_file() or not REFERENCE.is_file():
        skip_or_fail("golden recording/reference absent: `make golden-recording golden`")


def test_golden_files_are_small_and_well_formed() -> None:
    if not GOLDEN.is_file():
        skip_or_fail("golden recording absent")
    assert GOLDEN.stat().st_size < 2_000_000
    if REFERENCE.is_file():
        doc = json.loads(REFERENCE.read_text())
        assert doc["ignored_fields"] == list(IGNORED_FIELDS)
        assert doc["decisions"] and all("timings" not in d for d in doc["decisions"])


def _replay(url: str, out: Path, *extra: str) -> int:
    return cli_main(
        [
            "replay",
            str(GOLDEN),
            "--rate",
            "max",
            "--mqtt-url",
            url,
            "--prefix",
            f"golden/{out.name}",
            "--serve-model",
            str(MODEL),
            "--no-progress",
            "--out",
            str(out),
            "--timeout-s",
            "20",
            *extra,
        ]
    )


def _assert_replay_matches_reference(url: str, out: Path) -> None:
    """A replay checked against the reference: it passes, and every frame is answered."""
    rc = _replay(url, out, "--reference", str(REFERENCE))
    report = json.loads((out / "report.json").read_text())
    assert rc == 0, report["failures"]
    assert report["missing"] == 0


@pytest.mark.broker
def test_golden_replay_matches_reference(private_broker, tmp_path: Path) -> None:
    _need_files()
    _assert_replay_matches_reference(private_broker.url, tmp_path / "run1")
    # Twice: identical decisions (same labels, flags, reasons; probabilities within 1e-3).
    again = tmp_path / "again.json"
    assert _replay(private_broker.url, tmp_path / "run2", "--update-reference", str(again)) == 0
    _assert_same(load_reference(REFERENCE), load_reference(again))


def _assert_same(first: dict, second: dict) -> None:
    assert first.keys() == second.keys()
    for key, want in first.items():
        have = second[key]
        assert (have["decision"], have["valid"], have["reason"]) == (
            want["decision"],
            want["valid"],
            want["reason"],
        ), key
        for label, p in want["probabilities"].items():
            assert have["probabilities"][label] == pytest.approx(p, abs=PROB_TOLERANCE), key


@pytest.mark.broker
def test_golden_plumbing_with_fake_model(private_broker, tmp_path: Path) -> None:
    """Without the default model: the recording loads, every frame is labelled and answered, and
    two replays write identical references (fake model, a TEST DOUBLE)."""
    from replay.drives import load_drives
    from tests.policy.fakemodel import build_fake_model

    if not GOLDEN.is_file():
        skip_or_fail("golden recording absent")
    drives = load_drives([GOLDEN])
    frames = [e for d in drives for e in d.events if hasattr(e, "jpeg")]
    assert len(frames) == 60 and all(f.label is not None for f in frames)
    model = build_fake_model(tmp_path / "fake.onnx")
    refs = []
    for i in range(2):
        ref = tmp_path / f"ref{i}.json"
        rc = cli_main(
            [
                "replay",
                str(GOLDEN),
                "--rate",
                "max",
                "--mqtt-url",
                private_broker.url,
                "--prefix",
                f"plumbing/{i}",
                "--serve-model",
                str(model),
                "--no-progress",
                "--out",
                str(tmp_path / f"out{i}"),
                "--update-reference",
                str(ref),
            ]
        )
        assert rc == 0
        refs.append(load_reference(ref))
    _assert_same(*refs)


@pytest.mark.broker
def test_golden_replay_does_not_depend_on_encoding_speed(
    private_broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a loaded machine a rule set takes longer to read: a served replay's node waits for it
    instead of answering a vehicle's first frames rules_pending, so the decisions are still the
    reference's (each rule set here takes longer than the node's default 500 ms wait)."""
    import time

    from policy.decider import Decider

    _need_files()
    encode = Decider._encode

    def slow(self: Decider, texts: tuple[str, ...]):  # type: ignore[no-untyped-def]
        time.sleep(0.7)
        return encode(self, texts)

    monkeypatch.setattr(Decider, "_encode", slow)
    _assert_replay_matches_reference(private_broker.url, tmp_path / "slow")
