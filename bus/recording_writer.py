"""Write MCAP recordings in the format of ``bus.recording`` (the simulator's generator and
the bus recorder both use this writer, so ``ruledrive train`` reads either).

A writer killed before ``close()`` leaves no summary or footer; what it ``flush()``-ed is intact
and readable with ``allow_truncated`` (``bus.recording_reader``).
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any, BinaryIO

from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage
from mcap.writer import CompressionType, Writer
from mcap_protobuf.schema import register_schema
from pydantic import BaseModel

from bus.recording import CAMERA_CH, CHANNELS, EGO_CH, METADATA_NAME, SCENE_CH
from bus.schema import DecisionMsg, FrameHeader, LabelMsg, RuleSet
from bus.topics import CAMERA, DECISION, LABEL, RULES, Topic
from core.errors import RecordingError

__all__ = ["RecordingWriter"]


class RecordingWriter:
    """Write one MCAP recording; use as a context manager (``finish`` writes the index)."""

    def __init__(
        self, path: str | Path, metadata: dict[str, str] | None = None, chunk_size: int = 1 << 20
    ) -> None:
        self.path = Path(path)
        self._fh = _open_exclusive(self.path)
        self._w = Writer(self._fh, chunk_size=chunk_size, compression=_compression())
        self._w.start(profile="", library="ruledrive")
        if metadata is not None:
            # Metadata first, so a streaming reader knows the split before any sample.
            self._w.add_metadata(METADATA_NAME, {k: str(v) for k, v in metadata.items()})
        self._channels: dict[str, int] = {}
        self._closed = False

    def _channel(self, name: str) -> int:
        if name not in self._channels:
            ch = CHANNELS[name]
            if ch.encoding == "protobuf":
                sid = register_schema(self._w, CompressedImage)
            else:
                schema = ch.model.model_json_schema() if ch.model else {"type": "object"}
                sid = self._w.register_schema(
                    ch.schema_name, "jsonschema", json.dumps(schema).encode()
                )
            self._channels[name] = self._w.register_channel(name, ch.encoding, sid)
        return self._channels[name]

    def _write(self, channel: str, data: bytes, log_time_ns: int) -> None:
        self._w.add_message(
            self._channel(channel), log_time=log_time_ns, data=data, publish_time=log_time_ns
        )

    def write(
        self, topic: Topic, message: BaseModel, jpeg: bytes = b"", log_time_ns: int | None = None
    ) -> None:
        """Record one bus message on its topic's channel (``bus.topics.Topic.channel``).

        A frame (the camera topic) becomes two records, image and header, at its capture time;
        other messages are logged at ``log_time_ns``, by default their own time (``issued_at_ns``
        for rule sets, else ``stamp_ns``).
        """
        if topic is CAMERA:
            assert isinstance(message, FrameHeader)
            self.write_frame(message, jpeg)
            return
        if log_time_ns is None:
            log_time_ns = message.issued_at_ns if topic is RULES else message.stamp_ns  # type: ignore[attr-defined]
        self._write(topic.channel, message.model_dump_json().encode(), log_time_ns)

    def write_rules(self, rules: RuleSet, log_time_ns: int | None = None) -> None:
        self.write(RULES, rules, log_time_ns=log_time_ns)

    def write_frame(self, header: FrameHeader, jpeg: bytes) -> None:
        img = CompressedImage(
            format="jpeg", data=jpeg, frame_id=f"{header.vehicle_id}/{header.frame_id}"
        )
        img.timestamp.FromNanoseconds(header.stamp_ns)
        self._write(CAMERA_CH, img.SerializeToString(), header.stamp_ns)
        self._write(EGO_CH, header.model_dump_json().encode(), header.stamp_ns)

    def write_label(self, label: LabelMsg, log_time_ns: int | None = None) -> None:
        self.write(LABEL, label, log_time_ns=log_time_ns)

    def write_decision(self, decision: DecisionMsg, log_time_ns: int | None = None) -> None:
        self.write(DECISION, decision, log_time_ns=log_time_ns)

    def write_scene(
        self, vehicle_id: str, frame_id: int, stamp_ns: int, scene: dict[str, Any]
    ) -> None:
        obj = {"vehicle_id": vehicle_id, "frame_id": frame_id, "scene": scene}
        self._write(SCENE_CH, json.dumps(obj, sort_keys=True).encode(), stamp_ns)

    def flush(self) -> None:
        """Finish the open chunk and push it to the OS: a process killed after this leaves a file
        readable (with ``allow_truncated``) up to here. Costs compression ratio if called often."""
        if self._closed:
            return
        try:
            self._w.flush()
        except OSError as exc:
            raise RecordingError(f"{self.path}: cannot write recording: {exc}") from exc

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._w.finish()
            self._fh.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_exclusive(path: Path) -> BinaryIO:
    """Open ``path`` for writing, holding an exclusive lock until it is closed.

    Two writers on one file (two generators started on one directory) interleave their chunks
    into a file that reads back as garbage or, worse, as a valid recording of nothing; the
    second writer is refused instead, before it truncates the first one's data.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError as exc:
        raise RecordingError(f"{path}: cannot create recording: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise RecordingError(
            f"{path}: another process is writing this recording (two generators or recorders "
            "on one file?); wait for it or write elsewhere"
        ) from exc
    os.ftruncate(fd, 0)
    return os.fdopen(fd, "wb")


def _compression() -> CompressionType:
    try:
        import lz4  # noqa: F401 - only whether it is installed
    except ImportError:  # pragma: no cover - lz4 ships with mcap's usual installs
        return CompressionType.NONE
    return CompressionType.LZ4
