"""A training checkpoint directory: what ``ruledrive export`` and ``evaluate`` need.

::

    OUT/
      model.keras        Keras model (best validation epoch)
      config.json        resolved TrainConfig
      checkpoint.json    model_version, data fingerprint, label order, rule classes, the text
                         encoder's identity, thresholds chosen on validation data, metrics,
                         the environment that trained it (training_environment)
      parity.npz         validation inputs used by the ONNX parity check (the rule states
                         stored as their tokens only: save_parity_inputs)
      neighbours.npz     the training rules' neighbour index the export attaches
                         (perception.neighbours; absent for a model without rule text)
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import NPZ_ERRORS, ConfigError, ModelError
from core.paths import open_npz, save_npz
from perception.modelmeta import Thresholds
from perception.neighbours import NeighbourIndex
from perception.spec import MODEL_SPEC
from training.config import TrainConfig

PARITY_FILE = "parity.npz"

__all__ = [
    "NEIGHBOURS_FILE",
    "PARITY_FILE",
    "Checkpoint",
    "load_checkpoint",
    "load_parity_inputs",
    "save_checkpoint_files",
    "save_parity_inputs",
    "training_environment",
]

NEIGHBOURS_FILE = "neighbours.npz"

# The packages whose versions can change what the same config, data and seed train: a retrain
# that does not reproduce a model is first compared on these (the install takes ranges).
_PACKAGES = ("keras", "numpy", "onnxruntime", "onnx", "tf2onnx", "tokenizers")

# The instruction sets that change which kernels oneDNN and onnxruntime run.
_CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")


def _cpu_model() -> str:
    """The CPU's model name and which of _CPU_FLAGS it has (Linux; elsewhere what Python says)."""
    name, flags = "", set[str]()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not name:
                    name = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    have = [x for x in _CPU_FLAGS if x in flags]
    return f"{name or platform.processor() or 'unknown'} ({' '.join(have) or 'no flags read'})"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def training_environment() -> dict[str, str]:
    """Python, machine and the versions of the packages that train and export a model."""
    env = {
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        # oneDNN and onnxruntime pick kernels by instruction set: another CPU, other sums
        "cpu": _cpu_model(),
    }
    # tensorflow-cpu on x86_64, tensorflow elsewhere (pyproject.toml)
    tf = next(((d, v) for d in ("tensorflow-cpu", "tensorflow") if (v := _version(d))), None)
    env["tensorflow"] = f"{tf[1]} ({tf[0]})" if tf else "not installed"
    env |= {name: _version(name) or "not installed" for name in _PACKAGES}
    env["tf_num_intraop_threads"] = os.environ.get("TF_NUM_INTRAOP_THREADS", "default")
    return env


@dataclass
class Checkpoint:
    path: Path
    model: Any  # keras.Model
    config: TrainConfig
    info: dict[str, Any]

    @property
    def rule_classes(self) -> tuple[str, ...]:
        return tuple(self.info["rule_classes"])

    @property
    def encoder(self) -> dict[str, str]:
        return dict(self.info["encoder"])

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(**self.info.get("thresholds", {}))

    def neighbours(self) -> NeighbourIndex | None:
        f = self.path / NEIGHBOURS_FILE
        return NeighbourIndex.load(f) if f.exists() else None

    def parity_inputs(self) -> dict[str, np.ndarray] | None:
        f = self.path / PARITY_FILE
        return load_parity_inputs(f) if f.exists() else None


# The rule states' key in parity.npz when only their tokens are stored (save_parity_inputs).
_TOKENS_KEY = MODEL_SPEC.rules_input + "__tokens"


def save_parity_inputs(path: Path, inputs: dict[str, np.ndarray]) -> None:
    """The parity check's inputs, written atomically, with the rule states stored as their
    tokens only (the rows the rule mask marks): a slot past a rule's last token is zero by
    construction, and 1,024 frames of [5, 40, width] states are ~300 MB per encoder layer, which
    ``savez_compressed`` took ~11 s a layer to squeeze in every training (a quarter of the
    CI-sized training test's time). Where a state outside the mask is not zero the states are
    stored whole, so the file always gives back the values it was given (a -0.0 in an empty slot,
    which the rule table's gather leaves, comes back as 0.0). Uncompressed: the file holds the
    frames' images raw (~47 MB for 1,024 frames) beside the tokens' states."""
    s = MODEL_SPEC
    arrays = dict(inputs)
    states, mask = arrays.get(s.rules_input), arrays.get(s.rule_mask_input)
    if states is not None and mask is not None and states.shape[:-1] == mask.shape:
        on = mask > 0
        if not np.any(np.any(states, axis=-1) & ~on):
            arrays[_TOKENS_KEY] = states[on]
            del arrays[s.rules_input]
    save_npz(path, **arrays)


def load_parity_inputs(path: Path) -> dict[str, np.ndarray]:
    """What :func:`save_parity_inputs` wrote (or a checkpoint's older parity.npz, its rule states
    whole); a file that is not that is a ConfigError naming it."""
    s = MODEL_SPEC
    try:
        with open_npz(path) as z:
            arrays = {k: z[k] for k in z.files}
        tokens = arrays.pop(_TOKENS_KEY, None)
        if tokens is not None:
            on = arrays[s.rule_mask_input] > 0
            if tokens.ndim != 2 or len(tokens) != int(on.sum()):
                raise ValueError(f"{len(tokens)} token states for {int(on.sum())} masked tokens")
            states = np.zeros((*on.shape, tokens.shape[1]), tokens.dtype)
            states[on] = tokens
            arrays[s.rules_input] = states
    except NPZ_ERRORS as exc:
        raise ConfigError(
            f"{path}: not the checkpoint's parity samples ({type(exc).__name__}: "
            f"{str(exc)[:120]}); train again to write them"
        ) from exc
    return arrays


def save_checkpoint_files(out: Path, config: TrainConfig, info: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(config.model_dump_json(indent=2))
    (out / "checkpoint.json").write_text(json.dumps(info, indent=2, sort_keys=True))


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint directory; a missing part is a ConfigError naming it."""
    p = Path(path)
    if not p.is_dir():
        raise ConfigError(
            f"{p}: not a checkpoint directory (expected the output of ruledrive train)"
        )
    for name in ("model.keras", "config.json", "checkpoint.json"):
        if not (p / name).is_file():
            raise ConfigError(f"{p}: checkpoint is missing {name}")
    try:
        config = TrainConfig.model_validate_json((p / "config.json").read_text())
    # pydantic's ValidationError is a ValueError; RecursionError: JSON nested 10^5 deep
    except (OSError, ValueError, RecursionError) as exc:
        raise ConfigError(
            f"{p / 'config.json'}: not a training config ({_first_line(exc)})"
        ) from exc
    try:
        info = json.loads((p / "checkpoint.json").read_text())
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: nested 10^5 deep
        raise ConfigError(f"{p / 'checkpoint.json'}: not valid JSON ({exc})") from exc
    if not isinstance(info, dict) or "rule_classes" not in info or "encoder" not in info:
        raise ConfigError(f"{p}: checkpoint predates the multilingual text encoder; retrain")
    classes, encoder = info["rule_classes"], info["encoder"]
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        raise ConfigError(f"{p / 'checkpoint.json'}: rule_classes is not a list of class names")
    if not (isinstance(encoder, dict) and all(isinstance(v, str) for v in encoder.values())):
        raise ConfigError(f"{p / 'checkpoint.json'}: encoder is not a mapping of names to text")
    import keras

    from training import model as _model  # noqa: F401 - registers custom layers

    try:
        model = keras.models.load_model(p / "model.keras", compile=False)
    except (OSError, ValueError) as exc:
        # Keras says "File not found" for a file that exists but is no .keras archive, so that
        # message is not passed on for one. A damaged model is a ModelError (exit 1), as a
        # damaged .onnx is.
        why = _first_line(exc)
        if "File not found" in why:
            why = "not a .keras archive, or a damaged one"
        raise ModelError(
            f"{p / 'model.keras'}: not a Keras model this build can load ({why})"
        ) from exc
    return Checkpoint(p, model, config, info)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
