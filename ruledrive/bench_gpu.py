"""``ruledrive bench gpu``: the model on an accelerator (issue 12, part 5).

One process (and, for the last rows, several), one model, the shipped frames (generated
640x360 JPEGs), rows side by side:

1. **The frame graph alone** (what a split model runs per frame; the rule graph runs once per
   rule set) per execution provider, precision and feed, over a range of batch sizes: median
   and p99 of ``session.run`` and decisions/s = batch / median. Feeds: numpy arrays (onnxruntime
   copies them to the device every run, as the node does), IO binding (inputs already on the
   device, outputs copied back: the model's own ceiling) and, on CUDA, IO binding with the run
   captured once as a CUDA graph and replayed. fp16 is the frame graph converted by
   onnxruntime's own ``float16`` tool with float32 inputs and outputs kept; its top decision is
   compared with float32's on every timed frame.
2. **The node's batch path**: ``PolicyModel.run_encoded`` (frame graph + the reading check's
   reruns, host copies included) on decoded frames, for a rule set that makes the check rerun
   and one that does not, with and without the node's CUDA graphs (perception.cudagraph); and
   ``Decider.decide_batch`` (JPEG decode on ``--decode-threads`` CPU threads, checks, the model,
   the decision messages).
3. **The host side**: the JPEG decode alone on the same threads and on one process per core,
   and ``--replicas`` node replica processes (one Decider each, all on the same GPU) deciding
   batches side by side: what a GPU machine's CPU can feed.

Providers: ``cuda`` (onnxruntime-gpu's CUDA provider), ``tensorrt`` (its TensorRT provider,
fp16 allowed; needs TensorRT's libraries on the machine) and ``cpu`` (for reference and for
running this benchmark where there is no GPU). A provider this onnxruntime cannot bring up
gets a row saying why, not a number.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from core.errors import ConfigError
from perception.cudagraph import Bucket
from perception.image import jpeg_size, preprocess_jpeg
from perception.spec import MODEL_SPEC
from perception.splitgraph import split_model
from policy.model import PolicyModel, preload_gpu_libraries
from ruledrive.argtypes import positive_float, positive_int
from ruledrive.bench_node import RULE_TEXTS as NODE_RULE_TEXTS
from ruledrive.bench_node import golden_frames
from ruledrive.benchdoc import add_doc_flags, bench_command, publish

__all__ = ["GPU_HEADING", "frames_from", "register_bench", "run_bench", "time_runs"]

GPU_HEADING = "GPU (issue 12, part 5)"
RULE_TEXTS = tuple(NODE_RULE_TEXTS)  # bench node's rule set
# A rule set the shipped model reads surely (no reading-check rerun): the other case.
SURE_TEXTS = ("School zone: 30 km/h", "Yield to pedestrians", "No overtaking")
_S = MODEL_SPEC
_NAMES = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
_CPU = "CPUExecutionProvider"


def frames_from(path: Path) -> list[bytes]:
    """JPEG frames of a recording (``.mcap``) or of a folder of ``.jpg`` files."""
    if path.is_dir():
        frames = [p.read_bytes() for p in sorted(path.glob("*.jpg"))]
        if not frames:
            raise ConfigError(f"{path} holds no .jpg files")
        return frames
    return golden_frames(path)


def time_runs(run: Callable[[], object], seconds: float, min_runs: int = 20) -> np.ndarray:
    """Milliseconds of each call of ``run`` (after 3 untimed ones), for ``seconds`` or at least
    ``min_runs`` calls."""
    for _ in range(3):
        run()
    times: list[float] = []
    stop = time.perf_counter() + seconds
    while len(times) < min_runs or time.perf_counter() < stop:
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1e3)
        if len(times) >= 100_000:
            break
    return np.asarray(times)


@dataclass
class Row:
    what: str
    batch: int
    times_ms: np.ndarray | None = None
    note: str = ""

    def cells(self) -> str:
        if self.times_ms is None:
            return f"| {self.what} | {self.batch or '-'} | - | - | - | {self.note} |"
        med = float(np.median(self.times_ms))
        p99 = float(np.percentile(self.times_ms, 99))
        return (
            f"| {self.what} | {self.batch} | {med:.3f} | {p99:.3f} | "
            f"{self.batch / med * 1e3:,.0f} | {self.note} |"
        )


def _session(graph: bytes, provider: str, threads: int) -> ort.InferenceSession:
    """A session on ``provider`` (a short name) or a ConfigError saying why it did not come up."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if provider == "cpu":
        opts.intra_op_num_threads = threads
        return ort.InferenceSession(graph, opts, providers=[_CPU])
    name = _NAMES[provider]
    if name not in ort.get_available_providers():
        raise ConfigError(f"this onnxruntime has no {name} ({ort.get_available_providers()})")
    wanted: list[Any] = [name]
    if provider == "tensorrt":
        wanted = [(name, {"trt_fp16_enable": "True"}), "CUDAExecutionProvider"]
    try:
        sess = ort.InferenceSession(graph, opts, providers=wanted)
    except Exception as exc:  # onnxruntime's own exception types
        raise ConfigError(f"{name} does not load the graph: {exc}") from exc
    if sess.get_providers()[0] != name:
        raise ConfigError(f"{name} did not come up (its libraries are missing on this machine)")
    return sess


def _fp16(graph: bytes) -> bytes:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load_from_string(graph), keep_io_types=True)
    return bytes(model.SerializeToString())


def _feeds(images: np.ndarray, feats: np.ndarray, n: int) -> dict[str, np.ndarray]:
    idx = np.arange(n) % len(images)
    return {
        _S.image_input: np.ascontiguousarray(images[idx]),
        _S.speed_input: np.full((n, 1), 40.0, np.float32),
        _S.rule_set_output: np.repeat(feats[None], n, axis=0).astype(np.float32),
    }


def _graph_rows(
    label: str, sess: ort.InferenceSession, device: str, images, feats, args
) -> tuple[list[Row], dict[int, np.ndarray]]:
    rows, top = [], {}
    for n in args.batches:
        feeds = _feeds(images, feats, n)
        top[n] = np.asarray(sess.run([_S.output], feeds)[0]).argmax(1)
        rows.append(
            Row(
                f"{label}, numpy feeds",
                n,
                time_runs(partial(sess.run, [_S.output], feeds), args.seconds),
            )
        )
        if device == "cpu":
            continue
        io = sess.io_binding()
        for name, arr in feeds.items():
            io.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(arr, device, 0))
        io.bind_output(_S.output, "cpu")
        rows.append(
            Row(
                f"{label}, IO binding",
                n,
                time_runs(lambda io=io: sess.run_with_iobinding(io), args.seconds),  # type: ignore[misc]
            )
        )
    return rows, top


def _cuda_graph_rows(graph: bytes, plain: ort.InferenceSession, images, feats, args) -> list[Row]:
    """IO binding with the run captured once as a CUDA graph and replayed (onnxruntime's
    ``enable_cuda_graph``): every input and output at a fixed device address."""
    rows = []
    for n in [b for b in args.batches if b <= 64]:
        what = "cuda, float32, IO binding + CUDA graph"
        try:
            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            sess = ort.InferenceSession(
                graph, opts, providers=[(_NAMES["cuda"], {"enable_cuda_graph": "1"})]
            )
            feeds = _feeds(images, feats, n)
            # Shapes and the reference answers from the plain session: a plain run on the
            # graph session would be the run it captures, with numpy's buffers.
            outs = plain.run([o.name for o in sess.get_outputs()], feeds)
            # The node's binding (perception.cudagraph), inputs left on the device: the
            # replay's own time, without the node's copy of a batch into them.
            bucket = Bucket(sess, n, "cuda", feeds, outs)
            probs = bucket.outputs[_S.output]

            def run(sess=sess, io=bucket.io, probs=probs) -> np.ndarray:  # type: ignore[no-untyped-def]
                sess.run_with_iobinding(io)
                return probs.numpy()  # the decisions back on the host

            run()
            same = float(np.mean(run().argmax(1) == np.asarray(outs[0]).argmax(1)))
            rows.append(
                Row(
                    what,
                    n,
                    time_runs(run, args.seconds),
                    f"top decision = plain run's on {same:.0%}",
                )
            )
        except Exception as exc:  # not every graph can be captured: a finding
            rows.append(Row(what, n, note=f"not measured: {str(exc)[:160]}"))
    return rows


def _provider_rows(provider: str, graph: bytes, images, feats, args) -> list[Row]:
    device = "cpu" if provider == "cpu" else "cuda"
    try:
        sess = _session(graph, provider, args.cpu_threads)
    except ConfigError as exc:
        return [Row(f"{provider}, float32", 0, note=f"not measured: {exc}")]
    rows, top32 = _graph_rows(f"{provider}, float32", sess, device, images, feats, args)
    if provider == "cuda":
        rows += _cuda_graph_rows(graph, sess, images, feats, args)
    if provider == "cpu" or not args.fp16:
        return rows
    try:
        sess16 = _session(_fp16(graph), provider, args.cpu_threads)
    except Exception as exc:  # a conversion or load failure is a finding, not a crash
        return [*rows, Row(f"{provider}, fp16", 0, note=f"not measured: {exc}")]
    rows16, top16 = _graph_rows(f"{provider}, fp16", sess16, device, images, feats, args)
    same = np.mean(np.concatenate([top16[n] == top32[n] for n in args.batches]))
    for r in rows16:
        r.note = f"top decision = float32's on {same:.1%} of frames"
    return rows + rows16


def _jobs(frames: list[bytes], n: int, texts: tuple[str, ...], vid: str = "v") -> list[Any]:
    from bus.schema import FrameHeader, RuleSet
    from policy.decider import FrameJob

    now = time.time_ns()
    rules = RuleSet(vehicle_id=vid, version="1", issued_at_ns=now, rules=list(texts))
    return [
        FrameJob(
            FrameHeader(vehicle_id=vid, frame_id=i, stamp_ns=now, speed_kph=40.0),
            frames[i % len(frames)],
            rules,
        )
        for i in range(n)
    ]


def _node_rows(args, frames: list[bytes]) -> tuple[list[Row], str]:
    from policy.decider import Decider

    provider = args.node_provider
    largest = max(args.node_batches)
    try:
        models = {
            graphs: PolicyModel.load(
                args.model, provider, largest, inference_threads=0, cuda_graphs=graphs
            )
            for graphs in (True, False)
        }
    except ConfigError as exc:
        return [Row(f"node path on {provider}", 0, note=f"not measured: {exc}")], "-"
    on = models[True].provider
    images = np.stack([preprocess_jpeg(f, models[True].meta.decode) for f in frames])
    variants = [(models[True], ", CUDA graphs" if models[True].captured else "")]
    if models[True].captured is not None:
        variants.append((models[False], ", no CUDA graphs"))
    rows = []
    for texts, which in ((RULE_TEXTS, "one rule read unsure"), (SURE_TEXTS, "no rule unsure")):
        enc = models[True].encode_rules(texts)
        for n in args.node_batches:
            idx = np.arange(n) % len(images)
            ims, speeds = np.ascontiguousarray(images[idx]), np.full((n, 1), 40.0, np.float32)
            for m, note in variants:
                rows.append(
                    Row(
                        f"PolicyModel.run_encoded on {on}, {which}{note}",
                        n,
                        time_runs(partial(m.run_encoded, ims, [enc] * n, speeds), args.seconds),
                    )
                )
    for m, note in variants:
        decider = Decider(m, "bench-gpu", decode_threads=args.decode_threads)
        for n in args.node_batches:
            jobs = _jobs(frames, n, RULE_TEXTS)
            answers = decider.decide_batch(jobs)
            valid = sum(a.valid for a in answers)
            rows.append(
                Row(
                    f"Decider.decide_batch on {on}, {args.decode_threads} decode threads, "
                    f"one rule read unsure{note}",
                    n,
                    time_runs(partial(decider.decide_batch, jobs), args.seconds),
                    f"{valid} of {n} answers valid",
                )
            )
    batch = [frames[i % len(frames)] for i in range(largest)]
    decode = partial(preprocess_jpeg, decode=models[True].meta.decode)
    with ThreadPoolExecutor(args.decode_threads) as pool:
        rows.append(
            Row(
                f"JPEG decode alone, {args.decode_threads} threads of one process",
                largest,
                time_runs(lambda: list(pool.map(decode, batch)), args.seconds),
            )
        )
    rows += _process_rows(args, frames, models[True].meta.decode)
    return rows, on


def _decode_worker(frames: list[bytes], decode: str, seconds: float, q: Any) -> None:
    n, stop = 0, time.perf_counter() + seconds
    while time.perf_counter() < stop:
        for f in frames:
            preprocess_jpeg(f, decode)
        n += len(frames)
    q.put(n)


def _replica_worker(
    model: str, provider: str, frames: list[bytes], batch: int, threads: int, window, q
) -> None:  # type: ignore[no-untyped-def]
    """One node replica's Decider in its own process (its own GIL and GPU session), deciding
    batches of ``batch`` frames; counts the decisions finished inside the wall-clock window."""
    from policy.decider import Decider

    m = PolicyModel.load(model, provider, batch, inference_threads=0)
    decider = Decider(m, "replica", decode_threads=threads)
    jobs = _jobs(frames, batch, RULE_TEXTS)
    decider.decide_batch(jobs)
    while time.time() < window[0]:
        decider.decide_batch(jobs)
    done = 0
    while time.time() < window[1]:
        decider.decide_batch(jobs)
        if time.time() <= window[1]:
            done += batch
    q.put(done)


def _process_rows(args, frames: list[bytes], decode: str) -> list[Row]:  # type: ignore[no-untyped-def]
    """The host side with several processes: the JPEG decode's capacity on all cores, and
    node replicas (one Decider per process, all on the same GPU) side by side."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    cores = os.cpu_count() or 1
    rows = []
    q = ctx.Queue()
    procs = [
        ctx.Process(target=_decode_worker, args=(frames, decode, args.seconds * 3, q))
        for _ in range(cores)
    ]
    for pr in procs:
        pr.start()
    total = sum(q.get(timeout=120) for _ in procs)
    for pr in procs:
        pr.join()
    per_s = total / (args.seconds * 3)
    rows.append(
        Row(
            f"JPEG decode alone, {cores} processes",
            0,
            note=f"{per_s:,.0f} frames/s ({per_s / cores:,.0f} per core)",
        )
    )
    for n_rep in args.replicas:
        window = (
            time.time() + args.replica_start_s,
            time.time() + args.replica_start_s + args.seconds * 3,
        )
        threads = max(1, cores // n_rep)
        procs = [
            ctx.Process(
                target=_replica_worker,
                args=(
                    str(args.model),
                    args.node_provider,
                    frames,
                    args.replica_batch,
                    threads,
                    window,
                    q,
                ),
            )
            for _ in range(n_rep)
        ]
        for pr in procs:
            pr.start()
        try:
            got = [q.get(timeout=args.replica_start_s + args.seconds * 3 + 60) for _ in procs]
        except Exception as exc:  # a replica that did not report: a finding
            rows.append(
                Row(f"{n_rep} replica processes", args.replica_batch, note=f"not measured: {exc!r}")
            )
            continue
        finally:
            for pr in procs:
                pr.join(timeout=30)
                if pr.is_alive():
                    pr.kill()
        rate = sum(got) / (args.seconds * 3)
        rows.append(
            Row(
                f"{n_rep} node replica processes (Decider, {threads} decode threads each)",
                args.replica_batch,
                note=f"{rate:,.0f} decisions/s together",
            )
        )
    return rows


def run_bench(args: argparse.Namespace) -> int:
    if not args.model.is_file():
        raise ConfigError(f"model {args.model} not found; pass --model PATH")
    frames = frames_from(args.frames)
    w, h = jpeg_size(frames[0])
    parts = split_model(args.model.read_bytes())
    if parts is None:
        raise ConfigError(
            f"{args.model} has no rule-set output: this benchmark needs a split model"
        )
    if _NAMES["cuda"] in ort.get_available_providers():
        preload_gpu_libraries()  # the sessions below are made without PolicyModel
    cpu_model = PolicyModel.load(args.model, providers="cpu")
    images = np.stack([preprocess_jpeg(f, cpu_model.meta.decode) for f in frames])
    enc = cpu_model.encode_rules(RULE_TEXTS)
    assert enc.features is not None  # a split model's rule graph ran
    feats = np.asarray(enc.features, np.float32)
    rows: list[Row] = []
    for provider in args.providers:
        rows += _provider_rows(provider, parts.frame, images, feats, args)
        print(f"{provider}: done", flush=True)
    node_rows, node_provider = _node_rows(args, frames)
    rows += node_rows
    publish(args, GPU_HEADING, _report(args, rows, len(frames), f"{w}x{h}", node_provider))
    return 0


def _device_line() -> str:
    name = "no GPU seen"
    try:
        import subprocess

        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        if out.returncode == 0 and out.stdout.strip():
            name = out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError):
        pass
    return f"{name}; {os.cpu_count()} CPU cores; onnxruntime {ort.__version__}"


def _report(args, rows: list[Row], n_frames: int, size: str, node_provider: str) -> str:  # type: ignore[no-untyped-def]
    lines = [
        f"Command: `{bench_command('gpu')}`",
        "",
        f"Machine: {_device_line()}. Model `{args.model}`, {n_frames} generated {size} frames "
        f"of `{args.frames}`, rules {', '.join(RULE_TEXTS)} (the shipped model reads the "
        f"second one below the reading check's threshold, so every batch reruns the check) or "
        f"{', '.join(SURE_TEXTS)} (none rerun); each row times `--seconds "
        f"{args.seconds:g}` of back-to-back calls after 3 untimed ones (the first call of a "
        "shape also picks cuDNN's algorithms). decisions/s = batch / median; the node path's "
        f"rows ran on {node_provider}.",
        "",
        "| what | batch | median ms | p99 ms | decisions/s | note |",
        "|---|---|---|---|---|---|",
        *(r.cells() for r in rows),
    ]
    return "\n".join(lines)


def _batches(text: str) -> list[int]:
    try:
        out = [int(x) for x in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"batch sizes are integers, e.g. 1,8,64: {text!r}"
        ) from exc
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes are >= 1: {text!r}")
    return out


def _providers(text: str) -> list[str]:
    out = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in out if p not in (*_NAMES, "cpu")]
    if not out or bad:
        raise argparse.ArgumentTypeError(f"providers are cuda, tensorrt, cpu: {text!r}")
    return out


def register_bench(bench_sub: argparse._SubParsersAction) -> None:
    p = bench_sub.add_parser("gpu", help="the model on CUDA / TensorRT beside the CPU (issue 12)")
    p.add_argument("--model", type=Path, default=Path("models/ruledrive-default.onnx"))
    p.add_argument(
        "--frames",
        type=Path,
        default=Path("tests/golden/drive.mcap"),
        help="a recording or a folder of .jpg frames",
    )
    p.add_argument("--providers", type=_providers, default=["cuda", "tensorrt", "cpu"])
    p.add_argument("--batches", type=_batches, default=[1, 8, 64, 256, 1024, 4096])
    p.add_argument("--node-batches", type=_batches, default=[1, 8, 64, 256])
    p.add_argument("--node-provider", choices=("cuda", "tensorrt", "cpu", "auto"), default="cuda")
    p.add_argument("--replicas", type=_batches, default=[1, 2, 4, 8], help="replica processes")
    p.add_argument("--replica-batch", type=positive_int, default=64)
    p.add_argument(
        "--replica-start-s", type=positive_float, default=40.0, help="time allowed to load"
    )
    p.add_argument("--seconds", type=positive_float, default=1.0, help="timed seconds per row")
    p.add_argument("--cpu-threads", type=positive_int, default=os.cpu_count() or 1)
    p.add_argument("--decode-threads", type=positive_int, default=os.cpu_count() or 1)
    p.add_argument("--no-fp16", dest="fp16", action="store_false")
    add_doc_flags(p)
    p.set_defaults(func=run_bench)


def main(argv: list[str] | None = None) -> int:
    """``python -m ruledrive.bench_gpu``: the same benchmark without the rest of the CLI."""
    parser = argparse.ArgumentParser(prog="ruledrive bench")
    register_bench(parser.add_subparsers(dest="bench", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
