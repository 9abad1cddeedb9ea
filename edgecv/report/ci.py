"""The CI forms of a target's report: summary.md for job pages, junit.xml for test tabs.

Both open with the verdict, carry the device's numbers beside the build host's once merged, and
name files relative to the target folder they sit in (the build folder moves between CI steps).
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

from edgecv.report.identity import markdown_identity
from edgecv.report.outputs import (artifact_rows, as_report, column_specs, finish_command, latency_provenance,
                                   reference_line, report_notes, report_verdict, verdict_mark)
from edgecv.report.uncertainty import interval_lines

def markdown_summary(report) -> str:
    report = as_report(report)
    _, sentence = report_verdict(report)
    cols = column_specs(report)
    lines = [f"## {verdict_mark(report)} edgecv {sentence}", "",
             f"Reference (float Keras) {reference_line(report)} on {report.data.get('val_count')} validation images.",
             *[f"{line}  " for line in latency_provenance(report)], "",
             "| " + " | ".join(c.header for c in cols) + " |",
             "|" + "|".join(":---" if c.text else "---:" for c in cols) + "|"]
    for r in artifact_rows(report):
        lines.append("| " + " | ".join(_md_cell(r, c.key) for c in cols) + " |")
    identity = markdown_identity(report)
    lines += ["", "Artifact files (sha256) and how they were run here:", "", *identity] if identity else []
    notes = [f"- {text}" for _, text in report_notes(report, code=lambda c: f"`{c}`")]
    intervals = interval_lines(report)
    if intervals:
        notes += ["", "Confidence intervals (paired over the same images for Δ):", ""] + [f"- {x}" for x in intervals]
    files = "Files beside this summary: `report.html` (plots), `report.json`, `junit.xml`, `manifest.json`" + (
        ", `build.log` (converters' output)" if any(a.status == "failed" for a in report.artifacts) else "") + "."
    return "\n".join(lines + ([""] + notes if notes else []) + ["", files]) + "\n"


def _md_cell(row: dict, key: str) -> str:
    value = str(row[key]).replace("|", "\\|")
    if key == "status":
        return {"pass": "✅ ", "fail": "❌ ", "not built": "➖ ", "not measured": "➖ "}[row["verdict"]] + value
    return value


def junit_xml(report) -> str:
    """One test case per artifact (did it build?) and per artifact x gate (did it pass?), under a
    `testsuites` root; passing cases carry the measured value, failures the reason in their body."""
    report = as_report(report)
    target = report.target["name"]
    root = ET.Element("testsuites", name="edgecv")
    suite = ET.SubElement(root, "testsuite", name=f"edgecv.{target}", timestamp=report.created)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total = 0.0
    rows = {r["artifact"]: r for r in artifact_rows(report)}
    for a in report.artifacts:
        seconds = a.seconds or 0.0
        total += seconds
        case = ET.SubElement(suite, "testcase", classname=f"edgecv.{target}.{a.name}", name="build",
                             time=f"{seconds:.3f}")
        counts["tests"] += 1
        if a.status == "failed":
            err = ET.SubElement(case, "error", message=(a.error or "").splitlines()[0] if a.error else "failed")
            err.text = "\n".join(x for x in (a.error, a.traceback, "Converters' output: build.log") if x)
            counts["errors"] += 1
        elif a.status == "not_built":
            cmd = finish_command(a)
            ET.SubElement(case, "skipped", message=f"not built on this machine: {a.reason}"
                          + (f"; finish on the device: {cmd}" if cmd else "")).text = cmd
            counts["skipped"] += 1
        else:
            r = rows[a.name]
            ET.SubElement(case, "system-out").text = (
                f"{a.path} ({r['size']} MB): " + ", ".join(f"{c.header} {r[c.key]}" for c in column_specs(report)
                                                           if c.key not in ("artifact", "format", "precision",
                                                                            "status", "size", "gates")))
        for g in a.gates:
            gc = ET.SubElement(suite, "testcase", classname=f"edgecv.{target}.{a.name}", name=g.gate, time="0")
            props = ET.SubElement(gc, "properties")
            interval = g.interval or [None, None]
            for k, v in (("value", g.value), ("limit", g.limit), ("unit", g.unit.strip()), ("measured_on", g.source),
                         ("judged_on", g.judged_on), ("interval_low", interval[0]), ("interval_high", interval[1]),
                         ("confidence", g.confidence)):
                ET.SubElement(props, "property", name=k, value="" if v is None else str(v))
            counts["tests"] += 1
            if g.passed is False:
                ET.SubElement(gc, "failure", message=g.message, type="gate").text = (
                    f"{g.message}\nmeasured on: {_measured_on(g.source, report)}\n"
                    f"See report.html beside this file for every number of {a.name}.")
                counts["failures"] += 1
            elif g.passed is None:
                ET.SubElement(gc, "skipped", message=g.message)
                counts["skipped"] += 1
            else:
                ET.SubElement(gc, "system-out").text = f"{g.message} (measured on {_measured_on(g.source, report)})"
    for el in (suite, root):
        for k, v in counts.items():
            el.set(k, str(v))
        el.set("time", f"{total:.3f}")
    if hasattr(ET, "indent"):  # Python 3.9+; on 3.8 (JetPack 5) the file is valid, on one line
        ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _measured_on(source: str, report) -> str:
    return "the device (merged `edgecv bench` result)" if source == "device" else \
        f"the build host ({report.environment.get('cpu', 'unknown CPU')})"
