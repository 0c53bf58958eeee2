"""Per-vehicle rule-set marks: the monotonic rule, persistence, bounds, unreadable state."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bus.schema import RuleSet
from core.errors import ConfigError
from policy.rulemarks import MARKS_SUBDIR, RuleMarks


def rs(vid: str = "car-1", t: int = 100, version: str = "v", texts: tuple[str, ...] = ("Stop",)):
    return RuleSet(vehicle_id=vid, version=version, issued_at_ns=t, rules=list(texts))


def test_only_newer_rule_sets_pass_and_the_same_one_again_does() -> None:
    marks = RuleMarks(None, 10)
    assert marks.replay_reason("car-1", rs(t=100)) is None  # nothing seen yet
    marks.record("car-1", rs(t=100, version="a"))
    assert marks.replay_reason("car-1", rs(t=101)) is None
    assert marks.replay_reason("car-1", rs(t=100, version="a")) is None  # redelivered
    older = marks.replay_reason("car-1", rs(t=99, version="old"))
    assert older is not None and "older than 100 (version 'a')" in older
    same_time = marks.replay_reason("car-1", rs(t=100, version="a", texts=("Go",)))
    assert same_time is not None and "content differs" in same_time
    assert marks.replay_reason("car-2", rs("car-2", t=1)) is None  # per vehicle


def test_marks_survive_a_new_instance_and_leave_no_temporary_files(tmp_path: Path) -> None:
    first = RuleMarks(tmp_path, 10)
    assert first.persistent
    first.record("car-1", rs(t=100))
    first.record("car-1", rs(t=200, version="b"))
    first.record("car-2", rs("car-2", t=50))
    files = sorted(p.name for p in (tmp_path / MARKS_SUBDIR).iterdir())
    assert files == ["car-1.json", "car-2.json"]
    on_disk = json.loads((tmp_path / MARKS_SUBDIR / "car-1.json").read_text())
    assert on_disk["issued_at_ns"] == 200 and on_disk["version"] == "b"
    again = RuleMarks(tmp_path, 10)
    assert again.replay_reason("car-1", rs(t=150)) is not None
    assert again.replay_reason("car-2", rs("car-2", t=51)) is None
    # Without a state directory nothing is kept: a new instance takes the old one.
    assert RuleMarks(None, 10).replay_reason("car-1", rs(t=150)) is None


def test_bounded_evicting_a_vehicle_whose_rules_are_not_held(tmp_path: Path) -> None:
    marks = RuleMarks(tmp_path, 3)
    for i, vid in enumerate(["a", "b", "c"]):
        marks.record(vid, rs(vid, t=10 + i))
    marks.record("d", rs("d", t=20), held={"a", "c"})  # b is the oldest not held
    assert len(marks) == 3 and marks.get("b") is None and marks.get("a") is not None
    assert not (tmp_path / MARKS_SUBDIR / "b.json").exists()
    assert len(list((tmp_path / MARKS_SUBDIR).iterdir())) == 3
    # Loading more marks than allowed keeps the newest.
    assert set(RuleMarks(tmp_path, 2)._marks) == {"c", "d"}


def test_a_mark_that_cannot_be_read_stops_start_up(tmp_path: Path) -> None:
    RuleMarks(tmp_path, 10).record("car-1", rs(t=5))
    path = tmp_path / MARKS_SUBDIR / "car-1.json"
    good = path.read_text()
    for bad, says in (
        ("{", "not a rule-set mark"),
        (good.replace('"car-1"', '"car-2"'), "holds the mark of 'car-2'"),
        ("x" * 5000, "too large"),
    ):
        path.write_text(bad)
        with pytest.raises(ConfigError, match=says):
            RuleMarks(tmp_path, 10)
    path.write_text(good)
    (tmp_path / MARKS_SUBDIR / ".car-1.abc.tmp").write_text("half")  # a crash mid-write
    assert RuleMarks(tmp_path, 10).get("car-1") is not None
    assert not (tmp_path / MARKS_SUBDIR / ".car-1.abc.tmp").exists()
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot use"):
        RuleMarks(blocker, 10)


def test_a_pipe_or_a_device_among_the_marks_stops_start_up_without_hanging(
    tmp_path: Path,
) -> None:
    """A named pipe would block the reader for ever and /dev/zero fill its memory (both report
    size 0): refused as not a regular file."""
    import os

    marks = tmp_path / MARKS_SUBDIR
    marks.mkdir()
    os.mkfifo(marks / "car-5.json")
    with pytest.raises(ConfigError, match="car-5.json is not a regular file"):
        RuleMarks(tmp_path, 10)
    (marks / "car-5.json").unlink()
    (marks / "car-6.json").symlink_to("/dev/zero")
    with pytest.raises(ConfigError, match="car-6.json is not a regular file"):
        RuleMarks(tmp_path, 10)


def test_a_mark_that_cannot_be_written_is_kept_in_memory_and_counted(tmp_path: Path) -> None:
    marks = RuleMarks(tmp_path / "state", 10)
    shutil.rmtree(tmp_path / "state")  # the disk went away under the node
    assert marks.record("car-1", rs(t=5)) is False
    assert marks.write_failures == 1
    assert marks.replay_reason("car-1", rs(t=4)) is not None


def test_a_mark_whose_write_failed_is_written_once_the_disk_is_back(tmp_path: Path) -> None:
    """The same rule set arriving again used to skip the write, so a mark lost to a full or
    read-only disk stayed lost: after a restart the older mark let an older retained rule set
    back in. Now the same rule set again, or a retry, writes it."""
    state = tmp_path / "state"
    marks = RuleMarks(state, 10)
    assert marks.record("car-1", rs(t=5))
    shutil.rmtree(state / MARKS_SUBDIR)  # the disk fails: the mark directory is gone
    assert marks.record("car-1", rs(t=7)) is False and marks.unsaved == {"car-1"}
    assert marks.retry_unsaved() == 1  # still failing
    (state / MARKS_SUBDIR).mkdir()  # back
    assert marks.retry_unsaved() == 0 and not marks.unsaved
    assert RuleMarks(state, 10).replay_reason("car-1", rs(t=5)) is not None  # after a restart
    shutil.rmtree(state / MARKS_SUBDIR)
    assert marks.record("car-1", rs(t=9)) is False
    (state / MARKS_SUBDIR).mkdir()
    assert marks.record("car-1", rs(t=9))  # the same rule set, redelivered: written now
    assert RuleMarks(state, 10).replay_reason("car-1", rs(t=7)) is not None
