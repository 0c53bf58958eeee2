"""The frame graph replayed as captured CUDA graphs, one per batch bucket.

On a GPU a small batch's ``session.run`` is mostly kernel launches: measured on an H200
(docs/benchmarks.md, "GPU"), the shipped frame graph takes 0.69 ms at batch 1 run plainly and
0.22 ms replayed as a CUDA graph. onnxruntime's CUDA provider captures a session's run once
(``enable_cuda_graph``) when every input and output is bound at a fixed device address, and
replays it after that. So :class:`CapturedRunner` keeps one such session per bucket (powers of
two up to the node's largest batch), each with its inputs and outputs preallocated on the
device; a batch is padded to its bucket, copied into the bucket's inputs, replayed, and the
outputs are cut back to the batch.

A capture that fails, or whose answers differ from the plain session's on the check batch, is
not used (``build`` returns None and says why): the plain session stays. The same class runs
on the CPU provider without capture (``capture=False``), which is how the padding and binding
are tested on machines without a GPU.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnxruntime as ort

__all__ = ["Bucket", "CapturedRunner", "buckets_up_to"]

log = logging.getLogger(__name__)

# Answers of a replay and of the plain session differ by float rounding only; but each
# session picks its own cuDNN algorithms (TF32 on Hopper), so image features of a few units
# differed by 0.002 on an H200 (docs/benchmarks.md, "GPU"): relative, not absolute.
_RTOL, _ATOL = 1e-2, 2e-3


def buckets_up_to(largest: int) -> tuple[int, ...]:
    """1, 2, 4, ... up to the first power of two >= ``largest``."""
    out = [1]
    while out[-1] < largest:
        out.append(out[-1] * 2)
    return tuple(out)


class Bucket:
    """One batch size's session with every input and output bound at a fixed address on
    ``device`` (shapes from ``feeds`` and the reference outputs ``outs``); on a session made
    with ``enable_cuda_graph`` its first run captures and later runs replay."""

    def __init__(self, session: ort.InferenceSession, size: int, device: str, feeds, outs) -> None:  # type: ignore[no-untyped-def]
        self.session = session
        self.size = size
        self.lock = threading.Lock()
        self.io = session.io_binding()
        self.inputs: dict[str, Any] = {}
        for name, arr in feeds.items():
            value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(arr), device, 0)
            self.inputs[name] = value
            self.io.bind_ortvalue_input(name, value)
        self.outputs: dict[str, Any] = {}
        for o, ref in zip(session.get_outputs(), outs, strict=True):
            value = ort.OrtValue.ortvalue_from_shape_and_type(ref.shape, ref.dtype, device, 0)
            self.outputs[o.name] = value
            self.io.bind_ortvalue_output(o.name, value)

    def run(
        self, names: Sequence[str], feeds: Mapping[str, np.ndarray], n: int
    ) -> list[np.ndarray]:
        with self.lock:
            for name, value in self.inputs.items():
                arr = feeds[name]
                if n < self.size:  # pad to the bucket; the padding's answers are cut off
                    pad = np.zeros((self.size - n, *arr.shape[1:]), arr.dtype)
                    arr = np.concatenate([arr, pad])
                value.update_inplace(np.ascontiguousarray(arr))
            self.session.run_with_iobinding(self.io)
            # copies: the next run overwrites the bound buffers
            return [np.array(self.outputs[name].numpy()[:n]) for name in names]


class CapturedRunner:
    """``run(names, feeds)`` like ``InferenceSession.run`` for batches up to the largest
    bucket; None for a larger batch (the caller runs the plain session)."""

    def __init__(self, buckets: dict[int, Bucket]) -> None:
        self._buckets = buckets
        self.sizes = tuple(sorted(buckets))  # once: run() looks a batch's bucket up in it
        self.largest = self.sizes[-1]

    @classmethod
    def build(
        cls, graph: bytes, plain: ort.InferenceSession, largest: int, *, capture: bool = True
    ) -> CapturedRunner | None:
        """One captured session per bucket up to ``largest``, each checked against ``plain`` on
        random inputs, full and padded. ``capture``: the CUDA provider with graph capture
        (False: the CPU provider, no capture)."""
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if capture:
            providers: list[Any] = [("CUDAExecutionProvider", {"enable_cuda_graph": "1"})]
            device = "cuda"
        else:
            providers, device = ["CPUExecutionProvider"], "cpu"
        names = [o.name for o in plain.get_outputs()]
        rng = np.random.default_rng(0)
        buckets: dict[int, Bucket] = {}
        try:
            for size in buckets_up_to(largest):
                feeds = _random_feeds(plain, size, rng)
                # Shapes and reference answers from the plain session: a plain run on the
                # capturing session would be the one it captures, with numpy's buffers.
                want = plain.run(names, feeds)
                sess = ort.InferenceSession(graph, opts, providers=providers)
                if capture and sess.get_providers()[0] != "CUDAExecutionProvider":
                    raise RuntimeError(f"the session came up on {sess.get_providers()[0]}")
                bucket = Bucket(sess, size, device, feeds, want)
                bucket.run(names, feeds, size)  # captures
                _check(names, bucket.run(names, feeds, size), want)
                if size > 1:  # a padded batch: the first rows' answers, not the padding's
                    part = {k: v[: size - 1] for k, v in feeds.items()}
                    _check(names, bucket.run(names, part, size - 1), plain.run(names, part))
                buckets[size] = bucket
        except Exception as exc:  # onnxruntime's own types, or the check
            log.warning("frame graph not captured as CUDA graphs (%s); running it plainly", exc)
            return None
        return cls(buckets)

    def run(self, names: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray] | None:
        n = len(next(iter(feeds.values())))
        if n > self.largest or n == 0:
            return None
        size = next(s for s in self.sizes if s >= n)
        return self._buckets[size].run(names, feeds, n)


def _random_feeds(plain: ort.InferenceSession, n: int, rng: np.random.Generator) -> dict:
    feeds = {}
    for i in plain.get_inputs():
        shape = (n, *(d if isinstance(d, int) else 1 for d in i.shape[1:]))
        if i.type == "tensor(uint8)":
            feeds[i.name] = rng.integers(0, 256, shape, dtype=np.uint8)
        elif i.type == "tensor(float)":
            feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
        else:
            raise RuntimeError(f"input {i.name} of type {i.type}: no check data for it")
    return feeds


def _check(names: Sequence[str], got: Sequence[np.ndarray], want: Sequence[np.ndarray]) -> None:
    for name, g, w in zip(names, got, want, strict=True):
        if g.shape != np.shape(w):
            raise RuntimeError(f"replay gives {name} of shape {g.shape}, not {np.shape(w)}")
        if not np.allclose(g, w, rtol=_RTOL, atol=_ATOL):
            diff = float(np.max(np.abs(np.asarray(g, np.float64) - w)))
            raise RuntimeError(f"replay differs from the plain run on {name} by {diff:g}")
