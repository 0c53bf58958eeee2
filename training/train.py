"""Train the decision classifier: recordings in, checkpoint + curves + ONNX out.

Reads top to bottom: config -> data (frames, the rule table of encoder states, negatives) ->
model -> fit -> thresholds from validation data -> export.

Under ``tf.distribute`` (training.distributed: several workers in TF_CONFIG, or several GPUs)
each worker reads its share of the recording files, the workers agree on the rule classes and
counts, the model is built inside the strategy's scope, and only the chief writes ``out``.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bus.schema import DecisionLabel
from core.errors import ConfigError, DataError, TrainingError
from perception.modelmeta import NOT_UNDERSTOOD
from perception.rule_encoder import RuleEncoder
from perception.spec import MODEL_SPEC
from training.checkpoint import (
    NEIGHBOURS_FILE,
    PARITY_FILE,
    load_checkpoint,
    save_checkpoint_files,
    save_parity_inputs,
    training_environment,
)
from training.config import TrainConfig
from training.data import (
    ArrayDataset,
    RuleTable,
    encode_samples,
    fingerprint,
    list_recordings,
    load_samples,
    neighbour_index,
    require_rules,
    rule_classes_of,
)
from training.distributed import (
    Cluster,
    Job,
    allgather_json,
    cluster_from_env,
    create_strategy,
    files_digest,
    shard_files,
)
from training.export import MIN_PARITY_SAMPLES
from training.ood import TRAIN_KINDS, negative_jpegs
from training.reader import ReaderSet, RuleCorpus, fit_reader, load_rule_corpus, reader_of
from training.ruleparams import EGO_LANE_OUTPUT, RULE_PARAMS, SCHOOL_SIGN_OUTPUT, TIME_OUTPUT
from training.sentence import cache_beside
from training.thresholds import choose_thresholds

__all__ = ["adam", "averaging", "split_by_vehicle", "train"]

log = logging.getLogger(__name__)

BUILDERS = {
    "fused": "create_fused_model",
    "image_only": "create_image_only_model",
    "text_only": "create_text_only_model",
}


def split_by_vehicle(
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
    # The architecture revision is part of the hash: two models of the same config and data
    # but different code are different models (the limit checks came with the same config).
    from training.model import ARCHITECTURE

    ident = cfg.model_dump_json() + ARCHITECTURE
    cfg_hash = hashlib.sha256(ident.encode()).hexdigest()[:6]
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
    job: Job | None = None,
    reader: ReaderSet | None = None,
    encode_s: float = 0.0,
) -> dict[str, Any]:
    """Build, fit and save the model; returns the checkpoint info. ``job``: train under its
    tf.distribute strategy (None: the default strategy, one process). ``reader``: rule texts
    the reader trains on alone first (``cfg.reader_epochs``; training.reader)."""
    # -- model --------------------------------------------------------------------------------
    if cfg.threads:
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(cfg.threads))
    import keras

    from training import model as builders

    keras.utils.set_random_seed(cfg.seed)
    scope = job.scope() if job is not None else contextlib.nullcontext()
    with scope:  # the model's and the optimizer's variables belong to the strategy
        model = _build_and_compile(keras, builders, cfg, train_ds, rule_classes, job)
    s = MODEL_SPEC

    # -- fit ----------------------------------------------------------------------------------
    base_info = {
        "model_version": version,
        "data_fingerprint": data_fp,
        "variant": cfg.variant,
        "rule_classes": list(rule_classes),
        "encoder": encoder,
        # Part of train_seconds: encoding the rule texts the cache did not hold yet.
        "rule_encoding_seconds": round(encode_s, 1),
        "training_environment": training_environment(),
    }
    if job is not None:
        base_info["distribution"] = job.describe(cfg.batch_size)
    save_checkpoint_files(out, cfg, base_info)
    if reader is not None:
        t_read = time.monotonic()
        fit_reader(reader_of(model), train_ds.table, reader, cfg.reader_epochs, cfg.seed, cfg)
        log.info(
            "reader alone: %d epochs over %d rule texts (%.0fs)",
            cfg.reader_epochs,
            len(reader),
            time.monotonic() - t_read,
        )
    has_val = job.plan(cfg.batch_size).val_steps > 0 if job is not None else len(val_ds) > 0
    monitor = f"val_{s.output}_accuracy" if has_val else f"{s.output}_accuracy"
    callbacks = [
        *averaging(keras, cfg),
        keras.callbacks.ModelCheckpoint(
            out / "model.keras", monitor=monitor, mode="max", save_best_only=True
        ),
        keras.callbacks.CSVLogger(str(out / "history.csv")),
    ]
    verbose = 1 if sys.stderr.isatty() else 2
    readers = _readers(cfg)
    if job is None:
        hist = model.fit(
            train_ds.batches(
                cfg.batch_size,
                shuffle=True,
                seed=cfg.seed,
                token_dropout=cfg.token_dropout,
                readers=readers,
                split_words=cfg.split_words,
            ),
            validation_data=(
                val_ds.batches(256, shuffle=False, seed=0, readers=readers) if len(val_ds) else None
            ),
            epochs=cfg.epochs,
            callbacks=callbacks,
            verbose=verbose,
        )
    else:
        hist = job.fit(
            model,
            train_ds,
            val_ds,
            cfg.batch_size,
            cfg.epochs,
            cfg.seed,
            callbacks,
            verbose,
            token_dropout=cfg.token_dropout,
            split_words=cfg.split_words,
        )
    train_s = time.monotonic() - t0
    history = {k.replace(f"{s.output}_", ""): v for k, v in hist.history.items()}
    _plot_curves(history, out / "curves.png")
    return _finish(cfg, out, train_s, data, train_ds, val_ds, rule_classes, base_info)


def adam(keras: Any, cfg: TrainConfig, schedule: Any) -> Any:
    """The whole model's optimizer: Adam on ``schedule``, keeping a moving average of the
    weights when ``cfg.ema_momentum`` asks for one."""
    if not cfg.ema_momentum:
        return keras.optimizers.Adam(schedule)
    return keras.optimizers.Adam(schedule, use_ema=True, ema_momentum=cfg.ema_momentum)


def averaging(keras: Any, cfg: TrainConfig) -> list[Any]:
    """The callbacks that go before the checkpoint's: with weight averaging, the averaged
    weights are swapped in for each epoch's validation and end (so the best-epoch checkpoint
    saves them), and out again to train on."""
    return [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if cfg.ema_momentum else []


def _readers(cfg: TrainConfig) -> int:
    """The model's rule readers (the image-only ablation reads no text: one blank reading)."""
    return cfg.readers if cfg.variant != "image_only" else 1


def _build_and_compile(
    keras: Any,
    builders: Any,
    cfg: TrainConfig,
    train_ds: ArrayDataset,
    rule_classes: tuple[str, ...],
    job: Job | None,
) -> Any:
    """The compiled model; its learning-rate schedule counts the steps every worker runs."""
    model = getattr(builders, BUILDERS[cfg.variant])(
        len(DecisionLabel),
        len(rule_classes),
        state_noise=cfg.state_noise,
        factor_classes=rule_classes if cfg.rule_head == "factorized" else None,
        readers=cfg.readers,
        sentence=cfg.reads_sentences,
        # As wide as the encoder's states (several layers side by side: TrainConfig.encoder_layer)
        spec=MODEL_SPEC.with_rule_width(int(train_ds.table.states.shape[-1])),
    )
    per_epoch = (
        job.plan(cfg.batch_size).steps_per_epoch
        if job is not None
        else int(np.ceil(len(train_ds) / cfg.batch_size))
    )
    steps = cfg.epochs * per_epoch
    warmup = int(cfg.warmup_epochs * per_epoch)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=cfg.learning_rate * 0.1 if warmup else cfg.learning_rate,
        decay_steps=max(steps - warmup, 1),
        alpha=cfg.min_lr_ratio,
        warmup_target=cfg.learning_rate if warmup else None,
        warmup_steps=warmup,
    )
    s = MODEL_SPEC
    # Several readers: each reading's loss is on every reader's own output (reading_outputs).
    reading_loss, reading_weight = builders.reading_losses(
        _readers(cfg), cfg.rule_loss_weight, cfg.param_loss_weight
    )
    model.compile(
        optimizer=adam(keras, cfg, schedule),
        loss={
            s.output: keras.losses.SparseCategoricalCrossentropy(),
            s.ood_output: keras.losses.BinaryCrossentropy(),
            **reading_loss,
            EGO_LANE_OUTPUT: keras.losses.BinaryCrossentropy(),
            TIME_OUTPUT: keras.losses.SparseCategoricalCrossentropy(),
            SCHOOL_SIGN_OUTPUT: keras.losses.BinaryCrossentropy(),
        },
        loss_weights={
            s.output: 1.0,
            s.ood_output: cfg.ood_loss_weight,
            **reading_weight,
            **dict.fromkeys(
                (EGO_LANE_OUTPUT, TIME_OUTPUT, SCHOOL_SIGN_OUTPUT), cfg.param_loss_weight
            ),
        },
        weighted_metrics={s.output: ["accuracy"]},
    )
    return model


def _finish(
    cfg: TrainConfig,
    out: Path,
    train_s: float,
    data: ArrayDataset,
    train_ds: ArrayDataset,
    val_ds: ArrayDataset,
    rule_classes: tuple[str, ...],
    base_info: dict[str, Any],
) -> dict[str, Any]:
    """Evaluate the best epoch on this process's validation frames, choose the thresholds,
    write checkpoint.json and the parity inputs."""
    import keras

    s = MODEL_SPEC
    # -- evaluate, thresholds + checkpoint info -----------------------------------------------
    best = keras.models.load_model(out / "model.keras", compile=False)
    has_val = len(val_ds) > 0
    eval_set = val_ds if has_val else train_ds
    outs = eval_set.predict(lambda x: best.predict(x, batch_size=256, verbose=0))
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
    save_parity_inputs(out / PARITY_FILE, parity_inputs)
    _save_neighbours(out, train_ds)
    info = {
        **base_info,
        "labels": [str(x) for x in DecisionLabel],
        "thresholds": thresholds.to_dict(),
        "n_train": len(train_ds),
        "n_val": len(val_ds),
        "n_rule_texts": data.table.n_texts,
        "n_negatives": int(data.ood.sum()),
        "train_seconds": round(train_s, 1),
        "params": int(best.count_params()),
        # With no validation frames (a tiny run) the figure and the thresholds come from the
        # training frames, and the name says so rather than pass them off as validation's.
        "metrics": {"val_accuracy" if has_val else "train_accuracy": round(val_acc, 4)},
    }
    (out / "checkpoint.json").write_text(json.dumps(info, indent=2, sort_keys=True))
    if not has_val:
        log.warning(
            "no validation frames (%d training frames, val_fraction %.2f): the accuracy and "
            "the fallback thresholds were measured on the training frames",
            len(train_ds),
            cfg.val_fraction,
        )
    log.info(
        "trained %s in %.0fs: %s accuracy %.4f",
        info["model_version"],
        train_s,
        "val" if has_val else "training",
        val_acc,
    )

    return info


def _save_neighbours(out: Path, train_ds: ArrayDataset) -> None:
    """The neighbour index (perception.neighbours) of the training frames' distinct rule texts
    with a known class, for the export to attach; none with too few labelled rules."""
    try:
        index = neighbour_index(train_ds)
    except ConfigError as exc:
        log.info("no neighbour index: %s", exc)
        return
    index.save(out / NEIGHBOURS_FILE)


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
    (same config, data fingerprint and ``training.model.ARCHITECTURE``), keep it instead of
    training again. The version covers the code only through that revision: reuse only across
    runs of the same code.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; the checkpoint is a directory")
    t0 = time.monotonic()
    cluster = cluster_from_env()
    reads_alone = cfg.reader_epochs > 0 and cfg.variant != "image_only"  # it reads nothing
    if _readers(cfg) > 1 and cluster.multi_worker:
        raise ConfigError(
            "readers > 1 (several rule readers, each with its own loss) runs in one process; "
            "set readers to 1 under a multi-worker TF_CONFIG"
        )
    if reads_alone and cluster.multi_worker:
        raise ConfigError(
            "reader_epochs (the rule reader trained alone first) runs in one process; set it "
            "to 0 under a multi-worker TF_CONFIG"
        )
    max_samples = cfg.max_samples
    if cluster.multi_worker:  # this worker's share of the recording files; only the chief
        all_files = list_recordings(data_paths, remote_ok=True)  # writes `out`
        data_paths = shard_files(all_files, cluster)
        max_samples = None if max_samples is None else math.ceil(max_samples / cluster.n_workers)
        if not cluster.is_chief:
            out = Path(tempfile.mkdtemp(prefix=f"ruledrive-worker{cluster.rank}-"))
            atexit.register(shutil.rmtree, out, ignore_errors=True)  # also when it fails
            log.info("worker %d is not the chief: it writes to %s (removed)", cluster.rank, out)
            rule_cache = rule_cache and rule_cache.with_suffix(f".worker{cluster.rank}.npz")

    # -- data ---------------------------------------------------------------------------------
    samples = [
        s
        for s in load_samples(data_paths, max_samples, allow_truncated)
        if s.split in cfg.train_splits
    ]
    if not samples:
        raise DataError(
            f"no training samples (splits {cfg.train_splits}) in {list(map(str, data_paths))}"
        )
    # The one variant that reads no rules may train without them. Under several workers the
    # question is the job's, not one shard's: asked below, once every worker has said.
    if cfg.variant != "image_only" and not cluster.multi_worker:
        require_rules(samples, data_paths)
    corpus = load_rule_corpus(cfg.rule_corpus) if cfg.rule_corpus and reads_alone else None
    out.mkdir(parents=True, exist_ok=True)  # data refused above leaves no empty --out behind
    encoder = RuleEncoder.load(Path(cfg.encoder_dir), "cpu", cache_size=0, layer=cfg.encoder_layer)
    table_cache = rule_cache or out / "rule-table.npz"
    table = RuleTable.build(
        [r for smp in samples for r in smp.rules] + (corpus.texts if corpus else []),
        encoder,
        table_cache,
    )
    if cfg.split_words > 0.0 and cfg.variant != "image_only":  # beside the table's cache
        table.add_split_forms(encoder, table_cache.with_suffix(".split.npz"))
    if cfg.reads_sentences:  # beside the rule table's cache: one vector per distinct text
        table.add_sentences(cache_beside(table_cache))
    seen = {c for smp in samples for c in rule_classes_of(smp) if c is not None}
    seen |= set(corpus.classes) if corpus else set()
    strategy = create_strategy(cluster, cfg.threads)  # None: the default strategy
    if reads_alone and strategy is not None:
        raise ConfigError(
            "reader_epochs (the rule reader trained alone first) runs without tf.distribute; "
            "set it to 0 to train on several devices"
        )
    if _readers(cfg) > 1 and strategy is not None:
        raise ConfigError(
            "readers > 1 (several rule readers, each with its own loss) runs without "
            "tf.distribute; set readers to 1 to train on several devices"
        )
    if cluster.multi_worker:  # the per-rule head must have the same classes on every worker
        facts = allgather_json(
            strategy,
            cluster,
            {
                "files": files_digest(all_files),
                "classes": sorted(seen),
                "rules": any(smp.rules for smp in samples),
            },
        )
        if len({f["files"] for f in facts}) > 1:
            raise DataError(
                "the workers were given different recording lists (--data must name the same "
                "files, in the same order, on every worker)"
            )
        if cfg.variant != "image_only" and not any(f["rules"] for f in facts):
            require_rules(samples, all_files)  # no worker has one: every worker raises
        seen = {c for f in facts for c in f["classes"]}
    # not_binding and not_understood are always there, so the per-rule head has two classes
    # even for recordings whose rules carry no class (the bus recorder's).
    rule_classes = tuple(sorted(seen | {NOT_UNDERSTOOD, "not_binding"}))
    n_neg = int(round(cfg.negatives_fraction * len(samples)))
    roads = [x.jpeg for x in samples[:200]]
    neg_seed = cfg.seed + cluster.rank  # other workers draw other pictures
    negatives = [jpeg for _, jpeg in negative_jpegs(n_neg, TRAIN_KINDS, neg_seed, roads)]
    data = encode_samples(samples, table, rule_classes, negatives)
    if export_to is not None and cluster.is_chief and len(data) < MIN_PARITY_SAMPLES:
        raise DataError(  # found out now, not after the training
            f"{len(data)} frames: the ONNX export's parity check needs >= {MIN_PARITY_SAMPLES}; "
            "give more data (or a larger --max-samples), or pass --no-export"
        )
    train_idx, val_idx = split_by_vehicle(cfg.val_fraction, data, cfg.seed)
    if len(train_idx) == 0:
        raise DataError("validation split took every sample; lower val_fraction")
    train_ds, val_ds = data.subset(train_idx), data.subset(val_idx)
    data_fp = fingerprint(samples)
    if corpus is not None:
        data_fp = hashlib.sha256(f"{data_fp}:{corpus.digest}".encode()).hexdigest()[:16]
    reader = _reader_set(train_ds, corpus, rule_classes) if reads_alone else None
    job = None
    if cluster.multi_worker:
        job, data_fp = _agree_counts(strategy, cluster, data_fp, len(train_ds), len(val_ds))
    elif strategy is not None:
        job = Job(strategy, cluster, len(train_ds), (len(val_ds),))
    version = _model_version(cfg, data_fp)
    log.info(
        "data: %d train, %d val (%d negatives), %d rule texts, fingerprint %s (%.1fs)",
        len(train_ds),
        len(val_ds),
        n_neg,
        table.n_texts,
        data_fp,
        time.monotonic() - t0,
    )

    info = _finished_checkpoint(out, version) if reuse else None
    if cluster.multi_worker:  # the chief's checkpoint decides for everyone
        done = allgather_json(strategy, cluster, info is not None)[0]
        info = (info or {"model_version": version}) if done else None
    if info is not None:
        info["reused_checkpoint"] = True  # for the caller; checkpoint.json stays as trained
        log.info(
            "reusing %s: it already holds model %s (trained in %.0fs)",
            out,
            version,
            info.get("train_seconds", 0.0),
        )
    else:
        # The chief trains into a hidden directory inside ``out`` and moves the finished
        # checkpoint up at the end: a run that fails leaves ``out`` as it was (an earlier
        # checkpoint whole), never its new checkpoint.json beside the old weights.
        stage = _stage_dir(out) if cluster.is_chief else out
        try:
            info = _fit(
                cfg,
                stage,
                t0,
                data,
                train_ds,
                val_ds,
                rule_classes,
                encoder.identity(),
                version,
                data_fp,
                job,
                reader,
                table.encode_seconds,
            )
        except BaseException:
            if stage != out:
                shutil.rmtree(stage, ignore_errors=True)
            raise
        if stage != out:
            _commit(stage, out)  # a failure there keeps the stage: the new files are in it
    if cluster.multi_worker:  # the chief outlives every worker's last collective
        allgather_json(strategy, cluster, "trained")
    if not cluster.is_chief:  # its checkpoint was a copy of the chief's: drop it
        shutil.rmtree(out, ignore_errors=True)
        return {**info, "worker": cluster.rank, "chief": False}

    # -- export -------------------------------------------------------------------------------
    if export_to is not None:
        from training.export import export_onnx

        info["export"] = export_onnx(load_checkpoint(out), export_to)
    return info


# What a training writes into its checkpoint directory (checkpoint.json, the completion
# marker, is handled on its own); an earlier run's copy of one this run did not write goes.
_CHECKPOINT_FILES = (
    "model.keras",
    "config.json",
    "history.csv",
    "curves.png",
    PARITY_FILE,
    NEIGHBOURS_FILE,
    # Written after the checkpoint, by the default export and by `train --eval`: an earlier
    # run's would sit beside the new checkpoint as if it were its export or evaluation.
    "model.onnx",
    "eval",
)


_STAGE_PREFIX = ".training-"


def _stage_dir(out: Path) -> Path:
    """An empty hidden directory inside ``out`` (so on its file system, whatever is mounted or
    linked where) for a training's files; stages a killed run left behind are removed."""
    for old in out.glob(f"{_STAGE_PREFIX}*"):
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
    try:
        return Path(tempfile.mkdtemp(dir=out, prefix=_STAGE_PREFIX))
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write in it ({exc.strerror})") from exc


def _commit(stage: Path, out: Path) -> None:
    """Move a finished training's files from ``stage`` up into ``out``: the old checkpoint.json
    goes first and the new one comes last, so while the files move ``out`` is not a checkpoint
    (training.checkpoint.load_checkpoint refuses it) rather than a mix of two. Files of the
    earlier run this one did not write (_CHECKPOINT_FILES) go; the rest of ``out`` (the
    rule-table cache, the user's own files) stays."""
    marker = out / "checkpoint.json"
    try:
        marker.unlink(missing_ok=True)
        for name in _CHECKPOINT_FILES:
            stale = out / name
            if (stage / name).exists():
                continue
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale)
            else:
                stale.unlink(missing_ok=True)
        for item in sorted(stage.iterdir()):
            if item.name == marker.name:
                continue
            target = out / item.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(item, target)
        os.replace(stage / marker.name, marker)
        stage.rmdir()
    except OSError as exc:
        raise TrainingError(
            f"the finished checkpoint could not be moved into {out} ({exc}); its files are in "
            f"{stage}"
        ) from exc


def _reader_set(
    train_ds: ArrayDataset, corpus: RuleCorpus | None, rule_classes: tuple[str, ...]
) -> ReaderSet:
    """The distinct rule texts of the training frames (not the validation frames) with their
    labels, then the corpus's texts that the frames do not hold."""
    idx = train_ds.rule_idx.reshape(-1)
    keep = idx >= 0
    rows, first = np.unique(idx[keep], return_index=True)
    classes = train_ds.rule_cls.reshape(-1)[keep][first]
    params = train_ds.rule_par.reshape(-1, len(RULE_PARAMS))[keep][first]
    if corpus is not None:
        table, have = train_ds.table, set(rows.tolist())
        extra = [
            (table.index[t], rule_classes.index(c), p)
            for t, c, p in zip(corpus.texts, corpus.classes, corpus.params, strict=True)
            if table.index[t] not in have
        ]
        if extra:
            rows = np.concatenate([rows, np.array([e[0] for e in extra], np.int32)])
            classes = np.concatenate([classes, np.array([e[1] for e in extra], np.int32)])
            params = np.concatenate([params, np.array([e[2] for e in extra], np.int32)])
    return ReaderSet(rows.astype(np.int32), classes.astype(np.int32), params.astype(np.int32))


def _agree_counts(
    strategy: Any, cluster: Cluster, data_fp: str, n_train: int, n_val: int
) -> tuple[Job, str]:
    """Every worker's frame counts (each runs the steps the whole data set needs) and one data
    fingerprint for the job: the hash of the workers' fingerprints in rank order."""
    facts = allgather_json(strategy, cluster, {"fp": data_fp, "train": n_train, "val": n_val})
    job = Job(strategy, cluster, sum(f["train"] for f in facts), tuple(f["val"] for f in facts))
    if len(facts) > 1:
        joined = ",".join(f["fp"] for f in facts)
        data_fp = hashlib.sha256(joined.encode()).hexdigest()[:16]
    return job, data_fp
