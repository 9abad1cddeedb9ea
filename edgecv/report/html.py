"""A self-contained HTML report: no network needed to open it; plots are inline SVG (matplotlib)."""

from __future__ import annotations

import html
import io

from edgecv.report.outputs import COLUMNS, artifact_rows, report_notes


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg"):]


def plots(report: dict) -> dict[str, str]:
    """name -> inline SVG; empty when matplotlib is missing or nothing was measured."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}
    measured = [a for a in report["artifacts"] if a.get("metrics") and a.get("latency")]
    out = {}
    if not measured:
        return out
    fig, ax = plt.subplots(figsize=(6, 4))
    for a in measured:
        size_mb = a.get("size_bytes", 0) / 1e6
        ax.scatter(a["latency"]["p50_ms"], a["metrics"]["accuracy"], s=max(20.0, 40 * size_mb), alpha=0.6)
        ax.annotate(f"{a['name']} ({size_mb:.2f} MB)", (a["latency"]["p50_ms"], a["metrics"]["accuracy"]),
                    textcoords="offset points", xytext=(6, 4), fontsize=8)
    ref = report.get("reference", {}).get("accuracy")
    if ref is not None:
        ax.axhline(ref, ls="--", lw=1, color="gray", label=f"float reference {ref:.2f}%")
        ax.legend(fontsize=8)
    ax.set_xlabel("latency p50 (ms, batch 1)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("accuracy vs latency (marker area ∝ size)")
    out["accuracy_vs_latency"] = _svg(fig)
    plt.close(fig)

    ref_recall = report.get("reference", {}).get("per_class_recall")
    if ref_recall:
        classes = report["data"]["classes"]
        fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(classes)), 3.5))
        width = 0.8 / len(measured)
        for i, a in enumerate(measured):
            deltas = [(r - f) * 100 for r, f in zip(a["metrics"]["per_class_recall"], ref_recall)]
            ax.bar([c + i * width for c in range(len(classes))], deltas, width, label=a["name"])
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks([c + 0.4 - width / 2 for c in range(len(classes))], classes, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("recall Δ vs float (points)")
        ax.set_title("per-class accuracy change")
        ax.legend(fontsize=8)
        out["per_class_delta"] = _svg(fig)
        plt.close(fig)

    samples = [(a["name"], a["latency"].get("samples_ms")) for a in measured if a["latency"].get("samples_ms")]
    if samples:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.boxplot([s for _, s in samples], showfliers=True)
        ax.set_xticks(range(1, len(samples) + 1), [n for n, _ in samples])
        ax.set_ylabel("latency (ms)")
        ax.set_yscale("log")
        ax.set_title("latency distribution (every timed run)")
        out["latency_distribution"] = _svg(fig)
        plt.close(fig)
    return out


def html_report(report: dict) -> str:
    e = html.escape
    rows = artifact_rows(report)
    head = "".join(f"<th>{e(h)}</th>" for _, h in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td class='{e(k)}'>{e(str(r[k]))}</td>" for k, _ in COLUMNS) + "</tr>" for r in rows)
    figs = plots(report)
    fig_html = "".join(f"<figure id='{e(k)}'>{svg}</figure>" for k, svg in figs.items()) or (
        "<p><em>Plots need matplotlib: pip install 'edgecv[report]'.</em></p>")
    notes = [f"<li class='{sev}'>{e(text)}</li>" for sev, text in report_notes(report)]
    env = report["environment"]
    ref = report.get("reference", {}).get("accuracy")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgecv: {e(report['target']['name'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 14px; }} th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
th {{ background: #f3f3f3; }} td.artifact, td.format, td.precision, td.status, td.gates {{ text-align: left; }}
.fail, .error {{ color: #b00; }} .warning {{ color: #a60; }} figure {{ display: inline-block; margin: 1em; vertical-align: top; }}
</style></head><body>
<h1>edgecv build: {e(report['target']['name'])}</h1>
<p>{e(report['target'].get('description', ''))}</p>
<p>Recipe <code>{e(report['recipe']['name'])}</code>, float reference accuracy
<b>{'-' if ref is None else f'{ref:.2f}%'}</b> on {report['data']['val_count']} validation images,
{len(report['data']['classes'])} classes. Calibration: {report['calibration']['size']} training images
(sha256 <code>{e(report['calibration']['sha256'][:16])}…</code>).</p>
<table id="summary"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<ul>{''.join(notes)}</ul>
<h2>Plots</h2>
{fig_html}
<h2>Environment</h2>
<p>{e(env.get('cpu', ''))}, {env.get('cpu_count')} cores, {e(env.get('platform', ''))}, Python {e(env.get('python', ''))}.
Libraries: {e(', '.join(f'{k} {v}' for k, v in env.get('libraries', {}).items()))}.</p>
<p>Created {e(report['created'])} by edgecv {e(report['edgecv_version'])}; full data in report.json.</p>
</body></html>
"""
