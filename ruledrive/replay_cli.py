"""``ruledrive replay`` and ``ruledrive record``: flags and wiring (bus, optional in-process node)
around replay.player and replay.recorder, which hold the logic; ruledrive.replay_report shows and
writes the replay's results (table, progress bar, JSON, PNGs).

Exit codes: 0 ok; 1 a gate failed (accuracy, p99, missing decisions, golden mismatch, aborted),
or an input cannot be read (a recording or reference: DataError, via ruledrive.cli); 2 bad flags or
settings (ConfigError), e.g. an output that would overwrite an input or cannot be written.

Every input is read and every output checked before the node starts or ``--out`` is touched: a
bad input never overwrites an earlier report with an empty one.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

from bus.topics import DEFAULT_PREFIX
from core.errors import ConfigError
from core.paths import check_output_dir, check_output_file, same_file
from replay.drives import MAX_VEHICLES, MIN_RATE
from ruledrive.argtypes import (
    client_id,
    fraction,
    non_negative_float,
    positive_float,
    positive_int,
    rate,
    topic_prefix,
)
from ruledrive.mqtt_login import add_broker_flags, login_from_args
from ruledrive.replay_report import OUTPUT_FILES, Progress, print_report, write_outputs

# print_report and write_outputs: ruledrive.replay_report's, for ruledrive.demo
__all__ = ["print_report", "register", "replay_rate", "vehicle_count", "write_outputs"]

log = logging.getLogger(__name__)


def replay_rate(text: str) -> float | None:
    """--rate: ``max`` or a speed factor of at least MIN_RATE."""
    value = rate(text)
    if value is not None and value < MIN_RATE:
        raise argparse.ArgumentTypeError(
            f"must be at least {MIN_RATE:g} (1 s of the drive in {1 / MIN_RATE:g} s) "
            f"or 'max', got {text}"
        )
    return value


def vehicle_count(text: str) -> int:
    """--vehicles: 1..MAX_VEHICLES."""
    value = positive_int(text)
    if value > MAX_VEHICLES:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_VEHICLES}, got {text}")
    return value


def _bus_flags(p: argparse.ArgumentParser) -> None:
    add_broker_flags(p)  # --mqtt-url, --mqtt-username, --tls-ca; password env-only
    p.add_argument(
        "--prefix",
        type=topic_prefix,
        default=os.environ.get("RULEDRIVE_TOPIC_PREFIX", DEFAULT_PREFIX),
        help="topic prefix (default $RULEDRIVE_TOPIC_PREFIX or %(default)s)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="replay recordings through a node and score its decisions",
        description="Publish recorded rule sets and frames at the recorded timing (scaled by "
        "--rate) and score the node's decisions. Gate with --min-accuracy / --max-p99-ms.",
    )
    p.add_argument("recordings", nargs="+", metavar="RECORDING", help="MCAP files")
    p.add_argument(
        "--rate",
        type=replay_rate,
        default=1.0,
        help="1.0 = real time, 2 = twice as fast, 'max' = as fast as the node answers "
        f"(at least {MIN_RATE:g})",
    )
    p.add_argument(
        "--vehicles",
        type=vehicle_count,
        default=None,
        metavar="N",
        help=f"replay on N vehicles in parallel (ids replay-000..., at most {MAX_VEHICLES}); "
        "default: one per recorded vehicle, under its recorded id",
    )
    _bus_flags(p)
    p.add_argument(
        "--bus",
        choices=("mqtt", "memory"),
        default="mqtt",
        help="memory = in-process bus (needs --serve-model)",
    )
    p.add_argument(
        "--serve-model",
        type=Path,
        metavar="ONNX",
        help="also run a node in this process with this model",
    )
    p.add_argument(
        "--timeout-s",
        type=positive_float,
        default=10.0,
        help="give up on a decision after this long; abort if none comes at all",
    )
    p.add_argument(
        "--wait-node-s",
        type=non_negative_float,
        default=10.0,
        help="wait this long for a node's online status before publishing",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("out/replay"),
        help="report.json, decisions.jsonl and PNGs go here (default %(default)s)",
    )
    p.add_argument("--min-accuracy", type=fraction, help="exit 1 if accuracy is lower")
    p.add_argument("--max-p99-ms", type=positive_float, help="exit 1 if latency p99 is higher")
    p.add_argument(
        "--max-missing",
        type=fraction,
        default=0.0,
        metavar="FRACTION",
        help="exit 1 if more frames than this get no decision (default 0)",
    )
    p.add_argument(
        "--limit", type=positive_int, metavar="FRAMES", help="replay at most this many frames"
    )
    p.add_argument(
        "--allow-truncated",
        action="store_true",
        help="use the complete part of recordings cut short (killed recorder); warn",
    )
    p.add_argument(
        "--no-labels",
        action="store_true",
        help="do not publish the recorded labels on the label topic",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--reference",
        type=Path,
        metavar="JSON",
        help="compare decisions with this golden reference; exit 1 on a difference",
    )
    p.add_argument(
        "--update-reference",
        type=Path,
        metavar="JSON",
        help="write the decisions as the new golden reference (on purpose only)",
    )
    p.set_defaults(func=_replay)

    r = sub.add_parser(
        "record",
        help="record the contract topics into MCAP (for `ruledrive train`)",
        description="Subscribe to frames, rules, decisions and labels and write MCAP files that "
        "`ruledrive train` reads. Stops on Ctrl-C / SIGTERM, or after --duration-s.",
    )
    r.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE.mcap",
        help="output file; with rotation FILE-0001.mcap, FILE-0002.mcap, ...",
    )
    r.add_argument(
        "--force",
        action="store_true",
        help="overwrite existing output files (refused without it)",
    )
    _bus_flags(r)
    r.add_argument(
        "--rotate-mb", type=non_negative_float, default=0.0, help="start a new file after N MB"
    )
    r.add_argument(
        "--rotate-s", type=non_negative_float, default=0.0, help="start a new file after N s"
    )
    r.add_argument(
        "--duration-s", type=non_negative_float, default=0.0, help="stop after N s (0 = never)"
    )
    r.add_argument(
        "--chunk-kb",
        type=positive_int,
        default=256,
        help="MCAP chunk size: a killed recorder loses at most the open chunk",
    )
    r.add_argument(
        "--client-id",
        type=client_id,
        default="",
        help="MQTT client id without a username (default: random; with one: the username)",
    )
    r.set_defaults(func=_record)


# -- replay ------------------------------------------------------------------------------------


def _replay(args: argparse.Namespace) -> int:
    from replay.drives import load_drives, plan_lanes
    from replay.golden import compare_reference, load_reference, write_reference
    from replay.player import Replayer

    if args.bus == "memory" and args.serve_model is None:
        raise ConfigError("--bus memory needs --serve-model (nothing else is on that bus)")
    # Inputs and outputs first: nothing is started and --out is untouched until all are good.
    _check_outputs_are_not_inputs(args)
    check_output_dir(args.out, "--out")
    if args.update_reference:
        check_output_file(args.update_reference, "--update-reference")
    reference = load_reference(args.reference) if args.reference else None
    drives = load_drives(args.recordings, limit=args.limit, allow_truncated=args.allow_truncated)
    lanes = plan_lanes(drives, args.vehicles)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {args.out}: cannot create it ({exc.strerror})") from exc
    with ExitStack() as stack:
        bus = _make_bus(args, stack)
        show = not args.no_progress and sys.stderr.isatty()
        progress = stack.enter_context(Progress(show, lanes))
        replayer = Replayer(
            bus,
            lanes,
            args.rate,
            prefix=args.prefix,
            timeout_s=args.timeout_s,
            publish_labels=not args.no_labels,
            progress=progress,
        )
        replayer.attach()
        node = None
        if args.serve_model is not None:
            # One connection for the node and the replayer: the node connects it (with its
            # offline will) and closes it. A login holds one connection (the client id is the
            # username), so two connections of one user would take each other's place.
            node = stack.enter_context(_node(args, bus))
        elif args.bus == "mqtt":
            bus.connect()
            stack.callback(bus.close)
        if replayer.frames_planned and not replayer.wait_for_node(args.wait_node_s):
            log.warning(
                "no node reported online on %s within %g s; replaying anyway",
                args.prefix,
                args.wait_node_s,
            )
        stop = threading.Event()
        try:
            report = replayer.run(stop)
        except KeyboardInterrupt:
            stop.set()
            raise
    report.recordings = [str(p) for p in args.recordings]
    failures = report.check(args.min_accuracy, args.max_p99_ms, args.max_missing)
    if node is not None:  # a node of this run only: its conflation count is this replay's
        conflated = node.metrics.counters().get("dropped.conflated", 0)
        report.conflated = int(conflated)
        failures = [
            f"{f}; the node conflated {conflated} of them on purpose"
            if f.startswith("--max-missing")
            else f
            for f in failures
        ]
        report.failures = failures
    rows = replayer.board.matched()
    if args.update_reference:
        try:
            write_reference(args.update_reference, rows, args.recordings)
        except OSError as exc:  # checked before the replay; the disk may still fill up
            raise ConfigError(f"--update-reference {args.update_reference}: {exc}") from exc
        print(f"reference written: {args.update_reference} ({len(rows)} decisions)")
    if reference is not None:  # read before the replay: --update-reference may be this file
        diffs = compare_reference(reference, rows)
        failures += [f"golden: {d}" for d in diffs[:20]]
        if len(diffs) > 20:
            failures.append(f"golden: ... and {len(diffs) - 20} more differences")
        report.failures = failures
    write_outputs(report, replayer.board, args.out)
    print_report(report, args.out)
    if failures:
        for f in failures:
            print(f"ruledrive replay: FAIL {f}", file=sys.stderr)
        return 1
    return 0


def _check_outputs_are_not_inputs(args: argparse.Namespace) -> None:
    """ConfigError when a file the replay writes is one of its input recordings."""
    outputs = [("--out", args.out / name) for name in OUTPUT_FILES]
    if args.update_reference:
        outputs.append(("--update-reference", args.update_reference))
    for flag, out in outputs:
        for rec in args.recordings:
            if same_file(out, Path(rec)):
                also = "" if str(out) == str(rec) else f" (as {out})"
                raise ConfigError(
                    f"{flag} would overwrite the input recording {rec}{also}; write elsewhere"
                )


def _make_bus(args: argparse.Namespace, stack: ExitStack) -> Any:
    if args.bus == "memory":
        from bus.memory import MemoryBus

        bus = MemoryBus()
        bus.connect()
        return bus
    login = login_from_args(args)
    return login.bus(client_id="" if login.authenticated else f"replay-{os.getpid()}")


def _node(args: argparse.Namespace, bus: Any) -> AbstractContextManager[Any]:
    """A node served in a thread of this process (golden replays, --bus memory), on the
    replayer's bus."""
    from policy.node import Node, serve_in_thread
    from policy.settings import load_settings

    settings = load_settings(
        {
            "model_path": args.serve_model,
            "mqtt_url": args.mqtt_url,
            "mqtt_username": args.mqtt_username,  # the shared connection's (see _replay)
            "tls_ca": args.tls_ca,
            "topic_prefix": args.prefix,
            "node_id": "replay-node",
            "reload_poll_s": 0,
            # Decisions must not depend on how loaded this machine is: no stale-frame fallback,
            # and a vehicle's first frames wait for its rule set however slowly it is encoded
            # (at 500 ms, a golden replay beside a loaded test suite answered a new vehicle's
            # first frame rules_pending once).
            "max_frame_age_ms": 60_000.0,
            "max_rules_wait_ms": 60_000.0,
        }
    )
    return serve_in_thread(Node(settings, bus), join_s=10)


# -- record ------------------------------------------------------------------------------------


def _record(args: argparse.Namespace) -> int:
    from replay.recorder import existing_outputs, run_recorder

    # Before connecting: a bad --out is found now, not on the first message in the writer thread.
    check_output_file(args.out, "--out")  # a directory, or a place this process cannot write
    taken = existing_outputs(args.out, rotating=bool(args.rotate_mb or args.rotate_s))
    if taken and not args.force:
        what = "" if taken == [args.out] else f": {taken[0]}"
        more = f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""
        raise ConfigError(
            f"--out {args.out}{what}{more} exists; pass --force to overwrite it, "
            "or choose another --out"
        )
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {args.out}: cannot create its directory: {exc}") from exc
    login = login_from_args(args)
    if login.authenticated and args.client_id and args.client_id != login.username:
        raise ConfigError(
            f"--client-id {args.client_id}: with --mqtt-username the client id is the username"
        )
    summary = run_recorder(
        args.out,
        url=login.url,
        username=login.username,
        password=login.password,
        tls_ca=login.tls_ca,
        prefix=args.prefix,
        rotate_mb=args.rotate_mb,
        rotate_s=args.rotate_s,
        duration_s=args.duration_s,
        chunk_kb=args.chunk_kb,
        client_id=args.client_id,
    )
    print(json.dumps(summary))  # files, counts, reconnects and gaps (broker away)
    return 0
