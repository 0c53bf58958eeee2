"""``ruledrive demo``: broker + node + simulated drives + replay + scoreboard, then a clean stop.

1. a broker: the one at RULEDRIVE_MQTT_URL (default mqtt://127.0.0.1:1883) if it answers, else a
   private Mosquitto on a free loopback port (if the binary is installed);
2. the node (policy.node) in a thread of this process with ``models/ruledrive-default.onnx``;
3. a drive set from the simulator (``ruledrive generate``), a few hundred frames, by default in
   the rule language the shipped model is trained on (English, Chinese and mixed rule sets,
   rules nobody can read among them; ``--rule-language catalogue``: the English catalogue);
4. ``ruledrive replay`` of it on several vehicles at once; the scoreboard is printed and the
   report + figures are written to ``out/demo``.

The demo uses its own topic prefix (``ruledrive/demo``) so it never disturbs a real deployment on
the same broker. On the secure broker it logs in like every command (``--mqtt-username``,
``RULEDRIVE_MQTT_PASSWORD``, ``--tls-ca``; see ruledrive.mqtt_login) as the ``demo`` user of
``ruledrive credentials init --demo``, whose rights stop at that prefix. The node and the replayer
share one connection: one login holds one connection (the client id is the username).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bus.broker import broker_answers, private_mosquitto
from core.defaults import DEFAULT_MODEL_PATH
from core.errors import ConfigError, DataError, ModelError
from core.paths import check_output_dir
from ruledrive.argtypes import fraction, int_within, non_negative_int, topic_prefix
from ruledrive.mqtt_login import MqttLogin, add_broker_flags, login_from_args
from ruledrive.replay_cli import replay_rate, vehicle_count

__all__ = ["find_broker", "gate", "register", "run_demo"]

log = logging.getLogger(__name__)

DEFAULT_MODEL = DEFAULT_MODEL_PATH


def register(sub: argparse._SubParsersAction) -> None:
    from simulator.language import RULE_LANGUAGES

    p = sub.add_parser("demo", help="end-to-end demo: broker, node, simulated drives, scoreboard")
    p.add_argument(
        "--model",
        type=Path,
        default=Path(os.environ.get("RULEDRIVE_MODEL_PATH", DEFAULT_MODEL)),
        help="ONNX model (default %(default)s)",
    )
    add_broker_flags(p)
    p.add_argument(
        "--prefix",
        type=topic_prefix,
        default="ruledrive/demo",
        help="topic prefix (default %(default)s)",
    )
    p.add_argument(
        "--frames",
        type=int_within(1, 100_000),
        default=320,
        help="frames to simulate (default 320, at most 100,000)",
    )
    p.add_argument(
        "--vehicles", type=vehicle_count, default=6, help="vehicles in parallel (default 6)"
    )
    p.add_argument(
        "--rate",
        type=replay_rate,
        default=1.0,
        help="replay speed, 1 = real time, 'max' = as fast as the node answers (default 1)",
    )
    p.add_argument(
        "--max-missing",
        type=fraction,
        default=0.05,
        metavar="FRACTION",
        help="fail if more frames than this get no decision (default %(default)s)",
    )
    p.add_argument("--seed", type=non_negative_int, default=2024)
    p.add_argument(
        "--rule-language",
        choices=RULE_LANGUAGES,
        default="bilingual",
        help="rule text of the simulated drives: bilingual (default; English, Chinese, mixed, "
        "some rules nobody can read: the world the shipped model is trained on) or catalogue "
        "(the English catalogue phrasings); ignored with --recording",
    )
    p.add_argument("--out", type=Path, default=Path("out/demo"))
    p.add_argument(
        "--recording", type=Path, help="replay this MCAP instead of generating a drive set"
    )
    p.set_defaults(func=_demo)


@contextmanager
def find_broker(url: str, login: MqttLogin | None = None) -> Iterator[str]:
    """The configured broker if it answers, else a private one (see private_mosquitto).

    A private broker is anonymous and plain: with TLS or a username asked for, a broker that
    does not answer is an error rather than a silent downgrade."""
    if broker_answers(url):
        print(f"demo: using the broker at {url}")
        yield url
        return
    if login is not None and (login.authenticated or url.startswith("mqtts://")):
        raise ConfigError(
            f"no broker answers at {url}; the demo starts a private broker only for a plain "
            "mqtt:// URL without a username"
        )
    print(f"demo: no broker answers at {url}; starting a private mosquitto")
    with private_mosquitto() as private:
        print(f"demo: private broker at {private}")
        yield private


def _generate(out_dir: Path, frames: int, seed: int, rule_language: str) -> Path:
    """A drive set from the simulator, through its own CLI entry (one code path)."""
    from ruledrive.cli import main as cli_main

    rc = cli_main(
        [
            "generate",
            "--out",
            str(out_dir),
            "--scenes",
            str(frames),
            "--seed",
            str(seed),
            "--split",
            "test",
            "--rule-language",
            rule_language,
            "--no-progress",
        ]
    )
    path = out_dir / "test.mcap"
    if rc != 0 or not path.exists():
        raise DataError(f"`ruledrive generate` failed (exit {rc})")
    return path


def run_demo(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from policy.node import Node, serve_in_thread
    from policy.settings import load_settings
    from replay.drives import load_drives, plan_lanes
    from replay.player import Replayer
    from ruledrive.replay_cli import print_report, write_outputs

    t_start = time.perf_counter()
    if not args.model.is_file():
        raise ModelError(
            f"model {args.model} not found: train and export one "
            "(`ruledrive train ...`, see README) or pass --model"
        )
    check_output_dir(args.out, "--out")  # before the drives are simulated, not after the replay
    login = login_from_args(args)
    with find_broker(login.url, login) as url, tempfile.TemporaryDirectory() as tmp:
        login = replace(login, url=url)
        recording = args.recording
        if recording is None:
            t0 = time.perf_counter()
            recording = _generate(Path(tmp), args.frames, args.seed, args.rule_language)
            print(
                f"demo: simulated {args.frames} frames ({args.rule_language} rule text) in "
                f"{time.perf_counter() - t0:.1f} s"
            )
        settings = load_settings(
            {
                "model_path": args.model,
                "mqtt_url": url,
                "mqtt_username": login.username,
                "tls_ca": login.tls_ca,
                "topic_prefix": args.prefix,
                "node_id": f"demo-{os.getpid()}",
                "reload_poll_s": 0,
            }
        )
        # One connection for the node and the replayer (see the module docstring); the node
        # connects it with its offline will and closes it when it stops.
        bus = login.bus(client_id=settings.node_id)
        lanes = plan_lanes(load_drives([recording]), args.vehicles)
        replayer = Replayer(bus, lanes, args.rate, prefix=args.prefix, timeout_s=5)
        replayer.attach()
        node = Node(settings, bus)
        with serve_in_thread(node):
            print(
                f"demo: node {settings.node_id} up on {node.decider.model.provider} "
                f"(model {node.decider.model.version})"
            )
            replayer.wait_for_node(10)
            print(
                f"demo: replaying {replayer.frames_planned} frames on {len(lanes)} vehicles "
                f"at {'max' if args.rate is None else f'{args.rate:g}x real'} speed"
            )
            report = replayer.run()
        report.conflated = int(node.metrics.counters().get("dropped.conflated", 0))
        report.recordings = [str(recording)]
        write_outputs(report, replayer.board, args.out)
    print_report(report, args.out)
    print(f"demo: done in {time.perf_counter() - t_start:.1f} s; everything stopped")
    return gate(report, args.max_missing)


def gate(report: Any, max_missing: float) -> int:
    """1 when the demo's gate fails, after saying which gate and the numbers; else 0."""
    failures = report.check(max_missing=max_missing)
    for failure in failures:
        print(f"ruledrive demo: FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


def _demo(args: argparse.Namespace) -> int:
    return run_demo(args)
