"""``ruledrive bench levers``: the node's per-frame costs, one lever at a time, side by side.

Everything runs in one process on generated 640x360 frames (the shipped recording
``tests/golden/drive.mcap``, rendered by the simulator like every training frame), in alternated
rounds so drift on a shared machine hits every variant alike; medians are reported. The levers:

1. JPEG decode: full decode + INTER_AREA against libjpeg's reduced scale decode
   (``IMREAD_REDUCED_COLOR_2`` / ``_4``, scaled in the DCT) + resize to the model's size; the
   row the model decodes with (its metadata names it, perception.image.PREPROCESSINGS) is
   marked. With ``--eval-data DIR`` (recordings, e.g. a generated test split) also the model's
   accuracy under each decode, and how often its top label equals the one under its own.
2. onnxruntime session options on the per-frame graph (the frame graph of a split model): intra-op
   threads, spin-waiting, graph optimisation level, execution mode; ``session.run`` at batch 1 and
   8, and the process's CPU per frame at ``--fps`` (spin-waiting burns a core between frames).
3. Input buffers: the batch stacked per call (``np.stack``) against one preallocated array.
4. Serialising a decision: pydantic's ``model_dump_json`` against ``json.dumps(model_dump())``.
5. Static int8 quantisation of the Conv layers only (onnxruntime.quantization, calibrated on
   ``--calib-frames`` frames of ``--eval-data`` or of the recording), with the top-label
   agreement with float (and the accuracy with ``--eval-data``). Measured, not shipped.

Results and the command replace the "## Levers" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

from bus.recording_reader import read_samples
from bus.schema import DecisionLabel, DecisionMsg, Timings
from core.defaults import DEFAULT_MODEL_PATH
from core.errors import ConfigError
from perception.image import jpeg_size, preprocess_jpeg
from perception.spec import MODEL_SPEC
from perception.splitgraph import split_model
from policy.model import EncodedRules, PolicyModel
from ruledrive.argtypes import positive_float, positive_int
from ruledrive.bench_node import RULE_TEXTS, golden_frames
from ruledrive.benchdoc import add_doc_flags, bench_command, publish

__all__ = ["register_bench", "run_levers"]

GOLDEN = Path("tests/golden/drive.mcap")
_S = MODEL_SPEC
_SIZE = (_S.image_width, _S.image_height)


def _imdecode(flag: int) -> Callable[[bytes], np.ndarray | None]:
    def decode(data: bytes) -> np.ndarray | None:
        return cv2.imdecode(np.frombuffer(data, np.uint8), flag)

    return decode


def _reduced(flag: int) -> Callable[[bytes], np.ndarray]:
    def decode(data: bytes) -> np.ndarray:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
        if bgr is None:
            raise ConfigError("a frame of the recording does not decode")
        small = cv2.resize(bgr, _SIZE, interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(small, cv2.COLOR_BGR2RGB)

    return decode


DECODERS: dict[str, Callable[[bytes], np.ndarray]] = {
    "full + INTER_AREA": partial(preprocess_jpeg, decode="full"),
    "IMREAD_REDUCED_COLOR_2 + INTER_AREA": _reduced(cv2.IMREAD_REDUCED_COLOR_2),
    "IMREAD_REDUCED_COLOR_4 + INTER_AREA": _reduced(cv2.IMREAD_REDUCED_COLOR_4),
    # Below the model's size on a 640x360 frame (80x45, resized up): how much a smaller decode
    # would save, and what it would cost in accuracy.
    "IMREAD_REDUCED_COLOR_8 + INTER_AREA": _reduced(cv2.IMREAD_REDUCED_COLOR_8),
}

# cv2.imdecode alone, nothing around it (no header walk, resize, colour order or copy): the part
# of a frame's time in the node that no code of the node can take away.
IMDECODE_ONLY: dict[str, Callable[[bytes], object]] = {
    "cv2.imdecode IMREAD_REDUCED_COLOR_4 alone": _imdecode(cv2.IMREAD_REDUCED_COLOR_4),
    "cv2.imdecode IMREAD_REDUCED_COLOR_8 alone": _imdecode(cv2.IMREAD_REDUCED_COLOR_8),
}


def recording_frames(paths: list[Path], limit: int) -> list[Any]:
    """Up to ``limit`` samples (frame + rules + label) of the recordings (files or folders)."""
    files: list[Path] = []
    for p in paths:
        files += sorted(p.rglob("*.mcap")) if p.is_dir() else [p]
    if not files:
        raise ConfigError(f"no recordings in {', '.join(map(str, paths))}")
    out = []
    for s in read_samples(files, require_labels=False):
        out.append(s)
        if len(out) >= limit:
            break
    return out


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


# 1. decode -------------------------------------------------------------------------------------


def _ms_per_frame(
    fns: Mapping[str, Callable[[bytes], object]], frames: list[bytes], rounds: int
) -> dict[str, float]:
    """Median over alternated rounds of each function's ms per frame, one thread."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for f in frames:
                fn(f)
            times[name].append((time.perf_counter() - t0) * 1e3 / len(frames))
    return {k: float(np.median(v)) for k, v in times.items()}


def _decode_rows(frames: list[bytes], rounds: int) -> dict[str, dict[str, float]]:
    ref = [preprocess_jpeg(f, "full") for f in frames]
    ms = _ms_per_frame(DECODERS, frames, rounds)
    rows = {}
    for name, dec in DECODERS.items():
        diff = np.mean(
            [np.abs(dec(f).astype(np.int16) - r).mean() for f, r in zip(frames, ref, strict=True)]
        )
        rows[name] = {"ms": ms[name], "px_diff": float(diff)}
    return rows


def _accuracy(
    model: PolicyModel, samples: list[Any], images: np.ndarray, run: Callable[..., np.ndarray]
) -> tuple[float, np.ndarray]:
    """Accuracy on the labelled samples and the top labels, ``run(images, feats, speeds)``."""
    enc: dict[tuple[str, ...], EncodedRules] = {}
    feats = []
    for s in samples:
        if s.rules not in enc:
            enc[s.rules] = model.encode_rules(s.rules)
        feats.append(_features(enc[s.rules]))
    f = np.stack(feats).astype(np.float32)
    speeds = np.array([[s.speed_kph] for s in samples], np.float32)
    top = np.concatenate(
        [run(images[i : i + 64], f[i : i + 64], speeds[i : i + 64]) for i in range(0, len(f), 64)]
    )
    labels = np.array([list(model.labels).index(DecisionLabel(s.label)) for s in samples])
    return float((top == labels).mean()), top


def _features(enc: EncodedRules) -> np.ndarray:
    if enc.features is None:
        raise ConfigError("the model has no rule-set output: the levers need a split model")
    return np.asarray(enc.features, np.float32)


def _frame_runner(session: ort.InferenceSession) -> Callable[..., np.ndarray]:
    def run(images: np.ndarray, feats: np.ndarray, speeds: np.ndarray) -> np.ndarray:
        feeds = {_S.image_input: images, _S.speed_input: speeds, _S.rule_set_output: feats}
        return np.asarray(session.run([_S.output], feeds)[0]).argmax(1)

    return run


# 2. session options ----------------------------------------------------------------------------


def _options(threads: int, spinning: bool, level: str, parallel: bool) -> ort.SessionOptions:
    o = ort.SessionOptions()
    o.log_severity_level = 3
    o.intra_op_num_threads = threads
    o.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    o.add_session_config_entry("session.inter_op.allow_spinning", "1" if spinning else "0")
    o.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    o.execution_mode = (
        ort.ExecutionMode.ORT_PARALLEL if parallel else ort.ExecutionMode.ORT_SEQUENTIAL
    )
    return o


SESSION_VARIANTS = {
    "shipped: threads 0 (one per core), no spinning, ORT_ENABLE_ALL, sequential": (
        0,
        False,
        "ORT_ENABLE_ALL",
        False,
    ),
    "threads 1": (1, False, "ORT_ENABLE_ALL", False),
    "spinning on": (0, True, "ORT_ENABLE_ALL", False),
    "ORT_ENABLE_BASIC": (0, False, "ORT_ENABLE_BASIC", False),
    "ORT_PARALLEL execution": (0, False, "ORT_ENABLE_ALL", True),
}


def _paced_cpu(run: Callable[[], object], fps: float, seconds: float) -> float:
    """CPU of this process, in % of one core, while running one frame every 1/fps s."""
    c0, t0 = time.process_time(), time.perf_counter()
    t_next = t0
    while time.perf_counter() - t0 < seconds:
        run()
        t_next += 1 / fps
        time.sleep(max(0.0, t_next - time.perf_counter()))
    return 100 * (time.process_time() - c0) / (time.perf_counter() - t0)


def _time_sessions(
    sessions: dict[str, ort.InferenceSession],
    feeds: dict[int, dict],
    args: argparse.Namespace,
    cpu: bool,
) -> dict[str, dict[str, float]]:
    """Each session's session.run at batch 1 and 8 (and with ``cpu`` its CPU at ``--fps``),
    in alternated rounds: {name: {"b1", "b8"[, "cpu"]: median}}."""
    out: dict[str, dict[str, list[float]]] = {n: {} for n in sessions}
    for _ in range(args.rounds):
        for name, sess in sessions.items():
            for b in (1, 8):
                sess.run(None, feeds[b])  # warm
                out[name].setdefault(f"b{b}", []).append(
                    _median_ms(partial(sess.run, None, feeds[b]), args.repeats)
                )
            if cpu:
                out[name].setdefault("cpu", []).append(
                    _paced_cpu(partial(sess.run, None, feeds[1]), args.fps, args.cpu_seconds)
                )
    return {n: {k: float(np.median(v)) for k, v in d.items()} for n, d in out.items()}


def _session_rows(graph: bytes, feeds: dict[int, dict], args: argparse.Namespace) -> dict:
    sessions = {
        name: ort.InferenceSession(graph, _options(*v), providers=["CPUExecutionProvider"])
        for name, v in SESSION_VARIANTS.items()
    }
    return _time_sessions(sessions, feeds, args, cpu=True)


# 3. buffers, 4. serialisation ------------------------------------------------------------------


def _buffer_rows(images: list[np.ndarray], repeats: int) -> dict[str, float]:
    batch = images[:8]
    pre = np.empty((8, *batch[0].shape), np.uint8)

    def into() -> None:
        for i, im in enumerate(batch):
            pre[i] = im

    return {
        "np.stack per batch": _median_ms(lambda: np.stack(batch), repeats) * 1e3,
        "preallocated array": _median_ms(into, repeats) * 1e3,
    }


def _serialise_rows(repeats: int) -> dict[str, float]:
    labels = list(DecisionLabel)
    msg = DecisionMsg(
        vehicle_id="bench-car",
        frame_id=123,
        frame_stamp_ns=time.time_ns(),
        stamp_ns=time.time_ns(),
        decision=labels[0],
        confidence=0.93,
        probabilities={lab: 1.0 / len(labels) for lab in labels},
        rules_version="bench-1",
        model_version="bench",
        node_id="bench",
        valid=True,
        timings=Timings(
            frame_age_ms=1.0,
            queue_ms=0.1,
            decode_ms=0.5,
            inference_ms=1.2,
            total_ms=2.0,
            batch_size=1,
        ),
    )

    def via_dict() -> bytes:
        return json.dumps(msg.model_dump(mode="json")).encode()

    return {
        "pydantic model_dump_json": _median_ms(lambda: msg.model_dump_json().encode(), repeats)
        * 1e3,
        "json.dumps(model_dump)": _median_ms(via_dict, repeats) * 1e3,
    }


# 5. int8 ---------------------------------------------------------------------------------------


def _quantise_conv(graph: bytes, calib: list[dict[str, np.ndarray]], work: Path) -> bytes:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calib)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    src, pre, dst = work / "frame.onnx", work / "frame-pre.onnx", work / "frame-int8.onnx"
    src.write_bytes(graph)
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    quantize_static(
        str(pre),
        str(dst),
        Reader(),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["Conv"],
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
    )
    return dst.read_bytes()


# the run ---------------------------------------------------------------------------------------


def run_levers(args: argparse.Namespace) -> int:
    if not args.model.is_file():
        raise ConfigError(f"model {args.model} not found; pass --model PATH")
    cv2.setNumThreads(1)  # the node decodes one frame per call, on its own thread
    model = PolicyModel.load(args.model)
    data = args.model.read_bytes()
    parts = split_model(data)
    if parts is None:
        raise ConfigError(f"{args.model} has no rule-set output: the levers need a split model")
    frames = golden_frames(args.recording)
    w, h = jpeg_size(frames[0])
    own = partial(preprocess_jpeg, decode=model.meta.decode)  # as the node decodes for it
    images = [own(f) for f in frames]
    res: dict[str, Any] = {"frames": len(frames), "size": f"{w}x{h}"}
    res["own"] = next(
        (n for n, dec in DECODERS.items() if np.array_equal(dec(frames[0]), images[0])), None
    )
    enc = model.encode_rules(tuple(RULE_TEXTS))
    feeds = {
        b: {
            _S.image_input: np.stack([images[i % len(images)] for i in range(b)]),
            _S.speed_input: np.full((b, 1), 40.0, np.float32),
            _S.rule_set_output: np.stack([_features(enc)] * b),
        }
        for b in (1, 8)
    }
    res["decode"] = _decode_rows(frames, args.rounds)
    res["imdecode"] = _ms_per_frame(IMDECODE_ONLY, frames, args.rounds)
    res["session"] = _session_rows(parts.frame, feeds, args)
    res["buffers"] = _buffer_rows(images, args.repeats * 20)
    res["serialise"] = _serialise_rows(args.repeats * 20)
    samples = recording_frames(args.eval_data, args.eval_frames) if args.eval_data else []
    labelled = [s for s in samples if s.label is not None]
    calib = [
        {
            _S.image_input: own(s.jpeg)[None],
            _S.speed_input: np.array([[s.speed_kph]], np.float32),
            _S.rule_set_output: _features(model.encode_rules(s.rules))[None],
        }
        for s in recording_frames(args.calib_data or [args.recording], args.calib_frames)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        int8 = _quantise_conv(parts.frame, calib, Path(tmp))
    float_sess = ort.InferenceSession(parts.frame, _options(0, False, "ORT_ENABLE_ALL", False))
    int8_sess = ort.InferenceSession(int8, _options(0, False, "ORT_ENABLE_ALL", False))
    res["int8"] = _time_sessions({"float": float_sess, "int8": int8_sess}, feeds, args, cpu=False)
    res["int8_bytes"] = len(int8)
    if labelled:
        evals = labelled
        res["eval_frames"] = len(evals)
        acc: dict[str, Any] = {}
        ims = np.stack([own(s.jpeg) for s in evals])
        a, base_top = _accuracy(model, evals, ims, _frame_runner(float_sess))
        acc["own"] = {"accuracy": a, "agree": 1.0}
        for name, dec in DECODERS.items():
            ims_d = np.stack([dec(s.jpeg) for s in evals])
            a, top = _accuracy(model, evals, ims_d, _frame_runner(float_sess))
            acc[name] = {"accuracy": a, "agree": float((top == base_top).mean())}
        a, top = _accuracy(model, evals, ims, _frame_runner(int8_sess))
        acc["int8 Conv"] = {"accuracy": a, "agree": float((top == base_top).mean())}
        res["accuracy"] = acc
    publish(args, "Levers", _report(args, model, res))
    return 0


def _report(args: argparse.Namespace, model: PolicyModel, r: dict[str, Any]) -> str:
    cmd = bench_command("levers")
    acc = r.get("accuracy", {})

    def acc_cells(name: str) -> str:
        a = acc.get(name)
        if a is None:
            return "not measured (pass --eval-data) | "
        return f"{100 * a['accuracy']:.2f} % | {100 * a['agree']:.2f} %"

    base = r["decode"]["full + INTER_AREA"]["ms"]
    lines = [
        "## Levers",
        "",
        f"Command: `{cmd.strip()}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: "
        f"{platform.machine()}, {os.cpu_count()} cores, onnxruntime {ort.__version__}, OpenCV "
        f"{cv2.__version__}; model `{args.model}` version `{model.version}`; "
        f"{r['frames']} generated {r['size']} frames of `{args.recording}`"
        + (
            f"; accuracy on {r['eval_frames']} frames of {' '.join(map(str, args.eval_data))}"
            if acc
            else ""
        )
        + f". Medians of {args.rounds} alternated rounds.",
        "",
        f"JPEG decode to the model's input, per frame, one thread; the model decodes with "
        f"`{model.meta.decode}` (marked); same top label = as under its own decode:",
        "",
        "| decode | ms/frame | vs full | mean abs pixel diff vs full | accuracy | same top label |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in r["decode"].items():
        mark = " **(this model's)**" if name == r["own"] else ""
        lines.append(
            f"| {name}{mark} | {row['ms']:.3f} | {row['ms'] / base:.2f}x | {row['px_diff']:.2f} | "
            f"{acc_cells(name)} |"
        )
    lines += [
        "",
        "The decode's floor: `cv2.imdecode` alone, no header walk, resize, colour order or copy "
        "(the node's in-node overhead target, 0.3 ms, includes the decode):",
        "",
        "| call | ms/frame |",
        "|---|---|",
        *(f"| {k} | {v:.3f} |" for k, v in r["imdecode"].items()),
        "",
        f"onnxruntime session options, frame graph; CPU = this process at {args.fps:g} fps, "
        "batch 1, in % of one core:",
        "",
        "| options | b1 ms | b8 ms | CPU at 1 vehicle |",
        "|---|---|---|---|",
    ]
    for name, row in r["session"].items():
        lines.append(f"| {name} | {row['b1']:.2f} | {row['b8']:.2f} | {row['cpu']:.0f} % |")
    q = r["int8"]
    lines += [
        "",
        "Static int8 quantisation of the Conv layers (QDQ, per channel, calibrated on "
        f"{args.calib_frames} frames of {' '.join(map(str, args.calib_data or [args.recording]))}"
        "; measured, not shipped):",
        "",
        "| graph | b1 ms | b8 ms | accuracy | same top label as float |",
        "|---|---|---|---|---|",
        f"| float | {q['float']['b1']:.2f} | {q['float']['b8']:.2f} | {acc_cells('own')} |",
        f"| int8 Conv ({r['int8_bytes'] / 1e6:.1f} MB) | {q['int8']['b1']:.2f} | "
        f"{q['int8']['b8']:.2f} | "
        f"{acc_cells('int8 Conv')} |",
        "",
        "| batch of 8 inputs | us |",
        "|---|---|",
        *(f"| {k} | {v:.1f} |" for k, v in r["buffers"].items()),
        "",
        "| decision serialisation | us |",
        "|---|---|",
        *(f"| {k} | {v:.1f} |" for k, v in r["serialise"].items()),
    ]
    return "\n".join(lines) + "\n"


def register_bench(bench_sub: argparse._SubParsersAction) -> None:
    p = bench_sub.add_parser("levers", help="per-frame levers side by side (decode, ort, int8)")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    p.add_argument(
        "--recording", type=Path, default=GOLDEN, help="recording file of frames to time"
    )
    p.add_argument(
        "--eval-data", type=Path, nargs="*", default=[], help="labelled recordings for accuracy"
    )
    p.add_argument("--eval-frames", type=positive_int, default=3000)
    p.add_argument(
        "--calib-data", type=Path, nargs="*", default=[], help="int8 calibration recordings"
    )
    p.add_argument("--calib-frames", type=positive_int, default=200)
    p.add_argument("--rounds", type=positive_int, default=3)
    p.add_argument("--repeats", type=positive_int, default=30, help="runs per timing")
    p.add_argument("--fps", type=positive_float, default=30.0)
    p.add_argument("--cpu-seconds", type=positive_float, default=3.0)
    add_doc_flags(p)
    p.set_defaults(func=run_levers)
