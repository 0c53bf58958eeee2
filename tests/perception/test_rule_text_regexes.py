"""Every regular expression that reads a rule text runs in bounded time on hostile texts.

Python's ``re`` holds the GIL for a whole match, so one catastrophic backtrack on the node's
rule-encoding thread stops the message thread, the serving loop, the heartbeat and signal
handling with it: an outside probe's 97-character rule "Speed limit 30 k" + "p." * 40 + "x"
froze the node for good (exponential in the repeats: ``perception.readcheck._KMH`` could match
each "." two ways), and its retained rule set froze every restarted node again. The texts here
pump short pieces of what the patterns read (units, separators, digits, Chinese unit words,
spaces) to the schema's longest rule; run in a child process, so a regression fails on its
timeout instead of hanging the suite.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from bus.schema import MAX_RULE_CHARS

PIECES = [
    "p.", "p", ".", " ", "k", "km", "h", " .", "/", "-", "per", "an", "1", "1.", "0", "限速",
    "公里", "/ ", "\u3000", "a", "\u200b", "。", "码", "时", "每", " -", "k.", "m", "..", "mi",
    "miles ", "s", "t", "吨", "米", "I", "lane ", "第", "车道", "N ", "o ", "(", "*", "_", "3x",
    "除", "外", "except ", "bus ", "centre ", "中", "a1", "'t ", "/ ",
]  # fmt: skip
HEADS = ["", "30 ", "30 k", "Speed limit 30 k", "限速", "限速30", "limit ", "max ", "30"]
TAILS = ["", "x", "!", "1"]

CHILD = textwrap.dedent(
    """
    import itertools, json, re, sys, time
    import perception.readcheck as rc
    import perception.rule_encoder as enc
    import perception.written as wl
    pieces, heads, tails, longest = json.loads(sys.argv[1])
    patterns = [(m.__name__ + "." + n, p) for m in (rc, enc, wl) for n, p in vars(m).items()
                if isinstance(p, re.Pattern)]
    worst = (0.0, "")
    for (name, p), head, piece, tail in itertools.product(patterns, heads, pieces, tails):
        for n in (40 // len(piece), (longest - len(head) - len(tail)) // len(piece)):
            text = head + piece * n + tail
            t0 = time.perf_counter()
            for _ in p.finditer(text):
                pass
            took = time.perf_counter() - t0
            if took > worst[0]:
                worst = (took, name + " " + repr(text[:40]))
    for head, piece in itertools.product(heads, pieces):  # the node's calls, whole
        text = (head + piece * longest)[:longest]
        t0 = time.perf_counter()
        rc.written_speeds(text)
        enc.normalise(text)
        enc.unreadable_script(text)
        wl.lane_numbers(text)
        wl.exception_clause(text)
        took = time.perf_counter() - t0
        if took > worst[0]:
            worst = (took, "written_speeds " + repr(text[:40]))
    print(",".join(n for n, _ in patterns), worst[0], worst[1])
    """
)


def test_no_rule_text_makes_a_pattern_backtrack_for_long() -> None:
    import json

    args = json.dumps([PIECES, HEADS, TAILS, MAX_RULE_CHARS])
    # ~1 s with every pattern linear or quadratic; the old _KMH took 0.2 s at
    # 18 repeats of "p." and doubled with each one more (40: days).
    done = subprocess.run(
        [sys.executable, "-c", CHILD, args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    names, worst, where = done.stdout.split(maxsplit=2)
    found = set(names.split(","))  # the patterns were found
    assert {
        "perception.readcheck._SPEED",
        "perception.written._EN_LANE",
        "perception.written._CENTRE",
        "perception.written._EXCEPTION",
        "perception.rule_encoder._LONE_PAIR",
    } <= found, names
    assert float(worst) < 1.0, f"{worst} s on {where}"
