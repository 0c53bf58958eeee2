"""Broken-up words: an outside-written probe's wordings (docs/examples/wordings-probe7.yaml)
with one word of each template broken up, one way per file, for ``ruledrive bench wording``
(forty-seventh session; docs/training.md, "Broken-up words"):

    .venv/bin/python docs/experiments/broken_words.py /tmp/obf
    for n in space punct leet drop spaced; do
        ruledrive bench wording --templates /tmp/obf/$n.yaml --no-write
    done

space: one space inside a word ("OVERTAK ING"); punct: one of ( - . * _ / inside a word;
leet: a word's vowels as digits ("0V3RT4K3"; English only); drop: one letter (Chinese: one
character) left out; spaced: a word's letters (characters) spaced out ("O V E R T A K E").
The word is the template's longest or a random one (even odds), never a placeholder.
"""

from __future__ import annotations

import random
import re
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

PROBE = Path(__file__).resolve().parents[1] / "examples" / "wordings-probe7.yaml"
PLACEHOLDER = re.compile(r"\{[A-Za-z]+\}")


def main(out: Path) -> None:
    src = yaml.safe_load(PROBE.read_text(encoding="utf-8"))
    rng = random.Random(7)

    def edit(t: str, fn: Callable[[str, int], str], lang: str) -> str:
        word = r"[A-Za-z]{4,}" if lang == "en" else r"[\u4e00-\u9fff]{2,}"
        held = [(p.start(), p.end()) for p in PLACEHOLDER.finditer(t)]
        ms = [m for m in re.finditer(word, t) if not any(a <= m.start() < b for a, b in held)]
        if not ms:
            return t
        if rng.random() < 0.5:
            m = max(ms, key=lambda m: (len(m.group()), rng.random()))
        else:
            m = rng.choice(ms)
        w = m.group()
        return t[: m.start()] + fn(w, rng.randrange(1, len(w))) + t[m.end() :]

    ways: dict[str, Callable[[str, int], str]] = {
        "space": lambda w, i: w[:i] + " " + w[i:],
        "punct": lambda w, i: w[:i] + rng.choice("(-.*_/") + w[i:],
        "leet": lambda w, i: w.translate(str.maketrans("oieaOIEA", "01340134")),
        "drop": lambda w, i: w[:i] + w[i + 1 :],
        "spaced": lambda w, i: " ".join(w),
    }
    out.mkdir(parents=True, exist_ok=True)
    for name, fn in ways.items():
        files = {}
        for lang in ("en", "zh"):
            if lang == "zh" and name == "leet":
                continue
            rules = {k: [edit(t, fn, lang) for t in v] for k, v in src[lang]["rules"].items()}
            files[lang] = {"slots": src[lang]["slots"], "rules": rules}
        with open(out / f"{name}.yaml", "w", encoding="utf-8") as fh:
            yaml.safe_dump(files, fh, allow_unicode=True, sort_keys=False)
        print(out / f"{name}.yaml")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: broken_words.py OUTDIR")
    main(Path(sys.argv[1]))
