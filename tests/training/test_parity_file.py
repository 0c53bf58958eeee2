"""A checkpoint's parity.npz: the inputs the export's ONNX parity check feeds, stored with the
rule states as their tokens only, and given back exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import ConfigError
from perception.spec import MODEL_SPEC as S
from training.checkpoint import load_parity_inputs, save_parity_inputs


def _inputs(n: int = 6, width: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """Frames with 0-5 rules of 1-40 tokens each, zeros past them, as the rule table gives."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((n, S.max_rules, S.max_rule_tokens), np.float32)
    for i in range(n):
        for r in range(rng.integers(0, S.max_rules + 1)):
            mask[i, r, : rng.integers(1, S.max_rule_tokens + 1)] = 1.0
    states = rng.normal(size=(*mask.shape, width)).astype(np.float32) * mask[..., None]
    return {
        S.image_input: rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8),
        S.rules_input: states,
        S.rule_mask_input: mask,
        S.speed_input: rng.uniform(0, 100, (n, 1)).astype(np.float32),
    }


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_the_inputs_come_back_exactly_and_the_padding_is_not_stored(tmp_path: Path) -> None:
    inputs = _inputs(n=64, width=64)
    save_parity_inputs(tmp_path / "parity.npz", inputs)
    _same(load_parity_inputs(tmp_path / "parity.npz"), inputs)
    dense = tmp_path / "dense.npz"
    np.savez(dense, **inputs)
    # Only the masked tokens' states are stored (about half of the slots here).
    tokens = int(inputs[S.rule_mask_input].sum()) * 64 * 4
    assert (tmp_path / "parity.npz").stat().st_size < dense.stat().st_size - tokens // 2


def test_states_outside_the_mask_are_kept_whole(tmp_path: Path) -> None:
    inputs = _inputs()
    inputs[S.rules_input][0, 0, -1, 0] = 0.5  # a state where the mask says no token
    inputs[S.rule_mask_input][0, 0, -1] = 0.0
    save_parity_inputs(tmp_path / "parity.npz", inputs)
    _same(load_parity_inputs(tmp_path / "parity.npz"), inputs)


def test_a_checkpoint_of_before_with_the_states_whole_still_loads(tmp_path: Path) -> None:
    inputs = _inputs()
    np.savez_compressed(tmp_path / "parity.npz", **inputs)
    _same(load_parity_inputs(tmp_path / "parity.npz"), inputs)


def test_a_file_whose_tokens_do_not_fit_its_mask_is_refused_by_name(tmp_path: Path) -> None:
    inputs = _inputs()
    save_parity_inputs(tmp_path / "parity.npz", inputs)
    with np.load(tmp_path / "parity.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays[S.rules_input + "__tokens"] = arrays[S.rules_input + "__tokens"][:-1]
    np.savez(tmp_path / "cut.npz", **arrays)
    with pytest.raises(ConfigError, match=r"cut\.npz: not the checkpoint's parity samples"):
        load_parity_inputs(tmp_path / "cut.npz")
    del arrays[S.rule_mask_input]
    np.savez(tmp_path / "nomask.npz", **arrays)
    with pytest.raises(ConfigError, match=r"nomask\.npz"):
        load_parity_inputs(tmp_path / "nomask.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match=r"junk\.npz"):
        load_parity_inputs(tmp_path / "junk.npz")
