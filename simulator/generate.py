"""Generate a split: plan (symbolic) -> render (pool of workers) -> MCAP + JSON summary.

Planning runs in the parent with one seeded RNG (cheap: microseconds per scene); rendering is a
pure function of each scene (its ``noise_seed`` comes from the split's numpy SeedSequence), so a
``multiprocessing`` pool with order-preserving ``imap`` gives byte-identical output for a seed
whatever the worker count.

With ``rule_language="bilingual"`` the rules come from the rule language and every frame's
scene record carries ``rule_meta`` (:func:`simulator.language.rule_records`: per rule its
meaning, language, families, class and whether the frame is targeted by it). The default
"catalogue" writes byte-identical files to those before the option existed.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing as mp
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2

from bus.recording_writer import RecordingWriter
from bus.schema import FrameHeader, LabelMsg, RuleSet
from core.errors import ConfigError, DataError
from core.paths import check_output_file
from simulator.language import rule_records
from simulator.language.ruleset import rule_corpus
from simulator.limits import MAX_CORPUS_SETS, MAX_WORKERS
from simulator.plan import PlannedFrame, SplitPlan, fusion_figures, plan_split
from simulator.render import render_jpeg
from simulator.scene import RULE_META_KEY, Scene

__all__ = [
    "FRAME_PERIOD_NS",
    "GENERATOR_VERSION",
    "MAX_CORPUS_SETS",
    "MAX_WORKERS",
    "generate",
    "language_summary",
    "render_plan",
    "write_plan",
    "write_rule_corpus",
]

FRAME_PERIOD_NS = 100_000_000  # 10 Hz
GENERATOR_VERSION = "1"
# Drives start on consecutive weekdays from Monday 2024-03-04 at an hour matching their light.
_EPOCH = dt.datetime(2024, 3, 4, tzinfo=dt.UTC)
_START_HOUR = {"day": (7, 16), "dusk": (17, 19), "night": (21, 23)}


def _init_worker() -> None:
    cv2.setNumThreads(1)  # the pool is the parallelism; OpenCV threads would oversubscribe


def _render(scene: Scene) -> bytes:
    return render_jpeg(scene)


def render_plan(plan: SplitPlan, workers: int = 2) -> Iterator[tuple[int, bytes]]:
    """(scene_index, jpeg) for every scene the frames use, in first-use order."""
    order: list[int] = []
    seen: set[int] = set()
    for f in plan.frames():
        if f.scene_index not in seen:
            seen.add(f.scene_index)
            order.append(f.scene_index)
    scenes = (plan.scenes[i] for i in order)
    if workers <= 1:
        yield from zip(order, map(_render, scenes), strict=True)
        return
    # "spawn", not "fork": forking a parent whose OpenCV thread pool is running can deadlock.
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker) as pool:
        yield from zip(order, pool.imap(_render, scenes, chunksize=32), strict=True)


def _drive_start_ns(index: int, tod: str, minute: int) -> int:
    weekday = index % 5 + 7 * (index // 5)  # skip weekends
    lo, hi = _START_HOUR[tod]
    start = _EPOCH + dt.timedelta(days=weekday, hours=lo + index % (hi - lo + 1), minutes=minute)
    return int(start.timestamp()) * 1_000_000_000


def write_plan(
    plan: SplitPlan,
    out: Path | RecordingWriter,
    jpegs: Iterator[tuple[int, bytes]],
    config: dict[str, Any],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the plan's drives to one MCAP; returns the number of frames written.

    ``out`` is a path (written and closed here) or an open writer made with
    ``metadata=_metadata(plan, config)`` (the caller closes it)."""
    if isinstance(out, RecordingWriter):
        return _write_drives(plan, out, jpegs, progress)
    with RecordingWriter(out, metadata=_metadata(plan, config)) as w:
        return _write_drives(plan, w, jpegs, progress)


def _metadata(plan: SplitPlan, config: dict[str, Any]) -> dict[str, str]:
    return {
        "split": plan.split,
        "seed": str(plan.seed),
        "generator": GENERATOR_VERSION,
        "config": json.dumps(config, sort_keys=True),
    }


def _write_drives(
    plan: SplitPlan,
    w: RecordingWriter,
    jpegs: Iterator[tuple[int, bytes]],
    progress: Callable[[int], None] | None,
) -> int:
    cache: dict[int, bytes] = {}
    n = 0
    for di, drive in enumerate(plan.drives):
        frames = [e for k, e in drive.events if k == "frame"]
        first = plan.scenes[frames[0].scene_index]  # type: ignore[union-attr]
        t = _drive_start_ns(di, first.time_of_day, di % 60)
        vid = drive.drive_id
        fid = 0
        for kind, ev in drive.events:
            if kind == "rules":
                assert isinstance(ev, int)
                rs = RuleSet(
                    vehicle_id=vid,
                    version=f"{vid}-r{ev}",
                    issued_at_ns=t - 1000,
                    rules=plan.texts(ev),
                )
                w.write_rules(rs)
                continue
            assert isinstance(ev, PlannedFrame)
            while ev.scene_index not in cache:
                idx, data = next(jpegs)
                cache[idx] = data
            scene = plan.scenes[ev.scene_index]
            w.write_frame(
                FrameHeader(vehicle_id=vid, frame_id=fid, stamp_ns=t, speed_kph=scene.speed_kph),
                cache[ev.scene_index],
            )
            w.write_label(
                LabelMsg(
                    vehicle_id=vid,
                    frame_id=fid,
                    stamp_ns=t,
                    decision=ev.decision,
                    reason=ev.reason,
                )
            )
            record = scene.to_dict()
            if plan.language != "catalogue":
                texts = plan.rule_texts[ev.rules_index]
                record[RULE_META_KEY] = rule_records(texts, scene)
            w.write_scene(vid, fid, t, record)
            # Only the counterfactual split reuses a scene, and only in the next frame.
            for old in [k for k in cache if k != ev.scene_index]:
                del cache[old]
            fid += 1
            n += 1
            t += FRAME_PERIOD_NS
            if progress:
                progress(1)
    return n


def language_summary(plan: SplitPlan) -> dict[str, Any]:
    """Counts over the rule sets the frames use: rules per language, mixed-language sets,
    not-understood rules, rules for other vehicles, rules with a held-out family."""
    used = sorted({f.rules_index for f in plan.frames()})
    texts = [t for i in used for t in plan.rule_texts[i]]
    langs = Counter(t.lang for t in texts)
    return {
        "rules": len(texts),
        "rules_per_language": dict(sorted(langs.items())),
        "mixed_rule_sets": sum(
            1 for i in used if {"en", "zh"} <= {t.lang for t in plan.rule_texts[i] if t.understood}
        ),
        "not_understood": sum(1 for t in texts if not t.understood),
        "not_binding_scope": sum(1 for t in texts if t.rule is not None and not t.rule.binds_car),
        "held_out_rules": sum(1 for t in texts if t.held_out),
    }


def generate(
    out_dir: str | Path,
    split: str,
    n_scenes: int,
    seed: int,
    workers: int = 2,
    progress: bool = True,
    fusion_samples: int = 4000,
    rule_language: str = "catalogue",
) -> dict[str, Any]:
    """Write ``out_dir/<split>.mcap`` and ``out_dir/<split>.json``; return the summary.

    Both are written to temporaries beside them (``.<split>.mcap.tmp``, ``.<split>.json.tmp``)
    and renamed into place only once the split is complete: an interrupted or failed run leaves
    the files of an earlier run as they were, and no temporary.

    ``rule_language`` "catalogue" (default: today's world, byte for byte) or "bilingual".
    """
    if not 1 <= workers <= MAX_WORKERS:
        raise DataError(f"--workers must be within 1..{MAX_WORKERS}, got {workers}")
    if not str(out_dir).strip():
        raise DataError("--out must name a directory, got ''")
    t0 = time.perf_counter()
    plan = plan_split(split, n_scenes, seed, rule_language)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"--out {out}: cannot create directory: {exc}") from exc
    config: dict[str, Any] = {"split": split, "scenes": n_scenes, "seed": seed, "frame_rate_hz": 10}
    if rule_language != "catalogue":  # the catalogue's metadata stays as it always was
        config["rule_language"] = rule_language
    path = out / f"{split}.mcap"
    tmp, summary_tmp = out / f".{split}.mcap.tmp", out / f".{split}.json.tmp"
    # Both renames at the end must be able to land: a directory where a file goes failed the
    # second one after the first had replaced the recording (an outside pass).
    for final in (path, out / f"{split}.json", tmp, summary_tmp):
        check_output_file(final, "--out")
    # The writer locks its file, so a second generator on this directory and split is refused
    # here, before it could remove the temporary the first one is writing.
    writer = RecordingWriter(tmp, metadata=_metadata(plan, config))
    try:
        bar = None
        if progress:  # rich, the one progress library of the project; on stderr like the logs
            from rich.console import Console
            from rich.progress import Progress

            bar = Progress(console=Console(stderr=True), transient=True)
            task = bar.add_task(f"generate {split}", total=n_scenes)
            bar.start()
        try:
            n = write_plan(
                plan,
                writer,
                render_plan(plan, workers),
                config,
                (lambda k: bar.advance(task, k)) if bar else None,
            )
        finally:
            if bar:
                bar.stop()
        writer.close()
        elapsed = time.perf_counter() - t0
        frames = plan.frames()
        summary = {
            "split": split,
            "seed": seed,
            "frames": n,
            "unique_frames": len({f.scene_index for f in frames}),
            "drives": len(plan.drives),
            "rule_sets": len({f.rules_index for f in frames}),
            "class_balance": plan.class_counts(),
            "fusion": fusion_figures(plan, max_samples=fusion_samples, seed=seed),
            "elapsed_s": round(elapsed, 2),
            "frames_per_s": round(n / elapsed, 1),
            "recording": path.name,
        }
        if rule_language != "catalogue":
            summary["rule_language"] = language_summary(plan)
        summary_tmp.write_text(json.dumps(summary, indent=2) + "\n")
        tmp.replace(path)
        summary_tmp.replace(out / f"{split}.json")
    except BaseException:  # KeyboardInterrupt too: no part of a split may replace a whole one
        try:
            writer.close()
        finally:
            tmp.unlink(missing_ok=True)
            summary_tmp.unlink(missing_ok=True)
        raise
    return summary


def write_rule_corpus(path: str | Path, n_sets: int, seed: int) -> dict[str, int]:
    """Write the rule corpus of ``n_sets`` rule sets drawn from ``seed`` (JSON lines,
    :func:`simulator.language.ruleset.rule_corpus`) to ``path``, atomically; returns counts.

    ConfigError, before any work, when ``path`` is a directory or cannot be written, or
    ``n_sets`` is outside 1..MAX_CORPUS_SETS. An interrupted or failed run leaves no temporary
    and any earlier corpus at ``path`` as it was."""
    if not 1 <= n_sets <= MAX_CORPUS_SETS:
        raise ConfigError(f"--sets must be within 1..{MAX_CORPUS_SETS}, got {n_sets}")
    out = Path(path)
    if not str(path).strip() or out.is_dir():
        raise ConfigError(f"--out {str(path)!r} is a directory; name the .jsonl file to write")
    tmp = out.with_name(out.name + ".tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        f = tmp.open("w", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write there: {exc}") from exc
    lines = texts = 0
    seen: set[str] = set()
    try:
        with f:
            for rec in rule_corpus(n_sets, seed):
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                lines += 1
                if rec["text"] not in seen:
                    seen.add(rec["text"])
                    texts += 1
        tmp.replace(out)
    except BaseException as exc:  # KeyboardInterrupt too: never leave the temporary behind
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise DataError(f"--out {out}: cannot write the rule corpus: {exc}") from exc
        raise
    return {"rules": lines, "distinct_texts": texts, "sets": n_sets, "seed": seed}
