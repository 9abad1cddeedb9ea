"""A self-contained HTML report: no network needed to open it; plots are inline SVG (matplotlib)."""

from __future__ import annotations

import html
import io

from edgecv.report.outputs import artifact_rows, as_report, columns, reference_line, report_notes, report_task


def svg(fig) -> str:
    """A matplotlib figure as inline SVG markup."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg"):]


def pyplot():
    """matplotlib.pyplot on the Agg backend, or None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plots(report) -> dict[str, str]:
    """name -> inline SVG; empty when matplotlib is missing or nothing was measured."""
    plt = pyplot()
    if plt is None:
        return {}
    task = report_task(report)
    metric = task.quality_metric if task is not None else None
    measured = [a for a in report.artifacts if a.latency and metric and a.metrics.get(metric) is not None]
    out = {}
    if measured:
        spec = task.metric(metric)
        fig, ax = plt.subplots(figsize=(6, 4))
        for a in measured:
            size_mb = (a.size_bytes or 0) / 1e6
            ax.scatter(a.latency["p50_ms"], a.metrics[metric], s=max(20.0, 40 * size_mb), alpha=0.6)
            ax.annotate(f"{a.name} ({size_mb:.2f} MB)", (a.latency["p50_ms"], a.metrics[metric]),
                        textcoords="offset points", xytext=(6, 4), fontsize=8)
        ref = report.reference.metrics.get(metric)
        if ref is not None:
            ax.axhline(ref, ls="--", lw=1, color="gray", label=f"float reference {ref:{spec.fmt}}{spec.unit}")
            ax.legend(fontsize=8)
        ax.set_xlabel("latency p50 (ms, batch 1)")
        ax.set_ylabel(f"{metric}{f' ({spec.unit.strip()})' if spec.unit.strip() else ''}")
        ax.set_title(f"{metric} vs latency (marker area ∝ size)")
        out[f"{metric}_vs_latency"] = svg(fig)
        plt.close(fig)
    if task is not None:
        out.update(task.report_plots(report.to_json()))

    timed = [a for a in report.artifacts if a.latency]
    samples = [(a.name, a.latency.get("samples_ms")) for a in timed if a.latency.get("samples_ms")]
    if samples:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.boxplot([s for _, s in samples], showfliers=True)
        ax.set_xticks(range(1, len(samples) + 1), [n for n, _ in samples])
        ax.set_ylabel("latency (ms)")
        ax.set_yscale("log")
        ax.set_title("latency distribution (every timed run)")
        out["latency_distribution"] = svg(fig)
        plt.close(fig)
    return out


def device_table(report) -> str:
    """Merged `edgecv bench` results: each device's numbers beside the build host's."""
    from edgecv.report.merge import device_rows

    rows = device_rows(report)
    if not rows:
        return ""
    e = html.escape

    def num(v, fmt=".2f"):
        return "-" if v is None else f"{v:{fmt}}"

    body = "".join(
        f"<tr><td class='artifact'>{e(r['artifact'])}</td><td class='artifact'>{e(str(r['device']))}</td>"
        f"<td class='artifact'>{e(str(r['hardware']))}</td><td class='artifact'>{e(str(r['runtime']))}</td>"
        f"<td>{num(r['p50_ms'], '.3f')}</td><td>{num(r['build_p50_ms'], '.3f')}</td>"
        f"<td>{num(r['p90_ms'], '.3f')}</td><td>{num(r['build_p90_ms'], '.3f')}</td>"
        f"<td>{num(r['accuracy'])}</td><td>{num(r['build_accuracy'])}</td><td>{e(r['created'])}</td></tr>"
        for r in rows)
    head = "".join(f"<th>{h}</th>" for h in ("artifact", "device", "hardware", "runtime", "p50 ms device",
                                              "p50 ms build host", "p90 ms device", "p90 ms build host",
                                              "accuracy device", "accuracy build host", "measured"))
    return (f"<h2>On the device</h2><table id='device-results'><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table><p>Gates are re-checked with the device's numbers.</p>")


def html_report(report) -> str:
    e = html.escape
    report = as_report(report)
    cols = columns(report)
    rows = artifact_rows(report)
    head = "".join(f"<th>{e(h)}</th>" for _, h in cols)
    body = "".join("<tr>" + "".join(f"<td class='{e(k)}'>{e(str(r[k]))}</td>" for k, _ in cols) + "</tr>" for r in rows)
    figs = plots(report)
    fig_html = "".join(f"<figure id='{e(k)}'>{svg}</figure>" for k, svg in figs.items()) or (
        "<p><em>Plots need matplotlib: pip install 'edgecv[report]'.</em></p>")
    notes = [f"<li class='{sev}'>{e(text)}</li>" for sev, text in report_notes(report)]
    env = report.environment
    calib = report.calibration or {}
    classes = report.task_info.get("class_names")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgecv: {e(report.target['name'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 14px; }} th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
th {{ background: #f3f3f3; }} td.artifact, td.format, td.precision, td.status, td.gates {{ text-align: left; }}
.fail, .error {{ color: #b00; }} .warning {{ color: #a60; }} figure {{ display: inline-block; margin: 1em; vertical-align: top; }}
</style></head><body>
<h1>edgecv build: {e(report.target['name'])}</h1>
<p>{e(report.target.get('description', ''))}</p>
<p>Recipe <code>{e(report.recipe['name'])}</code>, task <code>{e(report.task.get('name', ''))}</code>, float reference
<b>{e(reference_line(report))}</b> on {report.data.get('val_count')} validation images{f', {len(classes)} classes' if classes else ''}.
Calibration: {calib.get('size', '-')} training images
(sha256 <code>{e((calib.get('sha256') or '')[:16])}…</code>).</p>
<table id="summary"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<ul>{''.join(notes)}</ul>
{device_table(report)}
<h2>Plots</h2>
{fig_html}
<h2>Environment</h2>
<p>{e(env.get('cpu', ''))}, {env.get('cpu_count')} cores, {e(env.get('platform', ''))}, Python {e(env.get('python', ''))}.
Libraries: {e(', '.join(f'{k} {v}' for k, v in env.get('libraries', {}).items()))}.</p>
<p>Created {e(report.created)} by edgecv {e(report.edgecv_version)}; full data in report.json.</p>
</body></html>
"""
