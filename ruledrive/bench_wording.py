"""``ruledrive bench wording``: does the model read *your* wording of a rule?

Acceptance, and every deployment, brings rule wordings the generator never wrote. This check
takes a file of templates (one or more per rule kind, per language; YAML, format below), and on
generated frames where one rule decides (the frames whose oracle decision changes if that rule
is read wrongly) replaces that rule's text with one of the templates, filled with the rule's own
limit, hours, lane and merge side. The frames then go through the node's own decision path
(``policy.decider.Decider``, the model's thresholds), and the report says, per rule kind and
language, how often the decision is right and valid, how often it is flagged (``valid=false``:
the safe failure) and how often it is wrong with ``valid=true`` (the unsafe one), with the
templates read worst and what the model read them as.

The frames come from ``--data`` (recordings made by ``ruledrive generate --rule-language
bilingual``; their per-rule metadata says which rule each frame turns on) or, by default, from a
bilingual test split of ``--scenes`` scenes generated into a temporary directory. Frames whose
rule set holds a rule nobody can read are left out (flagging them is right). Only rules that
bind every vehicle are re-worded; the template file needs no scope.

A check of wording the model never saw is only that if the renderings are not in its training
data: ``--seen-in`` takes recordings (the training data, e.g. the recipe's ``runs/v2/data/train``)
and the report counts, per kind and language, the re-worded frames whose rendering occurs there
verbatim, and lists those renderings. It compares exact texts, so a rendering the generator could
write but did not is not found.

Template file::

    en:
      slots:                        # how a parameter is written; one of a list is drawn
        hours: {day: [from 7:00 to 17:00], extended: [7am-8pm], always: [at any time]}
        lane: {left: [the left lane], centre: [...], right: [...], "1": [lane one], "2": [...],
               "3": [...], r1: [the rightmost lane], r2: [...], r3: [...]}
        merge: {left: [left], right: [right]}
      rules:                        # rule kind (a class of the model) -> templates
        speed_limit: ["Do not drive faster than {limit} km/h"]
        lane_closed: ["{Lane} is closed ahead, merge {merge}"]
    zh:
      ...

Slots: ``{limit}`` (digits), ``{hours}``, ``{lane}`` (``{Lane}``: first letter upper case),
``{merge}``. A template must name every parameter of its kind (speed_limit: limit;
school_zone: limit, hours; bus_lane: hours; lane_closed: lane, merge) and no other. Exit status:
0 done, 1 a kind and language below ``--fail-under``, 2 a bad flag or template file.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import random
import string
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bus.schema import MAX_RULE_CHARS
from core.errors import ConfigError, DataError
from ruledrive.argtypes import fraction, int_within
from ruledrive.benchdoc import add_doc_flags, bench_command, publish
from simulator.oracle import NOT_BINDING, NOT_UNDERSTOOD

__all__ = [
    "DEFAULT_SEED",
    "Templates",
    "load_templates",
    "register_bench",
    "render_checked",
    "reworded",
    "run",
    "targeted_jobs",
    "targeted_rules",
]

log = logging.getLogger(__name__)

HEADING = "Rule wording check"
# The parameters each rule kind names, as template slots.
PARAMS: dict[str, frozenset[str]] = {
    "speed_limit": frozenset({"limit"}),
    "school_zone": frozenset({"limit", "hours"}),
    "bus_lane": frozenset({"hours"}),
    "lane_closed": frozenset({"lane", "merge"}),
}
# Classes that are not rule kinds: what a rule is, not what a frame turns on.
NOT_WORDED = (NOT_BINDING, NOT_UNDERSTOOD)
_BATCH = 64
# numpy seeds generation and takes 0..2**32-1 here; more scenes than this only take hours.
MAX_SEED, MAX_SCENES, MAX_SHOW = 2**32 - 1, 100_000, 1000
DEFAULT_SEED = 29  # --seed: the frames generated and the templates drawn


@dataclass(frozen=True)
class Templates:
    """Per language: kind -> templates, and slot -> symbolic value -> renderings."""

    rules: dict[str, dict[str, list[str]]]
    slots: dict[str, dict[str, dict[str, list[str]]]] = field(default_factory=dict)
    # Per language: whole sentences of readable rules that bind no car (a written wording file's
    # ``not_binding``, ruledrive.written_corpus; a bench wording file has none).
    not_binding: dict[str, list[str]] = field(default_factory=dict)

    def render(self, lang: str, kind: str, rule: dict[str, Any], rng: random.Random) -> str:
        """One rendering of a symbolic rule (simulator.rules.Rule as a dict) in ``lang``."""
        template = rng.choice(self.rules[lang][kind])
        slots = self.slots.get(lang, {})
        values: dict[str, str] = {"limit": str(rule.get("limit"))}
        for slot in ("hours", "lane", "merge"):
            if rule.get(slot) is not None and slot in slots:
                values[slot] = rng.choice(slots[slot][str(rule[slot])])
        lane = values.get("lane", "")
        values["Lane"] = lane[:1].upper() + lane[1:]
        return template.format(**values).strip()


def _slot_names(template: str) -> set[str]:
    try:
        fields = [f for f in string.Formatter().parse(template) if f[1] is not None]
    except ValueError as exc:
        raise ConfigError(f"template {template!r}: {exc}") from exc
    if any(spec or conversion for _, _, spec, conversion in fields):
        raise ConfigError(f"template {template!r}: a slot is {{name}} alone, without a format")
    return {name for _, name, _, _ in fields if name is not None}


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a non-empty list of strings")
    if any(not v.strip() for v in value):
        raise ConfigError(f"{where}: an empty string")
    return value


def load_templates(
    path: Path, kinds: tuple[str, ...], allow_not_binding: bool = False
) -> Templates:
    """Read and check a template file against the model's rule kinds (``kinds``); ConfigError
    names what is wrong and where. With ``allow_not_binding``, a language may also list
    ``not_binding`` sentences (a written wording file, ruledrive.written_corpus)."""
    import yaml

    from simulator.rules import HOURS, LANE_NAMES, LANE_NUMBERS, SIDES

    values = {"hours": set(HOURS), "lane": set(LANE_NAMES) | set(LANE_NUMBERS), "merge": set(SIDES)}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, RecursionError, yaml.YAMLError) as exc:
        why = " ".join(str(exc).split())  # YAML says where on several lines: one line
        raise ConfigError(f"cannot read templates {path}: {why}") from exc
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path}: expected a mapping of language -> {{rules, slots}}")
    worded = sorted(k for k in kinds if k not in NOT_WORDED)
    rules: dict[str, dict[str, list[str]]] = {}
    slots: dict[str, dict[str, dict[str, list[str]]]] = {}
    not_binding: dict[str, list[str]] = {}
    for lang, body in data.items():
        where = f"{path}: {lang}"
        if allow_not_binding and isinstance(body, dict) and "rules" not in body:
            body = {**body, "rules": {}}  # a written file may hold not_binding sentences only
        if not isinstance(body, dict) or not isinstance(body.get("rules"), dict):
            raise ConfigError(f"{where}: expected 'rules:' (kind -> templates)")
        keys = {"rules", "slots"} | ({"not_binding"} if allow_not_binding else set())
        if set(body) - keys:
            raise ConfigError(f"{where}: unknown keys {sorted(set(body) - keys)}")
        if "not_binding" in body:
            sentences = _strings(body["not_binding"], f"{where}.not_binding")
            long = [t for t in sentences if len(t) > MAX_RULE_CHARS]
            if long:
                raise ConfigError(
                    f"{where}.not_binding: {long[0][:60]!r}... has {len(long[0])} characters; "
                    f"a rule on the bus has at most {MAX_RULE_CHARS}"
                )
            not_binding[str(lang)] = sentences
        raw_slots = body.get("slots") or {}
        if not isinstance(raw_slots, dict) or set(raw_slots) - set(values):
            raise ConfigError(f"{where}.slots: expected some of {sorted(values)}")
        lang_slots: dict[str, dict[str, list[str]]] = {}
        for slot, table in raw_slots.items():
            table = {str(k): v for k, v in (table or {}).items()} if isinstance(table, dict) else {}
            if set(table) != values[slot]:
                raise ConfigError(
                    f"{where}.slots.{slot}: needs exactly the values {sorted(values[slot])}"
                )
            lang_slots[slot] = {
                k: _strings(v, f"{where}.slots.{slot}.{k}") for k, v in table.items()
            }
        lang_rules: dict[str, list[str]] = {}
        for kind, templates in body["rules"].items():
            if kind not in worded:
                raise ConfigError(f"{where}.rules: unknown rule kind {kind!r}; one of {worded}")
            for t in _strings(templates, f"{where}.rules.{kind}"):
                named = {"lane" if n == "Lane" else n for n in _slot_names(t)}
                need = PARAMS.get(kind, frozenset())
                if named != need:
                    raise ConfigError(
                        f"{where}.rules.{kind}: {t!r} names {sorted(named) or 'no slot'}; "
                        f"a {kind} rule template names exactly {sorted(need) or 'no slot'}"
                    )
                missing = sorted(named - {"limit"} - set(lang_slots))
                if missing:
                    raise ConfigError(f"{where}.rules.{kind}: {t!r} needs slots: {missing}")
                fixed = sum(len(text) for text, *_ in string.Formatter().parse(t))
                if fixed > MAX_RULE_CHARS:
                    raise ConfigError(
                        f"{where}.rules.{kind}: {t[:60]!r}... has {fixed} characters besides "
                        f"its slots; a rule on the bus has at most {MAX_RULE_CHARS}"
                    )
            lang_rules[kind] = templates
        if allow_not_binding and not lang_rules and str(lang) not in not_binding:
            raise ConfigError(f"{where}: neither rules nor not_binding sentences")
        rules[str(lang)] = lang_rules
        slots[str(lang)] = lang_slots
    return Templates(rules, slots, not_binding)


def targeted_rules(samples: Any) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Each rule that binds every vehicle and that a usable frame turns on: (frame, its rule's
    scene record). Usable: labelled, with per-rule metadata, every rule of its set readable (a
    frame flagged for another rule is right to be flagged)."""
    for s in samples:
        metas = (s.scene or {}).get("rule_meta")
        if not isinstance(metas, list) or s.label is None:
            continue
        if not all(m.get("understood", True) for m in metas):
            continue
        for m in metas:
            rule, kind = m.get("rule") or {}, m.get("class")
            if (
                m.get("targeted")
                and isinstance(kind, str)
                and kind not in NOT_WORDED
                and rule.get("scope", "all") == "all"
            ):
                yield s, m


def render_checked(
    templates: Templates, lang: str, kind: str, rule: dict[str, Any], rng: random.Random
) -> str:
    """:meth:`Templates.render`, refused (ConfigError) when the rendering is longer than a rule
    on the bus may be (a long slot value can push it over)."""
    text = templates.render(lang, kind, rule, rng)
    if len(text) > MAX_RULE_CHARS:
        raise ConfigError(
            f"a {lang} {kind} template renders a rule of {len(text)} characters "
            f"({text[:60]!r}...); a rule on the bus has at most {MAX_RULE_CHARS}"
        )
    return text


def reworded(
    samples: Any, templates: Templates, seed: int = DEFAULT_SEED
) -> Iterator[tuple[Any, dict[str, Any], str, str]]:
    """Per targeted rule of each usable frame (:func:`targeted_rules`) and per language that
    has a template for its kind: (frame, the rule's scene record, language, the rule re-worded),
    the templates and slot values drawn from ``seed``. The node's check (:func:`targeted_jobs`)
    and the reader's (``bench reader --probe``) read the same renderings."""
    rng = random.Random(seed)
    for s, m in targeted_rules(samples):
        kind = m["class"]
        for lang, kinds in templates.rules.items():
            if kind in kinds:
                yield s, m, lang, render_checked(templates, lang, kind, m.get("rule") or {}, rng)


def targeted_jobs(samples: Any, templates: Templates, seed: int = 0) -> tuple[list, list]:
    """Per targeted rule of each usable frame and per language that has a template for its
    kind: a FrameJob with that rule re-worded, and its key (kind, language, label, text)."""
    from bus.schema import FrameHeader, RuleSet
    from policy.decider import FrameJob

    jobs, keys = [], []
    for s, m, lang, text in reworded(samples, templates, seed):
        texts = list(s.rules)
        texts[m["index"]] = text
        version = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:32]
        jobs.append(
            FrameJob(
                FrameHeader(
                    vehicle_id="check",
                    frame_id=s.frame_id,
                    stamp_ns=s.stamp_ns,
                    speed_kph=s.speed_kph,
                ),
                s.jpeg,
                RuleSet(vehicle_id="check", version=version, issued_at_ns=1, rules=texts),
            )
        )
        keys.append((m["class"], lang, s.label, text))
    return jobs, keys


def _recordings(paths: list[Path], flag: str) -> list[Any]:
    """The samples of the recordings named by ``flag`` (labels not needed); a path that holds
    none is a ConfigError naming the flag."""
    from bus.recording_reader import read_samples
    from training.data import list_recordings

    try:
        files = list_recordings(paths)
    except DataError as exc:
        raise ConfigError(f"{flag}: no recordings: {exc}") from exc
    return list(read_samples(files, require_labels=False))


def _samples(args: argparse.Namespace, tmp: Path) -> list[Any]:
    from bus.recording_reader import read_samples
    from training.data import list_recordings

    if args.data:
        return _recordings(args.data, "--data")
    from simulator.generate import generate

    log.info("generating a bilingual test split of %d scenes (seed %d)", args.scenes, args.seed)
    generate(tmp, "test", args.scenes, args.seed, progress=False, rule_language="bilingual")
    return list(read_samples(list_recordings([tmp])))


def _seen_texts(paths: list[Path] | None) -> set[str] | None:
    """Every rule text of the recordings ``paths`` (None: the check was not asked for)."""
    if not paths:
        return None
    return {text for s in _recordings(paths, "--seen-in") for text in s.rules}


def run(args: argparse.Namespace) -> int:
    from policy.decider import Decider
    from policy.model import PolicyModel

    if not args.model.is_file():
        raise ConfigError(f"model {args.model} not found; pass --model PATH")
    if not args.no_write:
        from core.paths import check_not_an_input

        check_not_an_input(args.output, "--output", [args.templates, args.model])
    model = PolicyModel.load(args.model)
    templates = load_templates(args.templates, model.meta.rule_classes)
    seen = _seen_texts(args.seen_in)
    with tempfile.TemporaryDirectory(prefix="ruledrive-wording-") as tmp:
        samples = _samples(args, Path(tmp))
    jobs, keys = targeted_jobs(samples, templates, args.seed)
    if not jobs:
        raise DataError(
            "no frame turns on a rule kind the templates cover (recordings need the bilingual "
            "rule language's per-rule metadata)"
        )
    decider = Decider(model, "wording-check")
    t0 = time.perf_counter()
    per: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])  # right, flagged, n
    by_text: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    # What the node answered a rendering's frames it got wrong: a fallback reason when it said
    # valid=false, the decision it acted on otherwise.
    answers: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    for i in range(0, len(jobs), _BATCH):
        for d, (kind, lang, label, text) in zip(
            decider.decide_batch(jobs[i : i + _BATCH]), keys[i : i + _BATCH], strict=True
        ):
            right = d.valid and d.decision == label
            cell = per[(kind, lang)]
            cell[0] += right
            cell[1] += not d.valid
            cell[2] += 1
            t = by_text[(kind, lang, text)]
            t[0] += right
            t[1] += 1
            if not right:
                said = f"`{d.reason}`" if not d.valid else f"{d.decision} (valid)"
                answers[(kind, lang, text)][said] += 1
    seconds = time.perf_counter() - t0
    text = _report(args, model, per, by_text, answers, len(jobs), seconds, seen)
    publish(args, HEADING, text)
    low = [
        k for k, (r, _, n) in per.items() if args.fail_under is not None and r / n < args.fail_under
    ]
    if low:
        print(
            f"below --fail-under {args.fail_under:.0%}: "
            + ", ".join(f"{kind} {lang}" for kind, lang in sorted(low))
        )
        return 1
    return 0


def _report(args, model, per, by_text, answers, n_jobs: int, seconds: float, seen) -> str:  # type: ignore[no-untyped-def]
    source = (
        ", ".join(map(str, args.data))
        if args.data
        else f"a generated bilingual test split of {args.scenes} scenes, seed {args.seed}"
    )
    lines = [
        f"## {HEADING}",
        "",
        f"Command: `{bench_command('wording').strip()}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; model `{args.model}` "
        f"version `{model.version}`; templates `{args.templates}`; frames: {source}; "
        f"{n_jobs} re-worded frames through `Decider` in {seconds:.0f} s.",
        "",
        "On the frames one rule decides, that rule re-worded by the templates; right = valid and "
        "the oracle's decision; flagged = `valid=false` (safe); wrong = a different decision "
        "with `valid=true` (unsafe):",
        "",
        "| rule kind | language | frames | right | flagged | wrong |"
        + (" seen in --seen-in |" if seen is not None else ""),
        "|---|---|---|---|---|---|" + ("---|" if seen is not None else ""),
    ]
    seen_frames: dict[tuple[str, str], int] = defaultdict(int)
    for (kind, lang, text), (_, n) in by_text.items():
        if seen is not None and text in seen:
            seen_frames[(kind, lang)] += n
    for (kind, lang), (right, flagged, n) in sorted(per.items()):
        wrong = n - right - flagged
        lines.append(
            f"| {kind} | {lang} | {n} | {right / n:.1%} | {flagged / n:.1%} | {wrong / n:.1%} |"
            + (f" {seen_frames[(kind, lang)] / n:.1%} |" if seen is not None else "")
        )
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for (_, lang), counts in per.items():
        totals[lang] = [t + c for t, c in zip(totals[lang], counts, strict=True)]
    lines += [
        "",
        "In all (every kind): "
        + "; ".join(
            f"{lang} {n} frames, {right} right, {flagged} flagged, **{n - right - flagged} wrong"
            " with `valid=true`**"
            for lang, (right, flagged, n) in sorted(totals.items())
        )
        + ".",
    ]
    if seen is not None:
        found = sorted({text for (_, _, text) in by_text if text in seen})
        lines += [
            "",
            f"Renderings found verbatim among the {len(seen)} rule texts of "
            f"{', '.join(map(str, args.seen_in))}: "
            + ("none." if not found else "; ".join(t.replace("|", "/") for t in found[:20]))
            + (f" (and {len(found) - 20} more)" if len(found) > 20 else ""),
        ]
    worst = sorted(
        ((r / n, n, k) for k, (r, n) in by_text.items() if r < n), key=lambda x: (x[0], -x[1])
    )[: args.show]
    if worst:
        lines += [
            "",
            "Renderings read worst (what the model read the rule as, alone; what the node "
            "answered the frames it did not get right, commonest first):",
            "",
        ]
        lines += [
            "| right | frames | rule kind | text | read as | answered instead |",
            "|---|---|---|---|---|---|",
        ]
        classes = model.meta.rule_classes
        for acc, n, (kind, _lang, text) in worst:
            p = model.encode_rules((text,)).classes
            read = "-" if p is None else f"{classes[int(p[0].argmax())]} ({float(p[0].max()):.2f})"
            said = ", ".join(f"{a} x{c}" for a, c in answers[(kind, _lang, text)].most_common(2))
            lines.append(
                f"| {acc:.0%} | {n} | {kind} | {text.replace('|', '/')} | {read} | {said} |"
            )
    return "\n".join(lines) + "\n"


def register_bench(bench_sub: argparse._SubParsersAction) -> None:
    from core.defaults import DEFAULT_MODEL_PATH

    p = bench_sub.add_parser(
        "wording", help="your rule wordings, on the frames each rule decides: read right?"
    )
    p.add_argument("--templates", type=Path, required=True, help="YAML template file")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    p.add_argument("--data", type=Path, nargs="+", help="recordings (default: generate)")
    p.add_argument(
        "--scenes",
        type=int_within(1, MAX_SCENES),
        default=3000,
        help=f"scenes to generate, 1..{MAX_SCENES} (default %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=int_within(0, MAX_SEED),
        default=DEFAULT_SEED,
        help=f"generation and template draws, 0..{MAX_SEED} (default %(default)s)",
    )
    p.add_argument(
        "--seen-in",
        type=Path,
        nargs="+",
        help="training recordings: count renderings that occur in them verbatim",
    )
    p.add_argument(
        "--show",
        type=int_within(1, MAX_SHOW),
        default=15,
        help=f"worst renderings listed, 1..{MAX_SHOW} (default %(default)s)",
    )
    p.add_argument(
        "--fail-under", type=fraction, help="exit 1 if a kind and language is right less often"
    )
    add_doc_flags(p)
    p.set_defaults(func=run)
