"""Train the decision classifier: recordings in, checkpoint + curves + ONNX out.

Reads top to bottom: config -> data (frames, the rule table of encoder states, negatives) ->
model -> fit -> thresholds from validation data -> export.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bus.schema import DecisionLabel
from core.errors import DataError
from perception.modelmeta import NOT_UNDERSTOOD
from perception.rule_encoder import RuleEncoder
from perception.spec import MODEL_SPEC
from training.checkpoint import load_checkpoint, save_checkpoint_files
from training.config import TrainConfig
from training.data import (
    ArrayDataset,
    RuleTable,
    encode_samples,
    fingerprint,
    load_samples,
    rule_classes_of,
)
from training.ood import TRAIN_KINDS, negative_jpegs
from training.ruleparams import RULE_PARAMS
from training.thresholds import choose_thresholds

__all__ = ["train"]

log = logging.getLogger(__name__)

BUILDERS = {
    "fused": "create_fused_model",
    "image_only": "create_image_only_model",
    "text_only": "create_text_only_model",
}


def _split_by_vehicle(
    n_val_frac: float, data: ArrayDataset, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Validation = whole drives (vehicle ids), so near-duplicate frames don't leak across."""
    key = np.array(
        [
            zlib.crc32(f"{seed}:{s.vehicle_id if s is not None else i}".encode()) % 10_000
            for i, s in enumerate(data.samples)
        ]
    )
    is_val = key < int(n_val_frac * 10_000)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _model_version(cfg: TrainConfig, data_fp: str) -> str:
    if cfg.model_version:
        return cfg.model_version
    cfg_hash = hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()[:6]
    return f"{cfg.variant}-{data_fp[:8]}-{cfg_hash}"


def _plot_curves(history: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for key, ax in (("loss", a), ("accuracy", b)):
        for prefix in ("", "val_"):
            if prefix + key in history:
                ax.plot(
                    range(1, len(history[prefix + key]) + 1),
                    history[prefix + key],
                    label=prefix + key or key,
                )
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _fit(
    cfg: TrainConfig,
    out: Path,
    t0: float,
    data: ArrayDataset,
    train_ds: ArrayDataset,
    val_ds: ArrayDataset,
    rule_classes: tuple[str, ...],
    encoder: dict[str, str],
    version: str,
    data_fp: str,
) -> dict[str, Any]:
    """Build, fit and save the model; returns the checkpoint info."""
    # -- model --------------------------------------------------------------------------------
    if cfg.threads:
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(cfg.threads))
    import keras

    from training import model as builders

    keras.utils.set_random_seed(cfg.seed)
    model = getattr(builders, BUILDERS[cfg.variant])(len(DecisionLabel), len(rule_classes))
    steps = cfg.epochs * int(np.ceil(len(train_ds) / cfg.batch_size))
    warmup = int(cfg.warmup_epochs * np.ceil(len(train_ds) / cfg.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=cfg.learning_rate * 0.1 if warmup else cfg.learning_rate,
        decay_steps=max(steps - warmup, 1),
        alpha=cfg.min_lr_ratio,
        warmup_target=cfg.learning_rate if warmup else None,
        warmup_steps=warmup,
    )
    s = MODEL_SPEC
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss={
            s.output: keras.losses.SparseCategoricalCrossentropy(),
            s.rule_output: keras.losses.SparseCategoricalCrossentropy(),
            s.ood_output: keras.losses.BinaryCrossentropy(),
            **{p: keras.losses.SparseCategoricalCrossentropy() for p in RULE_PARAMS},
        },
        loss_weights={
            s.output: 1.0,
            s.rule_output: cfg.rule_loss_weight,
            s.ood_output: cfg.ood_loss_weight,
            **{p: cfg.param_loss_weight for p in RULE_PARAMS},
        },
        weighted_metrics={s.output: ["accuracy"]},
    )

    # -- fit ----------------------------------------------------------------------------------
    base_info = {
        "model_version": version,
        "data_fingerprint": data_fp,
        "variant": cfg.variant,
        "rule_classes": list(rule_classes),
        "encoder": encoder,
    }
    save_checkpoint_files(out, cfg, base_info)
    monitor = f"val_{s.output}_accuracy" if len(val_ds) else f"{s.output}_accuracy"
    callbacks = [
        keras.callbacks.ModelCheckpoint(
            out / "model.keras", monitor=monitor, mode="max", save_best_only=True
        ),
        keras.callbacks.CSVLogger(str(out / "history.csv")),
    ]
    hist = model.fit(
        train_ds.batches(cfg.batch_size, shuffle=True, seed=cfg.seed),
        validation_data=val_ds.batches(256, shuffle=False, seed=0) if len(val_ds) else None,
        epochs=cfg.epochs,
        callbacks=callbacks,
        verbose=1 if sys.stderr.isatty() else 2,
    )
    train_s = time.monotonic() - t0
    history = {k.replace(f"{s.output}_", ""): v for k, v in hist.history.items()}
    _plot_curves(history, out / "curves.png")

    # -- evaluate, thresholds + checkpoint info -----------------------------------------------
    best = keras.models.load_model(out / "model.keras", compile=False)
    eval_set = val_ds if len(val_ds) else train_ds
    outs = best.predict(eval_set.inputs(), batch_size=256, verbose=0)
    roads = eval_set.ood == 0
    hits = outs[s.output].argmax(1)[roads] == eval_set.labels[roads]
    val_acc = float(hits.mean()) if hits.size else 0.0
    thresholds = choose_thresholds(
        outs, eval_set.labels, eval_set.rule_cls, eval_set.ood, rule_classes.index(NOT_UNDERSTOOD)
    )
    # Parity inputs for the export: validation frames, or all frames when a small run has fewer
    # validation frames than the check needs.
    parity_src = eval_set if len(eval_set) >= 512 else data
    parity_idx = np.arange(min(len(parity_src), 1024))
    parity_inputs: dict[str, Any] = dict(parity_src.inputs(parity_idx))
    np.savez_compressed(out / "parity.npz", **parity_inputs)
    info = {
        **base_info,
        "labels": [str(x) for x in DecisionLabel],
        "thresholds": thresholds.to_dict(),
        "n_train": len(train_ds),
        "n_val": len(val_ds),
        "n_rule_texts": len(data.table.texts),
        "n_negatives": int(data.ood.sum()),
        "train_seconds": round(train_s, 1),
        "params": int(best.count_params()),
        "metrics": {"val_accuracy": round(val_acc, 4)},
    }
    (out / "checkpoint.json").write_text(json.dumps(info, indent=2, sort_keys=True))
    log.info("trained %s in %.0fs: val accuracy %.4f", info["model_version"], train_s, val_acc)

    return info


def _finished_checkpoint(out: Path, version: str) -> dict[str, Any] | None:
    """The info of a checkpoint whose training finished for this model version, else None."""
    try:
        info = json.loads((out / "checkpoint.json").read_text())
    except (OSError, ValueError):
        return None
    done = isinstance(info, dict) and "train_seconds" in info and (out / "model.keras").is_file()
    return info if done and info.get("model_version") == version else None


def train(
    cfg: TrainConfig,
    data_paths: Sequence[str | Path],
    out_dir: str | Path,
    export_to: str | Path | None = None,
    allow_truncated: bool = False,
    reuse: bool = False,
    rule_cache: Path | None = None,
) -> dict[str, Any]:
    """Train one model variant; returns the checkpoint info (metrics, version, paths).

    ``reuse``: when ``out_dir`` already holds a finished checkpoint of the same model version
    (same config and data fingerprint), keep it instead of training again. The version does not
    cover the code: reuse only across runs of the same code.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()

    # -- data ---------------------------------------------------------------------------------
    samples = [
        s
        for s in load_samples(data_paths, cfg.max_samples, allow_truncated)
        if s.split in cfg.train_splits
    ]
    if not samples:
        raise DataError(
            f"no training samples (splits {cfg.train_splits}) in {list(map(str, data_paths))}"
        )
    encoder = RuleEncoder.load(Path(cfg.encoder_dir), "cpu", cache_size=0)
    table = RuleTable.build(
        (r for smp in samples for r in smp.rules), encoder, rule_cache or out / "rule-table.npz"
    )
    seen = {c for smp in samples for c in rule_classes_of(smp) if c is not None}
    # not_binding and not_understood are always there, so the per-rule head has two classes
    # even for recordings whose rules carry no class (the bus recorder's).
    rule_classes = tuple(sorted(seen | {NOT_UNDERSTOOD, "not_binding"}))
    n_neg = int(round(cfg.negatives_fraction * len(samples)))
    roads = [x.jpeg for x in samples[:200]]
    negatives = [jpeg for _, jpeg in negative_jpegs(n_neg, TRAIN_KINDS, cfg.seed, roads)]
    data = encode_samples(samples, table, rule_classes, negatives)
    train_idx, val_idx = _split_by_vehicle(cfg.val_fraction, data, cfg.seed)
    if len(train_idx) == 0:
        raise DataError("validation split took every sample; lower val_fraction")
    train_ds, val_ds = data.subset(train_idx), data.subset(val_idx)
    data_fp = fingerprint(samples)
    version = _model_version(cfg, data_fp)
    log.info(
        "data: %d train, %d val (%d negatives), %d rule texts, fingerprint %s (%.1fs)",
        len(train_ds),
        len(val_ds),
        n_neg,
        len(table.texts),
        data_fp,
        time.monotonic() - t0,
    )

    info = _finished_checkpoint(out, version) if reuse else None
    if info is not None:
        info["reused_checkpoint"] = True  # for the caller; checkpoint.json stays as trained
        log.info(
            "reusing %s: it already holds model %s (trained in %.0fs)",
            out,
            version,
            info["train_seconds"],
        )
    else:
        info = _fit(
            cfg,
            out,
            t0,
            data,
            train_ds,
            val_ds,
            rule_classes,
            encoder.identity(),
            version,
            data_fp,
        )

    # -- export -------------------------------------------------------------------------------
    if export_to is not None:
        from training.export import export_onnx

        info["export"] = export_onnx(load_checkpoint(out), export_to)
    return info
