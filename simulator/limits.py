"""Upper bounds of the simulator's commands, in a module of their own so the console command can
name them in its flags without importing the renderer (OpenCV, the MCAP writer) at start-up."""

from __future__ import annotations

__all__ = ["MAX_CORPUS_SETS", "MAX_SCENES", "MAX_SHEET_FRAMES", "MAX_WORKERS"]

# Render processes at most: past the cores a pool only adds memory (each worker holds OpenCV).
MAX_WORKERS = 64
# Rule sets in one corpus at most: the recipe draws 30,000 (~40 MB); a million is ~1.3 GB.
MAX_CORPUS_SETS = 1_000_000
# Frames on one sheet at most: 64 rows of 4 are 17,664 px tall, within what JPEG can hold.
MAX_SHEET_FRAMES = 256
# Frames in one generated split at most: 10x the recipe's training split (20,000 frames are
# ~480 MB of recording and are planned in memory before the first is written), so a typo
# (--scenes 99999999999) is refused instead of growing until memory runs out.
MAX_SCENES = 200_000
