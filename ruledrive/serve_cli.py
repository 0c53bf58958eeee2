"""``ruledrive serve`` (the inference node) and ``ruledrive bench node``.

Every NodeSettings field is a flag (``--max-batch-size``) and an env var
(``RULEDRIVE_MAX_BATCH_SIZE``); flags win. The MQTT password is env-only (RULEDRIVE_MQTT_PASSWORD)
so it never shows in ``ps``. onnxruntime is imported only when a command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.defaults import DEFAULT_MODEL_PATH
from policy.settings import NodeSettings
from ruledrive.argtypes import non_negative_int, positive_float, positive_int
from ruledrive.benchdoc import add_doc_flags

__all__ = ["register", "setting_flags", "register_bench", "settings_from_args"]

_ENV_ONLY = {"mqtt_password"}
_ALIASES = {"model_path": ["--model"]}


def setting_flags(name: str) -> list[str]:
    """The ``serve`` flags of a NodeSettings field ([] = environment only)."""
    if name in _ENV_ONLY:
        return []
    return [*_ALIASES.get(name, []), "--" + name.replace("_", "-")]


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("node settings (flag > RULEDRIVE_* env > default)")
    for name, field in NodeSettings.model_fields.items():
        flags = setting_flags(name)
        if not flags:
            continue
        default = field.default
        help_ = f"{field.description or ''} [env RULEDRIVE_{name.upper()}; default {default}]"
        group.add_argument(
            *flags, dest=f"set_{name}", default=None, metavar=name.upper(), help=help_.strip()
        )


def settings_from_args(args: argparse.Namespace) -> NodeSettings:
    from policy.settings import load_settings

    given = {k[4:]: v for k, v in vars(args).items() if k.startswith("set_")}
    return load_settings(given)


def _serve(args: argparse.Namespace) -> int:
    from policy.node import main

    return main(settings_from_args(args))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the inference node (MQTT in, decisions out)")
    _add_settings_flags(p)
    p.set_defaults(func=_serve)


def _bench(args: argparse.Namespace) -> int:
    from ruledrive.bench_node import run_bench

    return run_bench(args)


def register_bench(bench_sub: argparse._SubParsersAction) -> None:
    p = bench_sub.add_parser("node", help="node latency/throughput through a real Mosquitto")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    p.add_argument(
        "--mqtt-url",
        default=None,
        help="use this broker (default: start a private mosquitto on loopback with "
        "the recommended set_tcp_nodelay true)",
    )
    p.add_argument(
        "--seconds", type=positive_float, default=8.0, help="per latency/saturation phase"
    )
    p.add_argument(
        "--vehicles", type=positive_int, default=8, help="vehicles in the saturation phase"
    )
    p.add_argument(
        "--fps", type=positive_float, default=30.0, help="frame rate in the latency phase"
    )
    p.add_argument("--max-batch-size", type=positive_int, default=8)
    p.add_argument(
        "--frames",
        choices=("golden", "synthetic"),
        default="golden",
        help="generated 640x360 frames of tests/golden/drive.mcap, or small synthetic ones",
    )
    p.add_argument(
        "--replicas", type=positive_int, default=1, help="also saturate with 1..N node replicas"
    )
    p.add_argument("--rounds", type=positive_int, default=2, help="alternated runs per variant")
    p.add_argument("--max-wait-us", type=non_negative_int, default=2000)
    p.add_argument(
        "--keras",
        type=Path,
        default=None,
        metavar="CHECKPOINT",
        help="also time the Keras model on the same frames (needs TensorFlow)",
    )
    add_doc_flags(p)
    p.set_defaults(func=_bench)
