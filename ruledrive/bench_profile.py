"""``ruledrive bench profile``: where the node's time goes, sampled with py-spy.

For each ``--model`` (e.g. the previous model, which decodes frames at full size, and the
current one, which decodes them at reduced scale), a ``ruledrive serve`` node is saturated by
``--vehicles`` closed-loop vehicles on generated 640x360 frames (as in ``bench node``), and
py-spy samples the node process over the measured window. Samples are attributed by the Python
function at the top of each stack (native code such as onnxruntime or OpenCV is counted in the
Python function that called it) and grouped: JPEG decode, session.run, rule encoding, message
parsing and serialisation, MQTT client, other. py-spy is a separate tool (``pip install
py-spy``): the benchmark says so when it is missing, and never installs it.

Results and the command replace the "## Profile" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bus.broker import private_mosquitto
from core.errors import ConfigError
from ruledrive.argtypes import positive_float, positive_int
from ruledrive.bench_node import _saturate, golden_frames
from ruledrive.benchdoc import add_doc_flags, bench_command, publish

__all__ = ["CATEGORIES", "categorise", "register_bench", "run_profile", "summarise"]

# (category, substrings of "function (file:line)" at the top of a stack), first match wins
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("JPEG decode + resize", ("perception/image.py",)),
    ("rule encoding", ("rule_encoder.py", "splitgraph.py", "encode_rules")),
    ("session.run", ("onnxruntime",)),
    ("message parsing + serialisation", ("pydantic", "bus/envelope.py", "bus/codec.py", "json")),
    ("MQTT client (paho)", ("paho",)),
)


def categorise(frame: str) -> str:
    for name, needles in CATEGORIES:
        if any(n in frame for n in needles):
            return name
    return "other Python"


def summarise(raw: str, top: int = 8) -> dict[str, Any]:
    """py-spy ``--format raw`` (collapsed stacks, "frame;frame;... count" per line) -> sample
    shares by category and the top functions by self samples."""
    leaf: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf[stack.split(";")[-1].strip()] += int(count)
    total = sum(leaf.values())
    cats: Counter[str] = Counter()
    for frame, n in leaf.items():
        cats[categorise(frame)] += n
    return {
        "samples": total,
        "categories": {k: v / total for k, v in cats.most_common()} if total else {},
        "top": [(f, n / total) for f, n in leaf.most_common(top)] if total else [],
    }


def _py_spy() -> str:
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).is_file():
        raise ConfigError(
            "py-spy not found: `pip install py-spy` (a profiling tool, not a dependency)"
        )
    return exe


def _sampler(exe: str, rate: int) -> Any:
    def during(pid: int, seconds: float) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "raw.txt"
            cmd = [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
            cmd += ["--rate", str(rate), "--format", "raw", "--output", str(out), "--nonblocking"]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
            if done.returncode != 0 or not out.is_file():
                raise ConfigError(f"py-spy failed: {done.stderr.strip()[-500:]}")
            return out.read_text()

    return during


def run_profile(args: argparse.Namespace) -> int:
    exe = _py_spy()
    for m in args.model:
        if not m.is_file():
            raise ConfigError(f"model {m} not found")
    frames = golden_frames()
    results: list[tuple[Path, dict[str, Any], dict[str, Any]]] = []

    def one_round() -> None:
        for m in args.model:
            sat = _run_one(args, m, frames, _sampler(exe, args.rate))
            results.append((m, sat, summarise(sat["during"])))

    if args.mqtt_url is None:
        with private_mosquitto() as args.mqtt_url:
            one_round()
    else:
        one_round()
    publish(args, "Profile", _report(args, results))
    return 0


def _run_one(args: argparse.Namespace, model: Path, frames: list[bytes], during: Any) -> dict:
    node_args = argparse.Namespace(**vars(args))
    node_args.model = model
    return _saturate(node_args, args.max_batch_size, frames, args.seconds, during=during)


def _report(args: argparse.Namespace, results: list) -> str:  # type: ignore[type-arg]
    cmd = bench_command("profile")
    cats = [name for name, _ in CATEGORIES] + ["other Python"]
    lines = [
        "## Profile",
        "",
        f"Command: `{cmd.strip()}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: "
        f"{platform.machine()}, {os.cpu_count()} cores. The node (`ruledrive serve`) saturated by "
        f"{args.vehicles} closed-loop vehicles on generated 640x360 frames for {args.seconds:g} s, "
        f"sampled by py-spy at {args.rate} Hz (all threads, idle time excluded); native code is "
        "counted in the Python function that called it.",
        "",
        "| share of node samples | " + " | ".join(f"`{m}`" for m, _, _ in results) + " |",
        "|---|" + "---|" * len(results),
        "| decisions/s | " + " | ".join(f"{sat['rate']:.0f}" for _, sat, _ in results) + " |",
    ]
    for c in cats:
        cells = [f"{100 * prof['categories'].get(c, 0.0):.0f} %" for _, _, prof in results]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    for m, _, prof in results:
        lines += [
            "",
            f"Top functions by own samples, `{m}`:",
            "",
            "| function | share |",
            "|---|---|",
        ]
        lines += [f"| `{f[:110]}` | {100 * share:.1f} % |" for f, share in prof["top"]]
    return "\n".join(lines) + "\n"


def register_bench(bench_sub: argparse._SubParsersAction) -> None:
    p = bench_sub.add_parser("profile", help="where the node's time goes (py-spy), per model")
    p.add_argument("--model", type=Path, nargs="+", required=True, help="one or more ONNX models")
    p.add_argument("--mqtt-url", default=None, help="default: a private mosquitto on loopback")
    p.add_argument("--vehicles", type=positive_int, default=8)
    p.add_argument("--seconds", type=positive_float, default=8.0)
    p.add_argument("--rate", type=positive_int, default=200, help="py-spy samples per second")
    p.add_argument("--max-batch-size", type=positive_int, default=8)
    p.add_argument("--max-wait-us", type=positive_int, default=2000)
    add_doc_flags(p)
    p.set_defaults(func=run_profile)
