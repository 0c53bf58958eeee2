"""Golden replay on the in-memory bus (fast suite): the shipped recording through a real Node
with the default model, compared with tests/golden/reference.json; and the same recording with
faults injected, so the fallback paths are part of the regression test too.

The real-broker run of the same comparison is tests/replay/test_replay_golden.py.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

import pytest

from bus.memory import MemoryBus
from policy.fallback import FALLBACK_DECISION, Reason
from policy.node import Node, serve_in_thread
from policy.settings import load_settings
from replay.drives import Drive, DriveFrame, DriveRules, load_drives, plan_lanes
from replay.golden import compare_reference, decision_record, load_reference
from replay.player import Replayer
from ruledrive.cli import main as cli_main
from tests.markers import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests/golden/drive.mcap"
REFERENCE = ROOT / "tests/golden/reference.json"
MODEL = ROOT / "models/ruledrive-default.onnx"


@pytest.fixture(scope="module", autouse=True)
def _files() -> None:
    for path in (GOLDEN, REFERENCE, MODEL):
        if not path.is_file():
            skip_or_fail(f"{path.relative_to(ROOT)} absent (`make golden-recording golden`)")


def test_golden_replay_on_memory_bus_matches_reference(tmp_path: Path) -> None:
    rc = cli_main(
        [
            "replay",
            str(GOLDEN),
            "--rate",
            "max",
            "--bus",
            "memory",
            "--serve-model",
            str(MODEL),
            "--no-progress",
            "--out",
            str(tmp_path),
            "--reference",
            str(REFERENCE),
        ]
    )
    report = json.loads((tmp_path / "report.json").read_text())
    assert rc == 0, report["failures"]
    assert report["missing"] == 0 and report["frames_published"] == 60


def _bomb(jpeg: bytes) -> bytes:
    data = bytearray(jpeg)
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 40000, 40000)
    return bytes(data)


def _with_faults(drive: Drive) -> tuple[Drive, dict[int, Reason]]:
    """The drive with its first rule set delayed by 3 frames, two broken pictures, and its
    second rule set expiring two frames after it is issued."""
    events = list(drive.events)
    frames = [e for e in events if isinstance(e, DriveFrame)]
    rule_sets = [e for e in events if isinstance(e, DriveRules)]
    first, second = rule_sets[0], rule_sets[1]
    expected: dict[int, Reason] = {f.header.frame_id: Reason.NO_RULES for f in frames[:3]}
    events.remove(first)
    events.insert(events.index(frames[3]), dataclasses.replace(first, t_ns=frames[3].t_ns - 1))
    broken = {
        frames[4].header.frame_id: (b"\xff\xd8\xff\xe0 not a picture", Reason.BAD_IMAGE),
        frames[5].header.frame_id: (_bomb(frames[5].jpeg), Reason.IMAGE_TOO_LARGE),
    }
    for fid, (jpeg, reason) in broken.items():
        i = next(
            i
            for i, e in enumerate(events)
            if isinstance(e, DriveFrame) and e.header.frame_id == fid
        )
        events[i] = dataclasses.replace(events[i], jpeg=jpeg)
        expected[fid] = reason
    after = [f for f in frames if f.t_ns > second.t_ns]
    expires = after[1].t_ns + 1  # the third frame after the change finds it expired
    events[events.index(second)] = dataclasses.replace(
        second, rules=second.rules.model_copy(update={"expires_at_ns": expires})
    )
    for f in after[2:]:
        if all(r.t_ns <= second.t_ns for r in rule_sets[2:] if r.t_ns < f.t_ns):
            expected[f.header.frame_id] = Reason.RULES_EXPIRED
    return dataclasses.replace(drive, events=events), expected


def test_golden_replay_with_faults_gives_the_fallbacks_and_nothing_else_changes() -> None:
    drives = load_drives([GOLDEN])
    faulty, expected = _with_faults(drives[0])
    bus = MemoryBus()
    settings = load_settings(
        {
            "model_path": MODEL,
            "node_id": "golden-faults",
            "heartbeat_s": 60,
            "reload_poll_s": 0,
            "max_wait_us": 0,
            "max_frame_age_ms": 10_000,
            # the frames wait for their rule set however long a loaded machine takes to read
            # it (500 ms by default: a CI run beside other work got rules_pending instead)
            "max_rules_wait_ms": 10_000,
        }
    )
    with serve_in_thread(Node(settings, bus), join_s=10):
        replayer = Replayer(bus, plan_lanes([faulty, *drives[1:]]), None, timeout_s=10)
        replayer.attach()
        assert replayer.wait_for_node(5)
        report = replayer.run()
    assert report.missing == 0 and report.frames_published == 60
    rows = replayer.board.matched()
    reference = load_reference(REFERENCE)
    faulted = {(faulty.vehicle_id, fid) for fid in expected}
    got = {}
    for ref, msg, _ in rows:
        key = (ref.source_vehicle_id, ref.source_frame_id)
        got[key] = decision_record(ref, msg)
    assert len(expected) >= 8
    for fid, reason in expected.items():
        have = got[(faulty.vehicle_id, fid)]
        want = (FALLBACK_DECISION[reason].value, False, reason.value)
        assert (have["decision"], have["valid"], have["reason"]) == want, fid
    untouched = {k: v for k, v in reference.items() if k not in faulted}
    kept = [
        row for row in rows if (row[0].source_vehicle_id, row[0].source_frame_id) not in faulted
    ]
    assert compare_reference(untouched, kept) == []
