"""Sampling, fusion figures, rendering, determinism and the counterfactual split."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bus.recording import counterfactual_pairs
from bus.recording_reader import read_metadata, read_samples
from core.errors import DataError
from perception.image import colourless, preprocess_jpeg
from simulator.generate import generate
from simulator.oracle import decide
from simulator.plan import fusion_figures, plan_split
from simulator.render import HEIGHT, WIDTH, render, render_jpeg
from simulator.rules import parse_rules
from simulator.scene import scene_from_dict


def test_fusion_figures_and_balance_on_2000_scenes() -> None:
    plan = plan_split("train", 2000, seed=11)  # symbolic only: no rendering
    fig = fusion_figures(plan, seed=1)
    assert fig["scenes_rule_dependent"] >= 0.30
    assert fig["rules_scene_dependent"] >= 0.30
    counts = plan.class_counts()
    assert min(counts.values()) >= 0.8 * 2000 / 6, counts
    for f in plan.frames():  # labels are the oracle's
        assert decide(plan.scenes[f.scene_index], plan.rule_sets[f.rules_index]) == (
            f.decision,
            f.reason,
        )


def test_speed_margin_around_limits() -> None:
    plan = plan_split("val", 600, seed=2)
    for f in plan.frames():
        s, rules = plan.scenes[f.scene_index], plan.rule_sets[f.rules_index]
        for r in rules:
            if r.kind in ("speed_limit", "school_zone"):
                assert abs(s.speed_kph - r.limit) > 3, (s.speed_kph, r.text)


def test_heldout_phrasings_only_in_their_split() -> None:
    held = plan_split("heldout-phrasing", 300, seed=3)
    assert all(rs and all(r.held_out for r in rs) for rs in held.rule_sets)
    for split in ("train", "val", "test", "counterfactual"):
        plan = plan_split(split, 300, seed=3)
        assert not any(r.held_out for rs in plan.rule_sets for r in rs), split


def test_bad_parameters() -> None:
    with pytest.raises(DataError, match="--scenes"):
        plan_split("train", 0, seed=1)
    with pytest.raises(DataError, match="--split"):
        plan_split("holdout", 10, seed=1)


def test_render_is_deterministic_and_sized() -> None:
    plan = plan_split("test", 12, seed=4)
    for s in plan.scenes:
        a, b = render_jpeg(s), render_jpeg(s)
        assert a == b
        assert render(s).shape == (HEIGHT, WIDTH, 3)
        assert preprocess_jpeg(a).shape == (96, 160, 3)
    assert len({render_jpeg(s) for s in plan.scenes}) == len(plan.scenes)


def test_lit_lamp_is_visible_at_model_size() -> None:
    plan = plan_split("train", 400, seed=5)
    red = next(s for s in plan.scenes if s.light == "red" and s.time_of_day == "day")
    small = preprocess_jpeg(render_jpeg(red.replace(noise=0.0, blur=0.0, rain=0.0)))
    r, g, b = (small[..., i].astype(int) for i in range(3))
    assert ((r > 200) & (g < 120) & (b < 120)).sum() >= 4  # a red blob survives 160x96


def test_generate_is_byte_identical_for_a_seed(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", "val", 120, seed=9, progress=False, workers=2)
    generate(tmp_path / "b", "val", 120, seed=9, progress=False, workers=1)
    digest = [
        hashlib.sha256((tmp_path / d / "val.mcap").read_bytes()).hexdigest() for d in ("a", "b")
    ]
    assert digest[0] == digest[1]
    assert a["frames"] == 120 and sum(a["class_balance"].values()) == 120
    other = generate(tmp_path / "c", "val", 120, seed=10, progress=False)
    assert other["class_balance"] is not None
    assert (tmp_path / "c" / "val.mcap").read_bytes() != (tmp_path / "a" / "val.mcap").read_bytes()


def test_round_trip_labels_match_oracle(tmp_path: Path) -> None:
    generate(tmp_path, "train", 150, seed=1, progress=False)
    samples = list(read_samples(tmp_path / "train.mcap", require_labels=True))
    assert len(samples) == 150
    assert read_metadata(tmp_path / "train.mcap")["split"] == "train"
    stamps: dict[str, list[int]] = {}
    for s in samples:
        assert s.split == "train" and s.label is not None and s.rules_version
        img = preprocess_jpeg(s.jpeg)
        assert img.shape == (96, 160, 3)
        scene = scene_from_dict(s.scene or {})
        assert scene.speed_kph == s.speed_kph
        assert decide(scene, parse_rules(s.rules)) == (s.label, s.reason)
        stamps.setdefault(s.vehicle_id, []).append(s.stamp_ns)
    for st in stamps.values():  # 10 Hz along each drive
        assert all(b - a == 100_000_000 for a, b in zip(st, st[1:], strict=False))
    assert len(stamps) >= 3
    versions = Counter((s.vehicle_id, s.rules_version) for s in samples)
    assert max(versions.values()) <= 15  # rules change every 5-15 frames


def test_counterfactual_pairs_share_bytes_and_differ(tmp_path: Path) -> None:
    generate(tmp_path, "counterfactual", 200, seed=2, progress=False)
    samples = list(read_samples(tmp_path / "counterfactual.mcap", require_labels=True))
    frames = counterfactual_pairs(samples, "frame")
    rules = counterfactual_pairs(samples, "rules")
    assert len(frames) >= 20 and len(rules) >= 20
    for a, b in frames:
        assert a.jpeg == b.jpeg and a.frame_id != b.frame_id and a.vehicle_id == b.vehicle_id
        assert a.rules != b.rules and a.label != b.label
    for a, b in rules:
        assert a.rules == b.rules and a.jpeg != b.jpeg and a.label != b.label
    # every frame of the split is in a pair
    paired = {(s.vehicle_id, s.frame_id) for p in frames + rules for s in p}
    assert len(paired) == len(samples)
    assert np.mean([s.label is not None for s in samples]) == 1.0


def test_no_rendered_road_frame_counts_as_colourless_and_its_grey_copy_does() -> None:
    """The node answers a frame without colour image_out_of_distribution (perception.image):
    never a frame of the world, at any time of day, always its greyscale copy."""
    import cv2

    scenes = plan_split("test", 90, seed=8).scenes
    assert {s.time_of_day for s in scenes} == {"day", "dusk", "night"}
    frames = [render_jpeg(s) for s in scenes]
    inputs = np.stack([preprocess_jpeg(f) for f in frames])
    assert not colourless(inputs).any()
    greys = [
        cv2.imencode(".jpg", cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_GRAYSCALE))[1]
        for f in frames[:10]
    ]
    assert colourless(np.stack([preprocess_jpeg(g.tobytes()) for g in greys])).all()
