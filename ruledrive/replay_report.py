"""What ``ruledrive replay`` (and ``ruledrive demo``) show and write: the progress bar, the rich
table on the terminal (with what broker outages cost), and the files under ``--out``
(report.json, decisions.jsonl, latency_hist.png, confusion.png)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["OUTPUT_FILES", "Progress", "print_report", "write_outputs"]

OUTPUT_FILES = ("report.json", "decisions.jsonl", "latency_hist.png", "confusion.png")  # in --out


class Progress:
    """A rich progress bar fed by the replayer's callback (a no-op when not on a terminal)."""

    def __init__(self, show: bool, lanes: list[Any]) -> None:
        self.show = show
        self.total = sum(sum(1 for *_, ref in lane.steps() if ref is not None) for lane in lanes)
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if self.show:
            from rich.progress import Progress

            self._bar = Progress(transient=True)
            self._bar.start()
            self._task = self._bar.add_task("replay: decisions", total=self.total)
        return self

    def __call__(self, done: int, total: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def write_outputs(report: Any, board: Any, out: Path) -> None:
    """report.json, decisions.jsonl, latency_hist.png, confusion.png under ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from core.metrics import plot_confusion

    out.mkdir(parents=True, exist_ok=True)
    report_json, decisions_jsonl, latency_png, confusion_png = (out / n for n in OUTPUT_FILES)
    report_json.write_text(json.dumps(report.to_dict(), indent=1) + "\n")
    with decisions_jsonl.open("w") as f:
        for ref, msg, ms in board.matched():
            row = {
                "source_vehicle_id": ref.source_vehicle_id,
                "source_frame_id": ref.source_frame_id,
                "label": ref.label,
                "latency_ms": round(ms, 3),
                "decision": msg.model_dump(mode="json"),
            }
            f.write(json.dumps(row) + "\n")
        unanswered = [(ref, "missing") for ref in board.missing()]
        for ref, why in unanswered + [(ref, "lost") for ref in board.lost()]:
            f.write(
                json.dumps(
                    {
                        "source_vehicle_id": ref.source_vehicle_id,
                        "source_frame_id": ref.source_frame_id,
                        "label": ref.label,
                        why: True,
                        "vehicle_id": ref.vehicle_id,
                        "frame_id": ref.frame_id,
                    }
                )
                + "\n"
            )
    lat = board.latencies_ms()
    fig, ax = plt.subplots(figsize=(7, 4))
    if lat:
        ax.hist(lat, bins=min(60, max(10, len(lat) // 10)), color="tab:blue")
        for q, style in ((50, "-"), (95, "--"), (99, ":")):
            v = float(np.percentile(lat, q))
            ax.axvline(v, color="k", linestyle=style, label=f"p{q} {v:.1f} ms")
        ax.legend()
    ax.set_xlabel("publish -> decision latency (ms)")
    ax.set_ylabel("frames")
    rate = "max" if report.target_rate is None else f"{report.target_rate:g}x"
    ax.set_title(f"replay latency ({len(lat)} decisions, rate {rate}, {report.vehicles} vehicles)")
    fig.tight_layout()
    fig.savefig(latency_png, dpi=100)
    plt.close(fig)
    acc = "n/a" if report.accuracy is None else f"{report.accuracy:.3f}"
    plot_confusion(
        np.array(report.confusion_matrix),
        report.labels,
        confusion_png,
        f"replay decisions vs recorded labels (accuracy {acc})",
    )


def _fmt(v: float | None, spec: str = ".1f") -> str:
    return "n/a" if v is None else format(v, spec)


def _outage_rows(report: Any) -> list[tuple[str, str]]:
    """What broker outages cost (nothing when there was none)."""
    if not (report.outages or report.lost or report.rules_not_cleared):
        return []
    down = sum(o["down_s"] for o in report.outages)
    unanswered = sum(o["frames_unanswered"] for o in report.outages)
    rows = [
        ("broker outages", f"{len(report.outages)} ({down:.1f} s)"),
        ("lost (publish failed while away)", f"[red]{report.lost}[/red] frames"),
        ("unanswered around the outages", f"{unanswered} of the missing"),
    ]
    if report.rules_lost or report.labels_lost:
        rows.append(("rule sets / labels lost", f"{report.rules_lost} / {report.labels_lost}"))
    if report.rules_not_cleared:
        vids = ", ".join(report.rules_not_cleared)
        rows.append(("retained rules NOT cleared", f"[red]{vids}[/red]"))
    return rows


def _missing(report: Any) -> str:
    """The missing count, with how many of them the node conflated on purpose when known."""
    conflated = getattr(report, "conflated", None)
    if conflated is None:
        return str(report.missing)
    return f"{report.missing} ({conflated} conflated by the node on purpose)"


def print_report(report: Any, out: Path | None = None) -> None:
    """The scoreboard: a rich table of the figures, then the confusion matrix."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(stderr=False, width=110)
    t = Table(title="ruledrive replay", show_header=False)
    t.add_column("metric", style="bold")
    t.add_column("value", justify="right")
    lat = report.latency_ms
    rows = [
        ("vehicles", str(report.vehicles)),
        ("target rate", "max" if report.target_rate is None else f"{report.target_rate:g}x"),
        ("frames published / planned", f"{report.frames_published} / {report.frames_planned}"),
        ("decisions matched", str(report.decisions_matched)),
        ("missing decisions (sent, no answer)", _missing(report)),
        (
            "fallback (valid=false)",
            escape(f"{report.fallback} {report.fallback_reasons or ''}".strip()),
        ),
        (
            "accuracy (all / valid only)",
            f"{_fmt(report.accuracy, '.3f')} / {_fmt(report.accuracy_valid_only, '.3f')}",
        ),
        *(
            [
                (
                    "by rule text: accuracy (frames; valid=false)",
                    "\n".join(
                        f"{text} {v['accuracy']:.3f} ({v['frames']:.0f}; "
                        f"{100 * v['valid_false']:.0f} %)"
                        for text, v in report.by_rule_text.items()
                    ),
                )
            ]
            if report.by_rule_text
            else []
        ),
        (
            "latency p50 / p95 / p99 ms",
            f"{_fmt(lat['p50'])} / {_fmt(lat['p95'])} / {_fmt(lat['p99'])}",
        ),
        ("achieved rate", f"{report.achieved_fps:.1f} decisions/s in {report.elapsed_s:.1f} s"),
        *(
            [
                (
                    "schedule kept (frames late p50 / p99 ms; client CPU)",
                    ("yes" if report.pacing["held"] else "[red]NO[/red]")
                    + f" ({report.pacing['behind_p50_ms']:.1f} / "
                    f"{report.pacing['behind_p99_ms']:.1f}; "
                    f"{report.pacing['client_cpu_pct']:.0f} %)",
                )
            ]
            if report.pacing
            else []
        ),
        # What a node says is printed as text, never as rich markup ("fused-2026[rc1]").
        ("model", escape(", ".join(report.model_versions)) or "n/a"),
    ]
    if report.misrouted or report.wrong_frame:
        rows.append(
            (
                "[red]misrouted / wrong frame[/red]",
                f"{report.misrouted} / {report.wrong_frame}",
            )
        )
    if report.unexpected or report.duplicates or report.late:
        rows.append(
            (
                "unexpected / duplicate / late",
                f"{report.unexpected} / {report.duplicates} / {report.late}",
            )
        )
    rows += _outage_rows(report)
    if report.aborted:
        rows.append(("aborted", f"[red]{report.aborted}[/red]"))
    for k, v in rows:
        t.add_row(k, v)
    console.print(t)
    if report.labelled:
        cm = Table(title="confusion (rows = recorded label, columns = decision)")
        cm.add_column("", no_wrap=True)
        for name in report.labels:  # full names: CHANGE_LANE_LEFT and _RIGHT differ at the end
            cm.add_column(name, justify="right", no_wrap=True)
        for name, row in zip(report.labels, report.confusion_matrix, strict=True):
            cm.add_row(name, *(str(v) if v else "." for v in row))
        console.print(cm)
    if out is not None:
        console.print(
            f"report: {out / 'report.json'}  figures: {out}/latency_hist.png, {out}/confusion.png"
        )
