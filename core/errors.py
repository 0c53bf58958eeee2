"""The one exception tree of ruledrive.

::

    RuledriveError
    ├── ConfigError          bad flag / env / config file / model metadata: stops start-up
    ├── DataError            bad recording, bad data set, bad rule or scene parameter
    │   └── RecordingError   corrupt / truncated MCAP, unknown channel schema, missing labels
    ├── MessageError         one bad bus message: rejected, counted, reported; never fatal
    │   └── ImageDecodeError undecodable / empty JPEG (bad_image), or one declaring too many
    │                        pixels (image_too_large)
    ├── ModelError           model missing, unloadable, or not matching the contract
    ├── BusError             broker unreachable, publish failed (wraps paho errors)
    └── TrainingError        training / export / parity failures

Library errors are wrapped (``raise BusError(...) from exc``) so callers catch one tree.
A crash that is none of these is logged and re-raised, never swallowed.
"""

from __future__ import annotations

import zipfile

from core.rejects import RejectCode

__all__ = [
    "NPZ_ERRORS",
    "BusError",
    "ConfigError",
    "DataError",
    "ImageDecodeError",
    "MessageError",
    "ModelError",
    "RecordingError",
    "RuledriveError",
    "TrainingError",
]


class RuledriveError(Exception):
    """Base of every error ruledrive raises on purpose."""


class ConfigError(RuledriveError):
    """A setting, flag, config file or model metadata is wrong; start-up stops."""


class DataError(RuledriveError):
    """Input data (scene parameters, rule kinds, data sets) is wrong."""


class RecordingError(DataError):
    """An MCAP recording cannot be read as a ruledrive recording."""


class MessageError(RuledriveError):
    """One bus message is invalid. ``code`` is a stable machine-readable reason (core.rejects)."""

    def __init__(self, code: RejectCode, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class ImageDecodeError(MessageError):
    """A frame's image bytes cannot be decoded into a usable picture."""

    def __init__(self, detail: str, code: RejectCode = RejectCode.BAD_IMAGE) -> None:
        super().__init__(code, detail)


class ModelError(RuledriveError):
    """The model cannot be loaded or does not match the contract."""


class BusError(RuledriveError):
    """The message bus failed (connect, subscribe, publish)."""


class TrainingError(RuledriveError):
    """Training, export or the ONNX parity check failed."""


# What reading a damaged or foreign .npz file can raise (numpy.load and zipfile): an empty file
# EOFError, a cut or non-zip one BadZipFile, a missing member KeyError, an odd array ValueError
# or IndexError, an unreadable path OSError. Every reader of a user-named .npz catches these
# and says which file, so none of them ends a command with a traceback.
NPZ_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    EOFError,
    ValueError,
    KeyError,
    IndexError,
    zipfile.BadZipFile,
)
