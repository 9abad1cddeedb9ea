"""How sure each number is: the confidence intervals of the task's metrics and of their paired
changes against the float model, as every report form shows them (terminal, summary.md,
report.html). The numbers come from report.json (`intervals`, `delta_intervals`)."""

from __future__ import annotations

from typing import List, Optional

from edgecv.report.outputs import as_report, report_task


def _delta_unit(unit: str) -> str:
    return " points" if unit == "%" else unit


def _span(iv, fmt: str, unit: str, signed: bool = False) -> str:
    f = f"+{fmt}" if signed else fmt
    return f"{iv.low:{f}} to {iv.high:{f}}{unit}"


def interval_rows(report) -> List[dict]:
    """One row per (artifact or reference, metric with an interval): value, interval, change and its
    paired interval with the discordant samples and McNemar's p where the metric is a share."""
    report = as_report(report)
    task = report_task(report)
    if task is None:
        return []
    rows = []
    entries = [("float reference", report.reference.metrics, report.reference.intervals, {}, {})]
    entries += [(a.name, a.metrics, a.intervals, a.deltas, a.delta_intervals) for a in report.artifacts if a.intervals]
    for name, metrics, intervals, deltas, delta_intervals in entries:
        for metric, iv in intervals.items():
            try:
                spec = task.metric(metric)
            except KeyError:
                continue
            dv = delta_intervals.get(metric)
            d = deltas.get(metric)
            rows.append({
                "artifact": name, "metric": metric, "n": iv.n, "confidence": f"{iv.confidence * 100:g}%",
                "value": _fmt(metrics.get(metric), spec.fmt, spec.unit), "interval": _span(iv, spec.fmt, spec.unit),
                "method": iv.method, "delta": _fmt(d, f"+{spec.fmt}", _delta_unit(spec.unit)),
                "delta_interval": _span(dv, spec.fmt, _delta_unit(spec.unit), signed=True) if dv else "-",
                "discordant": (f"{dv.discordant['gained']} gained, {dv.discordant['lost']} lost"
                               if dv and dv.discordant else "-"),
                "p_value": "-" if dv is None or dv.p_value is None else f"{dv.p_value:.3g}",
                "delta_method": dv.method if dv else "-"})
    return rows


def _fmt(v: Optional[float], fmt: str, unit: str) -> str:
    return "-" if v is None else f"{v:{fmt}}{unit}"


def interval_lines(report) -> List[str]:
    """'int8: accuracy 97.92% (95% interval 94.05 to 99.29%), Δ -0.69 points (paired 95% interval
    -4.04 to +2.22 points; 0 gained, 1 lost; McNemar p 1)'."""
    lines = []
    for r in interval_rows(report):
        line = f"{r['artifact']}: {r['metric']} {r['value']} ({r['confidence']} interval {r['interval']}, n={r['n']})"
        if r["delta_interval"] != "-":
            extra = "" if r["discordant"] == "-" else f"; {r['discordant']}; McNemar p {r['p_value']}"
            line += f", Δ {r['delta']} (paired interval {r['delta_interval']}{extra})"
        lines.append(line)
    return lines
