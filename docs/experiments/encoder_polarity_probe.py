"""How much of a rule's polarity (permitted / prohibited) the frozen encoder carries for wording
the model never trained on: a linear probe per encoder layer, trained on training-family
renderings only, tested on held-out-family renderings; beside it, the shipped model's own class
reading of the same texts (its rule graph, no neighbour reading).

    .venv/bin/python docs/experiments/encoder_polarity_probe.py 12,11,10,9,8,6,4

Thirty-seventh session; results in docs/training.md, "How much polarity the encoder carries".
A diagnostic, not part of the package (git-ignored outputs go to runs/probe/).
"""

from __future__ import annotations

import json
import random
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

KINDS = (
    ("overtaking", "permitted", 1),
    ("overtaking", "prohibited", 0),
    ("turn_on_red", "permitted", 1),
    ("turn_on_red", "prohibited", 0),
)
N_TRAIN, N_HELD, SEED = 300, 120, 11


def renderings() -> list[dict]:
    """Distinct renderings per (language, kind, variant): training families, then held-out."""
    from simulator.language.ruleset import render_rule
    from simulator.rules import Rule

    rng, rows = random.Random(SEED), []
    for lang in ("en", "zh"):
        for kind, variant, y in KINDS:
            rule, seen = Rule(kind=kind, variant=variant), set()
            for held, n in ((False, N_TRAIN), (True, N_HELD)):
                got = tries = 0
                while got < n and tries < n * 20:
                    tries += 1
                    t = render_rule(rule, lang, rng, held=held)
                    if t.text in seen or (held and not t.held_out):
                        continue
                    seen.add(t.text)
                    rows.append(
                        {
                            "text": t.text,
                            "lang": lang,
                            "kind": kind,
                            "variant": variant,
                            "y": y,
                            "held": held,
                            "construction": t.construction,
                        }
                    )
                    got += 1
    return rows


def pooled(encoder, texts: list[str]) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Mean and max of each text's token states, as the model reads them (first 40)."""
    out = []
    for t in texts:
        states, mask = encoder.encode_rule_set([t])
        s = states[0, : int(mask[0].sum())]
        out.append(np.concatenate([s.mean(0), s.max(0)]))
    return np.stack(out)


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 600, lr: float = 0.5):  # type: ignore[no-untyped-def]
    """L2 logistic regression on standardised features (full-batch gradient descent)."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    z, w, b = (x - mu) / sd, np.zeros(x.shape[1]), 0.0
    for _ in range(steps):
        g = 1 / (1 + np.exp(-(z @ w + b))) - y
        w -= lr * (z.T @ g / len(y) + l2 * w)
        b -= lr * g.mean()
    return lambda xx: 1 / (1 + np.exp(-(((xx - mu) / sd) @ w + b)))


def shipped_reading(rows: list[dict]) -> dict[str, float]:
    """Share of held-out renderings the shipped model's rule graph reads as their own class."""
    import onnxruntime as ort

    from perception.modelmeta import parse_metadata
    from perception.rule_encoder import RuleEncoder
    from perception.spec import MODEL_SPEC as S
    from perception.splitgraph import split_model

    parts = split_model(Path("models/ruledrive-default.onnx").read_bytes())
    assert parts is not None
    classes = parse_metadata(parts.metadata, source="model").rule_classes
    rules = ort.InferenceSession(parts.rules, providers=["CPUExecutionProvider"])
    encoder = RuleEncoder.load(cache_size=0)
    right: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        if not r["held"]:
            continue
        states, mask = encoder.encode_rule_set([r["text"]])
        (c,) = rules.run(
            [S.rule_output], {S.rules_input: states[None], S.rule_mask_input: mask[None]}
        )
        got = classes[int(c[0, 0].argmax())]
        right[f"{r['lang']}/{r['kind']}"].append(got == f"{r['kind']}:{r['variant']}")
    return {k: round(float(np.mean(v)), 3) for k, v in sorted(right.items())}


def main() -> None:
    from perception.rule_encoder import RuleEncoder

    layers = [int(a) for a in sys.argv[1].split(",")] if len(sys.argv) > 1 else [12, 9, 6]
    rows = renderings()
    texts = [r["text"] for r in rows]
    y = np.array([r["y"] for r in rows], float)
    held = np.array([r["held"] for r in rows])
    lang = np.array([r["lang"] for r in rows])
    kind = np.array([r["kind"] for r in rows])
    result: dict[str, object] = {"texts": len(rows), "shipped_reader": shipped_reading(rows)}
    print(json.dumps(result), flush=True)
    for layer in layers:
        x = pooled(RuleEncoder.load(cache_size=0, layer=layer), texts)
        cells = {}
        for lg in ("en", "zh"):
            train = ~held & (lang == lg)  # one probe per language, its training families
            p = fit(x[train], y[train])(x)
            for kd in ("overtaking", "turn_on_red"):
                sel = held & (lang == lg) & (kind == kd)
                cells[f"{lg}/{kd}"] = round(float(((p[sel] > 0.5) == (y[sel] > 0.5)).mean()), 3)
        result[f"layer {layer}"] = cells
        print(layer, json.dumps(cells), flush=True)
    out = Path("runs/probe")
    out.mkdir(parents=True, exist_ok=True)
    (out / "encoder_polarity_probe.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
