"""The recipe of the shipped default model: fixed seeds, generated data, fused model + ablations.

``ruledrive train-default`` runs it end to end: generate the bilingual world's train / test /
held-out-family / counterfactual splits (``--rule-language bilingual``), train the fused model
with three seeds and the image-only and text-only ablations with the same budget, evaluate all of
them on the same fresh test data, export the first seed's fused model to ONNX (parity-checked),
and write the model card and the "Training" section of docs/benchmarks.md. The targets must hold
for the WORST seed.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from core.defaults import DEFAULT_MODEL_PATH, WRITTEN_RENDERINGS
from core.errors import ConfigError
from ruledrive.benchdoc import write_section
from ruledrive.recipe_card import render_card, targets_table
from training.config import TrainConfig

__all__ = ["DATASETS", "SEEDS", "build_default", "recipe_config", "seed_config"]

# Data set -> (generator split, seed). Training also sees counterfactual pairs (a seed of its
# own), so it learns from frames whose decision only the text changes; the evaluation pairs are
# fresh (seed 404). The held-out split uses only held-out wording families.
DATASETS = {
    "train": ("train", 101),
    "train-counterfactual": ("counterfactual", 505),
    "test": ("test", 202),
    "heldout-phrasing": ("heldout-phrasing", 303),
    "counterfactual": ("counterfactual", 404),
}
TRAIN_SETS = ("train", "train-counterfactual")
EVAL_SPLITS = ("test", "heldout-phrasing", "counterfactual")
SEEDS = (1234, 1, 2)  # the first is the shipped model; the targets hold for the worst
# The rule corpus the reader trains on alone first (training.reader): rule sets drawn as the
# training split draws them (its families, its pool of rules nobody can read), its own seed;
# 30,000 sets are ~42,000 distinct texts beside the splits' ~13,500. On training families set
# aside (`bench reader --withhold`, docs/training.md "Results") the reader read 89-90 % of them
# with no corpus, 93-94 % with 10,000 sets and 95.6-95.8 % with 30,000; 60,000 sets read 96.1-97.2 %
# but the whole model flagged 4x more readable held-out rule sets (docs/training.md, "A larger
# rule corpus"), so the recipe keeps 30,000.
CORPUS = ("rule-corpus.jsonl", 30000, 777)
# Whether the recipe's reader also trains on the written wording files (training/written/).
WRITTEN = False
READER_EPOCHS = 12
# The encoder layer the reader reads (None: the last, as the shipped model). Layer 9 read
# training families set aside better on the reader alone (98.1-98.3 % against 95.5-95.8 %) and
# was trained with the whole recipe in the thirteenth round (twenty-first session), not shipped:
# it moved the held-out worst kinds up on one draw of the held-out families but not on a second,
# flagged 5.8 % of readable held-out rule sets (worst seed) and missed the non-road-picture
# target (docs/training.md, "Thirteenth round"). Trained again on the world with composed
# distractors (twenty-second session, seed 1234 only), it flagged readable held-out obligations
# ("Please fold in the mirrors") as not understood and answered more held-out errors with
# valid=true than the shipped model (59 against 36; a second draw 57 against 31): the recipe
# reads the last layer ("Fourteenth round").
ENCODER_LAYER: int | None = None


def _data(work: Path, scenes: int) -> dict[str, Path]:
    from simulator.generate import generate

    # Evaluation splits are large: per rule kind and language, only the frames a rule targets
    # count, and those are a few per cent of a split.
    sizes = {
        "train": scenes,
        "train-counterfactual": max(scenes * 3 // 10, 500),
        # 24,000 frames at 20,000 scenes: the training-wording targets are per kind and
        # language on targeted frames, where 6,000 frames left 6-338 frames a cell and the
        # two cells that missed 97 % had 29 and 45 (one frame = 3.4 and 2.2 points: one frame
        # decided the verdict).
        "test": max(scenes * 6 // 5, 500),
        # Twice the old 6,000-frame test split's share: held-out kinds had 21-31 targeted
        # frames each (one frame = 3-5 points). Every held-out frame's rules use a held-out
        # family, so at 8,000 frames its cells hold 15-455 frames; kept at this size so its
        # figures compare with every earlier round's.
        "heldout-phrasing": max(scenes * 2 // 5, 500),
        "counterfactual": max(scenes // 10, 500),
    }
    dirs = {}
    for name, n in sizes.items():
        split, seed = DATASETS[name]
        d = work / "data" / name
        summary = d / f"{split}.json"
        old = json.loads(summary.read_text()) if summary.exists() else {}
        if old.get("frames") != n or old.get("seed") != seed:
            shutil.rmtree(d, ignore_errors=True)
            generate(d, split, n, seed, progress=sys.stderr.isatty(), rule_language="bilingual")
        dirs[name] = d
    return dirs


def _corpus(work: Path, written: bool = False) -> Path:
    """The recipe's rule corpus (written once; a file of another size or seed is rewritten);
    with ``written``, that corpus followed by the renderings of the written wording files
    (training/written/, ruledrive.written_corpus), a file of its own, rewritten when a written
    file changes."""
    from simulator.generate import write_rule_corpus

    name, n_sets, seed = CORPUS
    path = work / "data" / name
    want: dict[str, Any] = {"sets": n_sets, "seed": seed}
    if not _stamped(path, want):
        write_rule_corpus(path, n_sets, seed)
        _stamp(path, want)
    if not written:
        return path
    from ruledrive.written_corpus import WRITTEN_DIR, write_corpus_with_written, written_digest

    files = sorted(WRITTEN_DIR.glob("*.yaml"))
    if not files:
        raise ConfigError(f"no written wording files in {WRITTEN_DIR}")
    both = path.with_name(path.stem + "-written.jsonl")
    want |= {"written": written_digest(files), "renderings": WRITTEN_RENDERINGS}
    if not _stamped(both, want):
        write_corpus_with_written(path, files, both, WRITTEN_RENDERINGS, seed)
        _stamp(both, want)
    return both


def _stamped(path: Path, want: dict[str, Any]) -> bool:
    """Whether ``path`` is there and was written as ``want`` says (its .json stamp)."""
    stamp = path.with_suffix(".json")
    return path.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == want


def _stamp(path: Path, want: dict[str, Any]) -> None:
    """Record beside ``path`` how it was written (what :func:`_stamped` checks)."""
    path.with_suffix(".json").write_text(json.dumps(want))


def _eval_data(dirs: dict[str, Path], work: Path, cfg: TrainConfig) -> tuple[Any, Any]:
    """The evaluation samples and their rule table, read and encoded once for every model."""
    from perception.rule_encoder import RuleEncoder
    from training.data import RuleTable, load_samples

    samples = load_samples([dirs[s] for s in EVAL_SPLITS])
    encoder = RuleEncoder.load(Path(cfg.encoder_dir), "cpu", cache_size=0, layer=cfg.encoder_layer)
    cache = work / "rule-table-eval.npz"
    table = RuleTable.build((r for s in samples for r in s.rules), encoder, cache)
    if cfg.reads_sentences:  # the fused and text-only models; the image-only ablation reads none
        from training.sentence import cache_beside

        table.add_sentences(cache_beside(cache))
    return samples, table


def _eval(model: Path, data: tuple[Any, Any], out: Path | None) -> dict[str, Any]:
    from training.evaluate import evaluate_samples, load_predictor

    samples, table = data
    return evaluate_samples(load_predictor(model), samples, out, table)


def _child_logging(level: int) -> None:
    """A spawned run's log, at the parent's level and in its format."""
    import logging

    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _train_one(
    vcfg: TrainConfig,
    dirs: dict[str, Path],
    work: Path,
    ckpt: Path,
    export_to: Path | None,
    reuse: bool,
    log_level: int,
) -> dict[str, Any]:
    """One training of the recipe, in a process of its own: five trainings and evaluations in
    one process grew past 24 GB and were killed by the kernel twice (December 2026), even with
    Keras' session cleared between runs."""
    from training.train import train

    _child_logging(log_level)
    return train(
        vcfg,
        [dirs[d] for d in TRAIN_SETS],
        ckpt,
        export_to=export_to,
        reuse=reuse,
        rule_cache=work / "rule-table.npz",
    )


def _eval_one(
    model: Path,
    vcfg: TrainConfig,
    dirs: dict[str, Path],
    work: Path,
    img_dir: Path | None,
    log_level: int,
) -> dict[str, Any]:
    """The evaluation of one training, in a process of its own too: a model reading three
    encoder layers (1,152-wide states) was killed by the kernel at 22.7 GB evaluating in the
    process that had trained it, which still held the training data and rule table."""
    _child_logging(log_level)
    return _eval(model, _eval_data(dirs, work, vcfg), img_dir)


def _isolated(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` in a fresh process (spawned: no TensorFlow state is inherited); its memory
    is the kernel's again when it returns. An exception in the child is raised here."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def recipe_config(
    cfg: TrainConfig, work: Path, written: bool = WRITTEN
) -> tuple[TrainConfig, bool]:
    """``cfg`` with the recipe's choices where it leaves them open: the rule corpus (written into
    ``work`` once) and the reader's epochs with it, the encoder layer. The second value says
    whether the corpus holds the written wording files: a corpus the caller named is its own,
    and the card does not claim it. The one place the recipe's configuration is made, for
    ``build_default`` and for docs/experiments/recipe_seed.py (one seed trained alone)."""
    used_written = False
    if cfg.rule_corpus is None:
        used_written = written
        cfg = cfg.model_copy(
            update={
                "rule_corpus": str(_corpus(work, written)),
                "reader_epochs": cfg.reader_epochs or READER_EPOCHS,
            }
        )
    if cfg.encoder_layer is None:
        cfg = cfg.model_copy(update={"encoder_layer": ENCODER_LAYER})
    return cfg, used_written


def seed_config(cfg: TrainConfig, variant: str, seed: int) -> TrainConfig:
    """One run of the recipe: its variant and seed, trained on the training split and the
    training counterfactual pairs."""
    return cfg.model_copy(
        update={"variant": variant, "seed": seed, "train_splits": ["train", "counterfactual"]}
    )


def build_default(
    out_dir: Path,
    work: Path,
    scenes: int,
    cfg: TrainConfig,
    ablations: tuple[str, ...],
    docs: Path,
    reuse: bool = False,
    seeds: tuple[int, ...] = SEEDS,
    written: bool = WRITTEN,
) -> dict[str, Any]:
    import logging

    argv = sys.argv[1:]
    command = (
        "ruledrive " + " ".join(shlex.quote(a) for a in argv) if argv else "ruledrive train-default"
    )
    dirs = _data(work, scenes)
    cfg, used_written = recipe_config(cfg, work, written)
    onnx_path = out_dir / DEFAULT_MODEL_PATH.name
    results: dict[str, Any] = {}
    runs = [("fused", s) for s in seeds]
    runs += [(variant, seeds[0]) for variant in ablations]
    img_dir = docs / "img" / "default-model"
    _eval_data(dirs, work, cfg)  # encodes the evaluation rules once, for every run's process
    for variant, seed in runs:
        shipped = variant == "fused" and seed == seeds[0]
        vcfg = seed_config(cfg, variant, seed)
        ckpt = work / f"ckpt-{variant}-s{seed}"
        # Every fused seed is evaluated as an exported model, as the node runs it (with the
        # reading check, training.evaluate); the ablations as checkpoints.
        export_to = onnx_path if shipped else (ckpt / "model.onnx" if variant == "fused" else None)
        level = logging.getLogger().getEffectiveLevel()
        info = _isolated(_train_one, vcfg, dirs, work, ckpt, export_to, reuse, level)
        evaluated = _isolated(
            _eval_one,
            export_to if export_to is not None else ckpt,
            vcfg,
            dirs,
            work,
            # The shipped seed's report and confusion plots go to the docs; every other run's
            # stay beside its checkpoint (report.json: where its flags fall, per kind).
            img_dir if shipped else ckpt / "eval",
            level,
        )
        got = {"info": info, "eval": evaluated}
        key = variant if variant != "fused" else f"fused-s{seed}"
        results[key] = {**got, "seed": seed}
        if shipped:
            shutil.copy(ckpt / "curves.png", img_dir / "curves.png")
    results["fused"] = results[f"fused-s{seeds[0]}"]
    card = render_card(results, cfg, command, onnx_path, seeds, used_written)
    (out_dir / "MODEL_CARD.md").write_text(card)
    body = f"Command: `{command}`\n\n{targets_table(results, seeds)}\n\nSee models/MODEL_CARD.md."
    write_section(docs / "benchmarks.md", "Training (default model)", body)
    return results
