"""``ruledrive merge-readers`` (training.ensemble): several checkpoints' readers in one model.

What a user relies on: the merged model reads each rule as the average of the members' readers
(class and every parameter), decides with the first member's decision, and refuses members that
cannot be read together. The export of a several-reader model (split graphs, reading check) is
tested by tests/training/test_train_e2e.py's two-reader checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import ConfigError
from perception.spec import MODEL_SPEC
from ruledrive.cli import main as cli
from training.config import TrainConfig
from training.ruleparams import RULE_PARAMS

pytestmark = pytest.mark.tf

CLASSES = ["lane_closed", "not_binding", "not_understood", "speed_limit"]
LABELS = ["PROCEED", "SLOW_DOWN", "STOP", "YIELD", "CHANGE_LANE_LEFT", "CHANGE_LANE_RIGHT"]


def _checkpoint(root: Path, seed: int, classes: list[str] = CLASSES, **config: object) -> Path:
    """A checkpoint of an untrained model (its own random weights), as ``ruledrive train``
    writes one."""
    import keras

    from training.model import create_fused_model

    keras.utils.set_random_seed(seed)
    cfg = TrainConfig(seed=seed, **config)  # type: ignore[arg-type]
    model = create_fused_model(len(LABELS), len(classes), readers=cfg.readers)
    out = root / f"ck{seed}-{cfg.readers}-{len(classes)}"
    out.mkdir()
    model.save(out / "model.keras")
    (out / "config.json").write_text(cfg.model_dump_json())
    info = {
        "model_version": f"fused-test-{seed}",
        "labels": LABELS,
        "rule_classes": classes,
        "encoder": {"model_sha256": "x", "tokenizer_sha256": "y", "prefix": "query: "},
        "thresholds": {"confidence": 0.5, "not_understood": 0.5, "image_ood": 0.5},
    }
    (out / "checkpoint.json").write_text(json.dumps(info))
    np.savez(out / "parity.npz", marker=np.arange(3))
    return out


def _inputs(n: int = 3) -> dict[str, np.ndarray]:
    s = MODEL_SPEC
    rng = np.random.default_rng(1)
    r, t, d = s.rules.shape
    mask = np.zeros((n, r, t), "float32")
    mask[:, :3, :6] = 1.0
    return {
        s.image_input: rng.integers(0, 255, (n, *s.image.shape), dtype=np.uint8),
        s.rules_input: (0.26 * rng.standard_normal((n, r, t, d))).astype("float32")
        * mask[..., None],
        s.rule_mask_input: mask,
        s.speed_input: rng.uniform(0, 120, (n, 1)).astype("float32"),
    }


def _outputs(path: Path) -> dict[str, np.ndarray]:
    from training.checkpoint import load_checkpoint

    out = load_checkpoint(path).model.predict(_inputs(), verbose=0)
    return {k: np.asarray(v) for k, v in out.items()}


def test_the_merged_model_reads_the_average_and_decides_as_the_first(tmp_path: Path) -> None:
    a, b, c = (_checkpoint(tmp_path, s) for s in (1, 2, 3))
    merged = tmp_path / "merged"
    assert cli(["merge-readers", str(a), str(b), str(c), "--out", str(merged)]) == 0
    got, members = _outputs(merged), [_outputs(p) for p in (a, b, c)]
    for name in (MODEL_SPEC.rule_output, *RULE_PARAMS):
        mean = np.mean([m[name] for m in members], axis=0)
        np.testing.assert_allclose(got[name], mean, atol=1e-6)
        assert np.abs(members[0][name] - mean).max() > 1e-4  # the members do read differently
    info = json.loads((merged / "checkpoint.json").read_text())
    assert info["readers_from"] == ["fused-test-1", "fused-test-2", "fused-test-3"]
    assert info["model_version"] == "fused-test-1-r3"
    assert json.loads((merged / "config.json").read_text())["readers"] == 3
    assert (merged / "parity.npz").read_bytes() == (a / "parity.npz").read_bytes()
    # The first member's decision: merged with copies of itself, it is that model again.
    a2, a3 = tmp_path / "a2", tmp_path / "a3"
    for d in (a2, a3):
        d.mkdir()
        for f in a.iterdir():
            (d / f.name).write_bytes(f.read_bytes())
    assert cli(["merge-readers", str(a), str(a2), str(a3), "--out", str(tmp_path / "aaa")]) == 0
    same = _outputs(tmp_path / "aaa")
    for name, value in members[0].items():
        np.testing.assert_allclose(same[name], value, atol=1e-5, err_msg=name)


def test_members_that_cannot_be_read_together_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from training.ensemble import merge_readers

    a, b = _checkpoint(tmp_path, 1), _checkpoint(tmp_path, 2)
    with pytest.raises(ConfigError, match="2 to 5"):
        merge_readers(tmp_path / "o1", [a])
    with pytest.raises(ConfigError, match="named twice"):
        merge_readers(tmp_path / "o2", [a, b, a])
    other = _checkpoint(tmp_path, 3, classes=[*CLASSES, "school_zone"])
    with pytest.raises(ConfigError, match="rule_classes differ"):
        merge_readers(tmp_path / "o3", [a, other])
    two = _checkpoint(tmp_path, 4, readers=2)
    with pytest.raises(ConfigError, match="one reader"):
        merge_readers(tmp_path / "o4", [a, two])
    factorized = _checkpoint(tmp_path, 5, rule_head="factorized")
    with pytest.raises(ConfigError, match="rule_head"):
        merge_readers(tmp_path / "o5", [a, factorized])
    assert (
        cli(["merge-readers", str(a), str(tmp_path / "missing"), "--out", str(tmp_path / "o6")])
        == 2
    )
    assert "not a checkpoint directory" in capsys.readouterr().err
    assert not (tmp_path / "o6" / "model.keras").exists()
