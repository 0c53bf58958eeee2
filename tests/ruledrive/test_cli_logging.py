"""What a user sees without -v: a service says it is serving (INFO), one-shot commands only
warn; and the demo says which gate failed."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import policy.node
from replay.drives import FrameRef
from replay.scoreboard import Scoreboard
from ruledrive.cli import main
from ruledrive.demo import gate


@pytest.fixture(autouse=True)
def keep_root_level() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


def fake_node_main(*_a: object, **_k: object) -> int:
    logging.getLogger("policy.node").info("node n serving p on cpu (model m)")
    return 0


def test_serve_shows_its_start_line_by_default(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(policy.node, "main", fake_node_main)
    assert main(["serve"]) == 0
    assert [r.getMessage() for r in caplog.records] == ["node n serving p on cpu (model m)"]


def test_one_shot_commands_stay_at_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy.node, "main", fake_node_main)
    main(["scenes", "show", "/nonexistent.mcap"])
    assert logging.getLogger().level == logging.WARNING
    main(["-v", "scenes", "show", "/nonexistent.mcap"])
    assert logging.getLogger().level == logging.INFO


def test_demo_says_which_gate_failed(capsys: pytest.CaptureFixture[str]) -> None:
    board = Scoreboard()
    for i in range(10):
        board.published(FrameRef("car", i, "car", i, None), 0)
    report = board.report(1.0, 10, 1.0, 1)
    assert gate(report, 0.05) == 1
    err = capsys.readouterr().err
    assert (
        "ruledrive demo: FAIL --max-missing gate: 10 of 10 frames got no decision "
        "(100.0 % > 5 % allowed)"
    ) in err
    assert gate(report, 1.0) == 0
