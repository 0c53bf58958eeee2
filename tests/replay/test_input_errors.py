"""Bad inputs and outputs of ``ruledrive replay`` / ``ruledrive record`` / the recording reader:
refused up front with one line (``ruledrive: error: ...`` exit 1 for data, ``ruledrive:
configuration error: ...`` exit 2 for flags), before a node starts or ``--out`` is touched, and
never overwriting an input or an earlier report."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

import ruledrive.replay_cli as replay_cli
from bus.recording_reader import read_samples
from bus.recording_writer import RecordingWriter
from bus.schema import DecisionLabel, FrameHeader, LabelMsg
from core.errors import ConfigError, DataError, RecordingError
from replay.drives import MAX_VEHICLES, load_drives, plan_lanes
from replay.golden import load_reference, write_reference
from ruledrive.cli import build_parser, main
from simulator.render import render_jpeg
from simulator.scene import Scene
from tests.policy.fakemodel import build_fake_model

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "drive.mcap"
REPORT_FILES = ("report.json", "decisions.jsonl", "latency_hist.png", "confusion.png")


@pytest.fixture(scope="module")
def fake_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fake_model(tmp_path_factory.mktemp("model") / "fake.onnx")


def one_line(err: str, start: str) -> str:
    assert "Traceback" not in err and "errors.pydantic.dev" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("ruledrive")]
    assert len(lines) == 1, err
    assert lines[0].startswith(start), lines[0]
    return lines[0]


def replay_argv(model: Path, out: Path, *recordings: Path | str) -> list[str]:
    return [
        "replay",
        *map(str, recordings),
        "--bus",
        "memory",
        "--serve-model",
        str(model),
        "--rate",
        "max",
        "--limit",
        "10",
        "--no-progress",
        "--out",
        str(out),
    ]


@pytest.fixture
def no_node(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records whether the replay got as far as making its bus (and node)."""
    started: list[str] = []
    real = replay_cli._make_bus

    def spy(args: argparse.Namespace, stack: Any) -> Any:
        started.append("bus")
        return real(args, stack)

    monkeypatch.setattr(replay_cli, "_make_bus", spy)
    return started


# -- 1. an output that is an input -----------------------------------------------------------------


def test_update_reference_onto_the_input_recording_is_refused(
    tmp_path: Path, fake_model: Path, no_node: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    own = tmp_path / "own.mcap"
    shutil.copy(GOLDEN, own)
    out = tmp_path / "out"
    argv = replay_argv(fake_model, out, own)
    assert main([*argv, "--update-reference", str(own)]) == 2
    line = one_line(capsys.readouterr().err, "ruledrive: configuration error: --update-reference")
    assert "would overwrite the input recording" in line
    # Another spelling of the same file (a symlink) is the same file.
    link = tmp_path / "link.json"
    link.symlink_to(own)
    assert main([*argv, "--update-reference", str(link)]) == 2
    assert own.read_bytes() == GOLDEN.read_bytes()
    assert not out.exists() and not no_node


def test_out_file_onto_the_input_recording_is_refused(
    tmp_path: Path, fake_model: Path, no_node: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    rec = out / "decisions.jsonl"  # an odd name, but an input all the same
    shutil.copy(GOLDEN, rec)
    assert main(replay_argv(fake_model, out, rec)) == 2
    assert "--out would overwrite the input recording" in one_line(
        capsys.readouterr().err, "ruledrive: configuration error:"
    )
    assert rec.read_bytes() == GOLDEN.read_bytes() and not no_node


# -- 2. record over an existing recording ----------------------------------------------------------


def test_record_refuses_an_existing_file_without_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import replay.recorder

    calls: list[Path] = []
    monkeypatch.setattr(
        replay.recorder, "run_recorder", lambda out, **_: calls.append(out) or {"files": []}
    )
    old = tmp_path / "old.mcap"
    shutil.copy(GOLDEN, old)
    argv = ["record", "--out", str(old), "--mqtt-url", "mqtt://127.0.0.1:1"]
    assert main(argv) == 2
    line = one_line(capsys.readouterr().err, "ruledrive: configuration error: --out ")
    assert "exists; pass --force" in line
    assert old.read_bytes() == GOLDEN.read_bytes() and not calls
    # Rotated files: FILE-NNNN.mcap beside --out are what it would overwrite.
    (tmp_path / "rot-0002.mcap").write_bytes(b"x")
    rot = ["record", "--out", str(tmp_path / "rot.mcap"), "--rotate-s", "5"]
    assert main(rot) == 2
    assert "rot-0002.mcap exists; pass --force" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0 and calls == [old]
    assert main([*rot, "--force"]) == 0


def test_record_into_a_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["record", "--out", str(tmp_path), "--force"]) == 2
    assert "is a directory" in one_line(capsys.readouterr().err, "ruledrive: configuration error")


# -- 3. a bad input never starts a node nor touches --out ------------------------------------------


def _bad_inputs(tmp: Path) -> dict[str, list[Path]]:
    empty = tmp / "empty.mcap"
    empty.write_bytes(b"")
    rand = tmp / "random.bin"
    rand.write_bytes(os.urandom(4096))
    (tmp / "dir").mkdir()
    return {
        "no such recording": [tmp / "nonexist.mcap"],
        "is a directory": [tmp / "dir"],
        "not an MCAP recording (an empty file)": [empty],
        "random.bin: not an MCAP recording": [GOLDEN, rand],
    }


def test_bad_recording_leaves_the_earlier_report(
    tmp_path: Path, fake_model: Path, no_node: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(replay_argv(fake_model, out, GOLDEN)) == 0
    before = {name: (out / name).read_bytes() for name in REPORT_FILES}
    stamps = {name: (out / name).stat().st_mtime_ns for name in REPORT_FILES}
    no_node.clear()
    capsys.readouterr()
    for want, recordings in _bad_inputs(tmp_path).items():
        assert main(replay_argv(fake_model, out, *recordings)) == 1, want
        line = one_line(capsys.readouterr().err, "ruledrive: error: ")
        assert want in line and "FAIL" not in line
        assert not no_node, f"{want}: a node was started"
    assert {name: (out / name).read_bytes() for name in REPORT_FILES} == before
    assert {name: (out / name).stat().st_mtime_ns for name in REPORT_FILES} == stamps


def test_load_drives_checks_every_file_before_reading_any(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bus.recording_reader as reader

    read: list[str] = []
    real = reader.read_frames
    monkeypatch.setattr(reader, "read_frames", lambda p, **k: read.append(str(p)) or real(p, **k))
    with pytest.raises(RecordingError, match="nonexist.mcap: no such recording"):
        load_drives([GOLDEN, tmp_path / "nonexist.mcap"])
    assert read == []


# -- 5. references: read before the replay, written after a check, atomically ----------------------


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("{bad", "not JSON"),
        ("[]", "not a replay reference"),
        ('{"decisions": 5}', "not a replay reference"),
        ('{"decisions": [{"vehicle_id": "v", "frame_id": "1"}]}', "decisions[0]"),
        ('{"decisions": [7]}', "decisions[0]"),
    ],
)
def test_bad_reference_is_a_data_error(tmp_path: Path, text: str, want: str) -> None:
    ref = tmp_path / "ref.json"
    ref.write_text(text)
    with pytest.raises(DataError, match=re.escape(f"ref.json: {want}")):
        load_reference(ref)


def test_reference_that_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.json: no such file"):
        load_reference(tmp_path / "nope.json")
    with pytest.raises(DataError, match="is a directory"):
        load_reference(tmp_path)
    os.mkfifo(tmp_path / "fifo.json")  # read_text() would wait for a writer forever
    with pytest.raises(DataError, match="fifo.json: not a regular file"):
        load_reference(tmp_path / "fifo.json")


def test_bad_reference_fails_before_the_replay(
    tmp_path: Path, fake_model: Path, no_node: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    ref = tmp_path / "ref.json"
    ref.write_text("{bad")
    out = tmp_path / "out"
    for path in (ref, tmp_path / "nope.json", tmp_path):
        assert main([*replay_argv(fake_model, out, GOLDEN), "--reference", str(path)]) == 1
        one_line(capsys.readouterr().err, "ruledrive: error: reference ")
    assert not out.exists() and not no_node


@pytest.mark.parametrize("where", ["proc", "dir", "under_a_file"])
def test_unwritable_update_reference_fails_before_the_replay(
    tmp_path: Path,
    fake_model: Path,
    no_node: list[str],
    capsys: pytest.CaptureFixture[str],
    where: str,
) -> None:
    (tmp_path / "file").write_text("x")
    dest = {
        "proc": Path("/proc/ref.json"),
        "dir": tmp_path,
        "under_a_file": tmp_path / "file" / "ref.json",
    }[where]
    out = tmp_path / "out"
    assert main([*replay_argv(fake_model, out, GOLDEN), "--update-reference", str(dest)]) == 2
    one_line(capsys.readouterr().err, "ruledrive: configuration error: --update-reference ")
    assert not out.exists() and not no_node


def test_update_and_compare_one_reference_compares_with_the_old_one(
    tmp_path: Path, fake_model: Path
) -> None:
    ref = tmp_path / "ref.json"
    argv = replay_argv(fake_model, tmp_path / "out", GOLDEN)
    assert main([*argv, "--update-reference", str(ref)]) == 0
    doc = json.loads(ref.read_text())
    doc["decisions"][0]["decision"] = "NOT_A_DECISION"
    ref.write_text(json.dumps(doc))
    # The new reference is written, but this replay is compared with the one it replaces.
    assert main([*argv, "--reference", str(ref), "--update-reference", str(ref)]) == 1
    assert "NOT_A_DECISION" not in ref.read_text()


def test_write_reference_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.paths  # the atomic write replay.golden uses

    ref = tmp_path / "ref.json"
    ref.write_text("old")

    def fail(*_a: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(core.paths.os, "replace", fail)
    with pytest.raises(OSError):
        write_reference(ref, [], [GOLDEN])
    assert ref.read_text() == "old" and sorted(tmp_path.iterdir()) == [ref]
    monkeypatch.undo()
    write_reference(ref, [], [GOLDEN])
    assert json.loads(ref.read_text())["decisions"] == []
    assert ref.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


# -- 6. bounds: vehicles, rate, FIFOs --------------------------------------------------------------


def _parse(*extra: str) -> argparse.Namespace:
    return build_parser().parse_args(["replay", "x.mcap", *extra])


def test_vehicles_and_rate_bounds(capsys: pytest.CaptureFixture[str]) -> None:
    assert _parse("--vehicles", str(MAX_VEHICLES)).vehicles == MAX_VEHICLES
    assert _parse("--rate", "0.01").rate == 0.01
    assert main(["replay", "x.mcap", "--vehicles", "1000000"]) == 2
    assert f"--vehicles: must be at most {MAX_VEHICLES}" in capsys.readouterr().err
    for slow in ("1e-300", "0.001"):
        assert main(["replay", "x.mcap", "--rate", slow]) == 2
        assert "--rate: must be at least 0.01" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="at most"):
        plan_lanes([], MAX_VEHICLES + 1)


def test_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "f.mcap"
    os.mkfifo(fifo)
    errors: list[BaseException] = []

    def read() -> None:
        try:
            list(read_samples(fifo))
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(5)
    if t.is_alive():  # blocked in open(): let it go, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        t.join(5)
        pytest.fail("reading a FIFO blocked in open()")
    assert len(errors) == 1 and isinstance(errors[0], RecordingError)
    assert "not a regular file" in str(errors[0])


# -- 4 and 7. one clear line for what a recording holds --------------------------------------------


@pytest.mark.parametrize(
    ("data", "want"),
    [
        (b"", "(an empty file)"),
        (b"\x89MCAP0\r\n", "(no complete MCAP header)"),
        (b"hello", "(no MCAP magic)"),
    ],
)
def test_not_mcap_is_not_called_truncated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes, want: str
) -> None:
    path = tmp_path / "x.mcap"
    path.write_bytes(data)
    with pytest.raises(RecordingError, match=re.escape(f"not an MCAP recording {want}")):
        list(read_samples(path, allow_truncated=True))
    assert main(["scenes", "show", str(path), "--allow-truncated"]) == 1
    line = one_line(capsys.readouterr().err, "ruledrive: error: ")
    assert "not an MCAP recording" in line and "truncated" not in line


def test_directory_and_symlink_loop_are_named_plainly(
    tmp_path: Path, fake_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loop = tmp_path / "loop.mcap"
    loop.symlink_to(loop)
    with pytest.raises(RecordingError, match=r"loop\.mcap: no such recording \(a symlink loop\)"):
        list(read_samples(loop))
    with pytest.raises(RecordingError, match="is a directory, not an MCAP recording"):
        list(read_samples(tmp_path))
    assert main(replay_argv(fake_model, tmp_path / "out", loop)) == 1
    assert "no such recording (a symlink loop)" in one_line(capsys.readouterr().err, "ruledrive")


def _scene_recording(path: Path, frame_id: object) -> Path:
    with RecordingWriter(path) as w:
        w.write_frame(
            FrameHeader(vehicle_id="car", frame_id=1, stamp_ns=10, speed_kph=0.0),
            render_jpeg(Scene()),
        )
        obj = {"vehicle_id": "car", "frame_id": frame_id, "scene": {}}
        w._write("/scene", json.dumps(obj).encode(), 11)
    return path


@pytest.mark.parametrize("frame_id", ["abc", [1], None, True])
def test_scene_frame_id_not_a_number_is_a_data_error(
    tmp_path: Path, fake_model: Path, capsys: pytest.CaptureFixture[str], frame_id: object
) -> None:
    path = _scene_recording(tmp_path / "s.mcap", frame_id)
    with pytest.raises(RecordingError, match=r"s\.mcap: /scene record at log time 11: .*frame_id"):
        list(read_samples(path))
    assert main(["scenes", "show", str(path)]) == 1
    assert "frame_id" in one_line(capsys.readouterr().err, "ruledrive: error: ")
    assert main(replay_argv(fake_model, tmp_path / "out", path)) == 1
    assert "/scene record" in one_line(capsys.readouterr().err, "ruledrive: error: ")


def test_scene_other_fields_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "v.mcap"
    with RecordingWriter(path) as w:
        w._write("/scene", json.dumps({"vehicle_id": 5, "frame_id": 1}).encode(), 3)
    with pytest.raises(RecordingError, match="vehicle_id 5 is not a string"):
        list(read_samples(path))
    with RecordingWriter(path) as w:
        w._write("/scene", json.dumps({"vehicle_id": "c", "frame_id": 1, "scene": 4}).encode(), 3)
    with pytest.raises(RecordingError, match="scene 4 is not an object"):
        list(read_samples(path))


def test_camera_frame_id_must_be_ascii_digits(tmp_path: Path) -> None:
    from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage

    path = tmp_path / "c.mcap"
    with RecordingWriter(path) as w:
        img = CompressedImage(format="jpeg", data=b"\xff\xd8", frame_id="car/\u00b2")
        w._write("/camera/front", img.SerializeToString(), 3)
    with pytest.raises(RecordingError, match="bad camera frame"):
        list(read_samples(path))


@pytest.mark.parametrize(
    ("channel", "payload", "field"),
    [
        ("/ego", b'{"vehicle_id": "x"}', "frame_id: Field required"),
        ("/ego", b"{bad", "Invalid JSON"),
        (
            "/label",
            LabelMsg(vehicle_id="car", frame_id=1, stamp_ns=1, decision=DecisionLabel.STOP)
            .model_dump_json()
            .replace('"STOP"', '"FLY"')
            .encode(),
            "decision: Input should be",
        ),
        (
            "/rules",
            json.dumps(
                {"vehicle_id": "car", "version": "v", "issued_at_ns": 1, "rules": ["x" * 201]}
            ).encode(),
            "rules.0: String should have at most",
        ),
    ],
)
def test_invalid_record_is_one_line_naming_file_record_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], channel: str, payload: bytes, field: str
) -> None:
    path = tmp_path / "p.mcap"
    with RecordingWriter(path) as w:
        w._write(channel, payload, 7)
    with pytest.raises(RecordingError) as info:
        list(read_samples(path))
    msg = str(info.value)
    assert "\n" not in msg and "errors.pydantic.dev" not in msg, msg
    assert msg.startswith(f"{path}: {channel} record at log time 7: ") and field in msg, msg
    assert main(["scenes", "show", str(path)]) == 1
    assert field in one_line(capsys.readouterr().err, "ruledrive: error: ")
