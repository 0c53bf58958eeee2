"""Several trained models' rule readers in one model: the first's decision, the readings averaged.

The recipe trains three seeds of one config. Their readers disagree most on wording none of them
was trained on (held-out cells 20-30 points apart between seeds, docs/training.md), and averaging
readers trained apart is the usual cure for such variance; training k readers inside one model
(``TrainConfig.readers``) costs k times the reader's training. :func:`merge_readers` costs no
training: it builds a checkpoint with ``readers = k`` (training.model: the decision reads the
average of the readers' class and parameter softmaxes, under the single reader's output names)
whose k readers are the given checkpoints' and whose everything else (the image encoder, the
reading's embedding, the rule checks, the decision head) is the first checkpoint's. Its
thresholds, neighbour index and parity inputs are the first's too. ``ruledrive export`` exports
it like any checkpoint; the node's split graphs, the reading check and the neighbour reading then
read the averaged reading (perception.splitgraph already cuts a several-reader graph).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from perception.spec import MODEL_SPEC
from training.checkpoint import NEIGHBOURS_FILE, PARITY_FILE, Checkpoint, load_checkpoint
from training.ruleparams import RULE_PARAMS

__all__ = ["MAX_MEMBERS", "merge_readers", "reader_layers"]

MAX_MEMBERS = 5  # TrainConfig.readers allows 1-5
# What must agree for readers to be averaged and read by the first model's decision.
_SAME_INFO = ("rule_classes", "labels", "encoder")
_SAME_CONFIG = ("variant", "rule_head", "encoder_dir", "encoder_layer")


def reader_layers(model: Any, readers: int) -> list[list[Any]]:
    """Per reader of ``model``, its layers with weights in a fixed order: the text encoder, the
    hidden layer under each reading head, the heads (class, then each parameter)."""
    heads = (MODEL_SPEC.rule_output, *RULE_PARAMS)
    out = []
    for i in range(readers):
        suffix = "" if readers == 1 else f"_r{i}"
        encoder = model.get_layer("text_encoder" if i == 0 else f"text_encoder_{i}")
        top = [model.get_layer(h + suffix) for h in heads]
        # Each head is a Dense on one hidden Dense of the reader's features (training.model).
        hidden = [h.input._keras_history[0] for h in top]
        out.append([encoder, *hidden, *top])
    return out


def _check_members(members: list[Checkpoint]) -> None:
    base = members[0]
    for ck in members:
        if ck.config.variant != "fused" or ck.config.readers != 1:
            raise ConfigError(
                f"{ck.path}: only fused models with one reader can be merged "
                f"(variant {ck.config.variant}, readers {ck.config.readers})"
            )
        if ck.config.reads_sentences:
            raise ConfigError(
                f"{ck.path}: reads a sentence input ({ck.config.sentence_input}); merging the "
                "readers of such models is not supported"
            )
        for key in _SAME_INFO:
            if ck.info.get(key) != base.info.get(key):
                raise ConfigError(f"{ck.path}: its {key} differ from {base.path}'s")
        for key in _SAME_CONFIG:
            if getattr(ck.config, key) != getattr(base.config, key):
                raise ConfigError(f"{ck.path}: its config's {key} differs from {base.path}'s")
    paths = [ck.path.resolve() for ck in members]
    if len(set(paths)) != len(paths):
        raise ConfigError("a checkpoint is named twice: its reader would count double")


def merge_readers(out: Path, checkpoints: Sequence[str | Path]) -> dict[str, Any]:
    """Write to ``out`` a checkpoint whose decision is the first checkpoint's and whose reading is
    the average of all of their readers; its checkpoint.json (returned) names the members."""
    if not 2 <= len(checkpoints) <= MAX_MEMBERS:
        raise ConfigError(f"merge 2 to {MAX_MEMBERS} checkpoints, not {len(checkpoints)}")
    members = [load_checkpoint(p) for p in checkpoints]
    _check_members(members)
    from training import model as builders

    base, k = members[0], len(members)
    cfg = base.config.model_copy(update={"readers": k})
    merged = builders.create_fused_model(
        len(base.info["labels"]),
        len(base.info["rule_classes"]),
        state_noise=cfg.state_noise,
        factor_classes=base.info["rule_classes"] if cfg.rule_head == "factorized" else None,
        readers=k,
    )
    new_readers = reader_layers(merged, k)
    for ck, target in zip(members, new_readers, strict=True):
        (source,) = reader_layers(ck.model, 1)
        for a, b in zip(source, target, strict=True):
            b.set_weights(a.get_weights())
    # Everything else is the first model's, layer for layer in the same order (the builder is
    # the same; only the readers differ).
    taken = {id(layer) for r in new_readers for layer in r}
    base_readers = {id(layer) for r in reader_layers(base.model, 1) for layer in r}
    rest = [m for m in merged.layers if m.get_weights() and id(m) not in taken]
    rest_base = [m for m in base.model.layers if m.get_weights() and id(m) not in base_readers]
    shapes = [[w.shape for w in m.get_weights()] for m in rest]
    if shapes != [[w.shape for w in m.get_weights()] for m in rest_base]:
        raise ConfigError(f"{base.path}: its layers do not match this build's model")
    for a, b in zip(rest_base, rest, strict=True):
        b.set_weights(a.get_weights())
    out.mkdir(parents=True, exist_ok=True)
    merged.save(out / "model.keras")
    info = {
        **base.info,
        "model_version": f"{base.info['model_version']}-r{k}",
        "readers_from": [ck.info["model_version"] for ck in members],
        "params": int(merged.count_params()),
    }
    (out / "config.json").write_text(cfg.model_dump_json(indent=2))
    (out / "checkpoint.json").write_text(json.dumps(info, indent=2, sort_keys=True))
    for name in (PARITY_FILE, NEIGHBOURS_FILE):
        if (base.path / name).is_file():
            shutil.copyfile(base.path / name, out / name)
    return info
