"""Write a target's report in every form: JSON (machines), JUnit XML and Markdown (CI job pages),
and a self-contained HTML page (people)."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

from edgecv.files import atomic_write_text


def _fmt(v, spec: str, suffix: str = "") -> str:
    return "-" if v is None else f"{v:{spec}}{suffix}"


def gate_status(a: dict) -> str:
    gates = a.get("gates", [])
    if not gates:
        return "-"
    failed = [g["gate"] for g in gates if g["passed"] is False]
    if failed:
        return "FAIL " + ", ".join(failed)
    return "not measured" if any(g["passed"] is None for g in gates) else "pass"


def artifact_rows(report: dict) -> list[dict]:
    rows = []
    for a in report["artifacts"]:
        lat = a.get("latency") or {}
        rows.append({
            "artifact": a["name"], "format": a["format"], "precision": a["precision"], "status": a["status"],
            "accuracy": _fmt((a.get("metrics") or {}).get("accuracy"), ".2f", "%"),
            "delta": _fmt(a.get("accuracy_delta"), "+.2f"),
            "agreement": _fmt((a.get("agreement") or {}).get("top1_agreement"), ".3f"),
            "p50": _fmt(lat.get("p50_ms"), ".2f"), "p90": _fmt(lat.get("p90_ms"), ".2f"), "p99": _fmt(lat.get("p99_ms"), ".2f"),
            "size": _fmt(None if a.get("size_bytes") is None else a["size_bytes"] / 1e6, ".2f"),
            "gzip": _fmt(None if a.get("gzip_bytes") is None else a["gzip_bytes"] / 1e6, ".2f"),
            "gates": gate_status(a),
        })
    return rows


COLUMNS = [("artifact", "artifact"), ("format", "format"), ("precision", "precision"), ("status", "status"),
           ("accuracy", "accuracy"), ("delta", "Δ vs float"), ("agreement", "top-1 agree"), ("p50", "p50 ms"),
           ("p90", "p90 ms"), ("p99", "p99 ms"), ("size", "size MB"), ("gzip", "gzip MB"), ("gates", "gates")]


def report_notes(report: dict, code=lambda c: c) -> list[tuple[str, str]]:
    """What a reader must not miss below the table, as (severity, text): error, warning or fail."""
    notes = []
    for a in report["artifacts"]:
        if a["status"] == "failed":
            notes.append(("error", f"{a['name']} failed: {a['error'].splitlines()[0]}"))
        if a["status"] == "not_built":
            notes.append(("warning", f"{a['name']} not built on this machine: {a['reason']}"
                          + (f"; finish on the device: {code(a['how_to_finish'])}" if a.get("how_to_finish") else "")))
        if (a.get("validation") or {}).get("numeric") is False:
            notes.append(("warning", f"{a['name']}: structural validation only — {a['validation']['reason']}"))
        for g in a.get("gates", []):
            if g["passed"] is False:
                notes.append(("fail", f"gate failed: {g['message']}"))
    if report["data"].get("skipped"):
        notes.append(("warning", f"{len(report['data']['skipped'])} unreadable image(s) skipped (listed in report.json)"))
    return notes


def markdown_summary(report: dict) -> str:
    ref = report.get("reference", {}).get("accuracy")
    lines = [f"## edgecv: {report['target']['name']}", "",
             f"Reference (float Keras) accuracy {_fmt(ref, '.2f', '%')} on {report['data']['val_count']} validation "
             f"images; threads {report['target']['runtime'].get('threads') or 'default'}; "
             f"{report['environment'].get('cpu', '')}.", "",
             "| " + " | ".join(h for _, h in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in artifact_rows(report):
        lines.append("| " + " | ".join(str(r[k]) for k, _ in COLUMNS) + " |")
    notes = [f"- {text}" for _, text in report_notes(report, code=lambda c: f"`{c}`")]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def junit_xml(report: dict) -> str:
    """One test case per artifact x gate (plus one per artifact for the build itself)."""
    target = report["target"]["name"]
    suite = ET.Element("testsuite", name=f"edgecv.{target}")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for a in report["artifacts"]:
        case = ET.SubElement(suite, "testcase", classname=f"edgecv.{target}.{a['name']}", name="build")
        counts["tests"] += 1
        if a["status"] == "failed":
            ET.SubElement(case, "error", message=a["error"].splitlines()[0]).text = a.get("traceback", a["error"])
            counts["errors"] += 1
        elif a["status"] == "not_built":
            ET.SubElement(case, "skipped", message=f"not built on this machine: {a['reason']}")
            counts["skipped"] += 1
        for g in a.get("gates", []):
            gc = ET.SubElement(suite, "testcase", classname=f"edgecv.{target}.{a['name']}", name=g["gate"])
            counts["tests"] += 1
            if g["passed"] is False:
                ET.SubElement(gc, "failure", message=g["message"])
                counts["failures"] += 1
            elif g["passed"] is None:
                ET.SubElement(gc, "skipped", message=g["message"])
                counts["skipped"] += 1
    for k, v in counts.items():
        suite.set(k, str(v))
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def write_reports(out_dir: Path, report: dict) -> None:
    from edgecv.report.html import html_report

    atomic_write_text(out_dir / "report.json", json.dumps(report, indent=2, default=float) + "\n")
    atomic_write_text(out_dir / "junit.xml", junit_xml(report))
    atomic_write_text(out_dir / "summary.md", markdown_summary(report))
    atomic_write_text(out_dir / "report.html", html_report(report))
