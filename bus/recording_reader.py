"""Read MCAP recordings (``bus.recording``): the metadata, the raw event timeline, and
the joined samples training and replay use.

Every library error is re-raised as :class:`~core.errors.RecordingError` naming the file
(and record). A sample is yielded only when its image and header are both present and decode:
never half-decoded.

A writer killed before ``close()`` leaves no summary or footer; what it ``flush()``-ed is intact.
Readers raise ``RecordingError("... truncated ...")`` on such a file after yielding what came
before the cut; with ``allow_truncated=True`` they stop there and log a WARNING naming the file
and what was recovered. "Truncated" means the reader ran out of bytes (at a record boundary or
inside a record); a CRC or decode failure with bytes still to read is corruption: it raises.
A file that does not even hold a complete MCAP header (empty, another format) is "not an MCAP
recording", never "truncated": ``allow_truncated`` does not accept it. :func:`check_recording`
runs these file checks alone (no record is read), for commands that check every input first.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import struct
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage
from mcap.exceptions import EndOfFile, McapError
from mcap.records import Channel, Footer, Message, Metadata, Schema
from mcap.stream_reader import StreamReader
from pydantic import ValidationError

from bus.recording import (
    CAMERA_CH,
    CHANNELS,
    EGO_CH,
    LABEL_CH,
    METADATA_NAME,
    RULES_CH,
    SCENE_CH,
    CameraFrame,
    Event,
    Sample,
)
from bus.schema import FrameHeader, LabelMsg, RuleSet
from bus.validation import short_detail
from core.errors import RecordingError

__all__ = [
    "RecordedFrame",
    "check_recording",
    "read_events",
    "read_frames",
    "read_metadata",
    "read_samples",
]

log = logging.getLogger(__name__)

# How long (recording time) and behind how many items a closed frame waits for its label.
LATE_LABEL_S = 5.0
MAX_WAITING = 1000


class _EofWatch:
    """A file whose reads note when they came back short: the file ended where the reader was."""

    def __init__(self, fh: Any) -> None:
        self._fh = fh
        self.hit_eof = False

    def read(self, n: int | None = -1) -> bytes:
        data: bytes = self._fh.read(n)
        if n is None or n < 0 or len(data) < n:
            self.hit_eof = True
        return data


@dataclass
class _Cut:
    """How one read of a file ended: ``reason`` is set when a truncation was allowed."""

    allowed: bool = False
    reason: str | None = None


_MCAP_MAGIC = b"\x89MCAP0\r\n"
_HEADER_OPCODE = 0x01
_RECORD_PREFIX = struct.Struct("<BQ")  # opcode, record length


def check_recording(path: str | Path) -> None:
    """Raise RecordingError naming ``path`` unless it is a readable regular file that starts
    with a complete MCAP header. Reads at most the header: the records are not checked.

    Refuses what ``open()`` would block on (a FIFO) or misreport (a directory, a symlink loop),
    and calls a file without a complete header "not an MCAP recording" (not "truncated")."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError as exc:
        why = " (a dangling symlink)" if path.is_symlink() else ""
        raise RecordingError(f"{path}: no such recording{why}") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RecordingError(f"{path}: no such recording (a symlink loop)") from exc
        raise RecordingError(f"{path}: cannot open recording ({exc.strerror})") from exc
    if stat.S_ISDIR(st.st_mode):
        raise RecordingError(f"{path}: is a directory, not an MCAP recording")
    if not stat.S_ISREG(st.st_mode):
        raise RecordingError(
            f"{path}: not a regular file (a FIFO, socket or device), not an MCAP recording"
        )
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(_MCAP_MAGIC) + _RECORD_PREFIX.size)
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read recording ({exc.strerror})") from exc
    if not head:
        raise RecordingError(f"{path}: not an MCAP recording (an empty file)")
    if head[: len(_MCAP_MAGIC)] != _MCAP_MAGIC[: len(head)]:
        raise RecordingError(f"{path}: not an MCAP recording (no MCAP magic)")
    complete = len(head) == len(_MCAP_MAGIC) + _RECORD_PREFIX.size
    if complete:
        opcode, length = _RECORD_PREFIX.unpack(head[len(_MCAP_MAGIC) :])
        complete = opcode == _HEADER_OPCODE and st.st_size >= len(head) + length
    if not complete:
        raise RecordingError(f"{path}: not an MCAP recording (no complete MCAP header)")


def _records(path: Path, cut: _Cut | None = None) -> Iterator[Any]:
    """MCAP records in file order; truncation / corruption -> RecordingError naming the file.

    With ``cut.allowed`` a truncated file just ends (``cut.reason`` says why) after its last
    complete record; records inside a chunk come only once the whole chunk passed its CRC.
    """
    cut = cut or _Cut()
    check_recording(path)  # before open(): a FIFO would block it, a directory mislead it
    watch: _EofWatch | None = None
    try:
        with open(path, "rb") as fh:
            watch = _EofWatch(fh)
            seen_footer = False
            for rec in StreamReader(cast(IO[bytes], watch), validate_crcs=True).records:
                seen_footer = seen_footer or isinstance(rec, Footer)
                yield rec
    except FileNotFoundError as exc:
        raise RecordingError(f"{path}: no such recording") from exc
    except Exception as exc:  # the mcap package also raises bare struct/lz4 errors on garbage
        if watch is not None and watch.hit_eof:
            # Out of bytes: a cut at a record boundary (EndOfFile) or inside a record (short
            # read -> struct / lz4 / CRC error). Either way the writer never finished the file.
            what = "no footer" if isinstance(exc, EndOfFile) else f"{type(exc).__name__}: {exc}"
            cut.reason = f"truncated MCAP ({what})"
            if cut.allowed:
                return
            raise RecordingError(f"{path}: {cut.reason}") from exc
        if isinstance(exc, McapError | ValueError | EOFError | OSError | KeyError | IndexError):
            raise RecordingError(f"{path}: corrupt MCAP ({type(exc).__name__}: {exc})") from exc
        raise RecordingError(f"{path}: unreadable MCAP ({type(exc).__name__}: {exc})") from exc
    if not seen_footer:  # pragma: no cover - the stream reader stops only at the footer
        cut.reason = "truncated MCAP (no footer)"
        if not cut.allowed:
            raise RecordingError(f"{path}: {cut.reason}")


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``ruledrive`` metadata record (split, seed, generator config), or {}."""
    for rec in _records(Path(path)):
        if isinstance(rec, Metadata) and rec.name == METADATA_NAME:
            return dict(rec.metadata)
    return {}


def read_events(path: str | Path, allow_truncated: bool = False) -> Iterator[Event]:
    """The raw timeline in log-time order (file order): rule sets, frames, labels, decisions.

    A truncated file raises RecordingError after its complete records, unless ``allow_truncated``:
    then it ends there with a WARNING naming the file and the number of events recovered.
    """
    path = Path(path)
    cut = _Cut(allowed=allow_truncated)
    n = 0
    for rec in _metadata_and_events(path, cut):
        if isinstance(rec, Event):
            n += 1
            yield rec
    if cut.reason:
        log.warning("%s: %s; recovered %d events", path, cut.reason, n)


def _check_channel(path: Path, ch: Channel, schemas: dict[int, Schema]) -> None:
    want = CHANNELS.get(ch.topic)
    schema = schemas.get(ch.schema_id)
    got = schema.name if schema else None
    if want is None or got != want.schema_name:
        raise RecordingError(
            f"{path}: channel {ch.topic!r} with schema {got!r} is not a "
            f"ruledrive channel (expected one of {sorted(CHANNELS)})"
        )


def _decode(path: Path, topic: str, rec: Message) -> Any:
    where = f"{path}: {topic} record at log time {rec.log_time}"
    try:
        channel = CHANNELS[topic]
        if channel.encoding == "protobuf":
            img = CompressedImage.FromString(rec.data)
            vid, _, fid = img.frame_id.rpartition("/")
            if (
                img.format != "jpeg"
                or not vid
                or not (fid.isascii() and fid.isdigit())
                or not img.data
            ):
                raise RecordingError(
                    f"{where}: bad camera frame (format {img.format!r}, "
                    f"frame_id {img.frame_id!r}, {len(img.data)} bytes)"
                )
            return CameraFrame(vid, int(fid), img.timestamp.ToNanoseconds(), bytes(img.data))
        model = channel.model
        if model is None:
            return _scene(where, json.loads(rec.data))
        return model.model_validate_json(rec.data)
    except RecordingError:
        raise
    except ValidationError as exc:  # one line: the fields and what is wrong with them
        raise RecordingError(f"{where}: invalid ({short_detail(exc)})") from exc
    except Exception as exc:  # protobuf DecodeError, JSON errors included
        raise RecordingError(f"{where}: cannot decode ({type(exc).__name__}: {exc})") from exc


def _scene(where: str, obj: Any) -> dict[str, Any]:
    """A /scene record, checked: the join keys it on (vehicle_id, frame_id)."""
    if not isinstance(obj, dict):
        raise RecordingError(f"{where}: scene record is not an object")
    vid, fid, scene = obj.get("vehicle_id"), obj.get("frame_id"), obj.get("scene")
    if not isinstance(vid, str):
        raise RecordingError(f"{where}: scene record vehicle_id {vid!r} is not a string")
    if not isinstance(fid, int) or isinstance(fid, bool):
        raise RecordingError(f"{where}: scene record frame_id {fid!r} is not a whole number")
    if scene is not None and not isinstance(scene, dict):
        raise RecordingError(f"{where}: scene record scene {scene!r:.40} is not an object")
    return obj


@dataclass
class _Partial:
    image: CameraFrame | None = None
    header: FrameHeader | None = None
    label: LabelMsg | None = None
    scene: dict[str, Any] | None = None
    rules: RuleSet | None = None
    closed_at: int | None = None  # log time its vehicle's next frame started


def read_samples(
    paths: str | Path | Iterable[str | Path],
    require_labels: bool = False,
    allow_truncated: bool = False,
) -> Iterator[Sample]:
    """Samples of one or more recordings, in recording order.

    A frame joins its image (/camera/front), header (/ego), the latest rule set of its vehicle
    and its label. With ``require_labels`` a frame without a label is a RecordingError.

    A truncated file (a killed writer) raises RecordingError after the samples before the cut,
    unless ``allow_truncated``: then it yields every complete sample and logs a WARNING naming
    the file and the count. Frames still open at the cut are yielded only if complete (image and
    header, and a label under ``require_labels``); the others are dropped, never half-decoded.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    for p in paths:
        path = Path(p)
        split = ""
        for item in _joined(path, require_labels, allow_truncated):
            if isinstance(item, Metadata):
                split = item.metadata.get("split", "") if item.name == METADATA_NAME else split
            elif isinstance(item, RecordedFrame):
                h, rs, lab = item.header, item.rules, item.label
                yield Sample(
                    vehicle_id=h.vehicle_id,
                    frame_id=h.frame_id,
                    stamp_ns=h.stamp_ns,
                    speed_kph=h.speed_kph,
                    jpeg=item.jpeg,
                    rules=tuple(rs.rules) if rs else (),
                    rules_version=rs.version if rs else None,
                    label=lab.decision if lab else None,
                    reason=lab.reason if lab else None,
                    split=split,
                    source=str(path),
                    scene=item.scene,
                )


@dataclass(frozen=True)
class RecordedFrame:
    """One recorded frame joined with its label, scene and the rule set in force at capture."""

    header: FrameHeader
    jpeg: bytes
    label: LabelMsg | None
    rules: RuleSet | None
    scene: dict[str, Any] | None


def read_frames(
    path: str | Path, allow_truncated: bool = False
) -> Iterator[RuleSet | RecordedFrame]:
    """A recording's rule sets and joined frames in recording order (the join read_samples
    uses; replay builds its drives from it). Frames without a label have ``label=None``."""
    for item in _joined(Path(path), False, allow_truncated):
        if not isinstance(item, Metadata):
            yield item


def _joined(
    path: Path, require_labels: bool, allow_truncated: bool = False
) -> Iterator[Metadata | RuleSet | RecordedFrame]:
    """The one join of frames to images, headers, labels, scenes and rule sets: Metadata records
    as they come; RuleSet records and frames in recording order, a frame once its vehicle's next
    frame started (or the file ended) and its label is in.

    A label travels on its own topic, at another QoS than its frame, so the broker may deliver
    it after the vehicle's next frame (a QoS 1 message waits for the in-flight window, a QoS 0
    one does not): a closed frame without a label waits up to ``LATE_LABEL_S`` of recording
    time (and behind it at most ``MAX_WAITING`` items) for it, keeping the order. A recording
    without labels yields every frame ``LATE_LABEL_S`` later than it could, nothing else."""
    cut = _Cut(allowed=allow_truncated)
    n_yielded = 0
    late = 0
    rules: dict[str, RuleSet] = {}
    pending: dict[tuple[str, int], _Partial] = {}  # the frame each (vehicle, id) now names
    current: dict[str, tuple[str, int]] = {}
    # Rule sets and closed frames (their vehicle moved on), in recording order; a frame leaves
    # once it has its label or has waited long enough.
    closed: deque[RuleSet | tuple[tuple[str, int], _Partial]] = deque()
    now = 0

    def flush(key: tuple[str, int], part: _Partial) -> RecordedFrame:
        if pending.get(key) is part:
            del pending[key]
        where = f"{path}: frame {key[0]}/{key[1]}"
        if part.image is None or part.header is None:
            raise RecordingError(f"{where} has no {'image' if part.image is None else 'header'}")
        if require_labels and part.label is None:
            raise RecordingError(
                f"{where} has no label (none recorded within {LATE_LABEL_S:g} s after the"
                " vehicle's next frame)"
            )
        return RecordedFrame(part.header, part.image.jpeg, part.label, part.rules, part.scene)

    def close(key: tuple[str, int]) -> None:
        part = pending[key]
        if part.closed_at is None:
            part.closed_at = now
            closed.append((key, part))

    def partial(vid: str, fid: int) -> _Partial:
        key = (vid, fid)
        part = pending.get(key)
        if part is not None and part.closed_at is not None:
            # The vehicle numbers its frames again (a second replay): the waiting frame is
            # finished as it is (out of ``pending``, it takes no more parts), this is a new one.
            del pending[key]
            part = None
        if part is None:
            old = current.get(vid)
            if old is not None and old in pending:
                close(old)
            part = pending[key] = _Partial(rules=rules.get(vid))
            current[vid] = key
        return part

    def ready() -> Iterator[RuleSet | RecordedFrame]:
        while closed:
            head = closed[0]
            if isinstance(head, tuple):
                key, part = head
                assert part.closed_at is not None
                if (
                    part.label is None
                    and pending.get(key) is part  # not superseded by a frame of the same id
                    and now - part.closed_at < LATE_LABEL_S * 1e9
                    and len(closed) <= MAX_WAITING
                ):
                    return
                closed.popleft()
                yield flush(key, part)
            else:
                closed.popleft()
                yield head

    def on_rules(msg: RuleSet) -> None:
        rules[msg.vehicle_id] = msg
        closed.append(msg)

    def on_image(msg: CameraFrame) -> None:
        partial(msg.vehicle_id, msg.frame_id).image = msg

    def on_header(msg: FrameHeader) -> None:
        partial(msg.vehicle_id, msg.frame_id).header = msg

    def on_label(msg: LabelMsg) -> None:
        nonlocal late
        part = pending.get((msg.vehicle_id, msg.frame_id))
        if part is not None:
            part.label = msg
        else:
            late += 1

    def on_scene(msg: dict[str, Any]) -> None:
        part = pending.get((msg["vehicle_id"], msg["frame_id"]))  # types checked by _scene
        if part is not None:
            part.scene = msg.get("scene")

    handlers: dict[str, Any] = {
        RULES_CH: on_rules,
        CAMERA_CH: on_image,
        EGO_CH: on_header,
        LABEL_CH: on_label,
        SCENE_CH: on_scene,
    }
    for rec in _metadata_and_events(path, cut):
        if isinstance(rec, Metadata):
            yield rec
            continue
        now = max(now, rec.log_time_ns)
        handler = handlers.get(rec.channel)  # decisions, status, errors: not part of a sample
        if handler is not None:
            handler(rec.message)
        for item in ready():
            n_yielded += isinstance(item, RecordedFrame)
            yield item
    if late:
        log.warning(
            "%s: %d labels came for frames already closed or never recorded (ignored)", path, late
        )
    # The file ended: every frame is closed, in order (those still open last).
    for key in list(pending):
        close(key)
    if cut.reason is None:
        for head in closed:
            yield flush(*head) if isinstance(head, tuple) else head
        return
    # Cut short: the frames still open may have lost their image, header or label to the cut.
    dropped = 0
    for head in closed:
        if not isinstance(head, tuple):
            yield head
            continue
        part = head[1]
        if part.image is None or part.header is None or (require_labels and part.label is None):
            dropped += 1
            continue
        n_yielded += 1
        yield flush(*head)
    log.warning(
        "%s: %s; recovered %d samples (%d incomplete frames at the cut dropped)",
        path,
        cut.reason,
        n_yielded,
        dropped,
    )


def _metadata_and_events(path: Path, cut: _Cut | None = None) -> Iterator[Any]:
    """read_events, interleaved with the Metadata records where they occur."""
    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    for rec in _records(path, cut):
        if isinstance(rec, Metadata):
            yield rec
        elif isinstance(rec, Schema):
            schemas[rec.id] = rec
        elif isinstance(rec, Channel):
            _check_channel(path, rec, schemas)
            channels[rec.id] = rec
        elif isinstance(rec, Message):
            ch = channels.get(rec.channel_id)
            if ch is None:
                raise RecordingError(
                    f"{path}: message at {rec.log_time} on unknown channel id {rec.channel_id}"
                )
            yield Event(ch.topic, rec.log_time, _decode(path, ch.topic, rec))
