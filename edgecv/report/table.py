"""The terminal summary: one row per artifact that fits 80 columns (artifact, ✅/❌, the task's short
columns, p50, FPS, MB); `--wide` shows every report column. Printed on stdout with the verdict;
notes follow on the same console."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.cells import cell_len
from rich.markup import escape
from rich.table import Table

from edgecv.report.outputs import (artifact_rows, as_report, column_specs, latency_provenance, reference_line,
                                   report_notes, report_verdict, verdict_mark)
from edgecv.report.uncertainty import interval_lines

VERDICT_MARKS = {"pass": "✅", "fail": "❌", "not built": "➖", "not measured": "➖"}
NOTE_STYLES = {"error": "red", "fail": "red", "warning": "yellow"}


def summary_table(report, wide: bool = False, keys=None, title: bool = True) -> Table:
    """One table; `keys`: only these columns (the artifact column always comes first)."""
    report = as_report(report)
    cols = [c for c in column_specs(report) if (wide or c.terminal) and (keys is None or c.key in keys)]
    t = Table(title=f"{report.target['name']}: reference {reference_line(report)}" if title else None,
              box=box.SIMPLE_HEAD,
              padding=(0, 1), pad_edge=False, title_justify="left")
    for c in cols:
        if c.key == "artifact":
            t.add_column(c.short_header, overflow="fold", ratio=None)
        elif c.key == "status":
            t.add_column("" if not wide else c.short_header, no_wrap=True)
        else:
            t.add_column(c.short_header, justify="left" if c.text else "right", no_wrap=not c.text,
                         overflow="fold", min_width=None if c.text else cell_len(c.short_header))
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


def summary_tables(report, wide: bool = False, width: int = 80) -> list[Table]:
    """The table, split into several (each starting with the artifact column) where `--wide` does
    not fit `width`: a number is never cut or folded to fit."""
    report = as_report(report)
    cols = [c for c in column_specs(report) if wide or c.terminal]
    if not wide:
        return [summary_table(report)]
    rows = artifact_rows(report)

    def need(c) -> int:
        cells = [str(r[c.key]) + (" ✅" if c.key == "status" else "") for r in rows]
        if c.text:  # words may wrap: the longest word, or the whole name where it is short
            words = [w for v in cells + [c.short_header] for w in v.split()]
            return max(cell_len(w) for w in words) if words else 1
        return max(cell_len(v) for v in cells + [c.short_header])

    first = [c for c in cols if c.key == "artifact"]
    used = sum(need(c) + 3 for c in first)
    groups, current = [], []
    for c in cols:
        if c in first:
            continue
        if current and used + sum(need(x) + 3 for x in current) + need(c) + 3 > width:
            groups.append(current)
            current = []
        current.append(c)
    if current:
        groups.append(current)
    return [summary_table(report, wide=True, keys={"artifact", *(c.key for c in g)}, title=i == 0)
            for i, g in enumerate(groups)]


def print_summary(report, console: Console, wide: bool = False, notes: Console | None = None) -> None:
    """The table and the verdict on `console` (stdout); notes on `notes` (default the same)."""
    report = as_report(report)
    notes = notes or console
    for table in summary_tables(report, wide, console.width):
        console.print(table)
    for severity, text in report_notes(report):
        notes.print(f"[{NOTE_STYLES[severity]}]{escape(text)}[/]")
    for line in interval_lines(report):
        notes.print(f"[dim]{escape(line)}[/]")
    for line in latency_provenance(report):
        notes.print(f"[dim]{escape(line)}[/]")
    passed, sentence = report_verdict(report)
    console.print(f"{verdict_mark(report)} {escape(sentence)}", style="bold green" if passed else "bold red")
