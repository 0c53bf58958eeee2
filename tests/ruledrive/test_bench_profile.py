"""The profile benchmark's attribution of py-spy samples (the run itself needs py-spy and
minutes: it is a benchmark, not a test)."""

from __future__ import annotations

import pytest

from ruledrive.bench_profile import categorise, summarise

RAW = """\
Thread 1 (active);main (ruledrive/cli.py:90);_decode_bgr (perception/image.py:102) 30
Thread 2 (active);_infer (policy/decider.py:190);run (onnxruntime/capi/x.py:406) 50
Thread 2 (active);prefetch (policy/decider.py:90);encode_rule_set (perception/rule_encoder.py:300) 5
Thread 3 (active);_loop (paho/mqtt/client.py:1667) 10
Thread 3 (active);model_dump_json (pydantic/main.py:400) 4
Thread 3 (active);something (policy/node.py:12) 1
not a sample line
"""


def test_samples_are_attributed_to_the_function_on_top_of_the_stack() -> None:
    got = summarise(RAW, top=2)
    assert got["samples"] == 100
    assert got["categories"] == pytest.approx(
        {
            "session.run": 0.50,
            "JPEG decode + resize": 0.30,
            "MQTT client (paho)": 0.10,
            "rule encoding": 0.05,
            "message parsing + serialisation": 0.04,
            "other Python": 0.01,
        }
    )
    assert got["top"] == [
        ("run (onnxruntime/capi/x.py:406)", 0.5),
        ("_decode_bgr (perception/image.py:102)", 0.3),
    ]


def test_nothing_sampled_is_empty_not_a_division_by_zero() -> None:
    assert summarise("") == {"samples": 0, "categories": {}, "top": []}
    assert categorise("wait (threading.py:331)") == "other Python"
