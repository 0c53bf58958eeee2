"""``ruledrive bench node``: the node through a real Mosquitto on loopback.

Phases, all in one run so medians and ratios are side by side:

1. latency: one vehicle at ``--fps``: publish -> decision received (p50/p99), node overhead
   (everything but session.run) beside inference time, and the node process's CPU (% of one
   core, from /proc), with onnxruntime's spin-waiting off (the default) and on, alternated;
2. saturation: ``--vehicles`` vehicles, each with one frame in flight (closed loop, like
   perf_analyzer's concurrency), decisions/s with and without micro-batching, alternated, the
   serve levers of ``LEVERS``, two frames in flight per vehicle (is the closed loop's round
   trip the limit?), and with ``--replicas N`` also N node processes sharing the frames
   (``--share-group``);
3. onnxruntime session.run on the same frames, and the Keras model if ``--keras CHECKPOINT``
   (TensorFlow is imported only then).

The node runs as a ``ruledrive serve`` subprocess, so client and node do not share a GIL.
Frames are generated 640x360 JPEGs (the shipped recording tests/golden/drive.mcap, rendered by
the simulator like the training frames), or ``--frames synthetic`` small 320x192 ones.
Results and the exact command replace the "## Node" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bus.broker import private_mosquitto
from bus.envelope import pack_frame
from bus.memory import Recorder
from bus.mqtt import MqttBus
from bus.schema import DecisionMsg, FrameHeader, RuleSet
from bus.topics import CAMERA, DECISION, RULES, STATUS
from core.errors import ConfigError, ModelError
from perception.image import jpeg_size, preprocess_jpeg
from perception.spec import MODEL_SPEC
from policy.model import PolicyModel
from ruledrive.benchdoc import bench_command, publish

__all__ = ["RULE_TEXTS", "run_bench", "serve_command", "synthetic_frames"]

log = logging.getLogger(__name__)

RULE_TEXTS = ["School zone: 30 km/h", "Stop at the red light", "Yield to pedestrians"]


def synthetic_frames(n: int = 30, w: int = 320, h: int = 192, seed: int = 0) -> list[bytes]:
    """Road-like JPEGs (sky, road, lane marks, a few boxes) of a typical camera size."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = np.zeros((h, w, 3), np.uint8)
        img[: h // 2] = (200, 170, 120)
        img[h // 2 :] = (70, 70, 70)
        cv2.line(img, (w // 2, h // 2), (w // 2 - 40 + i, h), (255, 255, 255), 3)
        for _ in range(3):
            x, y = int(rng.integers(0, w - 30)), int(rng.integers(h // 3, h - 30))
            color = tuple(int(c) for c in rng.integers(0, 255, 3))
            cv2.rectangle(img, (x, y), (x + 25, y + 25), color, -1)
        img = np.asarray(cv2.add(img, rng.integers(0, 12, img.shape, dtype=np.uint8)), np.uint8)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        out.append(buf.tobytes())
    return out


def serve_command(url: str, model: Path, prefix: str, node_id: str, *flags: str) -> list[str]:
    """The ``ruledrive serve`` command line of a benchmark's node process (the node runs in its
    own process, so client and node do not share a GIL)."""
    return [
        sys.executable,
        "-m",
        "ruledrive.cli",
        "serve",
        "--mqtt-url",
        url,
        "--model",
        str(model),
        "--topic-prefix",
        prefix,
        "--node-id",
        node_id,
        "--reload-poll-s",
        "0",
        "--heartbeat-s",
        "1",
        *flags,
    ]


def golden_frames(path: Path = Path("tests/golden/drive.mcap")) -> list[bytes]:
    """The generated 640x360 frames of a recording (default: the shipped golden drive)."""
    from bus.recording_reader import read_samples

    if not path.is_file():
        raise ConfigError(f"{path} not found: run from the repository root, or name a recording")
    frames = [smp.jpeg for smp in read_samples([path], require_labels=False)]
    if not frames:
        raise ConfigError(f"{path} holds no frames")
    return frames


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _NodeProc:
    def __init__(
        self,
        args: argparse.Namespace,
        prefix: str,
        node_id: str,
        batch: int,
        *extra: str,
    ) -> None:
        cmd = serve_command(
            args.mqtt_url,
            args.model,
            prefix,
            node_id,
            "--max-batch-size",
            str(batch),
            "--max-wait-us",
            str(args.max_wait_us),
            "--max-frame-age-ms",
            "2000",
            *extra,
        )
        # The node's log goes to a file, not a pipe: a pipe nobody reads fills up and blocks it.
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the node; stop() closes it
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log)

    def stop(self) -> str:
        """Stop the node; the tail of its log."""
        if self.log.closed:
            return ""
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.seek(0)
        tail = self.log.read()[-1000:].decode(errors="replace")
        self.log.close()
        return tail


class _Client:
    def __init__(self, url: str, prefix: str, node_ids: list[str]) -> None:
        self.prefix = prefix
        self.bus = MqttBus(url, client_id=f"bench-{uuid.uuid4().hex[:8]}")
        self.sent: dict[tuple[str, int], int] = {}
        self.rows: list[tuple[float, DecisionMsg]] = []
        self.on_decision: Callable[[DecisionMsg], None] | None = None
        self.status = Recorder()
        self._lock = threading.Lock()
        self.bus.subscribe(DECISION.subscription(prefix), self._decision, 1)
        for node_id in node_ids:
            self.bus.subscribe(STATUS.topic(prefix, node_id=node_id), self.status, 1)
        self.bus.connect()

    def _decision(self, topic: str, payload: bytes) -> None:
        now = time.perf_counter_ns()
        d = DecisionMsg.model_validate_json(payload)
        with self._lock:
            t0 = self.sent.pop((d.vehicle_id, d.frame_id), None)
            if t0 is not None:
                self.rows.append(((now - t0) / 1e6, d))
        if self.on_decision is not None:
            self.on_decision(d)

    def rules(self, vids: list[str]) -> None:
        for v in vids:
            r = RuleSet(
                vehicle_id=v, version="bench-1", issued_at_ns=time.time_ns(), rules=RULE_TEXTS
            )
            self.bus.publish(
                RULES.topic(self.prefix, vehicle_id=v), r.model_dump_json().encode(), 1, retain=True
            )

    def frame(self, vid: str, fid: int, jpeg: bytes) -> None:
        h = FrameHeader(vehicle_id=vid, frame_id=fid, stamp_ns=time.time_ns(), speed_kph=40.0)
        payload = pack_frame(h, jpeg)
        with self._lock:
            self.sent[(vid, fid)] = time.perf_counter_ns()
        self.bus.publish(CAMERA.topic(self.prefix, vehicle_id=vid), payload, 0)

    def clear_rules(self, vids: list[str]) -> None:
        for v in vids:
            self.bus.publish(RULES.topic(self.prefix, vehicle_id=v), b"", 1, retain=True)


def _start(
    args: argparse.Namespace, batch: int, vids: list[str], replicas: int = 1, *extra: str
) -> tuple[list[_NodeProc], _Client]:
    prefix = f"bench/{uuid.uuid4().hex[:10]}"
    ids = [f"bench-{batch}-r{i}" for i in range(replicas)]
    client = _Client(args.mqtt_url, prefix, ids)
    client.rules(vids)
    share = ("--share-group", "bench") if replicas > 1 else ()
    nodes = [_NodeProc(args, prefix, i, batch, *share, *extra) for i in ids]

    def all_online(msgs: list[tuple[str, bytes]]) -> bool:
        topics = {STATUS.topic(prefix, node_id=i) for i in ids}
        return topics <= {t for t, p in msgs if b'"online"' in p}

    if not client.status.wait_for(all_online, 60):
        err = ""
        for node in nodes:
            err += node.stop()
        raise ModelError(f"the node did not come online: {err}")
    return nodes, client


# Saturation levers, each a set of ``serve`` flags measured beside the default in the same
# rounds. On 2 cores the node shares the CPU with the broker and the vehicles, so overlapping
# work only pays where a core would otherwise wait.
LEVERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("decode-ahead on (a worker decodes while the model runs)", ("--decode-ahead", "true")),
    (
        "one run per batch on every core, the batch decoded on 2 threads before it",
        ("--inference-threads", "1"),
    ),
    (
        "one run per batch on every core, decoded one by one (the defaults before 4 December)",
        ("--inference-threads", "1", "--decode-threads", "1"),
    ),
    ("one run per batch on 1 thread", ("--inference-threads", "1", "--ort-threads", "1")),
)


def _latency(args: argparse.Namespace, frames: list[bytes], spinning: bool) -> dict[str, float]:
    nodes, c = _start(
        args, args.max_batch_size, ["bench-car"], 1, "--ort-spinning", str(spinning).lower()
    )
    pid = nodes[0].proc.pid
    try:
        for i in range(30):  # warm the path
            c.frame("bench-car", i, frames[i % len(frames)])
            time.sleep(0.01)
        time.sleep(0.3)
        c.rows.clear()
        n = int(args.seconds * args.fps)
        cpu0, t0 = _cpu_s(pid), time.perf_counter()
        t_next = t0
        for i in range(n):
            c.frame("bench-car", 1000 + i, frames[i % len(frames)])
            t_next += 1 / args.fps
            time.sleep(max(0.0, t_next - time.perf_counter()))
        cpu = 100 * (_cpu_s(pid) - cpu0) / (time.perf_counter() - t0)
        time.sleep(0.5)
    finally:
        for node in nodes:
            node.stop()
        c.clear_rules(["bench-car"])
        c.bus.close()
    e2e = np.array([r[0] for r in c.rows])
    inf = np.array([r[1].timings.inference_ms for r in c.rows])
    node_total = np.array([r[1].timings.total_ms for r in c.rows])
    decode = np.array([r[1].timings.decode_ms for r in c.rows])
    overhead = e2e - inf
    return {
        "sent": n,
        "answered": len(c.rows),
        "p50_ms": float(np.percentile(e2e, 50)),
        "p99_ms": float(np.percentile(e2e, 99)),
        "inference_ms": float(np.median(inf)),
        "decode_ms": float(np.median(decode)),
        "node_total_ms": float(np.median(node_total)),
        "in_node_overhead_ms": float(np.median(node_total - inf)),
        "in_node_without_decode_ms": float(np.median(node_total - inf - decode)),
        "overhead_ms": float(np.median(overhead)),
        "overhead_share": float(np.median(overhead) / np.median(e2e)),
        "cpu_pct": cpu,
    }


_STALL_S = 0.3  # a saturated decision takes ~40 ms at p99 on this machine's slow hours


def _saturate(
    args: argparse.Namespace,
    batch: int,
    frames: list[bytes],
    seconds: float,
    replicas: int = 1,
    during: Callable[[int, float], Any] | None = None,
    extra: tuple[str, ...] = (),
    in_flight: int = 1,
) -> dict:
    """Closed-loop load; ``during(node_pid, seconds)`` runs over the measured window (a
    profiler) and its result is returned under "during"; ``extra``: more ``serve`` flags."""
    vids = [f"bench-v{i}" for i in range(args.vehicles)]
    nodes, c = _start(args, batch, vids, replicas, *extra)
    got = None
    counter = {"n": 0, "lost": 0, "superseded": 0}
    fid = {v: 0 for v in vids}
    out: dict[str, list[int]] = {v: [] for v in vids}  # frames in flight, oldest first
    last = {v: time.monotonic() for v in vids}
    lock = threading.Lock()
    stop = threading.Event()

    def send_next(vid: str) -> None:
        with lock:
            fid[vid] += 1
            last[vid] = time.monotonic()
            n = fid[vid]
            out[vid].append(n)
        c.frame(vid, n, frames[n % len(frames)])

    def again(d: DecisionMsg) -> None:  # closed loop: in_flight frames in flight per vehicle
        counter["n"] += 1
        with lock:
            mine = out[d.vehicle_id]
            if d.frame_id not in mine:  # a late one is not in flight
                return
            # The node keeps the newest frame of a vehicle: older ones still out were replaced.
            i = mine.index(d.frame_id)
            counter["superseded"] += i
            del mine[: i + 1]
            gap = in_flight - len(mine)
        for _ in range(gap if not stop.is_set() else 0):
            send_next(d.vehicle_id)

    def watchdog() -> None:
        # Frames travel at QoS 0: one lost on the way would stall its vehicle for good, so a
        # vehicle with no answer for _STALL_S sends its next frames and the loss is counted.
        while not stop.wait(0.05):
            for v in vids:
                if time.monotonic() - last[v] > _STALL_S:
                    with lock:
                        counter["lost"] += len(out[v])
                        out[v].clear()
                    for _ in range(in_flight):
                        send_next(v)

    try:
        c.on_decision = again
        for v in vids:
            for _ in range(in_flight):
                send_next(v)
        threading.Thread(target=watchdog, name="bench-watchdog", daemon=True).start()
        time.sleep(1.0)  # warm-up
        n0, t0 = counter["n"], time.perf_counter()
        if during is not None:
            got = during(nodes[0].proc.pid, seconds)
        time.sleep(max(0.0, seconds - (time.perf_counter() - t0)))
        n1, t1 = counter["n"], time.perf_counter()
        stop.set()
        batches = [r[1].timings.batch_size for r in c.rows[-200:]]
        p99 = float(np.percentile([r[0] for r in c.rows[-2000:]], 99)) if c.rows else 0.0
        cycle = _cycle(c.rows[-2000:])
    finally:
        tails = [node.stop() for node in nodes]
        c.clear_rules(vids)
        c.bus.close()
    if counter["lost"] or n1 == n0:
        # A stalled node is what these runs are for; its own log says what it was doing.
        log.warning(
            "saturation run %s: %d decisions in the window, %d frames lost; node log tail:\n%s",
            " ".join(extra) or "default",
            n1 - n0,
            counter["lost"],
            "\n".join(t[-600:] for t in tails),
        )
    return {
        "rate": (n1 - n0) / (t1 - t0),
        "batch": float(np.mean(batches)) if batches else 0.0,
        "p99_ms": p99,
        **cycle,
        "lost": counter["lost"],
        "superseded": counter["superseded"],
        "during": got,
    }


def _cycle(rows: list[tuple[float, DecisionMsg]]) -> dict[str, float]:
    """Medians per decision of where a saturated frame's time goes, from the decisions' own
    timings and the client's publish -> received."""
    if not rows:
        return {}
    t = [d.timings for _, d in rows]
    e2e = np.array([ms for ms, _ in rows])
    total = np.array([x.total_ms for x in t])
    return {
        "e2e_ms": float(np.median(e2e)),
        "queue_ms": float(np.median([x.queue_ms for x in t])),
        "decode_ms": float(np.median([x.decode_ms for x in t])),
        "inference_ms": float(np.median([x.inference_ms for x in t])),
        "node_total_ms": float(np.median(total)),
        "transit_ms": float(np.median(e2e - total)),
    }


def _session_times(model: PolicyModel, frames: list[bytes], keras_path: Path | None) -> dict:
    enc = model.encode_rules(tuple(RULE_TEXTS))
    out: dict[str, float] = {}
    for n in (1, 8):
        images = np.stack([preprocess_jpeg(frames[i % len(frames)]) for i in range(n)])
        states, masks = np.stack([enc.states] * n), np.stack([enc.mask] * n)
        speeds = np.full((n, 1), 40.0, np.float32)
        # The node's per-frame call (the frame graph alone for a split model); the whole
        # graph's probabilities are what the Keras comparison checks.
        times = []
        for _ in range(60):
            t0 = time.perf_counter()
            model.run_encoded(images, [enc] * n, speeds)
            times.append((time.perf_counter() - t0) * 1e3)
        out[f"ort_b{n}_ms"] = float(np.median(times[10:]))
        vecs = None if enc.sentences is None else np.stack([enc.sentences] * n)
        probs = model.run(images, states, masks, speeds, vecs).probabilities
        if keras_path is not None:
            kt, kprobs = _keras_times(keras_path, images, states, masks, speeds, vecs)
            out[f"keras_b{n}_ms"] = kt
            out[f"max_abs_diff_b{n}"] = float(np.max(np.abs(kprobs - probs)))
    return out


def _keras_times(
    path: Path,
    images: np.ndarray,
    states: np.ndarray,
    masks: np.ndarray,
    speeds: np.ndarray,
    sentences: np.ndarray | None = None,
):
    # TensorFlow only for this optional comparison; a checkpoint directory (ruledrive train's
    # output) is loaded the way training loads it, so its custom layers are registered.
    from training.checkpoint import load_checkpoint

    global _KERAS
    if _KERAS is None or _KERAS[0] != path:
        _KERAS = (path, load_checkpoint(path).model)
    m = _KERAS[1]
    feeds = MODEL_SPEC.feeds(images, states, masks, speeds)
    if sentences is not None:  # a model with the sentence-vector input
        feeds[MODEL_SPEC.rule_sentence_input] = sentences
    times = []
    for _ in range(30):
        t0 = time.perf_counter()
        probs = np.asarray(m(feeds, training=False)[MODEL_SPEC.output])
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times[5:])), probs


_KERAS: tuple[Path, Any] | None = None


def run_bench(args: argparse.Namespace) -> int:
    if not args.model.is_file():
        raise ConfigError(f"model {args.model} not found; pass --model PATH")
    model = PolicyModel.load(args.model)
    if args.mqtt_url is None:
        with private_mosquitto() as args.mqtt_url:
            args.broker_note = "private mosquitto (set_tcp_nodelay true)"
            return _run(args, model)
    args.broker_note = "existing broker"
    return _run(args, model)


def _run(args: argparse.Namespace, model: PolicyModel) -> int:
    frames = synthetic_frames() if args.frames == "synthetic" else golden_frames()
    lat: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    for _ in range(args.rounds):  # spin-waiting off (the default) and on, alternated
        lat["off"].append(_latency(args, frames, spinning=False))
        lat["on"].append(_latency(args, frames, spinning=True))
    sat: dict[str, list[dict]] = {"batched": [], "single": []}
    for _ in range(args.rounds):  # alternate so drift hits all equally
        sat["batched"].append(_saturate(args, args.max_batch_size, frames, args.seconds / 2))
        sat["single"].append(_saturate(args, 1, frames, args.seconds / 2))
        for name, flags in LEVERS:
            sat.setdefault(name, []).append(
                _saturate(args, args.max_batch_size, frames, args.seconds / 2, extra=flags)
            )
        sat.setdefault("in_flight_2", []).append(
            _saturate(args, args.max_batch_size, frames, args.seconds / 2, in_flight=2)
        )
    reps: dict[int, list[dict]] = {}
    for _ in range(args.rounds):
        for n in range(1, args.replicas + 1) if args.replicas > 1 else ():
            reps.setdefault(n, []).append(
                _saturate(args, args.max_batch_size, frames, args.seconds / 2, replicas=n)
            )
    sess = _session_times(model, frames, args.keras)
    w, h = jpeg_size(frames[0])
    args.frame_note = f"{len(frames)} {args.frames} {w}x{h} JPEGs of ~{len(frames[0]) // 1000} KB"
    publish(args, "Node", _report(args, model, lat, sat, sess, reps))
    return 0


def _median_of(runs: list[dict[str, float]], key: str) -> float:
    return float(np.median([r[key] for r in runs]))


def _report(args, model, lat, sat, sess, reps) -> str:  # type: ignore[no-untyped-def]
    cmd = bench_command("node")
    batched, single = _median_of(sat["batched"], "rate"), _median_of(sat["single"], "rate")

    def ok(cond: bool) -> str:
        return "met" if cond else "**missed**"

    off, on = lat["off"], lat["on"]
    # (answered, sent) per column, spin-waiting off then on
    counts = [
        (sum(int(r["answered"]) for r in rs), sum(int(r["sent"]) for r in rs)) for rs in (off, on)
    ]
    answered, sent = (sum(c[i] for c in counts) for i in (0, 1))

    def row(name: str, key: str, fmt: str, target: str = "") -> str:
        a, b = _median_of(off, key), _median_of(on, key)
        return f"| {name} | {a:{fmt}} | {b:{fmt}} | {target} |"

    p99_off, cpu_off = _median_of(off, "p99_ms"), _median_of(off, "cpu_pct")
    over_off = _median_of(off, "in_node_overhead_ms")
    lines = [
        "## Node",
        "",
        f"Command: `{cmd.strip()}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}; "
        f"broker: {args.broker_note} {args.mqtt_url}; "
        f"model `{args.model}` version `{model.version}` on "
        f"{model.provider}; frames: {args.frame_note}."
        + (
            " **Test-double model (tests/policy/fakemodel.py): inference time is not the trained"
            " model's; rerun with models/ruledrive-default.onnx.**"
            if model.meta.training_config.get("kind") == "test-double"
            else ""
        ),
        "",
        f"Latency, 1 vehicle at {args.fps:g} fps, {args.seconds:g} s per run, {args.rounds} "
        f"alternated runs per column, medians ({answered}/{sent} answered); publish -> decision "
        "received; node CPU from /proc, in % of one core:",
        "",
        "| metric | spin-waiting off (default) | spin-waiting on | target (default) |",
        "|---|---|---|---|",
        "| frames answered / sent | " + " | ".join(f"{a}/{n}" for a, n in counts) + " |  |",
        row("p50", "p50_ms", ".2f"),
        row("p99", "p99_ms", ".2f", f"<= 5 ms: {ok(p99_off <= 5)}"),
        row("session.run", "inference_ms", ".2f"),
        row("JPEG decode + resize", "decode_ms", ".2f"),
        row("in node, arrival -> publish", "node_total_ms", ".2f"),
        row(
            "in-node overhead = arrival -> publish - session.run",
            "in_node_overhead_ms",
            ".2f",
            f"<= 0.3 ms: {ok(over_off <= 0.3)}",
        ),
        row(
            "the same without the JPEG decode (the node's own code)",
            "in_node_without_decode_ms",
            ".2f",
        ),
        row("e2e - session.run", "overhead_ms", ".2f"),
        row("node CPU, % of a core", "cpu_pct", ".0f", f"<= 15 %: {ok(cpu_off <= 15)}"),
        "",
        f"Saturation, {args.vehicles} vehicles, one frame in flight each, "
        f"{args.seconds / 2:g} s x {args.rounds} alternated rounds (median):",
        "",
        "| mode | decisions/s | p99 ms | vs default | target |",
        "|---|---|---|---|---|",
        f"| micro-batching (max {args.max_batch_size}, {args.max_wait_us} us; mean frames "
        f"per session.run {_median_of(sat['batched'], 'batch'):.1f}) (default) | {batched:.0f} | "
        f"{_median_of(sat['batched'], 'p99_ms'):.1f} | 1.00x | >= 1000: {ok(batched >= 1000)} |",
        f"| no batching (max 1) | {single:.0f} | {_median_of(sat['single'], 'p99_ms'):.1f} | "
        f"{single / max(batched, 1e-9):.2f}x | |",
    ]
    for name, flags in LEVERS:
        rate = _median_of(sat[name], "rate")
        lines.append(
            f"| micro-batching, {name} (`{' '.join(flags)}`) | {rate:.0f} | "
            f"{_median_of(sat[name], 'p99_ms'):.1f} | {rate / max(batched, 1e-9):.2f}x | "
            f">= 1000: {ok(rate >= 1000)} |"
        )
    two = sat["in_flight_2"]
    rate2 = _median_of(two, "rate")
    lines.append(
        f"| micro-batching, 2 frames in flight per vehicle (the load, not the node: a vehicle "
        f"sends its next frame before the last is answered; the node keeps a vehicle's newest "
        f"frame, so {_median_of(two, 'superseded'):.0f} frames per run were superseded) | "
        f"{rate2:.0f} | {_median_of(two, 'p99_ms'):.1f} | {rate2 / max(batched, 1e-9):.2f}x | "
        f">= 1000: {ok(rate2 >= 1000)} |"
    )
    runs = [r for rs in (*sat.values(), *reps.values()) for r in rs]
    lost = sum(r["lost"] for r in runs)
    b = sat["batched"]
    if all("e2e_ms" in r for r in b):
        lines += [
            "",
            "Where a saturated decision's time goes (default mode, medians per decision): "
            f"publish -> received {_median_of(b, 'e2e_ms'):.2f} ms = in the node, arrival -> "
            f"decision {_median_of(b, 'node_total_ms'):.2f} ms (waiting for its batch "
            f"{_median_of(b, 'queue_ms'):.2f}, its JPEG decode {_median_of(b, 'decode_ms'):.2f}, "
            f"the batch's session.run {_median_of(b, 'inference_ms'):.2f}) + "
            f"{_median_of(b, 'transit_ms'):.2f} ms outside it (the publish, two broker hops, "
            "the vehicle's client).",
        ]
    lines += [
        "",
        f"Frames with no decision after {_STALL_S:g} s (QoS 0, taken as lost; the vehicle sends "
        f"its next one): {lost} over the {len(runs)} saturation and replica runs.",
        "",
    ]
    if reps:
        lines += [
            f"Replicas sharing the frames (MQTT 5 shared subscription, {args.vehicles} vehicles, "
            f"micro-batching, all on this machine's {os.cpu_count()} cores, {args.rounds} "
            "alternated rounds):",
            "",
            "| node replicas | decisions/s | p99 ms |",
            "|---|---|---|",
            *(
                f"| {n} | {_median_of(r, 'rate'):.0f} | {_median_of(r, 'p99_ms'):.1f} |"
                for n, r in sorted(reps.items())
            ),
            "",
        ]
    lines += [
        "session.run on the same preprocessed frames (median of 50):",
        "",
        "| batch | onnxruntime | Keras | ratio | max abs prob diff |",
        "|---|---|---|---|---|",
    ]
    for n in (1, 8):
        k = sess.get(f"keras_b{n}_ms")
        ks = "not run (pass --keras CHECKPOINT)" if k is None else f"{k:.2f} ms"
        ratio = "" if k is None else f"{k / sess[f'ort_b{n}_ms']:.1f}x"
        diff = "" if k is None else f"{sess[f'max_abs_diff_b{n}']:.2e}"
        lines.append(f"| {n} | {sess[f'ort_b{n}_ms']:.2f} ms | {ks} | {ratio} | {diff} |")
    return "\n".join(lines) + "\n"
