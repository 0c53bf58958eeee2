"""Recorded drives and replay lanes: what ``ruledrive replay`` plays, read from MCAP recordings.

A :class:`Drive` is one recorded vehicle's rule sets and frames in recorded-time order; a
:class:`Lane` plays one or more drives back to back under one vehicle id with fresh frame ids, and
every frame keeps a :class:`FrameRef` to its recorded (vehicle id, frame id) for labels and golden
comparisons. Bus-free.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bus.schema import DecisionLabel, FrameHeader, RuleSet
from core.errors import ConfigError

__all__ = [
    "MAX_VEHICLES",
    "MIN_RATE",
    "Drive",
    "DriveFrame",
    "DriveRules",
    "FrameRef",
    "Lane",
    "load_drives",
    "plan_lanes",
    "rule_text",
]


DEFAULT_FRAME_PERIOD_NS = 100_000_000  # 10 Hz, the simulator's frame rate
# The most replayed vehicles: a node holds the rule sets of at most this many by default
# (policy.settings max_vehicles); more lanes would test its eviction, not its decisions.
MAX_VEHICLES = 10_000
# The slowest replay: 1 s of a drive takes 100 s. Slower ones would not finish (a rate of 1e-300
# puts the second frame past the end of time) and test nothing a slow node would not show.
MIN_RATE = 0.01


@dataclass(frozen=True)
class DriveFrame:
    t_ns: int  # recorded capture time
    header: FrameHeader
    jpeg: bytes
    label: DecisionLabel | None


@dataclass(frozen=True)
class DriveRules:
    t_ns: int  # recorded issue time
    rules: RuleSet


@dataclass
class Drive:
    """One recorded vehicle's events in recorded-time order."""

    vehicle_id: str
    events: list[DriveFrame | DriveRules]
    source: str = ""

    @property
    def n_frames(self) -> int:
        return sum(isinstance(e, DriveFrame) for e in self.events)

    def frame_period_ns(self) -> int:
        """The drive's typical time between frames (median); 100 ms (10 Hz, the simulator's
        rate) when it has fewer than two frames."""
        stamps = [e.t_ns for e in self.events if isinstance(e, DriveFrame)]
        gaps = sorted(b - a for a, b in itertools.pairwise(stamps) if b > a)
        return gaps[len(gaps) // 2] if gaps else DEFAULT_FRAME_PERIOD_NS


@dataclass(frozen=True)
class FrameRef:
    """A published frame: its ids on the bus and the recorded ids it stands for."""

    vehicle_id: str
    frame_id: int
    source_vehicle_id: str
    source_frame_id: int
    label: DecisionLabel | None
    # How the rule set in force for this frame is written (:func:`rule_text`), so the
    # scoreboard can say how each language fared; "" when not known.
    rule_text: str = ""


@dataclass
class Lane:
    """One replayed vehicle: drives played back to back under ``vehicle_id``."""

    vehicle_id: str
    drives: list[Drive]

    def steps(self) -> list[tuple[int, DriveFrame | DriveRules, FrameRef | None]]:
        """(offset from the lane start in ns, event, frame ref) with frame ids renumbered."""
        out: list[tuple[int, DriveFrame | DriveRules, FrameRef | None]] = []
        base, next_id = 0, 0
        written = rule_text(())  # a drive's rules stay in force on its lane until the next's
        for drive in self.drives:
            if not drive.events:
                continue
            t0 = drive.events[0].t_ns
            last = 0
            for ev in drive.events:
                offset = base + max(0, ev.t_ns - t0)
                last = max(last, offset)
                ref = None
                if isinstance(ev, DriveRules):
                    written = rule_text(ev.rules.rules)
                if isinstance(ev, DriveFrame):
                    ref = FrameRef(
                        self.vehicle_id,
                        next_id,
                        drive.vehicle_id,
                        ev.header.frame_id,
                        ev.label,
                        written,
                    )
                    next_id += 1
                out.append((offset, ev, ref))
            base = last + drive.frame_period_ns()  # the next drive starts one frame later
        return out


def rule_text(rules: Sequence[str]) -> str:
    """How a rule set is written, for the scoreboard (not for deciding anything): "no rules";
    "Latin script" when every rule has Latin letters only (English, or another language in
    Latin letters) and no Chinese characters; "Chinese" when every rule has Chinese characters
    (a unit such as km/h may be Latin); "Chinese + Latin" for both in one set; "another script
    in it" when a rule is in another script or has no letters (such a rule is one the node
    should flag as not understood)."""
    if not rules:
        return "no rules"
    kinds = set()
    for text in rules:
        letters = [unicodedata.name(c, "") for c in text if c.isalpha()]
        if any(n.startswith(("CJK UNIFIED", "CJK COMPATIBILITY")) for n in letters):
            kinds.add("Chinese")
        elif letters and all("LATIN" in n for n in letters):  # fullwidth Latin too
            kinds.add("Latin script")
        else:
            kinds.add("other")
    if "other" in kinds:
        return "another script in it"
    return kinds.pop() if len(kinds) == 1 else "Chinese + Latin"


def plan_lanes(drives: Sequence[Drive], vehicles: int | None = None) -> list[Lane]:
    """Lanes for the drives: one per drive under its recorded id (``vehicles=None``), or exactly
    ``vehicles`` lanes named ``replay-000``..., drive i on lane i mod N (cycled if N > drives)."""
    drives = [d for d in drives if d.events]
    if vehicles is None:  # the same id in two recordings gets a suffix: lanes must not share
        seen: Counter[str] = Counter()
        lanes_ = []
        for d in drives:
            seen[d.vehicle_id] += 1
            n = seen[d.vehicle_id]
            lanes_.append(Lane(d.vehicle_id if n == 1 else f"{d.vehicle_id[:58]}-{n}", [d]))
        return lanes_
    if vehicles < 1:
        raise ValueError("vehicles must be >= 1")
    if vehicles > MAX_VEHICLES:
        raise ConfigError(f"--vehicles {vehicles}: at most {MAX_VEHICLES} vehicles")
    lanes = [Lane(f"replay-{k:03d}", []) for k in range(vehicles)]
    for i in range(max(len(drives), vehicles) if drives else 0):
        lanes[i % vehicles].drives.append(drives[i % len(drives)])
    return [lane for lane in lanes if lane.drives]


def load_drives(
    paths: Sequence[str | Path], limit: int | None = None, allow_truncated: bool = False
) -> list[Drive]:
    """The drives of MCAP recordings (bus.recording), one per recorded vehicle and file,
    each frame with its recorded label. ``limit`` caps the frames. Raises RecordingError, also on
    a truncated file unless ``allow_truncated`` (then its complete part is used, with a warning).
    Every path is checked (``bus.recording_reader.check_recording``) before any is read, so a bad
    last file fails at once, not after the others were read.

    Frames are joined to their images and labels by ``bus.recording_reader.read_frames``, the
    same join training reads samples with."""
    from bus.recording_reader import check_recording, read_frames

    for path in paths:
        check_recording(path)
    out: list[Drive] = []
    frames = 0
    for path in paths:
        rules: dict[str, list[DriveRules]] = {}
        recorded: list[DriveFrame] = []
        for item in read_frames(path, allow_truncated=allow_truncated):
            if isinstance(item, RuleSet):
                rules.setdefault(item.vehicle_id, []).append(DriveRules(item.issued_at_ns, item))
            else:
                label = item.label.decision if item.label else None
                recorded.append(DriveFrame(item.header.stamp_ns, item.header, item.jpeg, label))
        drives: dict[str, Drive] = {}
        for frame in sorted(recorded, key=lambda f: f.t_ns):  # frames are flushed per vehicle
            if limit is not None and frames >= limit:
                break
            vid = frame.header.vehicle_id
            d = drives.setdefault(vid, Drive(vid, list(rules.get(vid, [])), str(path)))
            d.events.append(frame)
            frames += 1
        for d in drives.values():
            # Rules before the frame issued at the same time; stable for equal stamps.
            d.events.sort(key=lambda e: (e.t_ns, isinstance(e, DriveFrame)))
            out.append(d)
    return out
