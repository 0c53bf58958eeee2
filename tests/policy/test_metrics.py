"""NodeMetrics keeps one tally, the Prometheus registry; the status counters are read from it."""

from __future__ import annotations

from policy.metrics import NodeMetrics


def test_status_counters_are_read_from_the_registry() -> None:
    m = NodeMetrics()
    assert m.counters() == {}
    m.drop("conflated")
    m.drops.labels("conflated").inc(2)  # straight into Prometheus: still counted
    m.reject("bad_image")
    m.reject("bad_image")
    m.reject("too_many_rules")
    m.batch(3, 1.5)
    m.count("frames", 5)
    m.count("rules.older_ignored")
    assert m.counters() == {
        "batches": 1,
        "dropped.conflated": 3,
        "frames": 5,
        "rejected": 3,
        "rejected.bad_image": 2,
        "rejected.too_many_rules": 1,
        "rules.older_ignored": 1,
    }
    get = m.registry.get_sample_value
    assert get("ruledrive_frames_dropped_total", {"cause": "conflated"}) == 3
    assert get("ruledrive_node_events_total", {"event": "frames"}) == 5


def test_publish_errors_and_reloads_are_counted_once() -> None:
    m = NodeMetrics()
    # What the node does on a failed publish and on a reload: its counter, then count().
    m.publish_errors.inc()
    m.count("publish_errors")
    m.reloads.labels("ok").inc()
    m.count("reloads.ok")
    assert m.counters() == {"publish_errors": 1, "reloads.ok": 1}
    assert m.registry.get_sample_value("ruledrive_publish_errors_total") == 1
