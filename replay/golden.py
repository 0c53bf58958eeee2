"""Golden reference of replayed decisions (openpilot process_replay style): write, load, compare.

A reference stores each decision under its recorded (vehicle id, frame id) with every field but
:data:`IGNORED_FIELDS`; probabilities and confidence compare within :data:`PROB_TOLERANCE`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bus.schema import DecisionMsg
from core.errors import DataError
from core.paths import write_atomic
from replay.drives import FrameRef

__all__ = [
    "IGNORED_FIELDS",
    "PROB_TOLERANCE",
    "compare_reference",
    "decision_record",
    "load_reference",
    "write_reference",
]

# Fields that depend on when and where the replay ran, never on what the node decided. The frame
# ids are replaced by the recorded ones so a reference survives --vehicles and renumbering.
IGNORED_FIELDS = ("stamp_ns", "frame_stamp_ns", "timings", "node_id", "vehicle_id", "frame_id")
PROB_TOLERANCE = 1e-3  # absolute, on probabilities and confidence (batching changes the ulps)


def decision_record(ref: FrameRef, msg: DecisionMsg) -> dict[str, Any]:
    """A decision as the reference stores it: recorded ids + every non-ignored field."""
    body = msg.model_dump(mode="json", exclude=set(IGNORED_FIELDS))
    return {"vehicle_id": ref.source_vehicle_id, "frame_id": ref.source_frame_id, **body}


def write_reference(
    path: str | Path,
    rows: Sequence[tuple[FrameRef, DecisionMsg, float]],
    recordings: Sequence[str | Path],
) -> None:
    records = {
        (r["vehicle_id"], r["frame_id"]): r
        for r in (decision_record(ref, msg) for ref, msg, _ in rows)
    }
    doc = {
        "about": "golden decisions of `ruledrive replay`; update on purpose with `make golden`",
        "recordings": [Path(p).name for p in recordings],
        "ignored_fields": list(IGNORED_FIELDS),
        "prob_tolerance": PROB_TOLERANCE,
        "decisions": [records[k] for k in sorted(records)],
    }
    write_atomic(Path(path), (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())


def load_reference(path: str | Path) -> dict[tuple[str, int], dict[str, Any]]:
    """The decisions of a reference written by :func:`write_reference`, by recorded
    (vehicle id, frame id). DataError naming the file when it is missing or not one."""
    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():  # a FIFO would block read
        raise DataError(f"reference {path}: not a regular file")
    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise DataError(f"reference {path}: no such file") from exc
    except IsADirectoryError as exc:
        raise DataError(f"reference {path}: is a directory, not a reference JSON file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"reference {path}: cannot read it ({exc})") from exc
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:  # RecursionError: nested 10^5 deep
        raise DataError(f"reference {path}: not JSON ({exc})") from exc
    decisions = doc.get("decisions") if isinstance(doc, dict) else None
    if not isinstance(decisions, list):
        raise DataError(
            f"reference {path}: not a replay reference (no list of decisions; "
            "write one with --update-reference)"
        )
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for i, r in enumerate(decisions):
        vid = r.get("vehicle_id") if isinstance(r, dict) else None
        fid = r.get("frame_id") if isinstance(r, dict) else None
        if not isinstance(vid, str) or not isinstance(fid, int) or isinstance(fid, bool):
            raise DataError(
                f"reference {path}: decisions[{i}] is not a decision with a vehicle_id "
                "string and a whole-number frame_id"
            )
        out[(vid, fid)] = r
    return out


def _differs(a: Any, b: Any, tol: float) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return not math.isclose(a, b, rel_tol=0.0, abs_tol=tol)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() != b.keys() or any(_differs(a[k], b[k], tol) for k in a)
    return a != b


def compare_reference(
    reference: dict[tuple[str, int], dict[str, Any]],
    rows: Sequence[tuple[FrameRef, DecisionMsg, float]],
    tol: float = PROB_TOLERANCE,
) -> list[str]:
    """Differences between a replay's decisions and the reference ([] = identical)."""
    got: dict[tuple[str, int], dict[str, Any]] = {}
    for ref, msg, _ in rows:
        got.setdefault((ref.source_vehicle_id, ref.source_frame_id), decision_record(ref, msg))
    diffs: list[str] = []
    versions = (
        {r.get("model_version") for r in reference.values()},
        {r.get("model_version") for r in got.values()},
    )
    if got and versions[0] != versions[1]:
        diffs.append(
            f"model version {sorted(map(str, versions[1]))} but the reference has "
            f"{sorted(map(str, versions[0]))} (run `make golden` if the change is meant)"
        )
    for key in sorted(reference.keys() - got.keys()):
        diffs.append(f"{key[0]}/{key[1]}: no decision in this replay")
    for key in sorted(got.keys() - reference.keys()):
        diffs.append(f"{key[0]}/{key[1]}: not in the reference")
    for key in sorted(reference.keys() & got.keys()):
        want, have = reference[key], got[key]
        for name in sorted(want.keys() | have.keys()):
            if name != "model_version" and _differs(want.get(name), have.get(name), tol):
                diffs.append(
                    f"{key[0]}/{key[1]}: {name} {have.get(name)!r} != reference {want.get(name)!r}"
                )
    return diffs
