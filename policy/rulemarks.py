"""Per vehicle, the newest rule set a node has accepted (its high-water mark), kept across restarts.

Rule sets are retained on the broker, so whoever can publish there can put back an old one; a node
that restarts would take it. The node keeps, per vehicle, the ``issued_at_ns``, ``version`` and a
digest of the newest rule set it accepted, and refuses older ones (``rules_replayed``). With a
state directory the marks are written there and loaded at start, so they survive a restart;
without one they live in memory only and a restarted node starts with none.

On disk: ``STATE_DIR/rule-marks/VEHICLE_ID.json`` (vehicle ids are file-name safe by the contract's
pattern), each written to a temporary file, flushed to disk and renamed over the old one, so a
crash leaves the old mark or the new one, never half of one. At most ``max_vehicles`` marks are
held: a new vehicle beyond that evicts the mark least recently set of a vehicle whose rules the
node no longer holds (forgotten after ``vehicle_ttl_s``).

With ``keep_sets`` (the node sets it while it checks signatures) the accepted rule set itself is
kept too, in ``STATE_DIR/rule-sets/VEHICLE_ID.json``, and :meth:`RuleMarks.kept` gives the sets
that match their marks back at start. The broker retains only the *latest* message of a topic,
so a refused one (unsigned, forged, a clear) published retained over the genuine rule set
replaces it there: without this, a restarted node would find nothing to take, and the vehicle
would wait at ``no_rules`` until the authority published again (an outside conformance pass,
forty-seventh session). Without signatures a kept set is not taken back: a clear the node missed
while down would leave it acting on withdrawn rules.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Container
from contextlib import suppress
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bus.schema import INT64_MAX, VEHICLE_ID_PATTERN, RuleSet
from bus.signing import canonical_bytes
from core.errors import ConfigError
from core.paths import read_regular_file

__all__ = ["MARKS_SUBDIR", "SETS_SUBDIR", "Mark", "RuleMarks", "digest"]

log = logging.getLogger(__name__)

MARKS_SUBDIR = "rule-marks"
SETS_SUBDIR = "rule-sets"
_MAX_MARK_FILE_BYTES = 4096
_MAX_SET_FILE_BYTES = 64 * 1024  # 5 rules of 200 characters, signed: under 8 KB


class Mark(BaseModel):
    """The newest rule set accepted for a vehicle (also the on-disk form)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vehicle_id: str = Field(pattern=VEHICLE_ID_PATTERN)
    issued_at_ns: int = Field(ge=0, le=INT64_MAX)
    version: str = Field(max_length=64)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="of the canonical bytes")


def digest(rules: RuleSet) -> str:
    """What tells two rule sets with one ``issued_at_ns`` apart (signatures not included)."""
    return hashlib.sha256(canonical_bytes(rules)).hexdigest()


class RuleMarks:
    """Bounded high-water marks per vehicle, persisted under ``state_dir`` when one is given.

    The bus thread sets marks (the node's rule-set handler) and the serving loop's
    housekeeping retries unsaved ones (:meth:`retry_unsaved`): both under one lock.
    """

    def __init__(self, state_dir: Path | None, max_vehicles: int, keep_sets: bool = False) -> None:
        self.max_vehicles = max_vehicles
        self._lock = threading.Lock()
        self.write_failures = 0
        # Vehicles whose newest mark is held in memory only (its write failed): written again
        # when the same rule set comes again and by retry_unsaved(), so a disk that was full or
        # read-only for a while does not leave the mark on disk older for good (after a restart
        # the older mark would let the lost rule set's predecessors back in).
        self.unsaved: set[str] = set()
        # Insertion order = order in which marks were last set: the first is evicted first.
        self._marks: dict[str, Mark] = {}
        # With keep_sets: each vehicle's accepted rule set as written (its canonical JSON).
        self._sets: dict[str, bytes] = {}
        self._dir = state_dir / MARKS_SUBDIR if state_dir is not None else None
        self._sets_dir = state_dir / SETS_SUBDIR if state_dir is not None and keep_sets else None
        self._kept: dict[str, RuleSet] = {}
        if self._dir is not None:
            self._load(self._dir)
        if self._sets_dir is not None:
            self._kept = self._load_sets(self._sets_dir)

    @property
    def persistent(self) -> bool:
        return self._dir is not None

    def __len__(self) -> int:
        return len(self._marks)

    def get(self, vid: str) -> Mark | None:
        return self._marks.get(vid)

    def kept(self) -> dict[str, RuleSet]:
        """The rule sets kept on disk whose marks they match (``keep_sets``), by vehicle; each
        is what the node last accepted for that vehicle before it stopped."""
        return dict(self._kept)

    def replay_reason(self, vid: str, rules: RuleSet) -> str | None:
        """Why ``rules`` cannot be newer than what was accepted for ``vid``, or None.

        The same rule set again (a retained one redelivered on reconnect or restart) is fine;
        an older ``issued_at_ns``, or the same one with other content, is refused: an equal
        time with other content cannot be told apart from a replay.
        """
        mark = self._marks.get(vid)
        if mark is None or rules.issued_at_ns > mark.issued_at_ns:
            return None
        held = f"{mark.issued_at_ns} (version {mark.version!r})"
        if rules.issued_at_ns < mark.issued_at_ns:
            return (
                f"issued_at_ns {rules.issued_at_ns} (version {rules.version!r}) is older than "
                f"{held}, already accepted; refused"
            )
        if digest(rules) != mark.sha256:
            return (
                f"issued_at_ns {rules.issued_at_ns} equals that of {held}, already accepted, "
                "but the content differs; refused (issue every rule set at a new time)"
            )
        return None

    def record(self, vid: str, rules: RuleSet, held: Container[str] = ()) -> bool:
        """Set ``vid``'s mark to ``rules`` (accepted); evict one if full. False if the mark could
        not be written to disk (it is still held in memory; the error is logged)."""
        mark = Mark(
            vehicle_id=vid,
            issued_at_ns=rules.issued_at_ns,
            version=rules.version,
            sha256=digest(rules),
        )
        with self._lock:
            old = self._marks.pop(vid, None)
            # The same again: no write, unless its set is to be kept and is not yet (a state dir
            # from before keep_sets, keys configured since, a set file that was damaged).
            missing_set = self._sets_dir is not None and vid not in self._sets
            if old == mark and vid not in self.unsaved and not missing_set:
                self._marks[vid] = mark  # (it keeps its place)
                return True
            if old is None and len(self._marks) >= self.max_vehicles:
                self._evict(held)
            self._marks[vid] = mark
            if self._sets_dir is not None:
                self._sets[vid] = rules.model_dump_json().encode()
            return self._save(mark)

    def retry_unsaved(self) -> int:
        """Write the marks held in memory only; returns how many are still not saved."""
        with self._lock:
            for vid in sorted(self.unsaved):
                mark = self._marks.get(vid)
                if mark is None:
                    self.unsaved.discard(vid)
                elif not self._save(mark, quiet=True):
                    break  # the disk is still failing: the rest waits for the next retry
            return len(self.unsaved)

    def _save(self, mark: Mark, quiet: bool = False) -> bool:
        if self._dir is None:
            return True
        vid = mark.vehicle_id
        try:
            if self._sets_dir is not None and vid in self._sets:  # the set first: a mark on
                # disk newer than its set only loses the set, never lets an older one in
                self._write_file(self._sets_dir, vid, self._sets[vid])
            self._write_file(self._dir, vid, mark.model_dump_json().encode())
        except OSError as exc:
            self.write_failures += 1
            self.unsaved.add(vid)
            if not quiet:
                log.error("could not save the rule-set mark of %s in %s: %s", vid, self._dir, exc)
            return False
        if vid in self.unsaved:
            self.unsaved.discard(vid)
            log.warning(
                "saved the rule-set mark of %s in %s after an earlier failure", vid, self._dir
            )
        return True

    # internals ---------------------------------------------------------------------------------

    def _evict(self, held: Container[str]) -> None:
        victim = next((v for v in self._marks if v not in held), None)
        if victim is None:  # every mark belongs to a held vehicle: the node refuses new ones first
            victim = next(iter(self._marks))
        del self._marks[victim]
        self._sets.pop(victim, None)
        self.unsaved.discard(victim)
        for directory in (self._dir, self._sets_dir):
            if directory is not None:
                with suppress(OSError):
                    (directory / f"{victim}.json").unlink()

    @staticmethod
    def _write_file(directory: Path, vid: str, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{vid}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, directory / f"{vid}.json")
        except OSError:
            with suppress(OSError):
                os.unlink(tmp)
            raise

    def _load_sets(self, directory: Path) -> dict[str, RuleSet]:
        """The kept rule sets that match their marks. One that cannot be read or does not
        match (its write failed after an older one) is skipped with a warning: the mark, not
        the set, is what keeps old rule sets out."""
        kept = {}
        files = self._json_files(directory)
        for path in files:
            mark = self._marks.get(path.stem)
            try:
                raw = read_regular_file(path, _MAX_SET_FILE_BYTES, "state_dir: the rule set")
                rules = RuleSet.model_validate_json(raw)
            except (ConfigError, ValidationError) as exc:
                log.warning("state_dir: %s is not a rule set, not taken back: %s", path, exc)
                continue
            if mark is None or digest(rules) != mark.sha256 or rules.vehicle_id != path.stem:
                log.warning("state_dir: %s is not the rule set its mark names; not taken", path)
                continue
            kept[path.stem] = rules
            self._sets[path.stem] = raw
        return kept

    @staticmethod
    def _json_files(directory: Path, probe: bool = False) -> list[Path]:
        """The *.json files of ``directory`` (made if missing, cleared of the temporary files a
        crash between write and rename leaves); with ``probe``, also checked writable, so that
        start-up fails rather than the first rule set. ConfigError if it cannot be used."""
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for tmp in directory.glob(".*.tmp"):
                tmp.unlink()
            files = [p for p in directory.iterdir() if p.suffix == ".json"]
            if probe:
                fd, name = tempfile.mkstemp(dir=directory, prefix=".probe.", suffix=".tmp")
                os.close(fd)
                os.unlink(name)
        except OSError as exc:
            raise ConfigError(f"state_dir: cannot use {directory}: {exc.strerror or exc}") from exc
        return files

    def _load(self, directory: Path) -> None:
        marks = [self._read(p) for p in self._json_files(directory, probe=True)]
        marks.sort(key=lambda m: m.issued_at_ns)
        if len(marks) > self.max_vehicles:
            log.warning(
                "%d rule-set marks in %s, max_vehicles %d: the %d oldest are not loaded",
                len(marks),
                directory,
                self.max_vehicles,
                len(marks) - self.max_vehicles,
            )
            marks = marks[len(marks) - self.max_vehicles :]
        self._marks = {m.vehicle_id: m for m in marks}
        log.info("loaded %d rule-set marks from %s", len(self._marks), directory)

    @staticmethod
    def _read(path: Path) -> Mark:
        # A mark that cannot be read stops start-up: skipping it would let that vehicle's old
        # rule sets back in.
        hint = "fix or delete it (deleting forgets that vehicle's newest rule set)"
        try:
            raw = read_regular_file(path, _MAX_MARK_FILE_BYTES, "state_dir: the mark")
        except ConfigError as exc:
            raise ConfigError(f"{exc}; {hint}") from exc
        try:
            mark = Mark.model_validate_json(raw)
        except ValidationError as exc:
            raise ConfigError(f"state_dir: {path} is not a rule-set mark; {hint}") from exc
        if mark.vehicle_id != path.stem:
            raise ConfigError(f"state_dir: {path} holds the mark of {mark.vehicle_id!r}; {hint}")
        return mark
