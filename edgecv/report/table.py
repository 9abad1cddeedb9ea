"""The terminal summary: one row per artifact (Ultralytics' benchmark table plus delta, agreement, gates)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgecv.report.outputs import artifact_rows, as_report, columns, reference_line, report_notes

STYLES = {"ok": "green", "pass": "green", "failed": "red", "not_built": "yellow", "not measured": "yellow"}
NOTE_STYLES = {"error": "red", "fail": "red", "warning": "yellow"}


def summary_table(report) -> Table:
    report = as_report(report)
    cols = columns(report)
    t = Table(title=f"edgecv build: {report.target['name']}  (reference {reference_line(report)})")
    text_cols = {"artifact", "format", "precision", "status", "gates"}
    for key, header in cols:
        t.add_column(header, justify="left" if key in text_cols else "right")
    for row in artifact_rows(report):
        cells = []
        for key, _ in cols:
            value = escape(str(row[key]))
            style = STYLES.get(row[key]) or ("red" if key == "gates" and row[key].startswith("FAIL") else None)
            cells.append(f"[{style}]{value}[/]" if style and key in ("status", "gates") else value)
        t.add_row(*cells)
    return t


def print_summary(report, console: Console) -> None:
    console.print(summary_table(report))
    for severity, text in report_notes(report):
        console.print(f"[{NOTE_STYLES[severity]}]{escape(text)}[/]")
