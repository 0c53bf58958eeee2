"""The default recipe's data, and one seed of its fused model trained without evaluation, so
that two seeds can train side by side (each in a work directory of its own sharing the data and
the encoded rule table) and be evaluated afterwards with ``ruledrive evaluate``, the node's
decision path. The scratch scripts of the eighteenth to twenty-first rounds (``runs/mkdata.py``,
``runs/train_only.py``), committed in the forty-fourth session so the rounds can be rerun.

    .venv/bin/python docs/experiments/recipe_seed.py data WORK        # ~4 min: splits + corpus
    .venv/bin/python docs/experiments/recipe_seed.py train WORK SEED  # ~20-25 min a seed
    .venv/bin/python docs/experiments/recipe_seed.py train WORK SEED split_words=0.5  # a change

The first training in WORK encodes the rule corpus once (~57,000 texts, ~15-25 min) into
WORK/rule-table.npz (the recipe reads no sentence vectors, so it writes no sentence cache); a
second work directory for another seed side by side links WORK/data/* and copies that file. The
configuration is the recipe's own (``recipe.recipe_config``, ``recipe.seed_config``). The
model lands in WORK/ckpt-fused-sSEED/model.onnx. With ``PYTHONPATH`` set to another checkout (a
worktree with a patch of docs/experiments/ applied), that checkout's generator and training are
used: the script prints which. Peak memory ~12 GB at the start of a training, ~7 GB after.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

USAGE = "usage: recipe_seed.py data WORK | recipe_seed.py train WORK SEED [KEY=VALUE ...]"


def main(argv: list[str]) -> int:
    import simulator
    from ruledrive import recipe as r

    print("code from", Path(simulator.__file__).parent.parent, flush=True)
    if len(argv) == 2 and argv[0] == "data":
        work = Path(argv[1])
        r._data(work, 20000)
        r._corpus(work)
        return 0
    if len(argv) >= 3 and argv[0] == "train" and argv[2].isdigit():
        import yaml

        from training.config import TrainConfig

        work, seed = Path(argv[1]), int(argv[2])
        pairs = [a.partition("=") for a in argv[3:]]
        if any(not eq for _, eq, _ in pairs):
            print(USAGE, file=sys.stderr)
            return 2
        # TrainConfig keys the recipe leaves at their defaults (split_words=0.5, ...)
        changes = {k: yaml.safe_load(v) for k, _, v in pairs}
        level = logging.INFO
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        cfg, _ = r.recipe_config(TrainConfig.model_validate(changes), work)
        vcfg = r.seed_config(cfg, "fused", seed)
        ckpt = work / f"ckpt-fused-s{seed}"
        dirs = r._data(work, 20000)
        r._isolated(r._train_one, vcfg, dirs, work, ckpt, ckpt / "model.onnx", False, level)
        return 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
