"""What every form of a target's report shows (rows, columns, verdict, notes, where latency was
measured), and writing them all: JSON (machines), JUnit XML and Markdown (CI, `ci.py`), a
self-contained HTML page (people, `html.py`)."""

from __future__ import annotations

import json
from pathlib import Path

import re
from dataclasses import dataclass
from typing import Optional

from edgecv.files import atomic_write_text
from edgecv.results import ArtifactResult, Report, load_report
from edgecv.tasks.base import ColumnSpec
from edgecv.tasks import get_task


def _fmt(v, spec: str, suffix: str = "") -> str:
    return "-" if v is None else f"{v:{spec}}{suffix}"


def as_report(report) -> Report:
    return report if isinstance(report, Report) else load_report(report)


def report_task(report: Report):
    """The report's task (None when its module cannot be imported here: generic columns then)."""
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


def verdict(a: ArtifactResult) -> str:
    """pass | fail | not built | not measured: one word a row is judged by."""
    if a.status == "failed" or a.failed_gates:
        return "fail"
    if a.status == "not_built":
        return "not built"
    return "not measured" if any(g.passed is None for g in a.gates) else "pass"


def device_result(a: ArtifactResult) -> Optional[dict]:
    """The latest `edgecv bench` result merged for this artifact (None: build-host numbers only)."""
    return a.device_results[-1] if a.device_results else None


def has_device_results(report: Report) -> bool:
    return any(a.device_results for a in report.artifacts)


def device_name(dev: dict) -> str:
    d = dev.get("device") or {}
    name = d.get("board") or d.get("cpu") or "device"
    name = f"{name} ({d['hostname']})" if d.get("hostname") else name
    remote = (dev.get("remote") or {}).get("host")  # measured through `bench --host`
    return f"{name} via {remote}" if remote else name


def host_name(report: Report) -> str:
    env = report.environment
    return f"{env.get('cpu') or 'unknown CPU'}, {env.get('cpu_count')} cores"


@dataclass(frozen=True)
class Column:
    key: str
    header: str  # in the reports
    short_header: str  # in the terminal table
    terminal: bool = False  # in the default 80-column terminal table
    text: bool = False  # left-aligned


def column_specs(report: Report) -> list[Column]:
    """Every report column: the artifact, the task's numbers, latency (build host, then the device's
    where `edgecv report --merge` added them), size, gates."""
    on_device = has_device_results(report)
    host = "host " if on_device else ""
    cols = [Column("artifact", "artifact", "artifact", True, True), Column("format", "format", "format", text=True),
            Column("precision", "precision", "precision", text=True), Column("status", "status", "status", True, True)]
    cols += [Column(c.key, c.header, c.header, c.short) for c in task_columns(report)]
    cols += [Column("p50", f"{host}p50 ms", "p50 ms", True), Column("p90", f"{host}p90 ms", "p90 ms"),
             Column("p99", f"{host}p99 ms", "p99 ms"), Column("fps", f"{host}FPS", "FPS", True),
             Column("size", "size MB", "MB", True), Column("gzip", "gzip MB", "gzip MB"),
             Column("gates", "gates", "gates", text=True)]
    if on_device:
        q = _quality_column(report)
        cols += [Column("dev_p50", "device p50 ms", "dev p50"), Column("dev_p90", "device p90 ms", "dev p90"),
                 Column("dev_fps", "device FPS", "dev FPS")]
        if q:
            cols.append(Column("dev_quality", f"device {q}", f"dev {q}"))
        cols.append(Column("device", "device", "device", text=True))
    return cols


def columns(report: Report) -> list[tuple[str, str]]:
    """(key, header) of every report column."""
    return [(c.key, c.header) for c in column_specs(report)]


def _quality_column(report: Report) -> Optional[str]:
    task = report_task(report)
    return task.quality_metric if task is not None else None


FPS_MEANING = "FPS: images per second at the median latency, 1000 × batch / p50 ms"


def fps(lat: Optional[dict]) -> Optional[float]:
    """Images per second at the median latency, so that FPS and p50 in one row always agree (the
    mean-based throughput in `throughput_ips` moves with a few slow runs)."""
    if not lat or not lat.get("p50_ms"):
        return None
    return 1000.0 * (lat.get("batch") or 1) / lat["p50_ms"]


_fps = fps


def artifact_rows(report) -> list[dict]:
    report = as_report(report)
    task = report_task(report)
    q = _quality_column(report)
    rows = []
    for a in report.artifacts:
        lat = a.latency or {}
        word = verdict(a)
        status = {"pass": "ok", "fail": "failed" if a.status == "failed" else "gate failed"}.get(word, word)
        row = {"artifact": a.name, "format": a.format, "precision": a.precision, "status": status, "verdict": word}
        for c in task_columns(report):
            row[c.key] = _fmt(a.value(c.source, c.field), c.fmt, c.suffix)
        row.update({
            "p50": _fmt(lat.get("p50_ms"), ".2f"), "p90": _fmt(lat.get("p90_ms"), ".2f"), "p99": _fmt(lat.get("p99_ms"), ".2f"),
            "fps": _fmt(_fps(lat), ".0f"),
            "size": _fmt(None if a.size_bytes is None else a.size_bytes / 1e6, ".2f"),
            "gzip": _fmt(None if a.gzip_bytes is None else a.gzip_bytes / 1e6, ".2f"),
            "gates": gate_status(a),
        })
        dev = device_result(a)
        dlat = (dev or {}).get("latency") or {}
        from edgecv.report.merge import device_metrics  # lazy: import cycle (report.merge -> report.outputs)

        dq = device_metrics(dev).get(q) if dev and q else None
        spec = task.metric(q) if dq is not None else None
        row.update({"dev_p50": _fmt(dlat.get("p50_ms"), ".2f"), "dev_p90": _fmt(dlat.get("p90_ms"), ".2f"),
                    "dev_fps": _fmt(_fps(dlat), ".0f"), "device": device_name(dev) if dev else "-",
                    "dev_quality": _fmt(dq, spec.fmt, spec.unit) if spec else "-"})
        rows.append(row)
    return rows


def latency_provenance(report) -> list[str]:
    """Where each latency was measured: the build host always, devices where results were merged."""
    report = as_report(report)
    threads = report.target.get("runtime", {}).get("threads") or "default"
    lines = [f"Build-host latency: measured on {host_name(report)}, {threads} threads"
             + ("" if has_device_results(report) else
                " — not on the target device; run `edgecv bench` there and `edgecv report --merge` the result")
             + "."]
    devices = {}
    for a in report.artifacts:
        dev = device_result(a)
        if dev:
            devices.setdefault(device_name(dev), []).append(a.name)
    for name, arts in devices.items():
        lines.append(f"Device latency: measured on {name} by `edgecv bench` ({', '.join(arts)}).")
    return lines + [FPS_MEANING + "."]


def device_lines(report: Report) -> list[str]:
    """'int8: p50 4.97 ms on Raspberry Pi 4 (pi4), 18.90 ms on the build host': device beside host."""
    lines = []
    for a in report.artifacts:
        dev = device_result(a)
        if dev and dev.get("latency"):
            host = (a.latency or {}).get("p50_ms")
            lines.append(f"{a.name}: p50 {dev['latency']['p50_ms']:.2f} ms on {device_name(dev)}"
                         + ("" if host is None else f", {host:.2f} ms on the build host"))
        if dev and dev.get("metrics_not_judged"):
            lines.append(f"{a.name}: {dev['metrics_not_judged']}")
    return lines


def finish_command(a: ArtifactResult) -> Optional[str]:
    """A not-built artifact's command with the bundle path relative to the target folder."""
    if not a.how_to_finish:
        return None
    if a.prepared:
        return re.sub(r"\S*/" + re.escape(a.prepared) + r"\b", a.prepared, a.how_to_finish)
    return a.how_to_finish


def report_verdict(report) -> tuple[bool, str]:
    """(passed, one sentence): what a CI page and the terminal say first."""
    report = as_report(report)
    words = [verdict(a) for a in report.artifacts]
    target = report.target["name"]
    failed = [a for a, w in zip(report.artifacts, words) if w == "fail"]
    extra = [f"{words.count(w)} {w}" for w in ("not built", "not measured") if w in words]
    tail = f" ({', '.join(extra)})" if extra else ""
    if failed:
        why = "; ".join(f"{a.name}: {'build error' if a.status == 'failed' else ', '.join(g.gate for g in a.failed_gates)}"
                        for a in failed)
        enforced = "" if report.gates_enforced else " (gates not enforced: --no-gates)"
        return False, f"{target}: {len(failed)} of {len(words)} artifacts failed — {why}{tail}{enforced}"
    if "pass" not in words:
        return True, f"{target}: nothing failed, nothing could be checked here{tail}"
    return True, f"{target}: {words.count('pass')} of {len(words)} artifacts passed their gates{tail}"


def verdict_mark(report) -> str:
    """✅ passed, ❌ failed, ➖ nothing failed but nothing was checked (e.g. Core ML off macOS)."""
    passed, _ = report_verdict(report)
    if not passed:
        return "❌"
    return "✅" if any(verdict(a) == "pass" for a in as_report(report).artifacts) else "➖"


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
                          + (f"; finish on the device: {code(finish_command(a))}" if a.how_to_finish else "")))
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


def write_reports(out_dir: Path, report) -> None:
    from edgecv.report.ci import junit_xml, markdown_summary  # lazy: import cycle (report.ci -> report.outputs)
    from edgecv.report.html import html_report  # lazy: import cycle (report.html -> report.outputs)

    report = as_report(report)
    atomic_write_text(out_dir / "report.json", json.dumps(report.to_json(), indent=2) + "\n")
    atomic_write_text(out_dir / "junit.xml", junit_xml(report))
    atomic_write_text(out_dir / "summary.md", markdown_summary(report))
    atomic_write_text(out_dir / "report.html", html_report(report))
