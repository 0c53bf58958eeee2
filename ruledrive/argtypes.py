"""argparse ``type=`` functions that refuse out-of-range numbers at parse time.

argparse turns the :class:`argparse.ArgumentTypeError` they raise into a one-line usage error
naming the flag (``ruledrive replay: error: argument --rate: ...``) and exit status 2, before any
command runs. NaN and infinities are refused everywhere: no flag means anything by them.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "client_id",
    "fraction",
    "int_within",
    "non_empty",
    "non_negative_float",
    "non_negative_int",
    "open_fraction",
    "output_file",
    "positive_float",
    "positive_int",
    "rate",
    "topic_prefix",
]


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from exc


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1 (counts: scenes, vehicles, workers, frames)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return value


def layer_list(text: str) -> str:
    """Encoder layers: one whole number >= 1, or several joined by + (6+9+12), none twice;
    TrainConfig.encoder_layer checks them against the encoder's own range."""
    parts = text.split("+")
    layers = [positive_int(p) for p in parts]  # each: "must be a whole number >= 1, got 0"
    if len(set(layers)) != len(layers) or len(layers) > 8:
        raise argparse.ArgumentTypeError(f"must name 1 to 8 layers, none twice, got {text[:40]}")
    return text


def non_negative_int(text: str) -> int:
    """A whole number >= 0 (seeds, microseconds)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text}")
    return value


def int_within(low: int, high: int) -> Callable[[str], int]:
    """A whole number within ``low..high``: a bound where a larger value would only run for ever,
    fill the disk or overflow a library (seeds of numpy, certificate lifetimes, worker pools)."""

    def parse(text: str) -> int:
        value = _int(text)
        if not low <= value <= high:
            bound = f">= {low}" if value < low else f"<= {high}"
            raise argparse.ArgumentTypeError(
                f"must be a whole number {bound}, got {text} (allowed: {low}..{high})"
            )
        return value

    parse.__name__ = f"int_within_{low}_{high}"
    return parse


def non_empty(text: str) -> str:
    """A non-blank string (paths: ``--out ''`` would mean the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def positive_float(text: str) -> float:
    """A number > 0 (timeouts, durations that must pass, frame rates, thresholds in ms)."""
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


# The largest non_negative_float: seconds, megabytes. A finite 1e300 passed the type and then
# broke timers and deadlines (OverflowError: timestamp out of range; threading.TIMEOUT_MAX is
# ~9.2e9 s), from a thread, where the recorder went on recording for ever.
MAX_AMOUNT = 1e9


def non_negative_float(text: str) -> float:
    """A number 0..MAX_AMOUNT (where 0 means off/never, e.g. ``--rotate-mb 0``)."""
    value = _float(text)
    if not 0 <= value <= MAX_AMOUNT:
        raise argparse.ArgumentTypeError(f"must be a number within 0..{MAX_AMOUNT:g}, got {text}")
    return value


def fraction(text: str) -> float:
    """A number within 0..1 (accuracies, shares)."""
    value = _float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within 0..1, got {text}")
    return value


def open_fraction(text: str) -> float:
    """A number strictly between 0 and 1 (a share that must leave something to each side)."""
    value = _float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be within (0, 1), got {text}")
    return value


def rate(text: str) -> float | None:
    """A replay speed: a number > 0 (1 = real time), or ``max`` (returned as None)."""
    if text.strip().lower() == "max":
        return None
    try:
        return positive_float(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(
            f"must be a number > 0 (1 = real time) or 'max', got {text}"
        ) from exc


def topic_prefix(text: str) -> str:
    """A topic prefix as the node accepts it (its RULEDRIVE_TOPIC_PREFIX): '/'-separated levels
    without wildcards. A wildcard would make a replay's every publish fail and a recorder's
    subscription be refused by paho, each long after the command started."""
    from bus.topics import check_prefix  # the node's own rule, so the two cannot drift

    try:
        return check_prefix(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from exc


def client_id(text: str) -> str:
    """An MQTT client id ('' lets the broker or the command choose one): what MQTT can carry
    (bus.mqtt.mqtt_string_problem, as for a user name)."""
    from bus.mqtt import mqtt_string_problem

    problem = mqtt_string_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def output_file(text: str) -> Path:
    """A file this command will write (a benchmark's doc): not a directory, in a place this
    process can write, found at parse time rather than after the run it would record."""
    from core.errors import ConfigError
    from core.paths import check_output_file

    path = Path(non_empty(text))
    try:
        check_output_file(path, "the file")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return path
