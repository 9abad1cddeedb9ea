"""report.html: one self-contained page for people (no network needed to open it): the verdict,
every column, gates with their limits, device results beside the build host's, and inline SVG
plots (`plots.py`). Rendered by a Jinja2 template with autoescaping."""

from __future__ import annotations

import re
from functools import lru_cache

from edgecv.report.identity import identity_rows, isa_line, session_text
from edgecv.report.outputs import (artifact_rows, as_report, column_specs, device_name, device_result, fps,
                                   latency_provenance, reference_line, report_notes, report_task, report_verdict)
from edgecv.report.plots import plots, pyplot
from edgecv.report.uncertainty import interval_rows
from edgecv.report.merge import device_metrics


# text marks, not emoji: they render in every font a headless browser or a CI viewer has
MARKS = {"pass": "✓", "fail": "✗", "not built": "–", "not measured": "–"}


@lru_cache(maxsize=1)
def _template():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
    from markupsafe import Markup, escape

    env = Environment(loader=PackageLoader("edgecv.report", "templates"), undefined=StrictUndefined,
                      autoescape=select_autoescape(["html", "j2"], default_for_string=True, default=True))
    # `command` in a note becomes <code>command</code>, after escaping the text
    env.filters["code"] = lambda text: Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))
    return env.get_template("report.html.j2")


def _num(v, fmt: str = ".4g", unit: str = "") -> str:
    return "-" if v is None else f"{v:{fmt}}{unit}"


def gate_rows(report) -> list[dict]:
    rows = []
    for a in report.artifacts:
        for g in a.gates:
            word = "pass" if g.passed else "fail" if g.passed is False else "not measured"
            dev = device_result(a)
            on = device_name(dev) if g.source == "device" and dev else "build host"
            interval = "-" if not g.interval else f"{g.interval[0]:.4g} to {g.interval[1]:.4g}{g.unit}"
            rows.append({"artifact": a.name, "gate": g.gate, "limit": _num(g.limit, "g", g.unit),
                         "value": _num(g.value, ".4g", g.unit), "measured_on": on, "verdict": word,
                         "interval": interval if not g.confidence else f"{interval} ({g.confidence * 100:g}%)",
                         "judged_on": g.judged_on})
    return rows


def _int8_note(session_options) -> str:
    return f" ({session_text(session_options)})" if session_options else ""


def device_rows(report) -> list[dict]:
    task = report_task(report)
    q = task.quality_metric if task is not None else None
    spec = task.metric(q) if q else None

    rows = []
    for a in report.artifacts:
        for dev in a.device_results:
            lat = dev.get("latency") or {}
            dq = device_metrics(dev).get(q) if q else None
            rows.append({
                "artifact": a.name, "device": device_name(dev), "runtime": (dev.get("runtime") or {}).get("library", "-")
                + _int8_note((dev.get("runtime") or {}).get("session_options")),
                "threads": dev.get("threads") or "default", "load_ms": _num((dev.get("load_seconds") or 0) * 1000, ".1f"),
                "host_p50": _num((a.latency or {}).get("p50_ms"), ".3f"), "p50": _num(lat.get("p50_ms"), ".3f"),
                "p90": _num(lat.get("p90_ms"), ".3f"), "fps": _num(fps(lat), ".0f"),
                "host_quality": _num(a.metrics.get(q), spec.fmt, spec.unit) if spec else "-",
                "quality": "not judged: other images" if dev.get("metrics_judged") is False
                else _num(dq, spec.fmt, spec.unit) if spec else "-", "created": dev.get("created") or "-"})
    return rows


def html_report(report) -> str:
    report = as_report(report)
    passed, sentence = report_verdict(report)
    task = report_task(report)
    figures = plots(report)
    calib = dict(report.calibration or {})
    calib.setdefault("size", "-")
    calib["sha256_short"] = (calib.get("sha256") or "")[:16]
    env = {"cpu": "", "cpu_count": "", "platform": "", "python": "", **report.environment}
    return _template().render(
        target={"name": report.target["name"], "description": report.target.get("description", "")},
        passed=passed, verdict=sentence, recipe=report.recipe, task_name=report.task.get("name", ""),
        reference=reference_line(report), val_count=report.data.get("val_count"),
        classes=report.task_info.get("class_names"), calibration=calib, provenance=latency_provenance(report),
        columns=column_specs(report), rows=artifact_rows(report), marks=MARKS, notes=report_notes(report),
        gates=gate_rows(report), intervals=interval_rows(report), devices=device_rows(report), quality=task.quality_metric if task else None,
        figures=list(figures.items()),
        no_plots="matplotlib is missing (pip install matplotlib)" if pyplot() is None else "nothing was measured",
        identity=identity_rows(report), isa=isa_line(env),
        env=env, libraries=", ".join(f"{k} {v}" for k, v in env.get("libraries", {}).items()),
        created=report.created, edgecv_version=report.edgecv_version)


__all__ = ["html_report", "plots"]
