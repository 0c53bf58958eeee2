"""``ruledrive bench reading-check``: what the reading check (perception.readcheck) catches.

Per recording set (``--data``, each folder reported on its own) and per threshold τ: the frames
the check would newly answer ``valid=false`` (a rule read with top class probability below τ
whose runner-up reading changes the decision; frames the node flags already are not counted
again), how many of them the model had wrong and how many right, and the errors left with
``valid=true``. ``--choose-on`` names labelled recordings to choose τ on (the node's rule:
the τ of the grid that catches most errors net of right answers flagged, flagging at most
``--max-flagged`` of the frames). With ``--val-seed`` the choice uses only the drives
training.train.split_by_vehicle picks with that seed and ``--val-fraction`` (with the training
seed and 0.1: the drives the model's other thresholds were chosen on), and every ``--data`` set
is reported on its *other* drives, so no frame is both chosen on and reported. The frames go
through the evaluation's encoding (rule table, the model's decode) and the node's graphs.

Per ``--data`` set also: the errors still answered ``valid=true`` at the node's τ
(``--tau``), split into those where the decision used a rule class other than the rule's own
(which rule text, its class, the class it was read as) and those where every rule was read
right: where the silent errors come from, for the next round of the rule language.

The validation drives of the training data are in training wording, which the model reads
surely: there the check flags nothing below τ = 0.9 and no τ gains (docs/benchmarks.md). The
check is for wording the model did not train on, so the shipped τ is chosen on half of the drives
of the held-out wording split and reported on the other half.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.defaults import DEFAULT_MODEL_PATH, READING_THRESHOLD
from core.errors import ConfigError
from core.paths import check_output_file
from ruledrive.argtypes import fraction, non_negative_int
from ruledrive.benchdoc import add_doc_flags, bench_command, publish
from training.thresholds import MAX_LOW_CONFIDENCE  # the same cap as low_confidence's

__all__ = ["choose_threshold", "register_bench", "run", "scan", "silent"]

GRID = (0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99)
MISREAD_ROWS = 15  # the most frequent misreads shown per set


def scan(model_path: Path, data: Any, pred: Any) -> dict[str, np.ndarray]:
    """Per frame of ``data`` (training.data.ArrayDataset): whether the model is right, whether
    the node flags it already (``pred``: an OnnxPredictor without the reading check), and per
    rule the top class probability and whether its runner-up reading changes the decision
    (checked for every rule below the largest τ of the grid), the class the decision read
    each rule as (the neighbour reading applied), and the decision."""
    from perception.readcheck import ReadingCheck
    from perception.spec import MODEL_SPEC
    from training.evaluate import _flags

    check = ReadingCheck.from_model(model_path.read_bytes())
    if check is None:
        raise ConfigError(f"{model_path}: no reading graph, so no reading check to measure")
    parts = [
        check.scan(data.inputs(np.arange(lo, min(lo + 256, len(data)))), max(GRID))
        for lo in range(0, len(data), 256)
    ]
    top, changes, classes = (np.concatenate([p[i] for p in parts]) for i in (1, 2, 3))
    outs = data.predict(pred.predict)  # the whole model, as the evaluation runs it
    flagged = _flags(pred, outs, data, np.arange(len(data)))["any"]
    decided = outs[MODEL_SPEC.output].argmax(1)
    right = decided == data.labels
    return {
        "right": right,
        "flagged": flagged,
        "top": top,
        "changes": changes,
        "read": classes.argmax(-1),
        "decided": decided,
    }


def silent(s: dict[str, np.ndarray], data: Any, names: tuple[str, ...], tau: float) -> dict:
    """The errors left ``valid=true`` at ``tau``: how many, how many with a rule read as another
    class than its own (counted per (text, class, read as), most frames first), and for the
    rest (every rule read right) the (label, decision) pairs."""
    from bus.schema import DecisionLabel

    new = ((s["top"] < tau) & s["changes"]).any(axis=1)
    idx = np.flatnonzero(~s["right"] & ~s["flagged"] & ~new)
    labels = list(DecisionLabel)
    misreads: dict[tuple[str, str, str], int] = {}
    decisions: dict[tuple[str, str], int] = {}
    misread_frames = 0
    for i in idx:
        sample = data.samples[i]
        wrong = [
            r
            for r in np.flatnonzero(data.rule_idx[i] >= 0)
            if data.rule_cls[i, r] >= 0 and s["read"][i, r] != data.rule_cls[i, r]
        ]
        misread_frames += bool(wrong)
        for r in wrong:
            text = sample.rules[r] if sample is not None else "?"
            key = (text, names[data.rule_cls[i, r]], names[s["read"][i, r]])
            misreads[key] = misreads.get(key, 0) + 1
        if not wrong:
            pair = (labels[data.labels[i]].value, labels[s["decided"][i]].value)
            decisions[pair] = decisions.get(pair, 0) + 1
    return {
        "errors": len(idx),
        "misread_frames": misread_frames,
        "misreads": sorted(misreads.items(), key=lambda kv: (-kv[1], kv[0])),
        "decisions": sorted(decisions.items(), key=lambda kv: (-kv[1], kv[0])),
    }


def rows(s: dict[str, np.ndarray]) -> list[dict[str, float]]:
    """Per τ of the grid: frames newly flagged, of them wrong / right, errors left valid."""
    out = []
    errors_valid = int((~s["right"] & ~s["flagged"]).sum())
    for t in GRID:
        new = ((s["top"] < t) & s["changes"]).any(axis=1) & ~s["flagged"]
        out.append(
            {
                "threshold": t,
                "new": float(new.mean()),
                "wrong": int((new & ~s["right"]).sum()),
                "right": int((new & s["right"]).sum()),
                "errors_valid": errors_valid - int((new & ~s["right"]).sum()),
            }
        )
    return out


def choose_threshold(table: list[dict[str, float]], max_flagged: float) -> float:
    """The τ that catches most errors net of right answers flagged (ties: the smaller), among
    those flagging at most ``max_flagged`` of the frames; 0 (off) when none gains."""
    best, gain = 0.0, 0
    for row in table:
        if row["new"] <= max_flagged and row["wrong"] - row["right"] > gain:
            best, gain = float(row["threshold"]), int(row["wrong"] - row["right"])
    return best


# No overtaking or turn-on-red rule: one whose words write the ban is settled as the ban, not
# checked, when the model splits it (perception.readcheck.agreed), and the worst case asks
# every rule.
COST_RULES = ("Give way to pedestrians at the crossing", "Speed limit 50 km/h", "限速30公里")


def cost(
    model_path: Path, rounds: int = 5, repeats: int = 40
) -> dict[int, tuple[float, float, float]]:
    """Per batch size (1, 8): median ms of ``PolicyModel.run_encoded`` without the check, with
    every rule of a 3-rule set checked (threshold 1: the worst case; each rule's runner-up and
    its top class outright, perception.readcheck.outright: six more rows per frame)
    through the head graph (the node's way), and the same through the whole frame graph (the
    way before the head graph), alternated round by round on the same frames."""
    import dataclasses

    from policy.model import PolicyModel

    off = PolicyModel.load(model_path, "cpu", reading_threshold=0.0)
    on = PolicyModel.load(model_path, "cpu", encoder=off.encoder, reading_threshold=1.0)
    rerun = dataclasses.replace(on, head_session=None)
    plain, checked = off.encode_rules(COST_RULES), on.encode_rules(COST_RULES)
    assert len(checked.alternatives) == 2 * len(COST_RULES)
    rng = np.random.default_rng(0)
    out = {}
    for n in (1, 8):
        images = rng.integers(0, 256, (n, *off.session.get_inputs()[0].shape[1:]), np.uint8)
        speeds = np.full((n, 1), 40.0, np.float32)
        times: dict[str, list[float]] = {"off": [], "on": [], "rerun": []}
        for _ in range(rounds):
            for key, model, enc in (
                ("off", off, plain),
                ("on", on, checked),
                ("rerun", rerun, checked),
            ):
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    model.run_encoded(images, [enc] * n, speeds)
                    times[key].append((time.perf_counter() - t0) * 1e3)
        a, b, c = (float(np.median(times[k])) for k in ("off", "on", "rerun"))
        out[n] = (a, b, c)
    return out


def _load(
    paths: list[Path],
    model: Path,
    val_seed: int | None,
    val_fraction: float,
    cache: Path | None,
    chosen: bool,
) -> Any:
    from perception.rule_encoder import RuleEncoder
    from training.data import RuleTable, encode_samples, load_samples
    from training.evaluate import OnnxPredictor

    pred = OnnxPredictor(model, reading_check=False)  # the check is what is measured
    samples = load_samples(paths)
    if not samples:
        raise ConfigError(f"no labelled frames in {', '.join(map(str, paths))}")
    enc = RuleEncoder.load(Path(pred.encoder_dir), "cpu", cache_size=0, layer=pred.encoder_layer)
    table = RuleTable.build((t for s in samples for t in s.rules), enc, cache)
    if pred.sentence_input:
        table.add_sentences()
    data = encode_samples(samples, table, pred.rule_classes, decode=pred.decode)
    if val_seed is not None:  # chosen: the drives split_by_vehicle picks; else the others
        from training.train import split_by_vehicle

        rest_idx, val_idx = split_by_vehicle(val_fraction, data, val_seed)
        data = data.subset(val_idx if chosen else rest_idx)
    return data, pred


def run(args: argparse.Namespace) -> int:
    if args.tau > max(GRID):
        raise ConfigError(f"--tau {args.tau} is above the grid's largest τ, {max(GRID)}")
    if args.rule_cache is not None:  # read, and written back at the end of the run
        check_output_file(args.rule_cache, "--rule-cache")
    sets = [(str(p), [p]) for p in args.data]
    args.silent = {}
    results = {}
    for name, paths in sets:
        data, pred = _load(
            paths, args.model, args.val_seed, args.val_fraction, args.rule_cache, False
        )
        found = scan(args.model, data, pred)
        results[name] = (len(data), rows(found))
        args.silent[name] = silent(found, data, pred.rule_classes, args.tau)
    chosen = None
    if args.choose_on:
        data, pred = _load(
            args.choose_on, args.model, args.val_seed, args.val_fraction, args.rule_cache, True
        )
        table = rows(scan(args.model, data, pred))
        chosen = (len(data), table, choose_threshold(table, args.max_flagged))
    args.version = pred.meta.model_version
    args.cost = cost(args.model)
    publish(args, "Reading check", _report(args, results, chosen))
    return 0


def _report(args: argparse.Namespace, results: dict, chosen: Any) -> str:
    lines = [
        f"Command: `{bench_command('reading-check')}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; model `{args.model}` "
        f"version `{args.version}`. A frame is newly flagged when a rule read with top class "
        "probability below τ would, read as its runner-up class or as its top class "
        "outright, change the decision "
        "(perception.readcheck), or, for a model with a neighbour index, when a rule its "
        "neighbours overrule would, read as the model read it, change the decision (at every "
        "τ; perception.neighbours); frames the node flags already are not counted again. "
        '"wrong" / "right": the model\'s decision on the newly flagged frames; "errors '
        'left valid": errors still answered with `valid=true`.',
        "",
    ]
    blocks = list(results.items())
    if chosen is not None:
        where = ", ".join(map(str, args.choose_on))
        if args.val_seed is not None:
            where += f" (the drives of seed {args.val_seed}, fraction {args.val_fraction})"
        blocks.insert(0, (f"choice: {where}", chosen[:2]))
    others = " (the other drives)" if args.val_seed is not None else ""
    for k, (name, (n, table)) in enumerate(blocks):
        tail = others if chosen is None or k > 0 else ""
        lines += [f"{name}{tail} ({n} frames):", ""]
        lines += ["| τ | newly flagged | of them wrong | of them right | errors left valid |"]
        lines += ["|---|---|---|---|---|"]
        lines += [
            f"| {r['threshold']} | {r['new']:.2%} | {r['wrong']} | {r['right']} | "
            f"{r['errors_valid']} |"
            for r in table
        ]
        lines.append("")
    if chosen is not None:
        lines.append(
            f"Chosen τ: **{chosen[2]}** (most errors caught net of right answers flagged, at "
            f"most {args.max_flagged:.1%} of the frames flagged; 0 = the check gains nothing)."
        )
    for name, found in args.silent.items():
        lines += [
            "",
            f"{name}{others}: errors left `valid=true` at τ {args.tau:g}: {found['errors']}, of "
            f"them {found['misread_frames']} with a rule the decision read as another class "
            "than its own (per rule text, frames; a frame can count more than one rule):",
            "",
            "| rule text | its class | read as | frames |",
            "|---|---|---|---|",
            *(
                f"| {text} | {own} | {read} | {k} |"
                for (text, own, read), k in found["misreads"][:MISREAD_ROWS]
            ),
            "",
            "With every rule read right, label -> decision and its frames: "
            + (", ".join(f"{a} -> {b} {k}" for (a, b), k in found["decisions"]) or "none")
            + ".",
        ]
    lines += [
        "",
        "Cost per batch (`PolicyModel.run_encoded`; medians, the three alternated on the same "
        "frames), without the check and with every rule of a 3-rule set checked (the worst "
        "case: each frame gets six more rows, each rule's runner-up and its top class "
        "outright), the reruns through the head graph (the node's "
        "way: the frame's image features are reused) and through the whole frame graph (the "
        "image encoder again, as before the head graph):",
        "",
        "| batch | no check | every rule checked, head graph | ratio | every rule checked, "
        "frame graph | ratio |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {n} | {a:.2f} ms | {b:.2f} ms | {b / a:.2f}x | {c:.2f} ms | {c / a:.2f}x |"
        for n, (a, b, c) in args.cost.items()
    ]
    return "\n".join(lines)


def register_bench(bench_sub: argparse._SubParsersAction) -> None:
    p = bench_sub.add_parser(
        "reading-check", help="what the reading check catches, per threshold (and choose one)"
    )
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    p.add_argument("--data", type=Path, nargs="+", required=True, help="labelled recordings")
    p.add_argument("--choose-on", type=Path, nargs="*", default=[], help="recordings to choose τ")
    p.add_argument("--val-seed", type=non_negative_int, help="choose on the drives this seed picks")
    p.add_argument("--val-fraction", type=fraction, default=0.1)
    p.add_argument(
        "--max-flagged",
        type=fraction,
        default=MAX_LOW_CONFIDENCE,
        help="the most frames the chosen τ may flag (default: the low_confidence rule's cap)",
    )
    p.add_argument("--rule-cache", type=Path, help="a rule table .npz to reuse")
    p.add_argument(
        "--tau",
        type=fraction,
        default=READING_THRESHOLD,
        help="the τ at which the silent errors are broken down (default: the node's)",
    )
    add_doc_flags(p)
    p.set_defaults(func=run)
