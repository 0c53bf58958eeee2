"""``ruledrive bench reliability`` runs every scenario and writes its section (tiny durations:
a smoke test of the harness; the figures themselves are in docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ruledrive.cli import main as cli_main
from tests.markers import skip_or_fail
from tests.policy.fakemodel import build_fake_model


@pytest.mark.broker
@pytest.mark.slow
def test_every_scenario_is_measured_and_written(tmp_path: Path) -> None:
    from bus.broker import mosquitto_binary

    if mosquitto_binary() is None:
        skip_or_fail("mosquitto binary not installed")
    model = build_fake_model(tmp_path / "fake.onnx")
    doc = tmp_path / "bench.md"
    doc.write_text("# Benchmarks\n\n## Other\n\nkept\n")
    rc = cli_main(
        [
            "bench",
            "reliability",
            "--model",
            str(model),
            "--seconds",
            "1",
            "--flood-rate",
            "100",
            "--churn-vehicles",
            "50",
            "--churn-rate",
            "50",
            "--rule-flood-rate",
            "20",
            "--output",
            str(doc),
        ]
    )
    assert rc == 0
    text = doc.read_text()
    assert "## Other\n\nkept" in text
    for name in (
        "| idle |",
        "| flood (100/s) |",
        "| churn (50 vehicles) |",
        "| rule flood (20 rule sets/s, one vehicle) |",
        "| slow consumer |",
        "| broker restart |",
    ):
        assert name in text, name
    idle_row = next(line for line in text.splitlines() if line.startswith("| idle |"))
    assert "(100.0 %)" in idle_row or "(9" in idle_row  # the steady vehicle is answered when idle


def test_a_missing_model_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["bench", "reliability", "--model", str(tmp_path / "none.onnx")]) == 1
    assert "not found" in capsys.readouterr().err
