"""Bus-free tests of the replay's matching, scoring and lane planning."""

from __future__ import annotations

import pytest

from bus.schema import DecisionLabel
from replay.drives import Drive, FrameRef, plan_lanes
from replay.scoreboard import Scoreboard
from tests.replay.replay_helpers import PERIOD, decision, drive

P, S = DecisionLabel.PROCEED, DecisionLabel.STOP


def ref(fid: int, label: DecisionLabel | None, vid: str = "car") -> FrameRef:
    return FrameRef(vid, fid, "rec", 100 + fid, label)


def test_matching_accuracy_confusion_and_fallbacks() -> None:
    b = Scoreboard()
    for i, lab in enumerate([P, P, S, S, None]):
        b.published(ref(i, lab), i * 1_000_000)
    assert b.decided(decision("car", 0, P), 11_000_000) is not None  # 11 ms after publish
    assert b.decided(decision("car", 1, S), 12_000_000) is not None  # wrong
    assert b.decided(decision("car", 2, S, valid=False, reason="low_confidence"), 13_000_000)
    assert b.decided(decision("car", 4, P), 24_000_000)  # unlabelled: no accuracy effect
    assert b.decided(decision("car", 2, S), 30_000_000) is None  # duplicate
    assert b.decided(decision("car", 9, S), 30_000_000) is None  # never published
    assert b.decided(decision("other", 0, S), 30_000_000) is None
    r = b.report(elapsed_s=2.0, frames_planned=5, target_rate=None, vehicles=1)
    assert (r.frames_published, r.decisions_matched, r.missing) == (5, 4, 1)
    assert (r.duplicates, r.unexpected) == (1, 2)
    assert r.labelled == 3 and r.accuracy == pytest.approx(2 / 3)
    assert r.accuracy_valid_only == pytest.approx(1 / 2)
    assert r.fallback == 1 and r.fallback_reasons == {"low_confidence": 1}
    cm = r.confusion_matrix
    pi, si = list(DecisionLabel).index(P), list(DecisionLabel).index(S)
    assert cm[pi][pi] == 1 and cm[pi][si] == 1 and cm[si][si] == 1
    assert r.latency_ms["p50"] == pytest.approx(11.0)  # 11, 11, 11, 20 ms
    assert r.latency_ms["max"] == pytest.approx(20.0)
    assert r.achieved_fps == pytest.approx(2.0)
    assert [m.frame_id for m in b.missing()] == [3]
    assert r.model_versions == ["m1"] and r.node_ids == ["n1"]
    assert "frames got no decision" in r.check()[0]
    assert r.to_dict()["labels"][0] == "PROCEED"


def test_gates() -> None:
    b = Scoreboard()
    b.published(ref(0, P), 0)
    b.decided(decision("car", 0, P), 50_000_000)
    r = b.report(1.0, 1, 1.0, 1)
    assert r.check(min_accuracy=0.9, max_p99_ms=100) == []
    fails = r.check(min_accuracy=1.01, max_p99_ms=10)
    assert any("accuracy" in f for f in fails) and any("p99" in f for f in fails)
    assert r.failures == fails


def test_empty_and_aborted_reports_fail_the_gate() -> None:
    r = Scoreboard().report(0.0, 0, None, 0)
    assert r.accuracy is None and r.latency_ms["p99"] is None
    assert "the recording has no frames" in r.check()
    b = Scoreboard()
    b.published(ref(0, P), 0)
    r = b.report(1.0, 3, None, 1, aborted="no decision for 2 s")
    fails = r.check(min_accuracy=0.5)
    assert fails[0].startswith("aborted") and r.missing == 1
    assert any("accuracy n/a" in f for f in fails)


def test_late_decision_is_matched_and_counted() -> None:
    b = Scoreboard()
    b.published(ref(0, P), 0)
    b.give_up("car", 0)
    assert b.decided(decision("car", 0, P), 1) is not None
    assert b.report(1.0, 1, None, 1).late == 1


def test_lanes_keep_ids_or_spread_drives() -> None:
    drives = [drive("a", 3), drive("b", 2), drive("c", 4)]
    lanes = plan_lanes(drives)
    assert [lane.vehicle_id for lane in lanes] == ["a", "b", "c"]
    refs = [r for _, _, r in lanes[0].steps() if r is not None]
    assert [(r.vehicle_id, r.frame_id, r.source_frame_id) for r in refs] == [
        ("a", 0, 100),
        ("a", 1, 101),
        ("a", 2, 102),
    ]
    two = plan_lanes(drives, vehicles=2)
    assert [[d.vehicle_id for d in lane.drives] for lane in two] == [["a", "c"], ["b"]]
    steps = two[0].steps()
    frames = [r for _, _, r in steps if r is not None]
    assert [r.frame_id for r in frames] == list(range(7))  # renumbered across drives
    assert {r.source_vehicle_id for r in frames} == {"a", "c"}
    offsets = [t for t, _, _ in steps]
    assert offsets == sorted(offsets)
    five = plan_lanes(drives, vehicles=5)  # more lanes than drives: drives are reused
    assert len(five) == 5 and [lane.drives[0].vehicle_id for lane in five] == list("abcab")
    assert plan_lanes([], vehicles=3) == []
    with pytest.raises(ValueError):
        plan_lanes(drives, vehicles=0)


def test_same_vehicle_in_two_recordings_gets_two_lanes() -> None:
    lanes = plan_lanes([drive("a", 2), drive("a", 3)])
    assert [lane.vehicle_id for lane in lanes] == ["a", "a-2"]


def test_missing_gate_says_conflated_or_lost() -> None:
    b = Scoreboard()
    for i in range(4):
        b.published(ref(i, P), 0)
    b.decided(decision("car", 0, P), 1)
    timed = b.report(1.0, 4, 1.0, 1).check(max_missing=0.5)
    assert timed == [
        "--max-missing gate: 3 of 4 frames got no decision (75.0 % > 50 % allowed); the node "
        "keeps only the newest frame of each vehicle and drops older ones on purpose when it "
        "falls behind (conflation: its status counter dropped.conflated); frames beyond that "
        "were lost (node down, or slower than --timeout-s); --rate max replays without "
        "conflation"
    ]
    (flat_out,) = b.report(1.0, 4, None, 1).check()
    assert "3 of 4 frames got no decision (75.0 % > 0 % allowed)" in flat_out
    assert "conflated none of them: they were lost" in flat_out


def test_next_drive_starts_one_frame_period_after_the_last_frame() -> None:
    import dataclasses

    def at_10_hz(d: Drive) -> Drive:  # the helper's 30 Hz drive, slowed to the simulator's 10 Hz
        t0 = d.events[0].t_ns
        return Drive(
            d.vehicle_id, [dataclasses.replace(e, t_ns=t0 + 3 * (e.t_ns - t0)) for e in d.events]
        )

    (lane,) = plan_lanes([at_10_hz(drive("a", 3)), at_10_hz(drive("b", 2))], vehicles=1)
    steps = lane.steps()
    last_a = max(t for t, _, ref in steps if ref is not None and ref.source_vehicle_id == "a")
    first_b = min(t for t, _, _ in steps[4:])  # drive b's rule set, issued at its start
    assert first_b - last_a == 3 * PERIOD  # one frame period of these drives (~100 ms)


def test_outage_accounting_adds_up() -> None:
    """Frames 0-1 answered, the broker goes at 25 ms (frame 2 sent just before, unanswered), frames
    3-4 fail to publish, it is back at 60 ms, frame 5 goes out before the node is back (no
    answer), the node answers frame 6 at 90 ms; frame 7, later, is missing for other reasons."""
    ms = 1_000_000
    b = Scoreboard()
    for i, t in ((0, 0), (1, 10)):
        b.published(ref(i, P), t * ms)
        b.decided(decision("car", i, P), (t + 5) * ms)
    b.published(ref(2, P), 20 * ms)
    b.disconnected(25 * ms)
    assert b.down is not None
    for i, t in ((3, 30), (4, 40)):
        b.published(ref(i, P), t * ms)
        b.publish_failed("car", i, t * ms + 1)
    b.reconnected(60 * ms)
    assert b.down is None
    b.published(ref(5, P), 65 * ms)
    b.published(ref(6, P), 80 * ms)
    b.decided(decision("car", 6, P), 90 * ms)
    b.published(ref(7, P), 100 * ms)
    b.publish_failed("car", 6, 100 * ms)  # already answered: it did leave, stays matched
    r = b.report(0.2, 8, 1.0, 1, start_ns=0)
    assert (r.frames_published, r.decisions_matched, r.missing, r.lost) == (8, 3, 3, 2)
    assert r.frames_published == r.decisions_matched + r.missing + r.lost
    assert r.outages == [
        {
            "down_at_s": 0.025,
            "back_at_s": 0.06,
            "down_s": 0.035,
            "frames_lost": 2,
            "frames_unanswered": 2,  # frames 2 and 5; not 7
        }
    ]
    assert [x.frame_id for x in b.lost()] == [3, 4]
    assert [x.frame_id for x in b.missing()] == [2, 5, 7]
    (gate,) = r.check()
    assert gate.startswith("--max-missing gate: 5 of 8 frames got no decision")
    assert "2 were lost to 1 broker outage(s)" in gate and "2 sent around them" in gate


def test_the_report_says_how_each_way_of_writing_the_rules_fared() -> None:
    """Frames carry how the rule set in force was written (a later rule set replaces it), and
    the report splits accuracy and valid=false by it, so a replay shows whether Chinese rules
    are read as well as English ones."""
    from bus.schema import RuleSet
    from replay.drives import DriveRules, Lane, rule_text

    assert rule_text(()) == "no rules"
    assert rule_text(["No overtaking", "Límite 50"]) == "Latin script"
    assert rule_text(["限速50 km/h", "禁止超车"]) == "Chinese"  # a unit in Latin letters
    assert rule_text(["No overtaking", "禁止超车"]) == "Chinese + Latin"
    assert rule_text(["Ограничение скорости 50", "No overtaking"]) == "another script in it"
    assert rule_text(["🚗🚦"]) == "another script in it"
    assert rule_text(["Ä Ö", "ＳＴＯＰ"]) == "Latin script"  # no ASCII letter; fullwidth
    assert rule_text(["𠀀限速"]) == "Chinese"  # an Extension B ideograph

    d = drive("rec", n=4)  # rules "Stop at the red light", then four frames
    zh = RuleSet(vehicle_id="rec", version="z", issued_at_ns=1, rules=["红灯时禁止右转"])
    d.events.insert(3, DriveRules(d.events[2].t_ns, zh))  # after the second frame
    refs = [ref for _, _, ref in Lane("car", [d, drive("rec", n=1)]).steps() if ref is not None]
    assert [r.rule_text for r in refs] == ["Latin script"] * 2 + ["Chinese"] * 2 + ["Latin script"]

    b = Scoreboard()
    written = ["Chinese", "Chinese", "Latin script", "Latin script"]
    for i, (lab, text) in enumerate(zip([P, S, P, S], written, strict=True)):
        b.published(FrameRef("car", i, "rec", i, lab, text), 0)
    b.decided(decision("car", 0, P), 1)
    b.decided(decision("car", 1, DecisionLabel.SLOW_DOWN, False, "rules_not_understood"), 1)
    b.decided(decision("car", 2, P), 1)
    b.decided(decision("car", 3, S), 1)
    r = b.report(1.0, 4, None, 1)
    assert r.by_rule_text == {
        "Chinese": {"frames": 2, "accuracy": 0.5, "valid_false": 0.5},
        "Latin script": {"frames": 2, "accuracy": 1.0, "valid_false": 0.0},
    }
    assert r.to_dict()["by_rule_text"]["Chinese"]["frames"] == 2


def test_the_scoreboard_prints_what_a_node_says_as_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A model version is the model's metadata: "fused-2026[rc1]" was printed as
    "fused-2026" (rich markup), and "[/red]" ended the replay in a MarkupError."""
    from ruledrive.replay_report import print_report

    b = Scoreboard()
    b.published(ref(0, P), 0)
    b.decided(decision("car", 0, P).model_copy(update={"model_version": "fused-2026[rc1]"}), 1)
    r = b.report(1.0, 1, None, 1)
    r.model_versions = ["fused-2026[rc1]", "x[/red]"]
    print_report(r)
    out = capsys.readouterr().out
    assert "fused-2026[rc1]" in out and "x[/red]" in out


def test_the_scoreboard_says_how_many_missing_frames_the_node_conflated(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Known only when the node ran in the replaying process (demo, replay --serve-model)."""
    from ruledrive.replay_report import print_report

    b = Scoreboard()
    b.published(ref(0, P), 0)
    b.published(ref(1, P), 0)
    b.decided(decision("car", 0, P), 1)
    r = b.report(1.0, 1, None, 1)
    print_report(r)
    assert "conflated" not in capsys.readouterr().out  # a node elsewhere: not known
    r.conflated = 1
    print_report(r)
    assert f"{r.missing} (1 conflated by the node on purpose)" in capsys.readouterr().out
    assert r.to_dict()["conflated"] == 1
