"""The benchmark's pieces that do not need minutes (the doc writer is tested in tests/ruledrive)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from perception.image import preprocess_jpeg
from ruledrive.bench_node import synthetic_frames
from ruledrive.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]


def test_synthetic_frames_decode() -> None:
    frames = synthetic_frames(3)
    assert len(set(frames)) == 3
    assert preprocess_jpeg(frames[0]).shape == (96, 160, 3)


@pytest.mark.broker
@pytest.mark.slow
def test_bench_node_reports_spinning_cpu_and_replicas(private_broker, tmp_path: Path) -> None:
    """A short run end to end (its figures mean nothing at this length): every frame of the
    latency runs answered, node CPU measured for both spin settings, one row per replica count,
    and the doc section written with the command."""
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n")
    rc = cli_main(
        [
            "bench",
            "node",
            "--model",
            str(ROOT / "models/ruledrive-default.onnx"),
            "--mqtt-url",
            private_broker.url,
            "--seconds",
            "1",
            "--vehicles",
            "2",
            "--replicas",
            "2",
            "--rounds",
            "1",
            "--output",
            str(doc),
        ]
    )
    assert rc == 0
    text = doc.read_text()
    assert "640x360" in text and "spin-waiting on" in text
    answered = re.search(r"medians \((\d+)/(\d+) answered\)", text)
    assert answered and int(answered[2]) > 0
    # The default (no spin-waiting) answers its frames. Spin-waiting threads on 2 busy cores
    # can starve the node for most of a 1 s run (seen in CI: p99 1,084 ms, 16 of 30 answered):
    # that is the lever's finding, so its column only has to answer some.
    per = re.search(r"^\| frames answered / sent \| (\d+)/(\d+) \| (\d+)/(\d+) \|", text, re.M)
    assert per and int(per[1]) >= 0.9 * int(per[2]) > 0 and int(per[3]) > 0
    assert int(per[1]) + int(per[3]) == int(answered[1])
    over = re.search(r"^\| in-node overhead = .* \| ([\d.]+) \| [\d.]+ \| <= 0.3 ms", text, re.M)
    own = re.search(
        r"^\| the same without the JPEG decode .* \| ([-\d.]+) \| [-\d.]+ \|", text, re.M
    )
    assert over and own and float(own[1]) < float(over[1])  # the decode is inside the overhead
    cpu = re.search(r"\| node CPU, % of a core \| (\d+) \| (\d+) \|", text)
    assert cpu and int(cpu[1]) > 0 and int(cpu[2]) > 0
    # A frame lost on the way (QoS 0) is counted and does not stall its vehicle for good.
    lost = re.search(r"^Frames with no decision after [\d.]+ s .*: (\d+) over the \d+ ", text, re.M)
    assert lost
    rows = re.findall(r"^\| ([12]) \| (\d+) \| [\d.]+ \|$", text, re.M)
    assert [r[0] for r in rows] == ["1", "2"] and int(rows[0][1]) > 0
    assert int(rows[1][1]) > 0 or int(lost[1]) > 0
    # Each lever side by side with the default in the same rounds, with its ratio. At 0.5 s a
    # run, a node that stalls for the window measures 0 (seen twice in ~20 CI runs, not
    # reproduced here): allowed only where the report counts the frames it lost.
    from ruledrive.bench_node import LEVERS

    rates = []
    for name, flags in LEVERS:
        row = re.search(
            rf"^\| micro-batching, {re.escape(name)} \(`{re.escape(' '.join(flags))}`\) "
            r"\| (\d+) \| [\d.]+ \| ([\d.]+)x \|",
            text,
            re.M,
        )
        assert row, name
        rates.append(int(row[1]))
        assert int(row[1]) > 0 or int(lost[1]) > 0, name
    assert sum(r > 0 for r in rates) >= len(rates) - 1, rates
    # Where a saturated decision's time goes: the node's part is within the whole.
    parts = re.search(
        r"publish -> received ([\d.]+) ms = in the node, arrival -> decision ([\d.]+) ms .* \+ "
        r"([-\d.]+) ms outside it",
        text,
    )
    assert parts and 0 < float(parts[2]) <= float(parts[1])
    # Two frames in flight per vehicle: the older one is superseded when the node is behind.
    two = re.search(
        r"^\| micro-batching, 2 frames in flight per vehicle .*, so (\d+) frames per run were "
        r"superseded\) \| (\d+) \|",
        text,
        re.M,
    )
    assert two and (int(two[2]) > 0 or int(lost[1]) > 0)


@pytest.mark.slow
def test_bench_levers_measures_each_lever_on_generated_frames(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n")
    golden = str(ROOT / "tests/golden/drive.mcap")
    rc = cli_main(
        [
            "bench",
            "levers",
            "--model",
            str(ROOT / "models/ruledrive-default.onnx"),
            "--recording",
            golden,
            "--eval-data",
            golden,
            "--calib-frames",
            "8",
            "--rounds",
            "1",
            "--repeats",
            "3",
            "--cpu-seconds",
            "0.3",
            "--output",
            str(doc),
        ]
    )
    assert rc == 0
    text = doc.read_text()
    assert "## Levers" in text and "60 generated 640x360 frames" in text
    for lever in ("IMREAD_REDUCED_COLOR_4", "spinning on", "int8 Conv", "model_dump_json"):
        assert lever in text
    # every variant has an accuracy on labelled frames, and the model's decode is marked
    own = re.search(
        r"^\| (.*) \*\*\(this model's\)\*\* \|.* \| ([\d.]+) % \| ([\d.]+) % \|$", text, re.M
    )
    assert own and float(own[3]) == 100.0  # its own decode agrees with itself
    assert re.search(r"^\| full \+ INTER_AREA.* \| [\d.]+ \| 1\.00x \| 0\.00 \|", text, re.M)
    # the decode's floor: imdecode alone at 1/4 and 1/8 (timed, not compared: one noisy round)
    floor = re.search(r"^\| cv2.imdecode IMREAD_REDUCED_COLOR_4 alone \| ([\d.]+) \|$", text, re.M)
    assert floor and float(floor[1]) > 0
    assert re.search(r"^\| cv2.imdecode IMREAD_REDUCED_COLOR_8 alone \| [\d.]+ \|$", text, re.M)
    assert "not measured" not in text


def test_bench_levers_needs_a_split_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.policy.fakemodel import build_fake_model

    fake = build_fake_model(tmp_path / "f.onnx")
    assert cli_main(["bench", "levers", "--model", str(fake), "--no-write"]) == 2
    assert "split model" in capsys.readouterr().err
