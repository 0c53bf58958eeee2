"""Checks on output paths a user names, made before any work: a run that can only fail at its
end (a directory where a file goes, a parent that does not exist) is refused at its start."""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import ConfigError

__all__ = ["check_output_dir", "check_output_file"]


def check_output_file(path: Path, what: str) -> None:
    """``path`` can be written as a file: not a directory, its parent a writable directory."""
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a directory; name a file")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"{what} {path}: no directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path}: cannot write in {parent}")


def check_output_dir(path: Path, what: str) -> None:
    """``path`` is, or can be made, a writable directory (not a file, nor under one)."""
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                raise ConfigError(f"{what} {path}: {p} is a file, not a directory")
            if not os.access(p, os.W_OK | os.X_OK):
                raise ConfigError(f"{what} {path}: cannot write in {p}")
            return
