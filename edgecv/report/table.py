"""The terminal summary: one row per artifact that fits 80 columns (artifact, ✅/❌, the task's short
columns, p50, FPS, MB); `--wide` shows every report column. Printed on stdout with the verdict;
notes follow on the same console."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgecv.report.outputs import (artifact_rows, as_report, column_specs, latency_provenance, reference_line,
                                   report_notes, report_verdict, verdict_mark)
from edgecv.report.uncertainty import interval_lines

VERDICT_MARKS = {"pass": "✅", "fail": "❌", "not built": "➖", "not measured": "➖"}
NOTE_STYLES = {"error": "red", "fail": "red", "warning": "yellow"}


def summary_table(report, wide: bool = False) -> Table:
    report = as_report(report)
    cols = [c for c in column_specs(report) if wide or c.terminal]
    t = Table(title=f"{report.target['name']}: reference {reference_line(report)}", box=box.SIMPLE_HEAD,
              padding=(0, 1), pad_edge=False, title_justify="left")
    for c in cols:
        if c.key == "artifact":
            t.add_column(c.short_header, overflow="fold", ratio=None)
        elif c.key == "status":
            t.add_column("" if not wide else c.short_header, no_wrap=True)
        else:
            t.add_column(c.short_header, justify="left" if c.text else "right", no_wrap=not c.text,
                         overflow="fold")
    for row in artifact_rows(report):
        cells = []
        for c in cols:
            value = escape(str(row[c.key]))
            if c.key == "status":
                mark = VERDICT_MARKS[row["verdict"]]
                value = f"{mark} {value}" if wide else mark
            elif c.key == "gates" and value.startswith("FAIL"):
                value = f"[red]{value}[/]"
            cells.append(value)
        t.add_row(*cells, style="red" if row["verdict"] == "fail" else None)
    return t


def print_summary(report, console: Console, wide: bool = False, notes: Console | None = None) -> None:
    """The table and the verdict on `console` (stdout); notes on `notes` (default the same)."""
    report = as_report(report)
    notes = notes or console
    console.print(summary_table(report, wide))
    for severity, text in report_notes(report):
        notes.print(f"[{NOTE_STYLES[severity]}]{escape(text)}[/]")
    for line in interval_lines(report):
        notes.print(f"[dim]{escape(line)}[/]")
    for line in latency_provenance(report):
        notes.print(f"[dim]{escape(line)}[/]")
    passed, sentence = report_verdict(report)
    console.print(f"{verdict_mark(report)} {escape(sentence)}", style="bold green" if passed else "bold red")
