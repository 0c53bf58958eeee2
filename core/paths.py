"""Output paths a user names, checked before any work, and written atomically.

A run that can only fail at its end (a directory where a file goes, a parent that is a file, a
directory this process cannot write in) is refused at its start; a file written here is whole
or absent, never half written (a reader sees the old file or the new one)."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from core.errors import ConfigError

__all__ = [
    "check_not_an_input",
    "check_output_dir",
    "check_output_file",
    "open_npz",
    "read_regular_file",
    "same_file",
    "save_npz",
    "write_atomic",
]


def _writable_dir(what: str, path: Path, directory: Path) -> None:
    """ConfigError unless ``directory`` is, or can be made, a directory this process writes in.
    Creates nothing (a temporary file at most, removed at once: ``os.access`` says yes to root
    even where writing fails, as under /proc)."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        kind = "is a file, it" if existing.is_file() else ""
        raise ConfigError(f"{what} {path}: {existing} {kind} is not a directory".replace("  ", " "))
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot write in {existing} ({exc.strerror})") from exc


def check_output_file(path: Path, what: str, create_parents: bool = True) -> None:
    """``path`` can be written as a file: not a directory nor another special file, in a
    directory this process writes in (which must exist already unless ``create_parents``)."""
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a directory; name a file")
    if path.exists() and not path.is_file():
        raise ConfigError(f"{what} {path}: exists and is not a regular file")
    parent = path.parent if str(path.parent) else Path(".")
    if not create_parents and not parent.is_dir():
        raise ConfigError(f"{what} {path}: no directory {parent}")
    _writable_dir(what, path, parent)


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (symlinks resolved; hard links too, when both exist)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def check_not_an_input(path: Path, what: str, inputs: Iterable[Path]) -> None:
    """ConfigError when the file ``path`` a command writes is one of the files it reads."""
    for source in inputs:
        if same_file(path, source):
            also = "" if str(path) == str(source) else f" (as {path})"
            raise ConfigError(f"{what} would overwrite the input {source}{also}; write elsewhere")


def read_regular_file(path: Path, limit: int, what: str) -> bytes:
    """The bytes of ``path`` if it is a regular file (or a link to one) of at most ``limit``
    bytes; ConfigError otherwise. A named pipe would hang the reader and a device such as
    /dev/zero fill its memory (their size reads 0): opened without blocking, checked on the
    open file, then read at most ``limit`` + 1 bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"{what} {path} is not a regular file")
        with os.fdopen(fd, "rb") as fh:
            fd = -1  # the file object closes it now
            data = fh.read(limit + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > limit:
        raise ConfigError(f"{what} {path}: more than {limit} bytes, too large for one")
    return data


def check_output_dir(path: Path, what: str) -> None:
    """``path`` is, or can be made, a writable directory (not a file, nor under one)."""
    _writable_dir(what, path, path)


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk and rename it over
    ``path``. ``mode``: the file's permissions (None: those of the file it replaces, else
    0644; mkstemp's own are 0600)."""
    _replace(path, lambda fh: fh.write(data), mode)


def save_npz(path: Path, **arrays: Any) -> None:
    """``numpy.savez`` of ``arrays`` to ``path`` as :func:`write_atomic` writes: a reader (or the
    next run, reading its cache back) sees the old file or the new one, never half of one, and
    a failed write leaves no temporary file behind."""
    _replace(path, lambda fh: np.savez(fh, **arrays), None)


def _replace(path: Path, write: Callable[[BinaryIO], object], mode: int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        mode = path.stat().st_mode & 0o777 if path.is_file() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def open_npz(path: Path) -> Iterator[Any]:
    """``numpy.load`` of an .npz (no pickles) on a handle of our own: numpy leaves its own handle
    open when the file is no archive. What a damaged file raises is core.errors.NPZ_ERRORS."""
    with path.open("rb") as fh, np.load(fh, allow_pickle=False) as z:
        yield z
