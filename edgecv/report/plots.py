"""The figures of report.html, as inline SVG that stays text (searchable, selectable) and whose
element ids are unique across the page.

matplotlib is part of the default install; without it the page says so instead of failing.
"""

from __future__ import annotations

import io
import itertools
import re
from typing import Optional

from edgecv.figures import pyplot, svg
from edgecv.report.merge import device_metrics
from edgecv.report.outputs import as_report, device_result, report_task
from edgecv.results import Report

HOST_COLOR, DEVICE_COLOR, LIMIT_COLOR = "#1f77b4", "#d62728", "#7f7f7f"
MAX_MARKER_AREA = 600.0  # pt², the largest artifact; the others in proportion to their size
MIN_MARKER_AREA = 6.0  # a 1000x smaller file stays visible


def readable_log_axis(axis) -> None:
    """Ticks at 1, 2 and 5 of every decade, printed as plain numbers: a box between 0.03 and 0.4 ms
    gets labels, not one lone 10^-1."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _spans_decades(values) -> bool:
    values = [v for v in values if v and v > 0]
    return bool(values) and max(values) / min(values) > 10


def _gate_limit(report: Report, gate: str) -> Optional[float]:
    value = (report.target.get("gates") or {}).get(gate)
    return float(value) if isinstance(value, (int, float)) else None


def quality_vs_latency(report: Report, plt) -> Optional[str]:
    """The task's quality metric against median latency; marker area in proportion to file size;
    the device's latency beside the build host's once merged; gate limits as dashed lines."""
    task = report_task(report)
    metric = task.quality_metric if task is not None else None
    measured = [a for a in report.artifacts if a.latency and metric and a.metrics.get(metric) is not None]
    if not measured:
        return None
    spec = task.metric(metric)
    largest = max((a.size_bytes or 0) for a in measured) or 1
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    xs, device_ys = [], []
    for a in measured:
        area = max(MIN_MARKER_AREA, MAX_MARKER_AREA * (a.size_bytes or 0) / largest)
        y = a.metrics[metric]
        host_x = a.latency["p50_ms"]
        ax.scatter(host_x, y, s=area, alpha=0.55, color=HOST_COLOR, edgecolors="black", linewidths=0.5, zorder=3)
        xs.append(host_x)
        dev = device_result(a)
        dev_y = device_metrics(dev).get(metric) if dev else None  # measured on the build's own split, or none
        if dev and dev.get("latency") and isinstance(dev_y, (int, float)):
            dev_x = dev["latency"]["p50_ms"]
            ax.scatter(dev_x, dev_y, s=area, facecolors="none", edgecolors=DEVICE_COLOR, linewidths=1.5, zorder=3)
            ax.annotate("", (dev_x, dev_y), (host_x, y), arrowprops={"arrowstyle": "->", "color": DEVICE_COLOR,
                                                                      "lw": 0.8})
            xs.append(dev_x)
            device_ys.append(dev_y)
    log_x = _spans_decades(xs)
    if log_x:
        ax.set_xscale("log")
        readable_log_axis(ax.xaxis)
    limit = _gate_limit(report, "latency_p50_ms_max")
    if limit is not None:
        ax.axvline(limit, ls=":", lw=1, color=LIMIT_COLOR)
        xs.append(limit)
    ref = report.reference.metrics.get(metric)
    if ref is not None:
        ax.axhline(ref, ls="--", lw=1, color="gray")
    _fit_axes(ax, xs, [a.metrics[metric] for a in measured] + device_ys + ([ref] if ref is not None else []),
              spec.unit, log_x)
    for a in measured:  # labels after the limits are known, flipped to stay inside the axes
        _label_inside(ax, a.latency["p50_ms"], a.metrics[metric], f"{a.name} ({(a.size_bytes or 0) / 1e6:.2f} MB)")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", ls="", color=HOST_COLOR, alpha=0.6, label="build host")]
    if device_ys:
        handles.append(Line2D([], [], marker="o", ls="", markerfacecolor="none", color=DEVICE_COLOR, label="device"))
    if ref is not None:
        handles.append(Line2D([], [], ls="--", color="gray", label=f"float reference {ref:{spec.fmt}}{spec.unit}"))
    if limit is not None:
        handles.append(Line2D([], [], ls=":", color=LIMIT_COLOR, label=f"gate: p50 ≤ {limit:g} ms"))
    ax.legend(handles=handles, fontsize=8, loc="lower right")
    ax.set_xlabel("median latency p50 (ms)" + (", log scale" if log_x else ""))
    ax.set_ylabel(f"{metric}{f' ({spec.unit.strip()})' if spec.unit.strip() else ''}")
    ax.set_title(f"{metric} vs latency (marker area ∝ file size)")
    ax.grid(alpha=0.3, which="major")
    out = svg(fig, f"{metric}_vs_latency")
    plt.close(fig)
    return out


def _fit_axes(ax, xs, ys, unit: str, log_x: bool) -> None:
    """Room for labels; a percentage axis never claims more than 100 %."""
    lo, hi = min(ys), max(ys)
    pad = max((hi - lo) * 0.25, 0.5 if unit.strip() == "%" else abs(hi) * 0.02 or 0.01)
    top = hi + pad
    if unit.strip() == "%":
        from matplotlib.ticker import FuncFormatter

        top = min(top, 100.0)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}%"))
    ax.set_ylim(lo - pad, top)
    x_lo, x_hi = min(xs), max(xs)
    if log_x:
        ax.set_xlim(x_lo / 1.6, x_hi * 1.6)
    else:
        span = (x_hi - x_lo) or x_hi or 1.0
        ax.set_xlim(max(0.0, x_lo - 0.35 * span), x_hi + 0.35 * span)


def _label_inside(ax, x, y, text: str) -> None:
    """Annotate (x, y) on whichever side keeps the text inside the axes."""
    fx, fy = ax.transLimits.transform(ax.transScale.transform((x, y)))
    dx, ha = (-8, "right") if fx > 0.55 else (8, "left")
    dy, va = (-6, "top") if fy > 0.85 else (6, "bottom")
    ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=8, ha=ha, va=va,
                annotation_clip=True)


def latency_distribution(report: Report, plt) -> Optional[str]:
    """Every timed run, per artifact: the build host's box and, once merged, the device's."""
    boxes, labels, colors = [], [], []
    for a in report.artifacts:
        host = (a.latency or {}).get("samples_ms")
        if host:
            boxes.append(host)
            labels.append(f"{a.name}\nbuild host")
            colors.append(HOST_COLOR)
        dev = device_result(a)
        dev_samples = ((dev or {}).get("latency") or {}).get("samples_ms")
        if dev_samples:
            boxes.append(dev_samples)
            labels.append(f"{a.name}\ndevice")
            colors.append(DEVICE_COLOR)
    if not boxes:
        return None
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(boxes)), 3.8))
    parts = ax.boxplot(boxes, showfliers=True, patch_artist=True)
    for patch, color in zip(parts["boxes"], colors):
        patch.set(facecolor=color, alpha=0.35)
    ax.set_xticks(range(1, len(boxes) + 1), labels, fontsize=8)
    ax.set_ylabel("latency per run (ms), log scale")
    ax.set_yscale("log")
    readable_log_axis(ax.yaxis)
    limit = _gate_limit(report, "latency_p50_ms_max")
    if limit is not None:
        ax.axhline(limit, ls=":", lw=1, color=LIMIT_COLOR, label=f"gate: p50 ≤ {limit:g} ms")
        ax.legend(fontsize=8)
    ax.set_title("latency distribution (every timed run)")
    ax.grid(alpha=0.3, axis="y")
    out = svg(fig, "latency_distribution")
    plt.close(fig)
    return out


def plots(report) -> dict[str, str]:
    """figure id -> inline SVG; empty when matplotlib is missing or nothing was measured."""
    report = as_report(report)
    plt = pyplot()
    if plt is None:
        return {}
    out = {}
    task = report_task(report)
    first = quality_vs_latency(report, plt)
    if first:
        out[f"{task.quality_metric}_vs_latency"] = first
    if task is not None:
        out.update(task.report_plots(report.to_json()))
    dist = latency_distribution(report, plt)
    if dist:
        out["latency_distribution"] = dist
    return out
