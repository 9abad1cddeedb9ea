"""Write a target's report in every form: JSON (machines), JUnit XML and Markdown (CI job pages),
and a self-contained HTML page (people)."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

from edgecv.files import atomic_write_text
from edgecv.results import ArtifactResult, Report, load_report
from edgecv.tasks.base import ColumnSpec


def _fmt(v, spec: str, suffix: str = "") -> str:
    return "-" if v is None else f"{v:{spec}}{suffix}"


def as_report(report) -> Report:
    return report if isinstance(report, Report) else load_report(report)


def report_task(report: Report):
    """The report's task (None when its module cannot be imported here: generic columns then)."""
    from edgecv.tasks import get_task

    try:
        return get_task(report.task.get("name") or report.recipe.get("task", "classification"),
                        report.task.get("options") or {})
    except (KeyError, ValueError, ImportError):
        return None


# Agreement every task has: the worst named output's cosine with the float model's
GENERIC_COLUMNS = (ColumnSpec("cosine", "cosine", "outputs", "cosine_similarity", ".4f"),)


def task_columns(report: Report) -> tuple:
    task = report_task(report)
    return task.columns if task is not None and task.columns else GENERIC_COLUMNS


def gate_status(a: ArtifactResult) -> str:
    if not a.gates:
        return "-"
    failed = [g.gate for g in a.gates if g.passed is False]
    if failed:
        return "FAIL " + ", ".join(failed)
    return "not measured" if any(g.passed is None for g in a.gates) else "pass"


def columns(report: Report) -> list[tuple[str, str]]:
    """(key, header) of every report column: the artifact, the task's numbers, latency, size, gates."""
    return ([("artifact", "artifact"), ("format", "format"), ("precision", "precision"), ("status", "status")]
            + [(c.key, c.header) for c in task_columns(report)]
            + [("p50", "p50 ms"), ("p90", "p90 ms"), ("p99", "p99 ms"), ("size", "size MB"), ("gzip", "gzip MB"),
               ("gates", "gates")])


def artifact_rows(report) -> list[dict]:
    report = as_report(report)
    rows = []
    for a in report.artifacts:
        lat = a.latency or {}
        row = {"artifact": a.name, "format": a.format, "precision": a.precision, "status": a.status}
        for c in task_columns(report):
            row[c.key] = _fmt(a.value(c.source, c.field), c.fmt, c.suffix)
        row.update({
            "p50": _fmt(lat.get("p50_ms"), ".2f"), "p90": _fmt(lat.get("p90_ms"), ".2f"), "p99": _fmt(lat.get("p99_ms"), ".2f"),
            "size": _fmt(None if a.size_bytes is None else a.size_bytes / 1e6, ".2f"),
            "gzip": _fmt(None if a.gzip_bytes is None else a.gzip_bytes / 1e6, ".2f"),
            "gates": gate_status(a),
        })
        rows.append(row)
    return rows


def reference_line(report: Report) -> str:
    """The float model's headline number: 'accuracy 98.61%' (or nothing without targets)."""
    task = report_task(report)
    metric = task.quality_metric if task is not None else None
    value = report.reference.metrics.get(metric) if metric else None
    if value is None:
        return "no targets: agreement with the float model only"
    spec = task.metric(metric)
    return f"{metric} {value:{spec.fmt}}{spec.unit}"


def report_notes(report, code=lambda c: c) -> list[tuple[str, str]]:
    """What a reader must not miss below the table, as (severity, text): error, warning or fail."""
    report = as_report(report)
    notes = []
    for a in report.artifacts:
        if a.status == "failed":
            notes.append(("error", f"{a.name} failed: {(a.error or '').splitlines()[0] if a.error else ''}"))
        if a.status == "not_built":
            notes.append(("warning", f"{a.name} not built on this machine: {a.reason}"
                          + (f"; finish on the device: {code(a.how_to_finish)}" if a.how_to_finish else "")))
        if a.validation is not None and a.validation.numeric is False:
            notes.append(("warning", f"{a.name}: structural validation only — {a.validation.reason}"))
        for note in a.notes:
            notes.append(("warning", f"{a.name}: {note}"))
        for g in a.gates:
            if g.passed is False:
                notes.append(("fail", f"gate failed: {g.message}"))
    if report.data.get("skipped"):
        notes.append(("warning", f"{len(report.data['skipped'])} unreadable image(s) skipped (listed in report.json)"))
    return notes


def markdown_summary(report) -> str:
    report = as_report(report)
    cols = columns(report)
    lines = [f"## edgecv: {report.target['name']}", "",
             f"Reference (float Keras) {reference_line(report)} on {report.data.get('val_count')} validation "
             f"images; threads {report.target['runtime'].get('threads') or 'default'}; "
             f"{report.environment.get('cpu', '')}.", "",
             "| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    for r in artifact_rows(report):
        lines.append("| " + " | ".join(str(r[k]) for k, _ in cols) + " |")
    notes = [f"- {text}" for _, text in report_notes(report, code=lambda c: f"`{c}`")]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def junit_xml(report) -> str:
    """One test case per artifact x gate (plus one per artifact for the build itself)."""
    report = as_report(report)
    target = report.target["name"]
    suite = ET.Element("testsuite", name=f"edgecv.{target}")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for a in report.artifacts:
        case = ET.SubElement(suite, "testcase", classname=f"edgecv.{target}.{a.name}", name="build")
        counts["tests"] += 1
        if a.status == "failed":
            ET.SubElement(case, "error", message=(a.error or "").splitlines()[0]).text = a.traceback or a.error
            counts["errors"] += 1
        elif a.status == "not_built":
            ET.SubElement(case, "skipped", message=f"not built on this machine: {a.reason}")
            counts["skipped"] += 1
        for g in a.gates:
            gc = ET.SubElement(suite, "testcase", classname=f"edgecv.{target}.{a.name}", name=g.gate)
            counts["tests"] += 1
            if g.passed is False:
                ET.SubElement(gc, "failure", message=g.message)
                counts["failures"] += 1
            elif g.passed is None:
                ET.SubElement(gc, "skipped", message=g.message)
                counts["skipped"] += 1
    for k, v in counts.items():
        suite.set(k, str(v))
    if hasattr(ET, "indent"):  # Python 3.9+; on 3.8 (JetPack 5) the file is valid, on one line
        ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def write_reports(out_dir: Path, report) -> None:
    from edgecv.report.html import html_report

    report = as_report(report)
    atomic_write_text(out_dir / "report.json", json.dumps(report.to_json(), indent=2) + "\n")
    atomic_write_text(out_dir / "junit.xml", junit_xml(report))
    atomic_write_text(out_dir / "summary.md", markdown_summary(report))
    atomic_write_text(out_dir / "report.html", html_report(report))
