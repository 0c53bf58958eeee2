"""Contact sheets and summaries of recordings, for ``ruledrive scenes show``."""

from __future__ import annotations

import random
import textwrap
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from bus.recording import Sample
from core.errors import ConfigError, DataError
from core.paths import check_output_file
from perception.image import decode_jpeg
from simulator.limits import MAX_SHEET_FRAMES

__all__ = ["MAX_SHEET_FRAMES", "check_sheet_path", "contact_sheet", "pick_diverse", "summarise"]

TILE_W, TILE_H, TEXT_H = 320, 180, 96


def summarise(samples: Sequence[Sample]) -> dict[str, object]:
    labels = Counter(str(s.label) for s in samples)
    return {
        "samples": len(samples),
        "drives": len({s.vehicle_id for s in samples}),
        "rule_sets": len({(s.vehicle_id, s.rules_version) for s in samples}),
        "splits": sorted({s.split for s in samples}),
        "class_balance": dict(sorted(labels.items())),
        "reasons": dict(Counter(s.reason for s in samples).most_common()),
    }


def pick_diverse(samples: Sequence[Sample], n: int) -> list[Sample]:
    """Up to n samples covering as many distinct reasons as possible (fixed shuffle)."""
    samples = random.Random(0).sample(list(samples), len(samples))
    n = min(n, len(samples))  # more rounds than samples would find nothing new
    chosen: list[Sample] = []
    seen: Counter[str | None] = Counter()
    for round_ in range(n):
        before = len(chosen)
        for s in samples:
            if len(chosen) >= n:
                break
            if seen[s.reason] == round_ and s not in chosen:
                chosen.append(s)
                seen[s.reason] += 1
        if len(chosen) >= n or len(chosen) == before:
            break
    return chosen


def check_sheet_path(path: str | Path) -> Path:
    """``path`` as a contact sheet can be written there: an image file name OpenCV writes
    (.png, .jpg ...), not a directory, under a directory (missing ones are created). ConfigError
    naming ``--sheet`` otherwise; call it before the work that leads to the sheet."""
    out = Path(path)
    if not str(path).strip() or out.is_dir():
        raise ConfigError(f"--sheet {str(path)!r} is a directory; name an image file (.png)")
    if not cv2.haveImageWriter(str(out)):
        raise ConfigError(
            f"--sheet {out}: {out.suffix or 'no extension'} is no image format OpenCV writes; "
            "name a .png or .jpg file"
        )
    check_output_file(out, "--sheet")
    return out


def contact_sheet(samples: Sequence[Sample], out: str | Path, cols: int = 4) -> Path:
    """Write a grid of frames (PNG, or the image format ``out`` names), each with its speed,
    rules and decision underneath."""
    if not samples:
        raise DataError("no samples to draw a contact sheet from")
    rows = -(-len(samples) // cols)
    sheet = np.full((rows * (TILE_H + TEXT_H), cols * TILE_W, 3), 255, np.uint8)
    for i, s in enumerate(samples):
        r, c = divmod(i, cols)
        x, y = c * TILE_W, r * (TILE_H + TEXT_H)
        rgb = cv2.resize(decode_jpeg(s.jpeg), (TILE_W, TILE_H), interpolation=cv2.INTER_AREA)
        sheet[y : y + TILE_H, x : x + TILE_W] = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        lines = [f"{s.label} ({s.reason})  {s.speed_kph:.0f} km/h"]
        for rule in s.rules or ("(no rules)",):
            lines += textwrap.wrap(rule, 52)
        for k, line in enumerate(lines[:7]):
            colour = (0, 0, 160) if k == 0 else (40, 40, 40)
            cv2.putText(
                sheet,
                line,
                (x + 4, y + TILE_H + 13 + 12 * k),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.36,
                colour,
                1,
                cv2.LINE_AA,
            )
        cv2.rectangle(sheet, (x, y), (x + TILE_W - 1, y + TILE_H + TEXT_H - 1), (200, 200, 200))
    out = check_sheet_path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        written = cv2.imwrite(str(out), sheet)
    except (OSError, cv2.error) as exc:
        raise DataError(f"--sheet {out}: cannot write the contact sheet: {exc}") from exc
    if not written:
        raise DataError(f"--sheet {out}: cannot write the contact sheet")
    return out
