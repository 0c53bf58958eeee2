"""Numeric flags out of range are refused at parse time: exit 2 and one line naming the flag,
before any command runs (no traceback, no file read, no broker contacted)."""

from __future__ import annotations

import argparse

import pytest

from ruledrive import argtypes
from ruledrive.cli import main

REFUSED = [
    (["replay", "x.mcap", "--rate", "0"], "--rate", "> 0 (1 = real time) or 'max', got 0"),
    (["replay", "x.mcap", "--rate", "-2"], "--rate", "or 'max', got -2"),
    (["replay", "x.mcap", "--timeout-s", "-1"], "--timeout-s", "> 0, got -1"),
    (["replay", "x.mcap", "--vehicles", "0"], "--vehicles", ">= 1, got 0"),
    (["replay", "x.mcap", "--min-accuracy", "1.5"], "--min-accuracy", "within 0..1, got 1.5"),
    (["replay", "x.mcap", "--max-missing", "-0.1"], "--max-missing", "within 0..1, got -0.1"),
    (["replay", "x.mcap", "--max-p99-ms", "0"], "--max-p99-ms", "> 0, got 0"),
    (["replay", "x.mcap", "--limit", "0"], "--limit", ">= 1, got 0"),
    (["replay", "x.mcap", "--wait-node-s", "nan"], "--wait-node-s", "'nan' is not a finite"),
    (
        ["record", "--out", "x.mcap", "--duration-s", "-1"],
        "--duration-s",
        "within 0..1e+09, got -1",
    ),
    (["record", "--out", "x.mcap", "--rotate-mb", "-5"], "--rotate-mb", "within 0..1e+09, got -5"),
    (["record", "--out", "x.mcap", "--rotate-s", "-5"], "--rotate-s", "within 0..1e+09, got -5"),
    (["record", "--out", "x.mcap", "--chunk-kb", "0"], "--chunk-kb", ">= 1, got 0"),
    (
        ["evaluate", "m.onnx", "--data", "d", "--min-accuracy", "1.5"],
        "--min-accuracy",
        "within 0..1, got 1.5",
    ),
    (["train", "--data", "d", "--out", "o", "--epochs", "0"], "--epochs", ">= 1, got 0"),
    (["train", "--data", "d", "--out", "o", "--lr=-0.001"], "--lr", "> 0, got -0.001"),
    (["train", "--data", "d", "--out", "o", "--batch-size", "0"], "--batch-size", ">= 1"),
    (["train", "--data", "d", "--out", "o", "--encoder-layer", "0"], "--encoder-layer", ">= 1"),
    (["train", "--data", "d", "--out", "o", "--encoder-layer", "6+0"], "--encoder-layer", ">= 1"),
    (["train", "--data", "d", "--out", "o", "--encoder-layer", "6+6"], "--encoder-layer", "twice"),
    (["train-default", "--encoder-layer", "6+x"], "--encoder-layer", "whole number"),
    (["train-default", "--scenes", "-5"], "--scenes", ">= 1, got -5"),
    (["generate", "--out", "o", "--scenes", "10", "--seed", "-1"], "--seed", ">= 0, got -1"),
    (["generate", "--out", "o", "--scenes", "10", "--workers", "0"], "--workers", ">= 1, got 0"),
    (["generate", "--out", "o", "--scenes", "ten"], "--scenes", "'ten' is not a whole number"),
    (["scenes", "show", "x.mcap", "--n", "0"], "--n", ">= 1, got 0"),
    (["bench", "generate", "--scenes", "0"], "--scenes", ">= 1, got 0"),
    (["bench", "node", "--fps", "0"], "--fps", "> 0, got 0"),
    (["bench", "node", "--seconds", "-1"], "--seconds", "> 0, got -1"),
    (["bench", "node", "--vehicles", "0"], "--vehicles", ">= 1, got 0"),
    (["demo", "--frames", "0"], "--frames", ">= 1, got 0"),
    (["demo", "--vehicles", "0"], "--vehicles", ">= 1, got 0"),
    (["demo", "--rate", "0"], "--rate", "or 'max', got 0"),
    (["demo", "--max-missing", "2"], "--max-missing", "within 0..1, got 2"),
    (["demo", "--frames", "10000000"], "--frames", "<= 100000, got 10000000"),
    (["demo", "--vehicles", "1000000"], "--vehicles", "at most 10000, got 1000000"),
    (["demo", "--rate", "1e-300"], "--rate", "at least 0.01"),
    (["replay", "x.mcap", "--rate", "1e-300"], "--rate", "at least 0.01"),
    (["generate", "--out", "o", "--scenes", "99999999999"], "--scenes", "<= 200000"),
    (["bench", "generate", "--scenes", "300000"], "--scenes", "<= 200000"),
    (["bench", "encoder", "--repeats", "99999999999"], "--repeats", "<= 10000"),
    (["record", "--out", "x.mcap", "--prefix", "a/#"], "--prefix", "without wildcards"),
    (["record", "--out", "x.mcap", "--prefix", ""], "--prefix", "without wildcards"),
    (["record", "--out", "x.mcap", "--client-id", "a\x1b[31m"], "--client-id", "control"),
    (["record", "--out", "x.mcap", "--client-id", "c" * 70000], "--client-id", "65535 bytes"),
    (["replay", "x.mcap", "--prefix", "a/+"], "--prefix", "without wildcards"),
    (["demo", "--prefix", "a/+/b"], "--prefix", "without wildcards"),
    (
        ["sentence-reader", "m.onnx", "--data", "d", "--out", "o", "--weight", "1"],
        "--weight",
        "within (0, 1), got 1",
    ),
    (
        ["sentence-reader", "m.onnx", "--data", "d", "--out", "o", "--weight", "nan"],
        "--weight",
        "'nan' is not a finite",
    ),
]


@pytest.mark.parametrize(("argv", "flag", "why"), REFUSED, ids=[" ".join(a) for a, *_ in REFUSED])
def test_out_of_range_flag_is_a_usage_error(
    argv: list[str], flag: str, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"error: argument {flag}" in err and why in err
    assert "Traceback" not in err


def test_rate_accepts_max_and_positive_numbers() -> None:
    assert argtypes.rate("max") is None and argtypes.rate("MAX") is None
    assert argtypes.rate("0.5") == 0.5
    for bad in ("0", "-1", "inf", "fast"):
        with pytest.raises(argparse.ArgumentTypeError):
            argtypes.rate(bad)


def test_bounds_are_inclusive_where_they_should_be() -> None:
    assert argtypes.fraction("0") == 0.0 and argtypes.fraction("1") == 1.0
    assert argtypes.non_negative_float("0") == 0.0 and argtypes.non_negative_int("0") == 0
    assert argtypes.positive_int("1") == 1
    assert argtypes.open_fraction("0.5") == 0.5
    for bad in ("0", "1"):
        with pytest.raises(argparse.ArgumentTypeError):
            argtypes.open_fraction(bad)
    with pytest.raises(argparse.ArgumentTypeError):
        argtypes.positive_float("0")
    with pytest.raises(argparse.ArgumentTypeError):
        argtypes.positive_int("1.5")
