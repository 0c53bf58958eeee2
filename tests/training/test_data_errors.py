"""Training data that must be refused with a clear error (no TensorFlow needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus.schema import DecisionLabel, RuleSet
from core.errors import DataError, RecordingError
from tests.training.recordings import rule_set, write_recording
from training.data import load_samples


def test_labelled_recording_loads(tmp_path: Path) -> None:
    samples = load_samples([write_recording(tmp_path / "ok.mcap", rule_set())])
    assert [s.frame_id for s in samples] == [0, 1, 2]
    assert samples[0].rules == ("No overtaking",) and samples[0].label == DecisionLabel.PROCEED


def test_recording_without_labels_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "nolabels.mcap", rule_set(), labelled=False)
    with pytest.raises(DataError, match="nolabels.mcap.*no label"):
        load_samples([path])


def test_other_schema_version_is_refused(tmp_path: Path) -> None:
    # unchecked: a rule set of a schema this build does not speak
    future = RuleSet.model_construct(**{**rule_set().model_dump(), "schema_version": 2})
    path = write_recording(tmp_path / "v2.mcap", future)
    with pytest.raises(RecordingError, match="v2.mcap"):
        load_samples([path])


def test_a_frame_that_cannot_be_decoded_is_named_with_its_recording(tmp_path: Path) -> None:
    import dataclasses

    from perception.rule_encoder import RuleEncoder
    from training.data import RuleTable, encode_samples

    path = write_recording(tmp_path / "ok.mcap", rule_set())
    samples = load_samples([path])
    samples[1] = dataclasses.replace(samples[1], jpeg=b"GIF89a not a jpeg")
    encoder = RuleEncoder.load(Path("models/text-encoder"), "cpu", cache_size=0)
    table = RuleTable.build([t for s in samples for t in s.rules], encoder)
    with pytest.raises(DataError, match=r"1 frames cannot .*frame 1 of car-1 in .*ok\.mcap"):
        encode_samples(samples, table, ("not_binding", "not_understood"))


def test_frames_recorded_without_any_rule_set_are_refused_by_train_and_evaluate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recording of frames and labels without the rules topic: the model decides frames
    together with their rules, so train and evaluate refuse it in one line (both once ended
    in an IndexError traceback, and train left a half-written --out)."""
    from ruledrive.cli import main
    from training.data import require_rules

    path = write_recording(tmp_path / "norules.mcap", with_rules=False, split="recorded")
    with pytest.raises(DataError, match="norules.mcap has a rule set"):
        require_rules(load_samples([path]), [path])
    require_rules(load_samples([write_recording(tmp_path / "ok.mcap")]), [path])  # fine
    out = tmp_path / "ckpt"
    argv = ["train", "--data", str(path), "--out", str(out), "--epochs", "1", "--no-export"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "has a rule set: the model decides frames together with their rules" in err
    assert "Traceback" not in err and not out.exists()  # no empty --out left either
    model = Path(__file__).resolve().parents[2] / "models" / "ruledrive-default.onnx"
    assert main(["evaluate", str(model), "--data", str(path)]) == 1
    assert "has a rule set" in capsys.readouterr().err
    # A model that reads no rules (the image-only ablation) may be measured on such frames:
    # every rule slot is empty (the rule table holds no text at all).
    from training.evaluate import evaluate_samples, load_predictor

    report = evaluate_samples(load_predictor(model), load_samples([path]), reads_rules=False)
    assert sum(r["n"] for r in report["splits"].values()) == 3


def test_frames_without_a_label_are_left_out_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On the bus any vehicle may publish frames and only the labeller labels: one unlabelled
    frame once made `ruledrive train` refuse the whole recording. It is left out, and said."""
    path = write_recording(tmp_path / "mixed.mcap", split="recorded", unlabelled=frozenset({1}))
    with caplog.at_level("WARNING"):
        samples = load_samples([path])
    assert [s.frame_id for s in samples] == [0, 2]
    assert "1 of 3 frames have no label and are left out" in caplog.text
