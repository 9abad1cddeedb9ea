"""The terminal summary: one row per artifact (Ultralytics' benchmark table plus delta, agreement, gates)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _fmt(v, spec: str, suffix: str = "") -> str:
    return "-" if v is None else f"{v:{spec}}{suffix}"


def summary_table(report: dict) -> Table:
    t = Table(title=f"edgecv build: {report['target']['name']}  (reference accuracy "
                    f"{_fmt(report.get('reference', {}).get('accuracy'), '.2f', '%')})")
    for col in ("artifact", "format", "precision", "status", "accuracy", "Δ vs float", "top-1 agree",
                "p50 ms", "p90 ms", "size MB", "gates"):
        t.add_column(col, justify="right" if col not in ("artifact", "format", "precision", "status", "gates") else "left")
    for a in report["artifacts"]:
        gates = a.get("gates", [])
        failed = [g["gate"] for g in gates if g["passed"] is False]
        unchecked = [g for g in gates if g["passed"] is None]
        gate_txt = ("-" if not gates else "[red]FAIL " + ",".join(failed) + "[/]" if failed
                    else "[yellow]not measured[/]" if unchecked else "[green]pass[/]")
        status = {"ok": "[green]ok[/]", "failed": "[red]error[/]", "not_built": "[yellow]not built here[/]"}.get(
            a["status"], a["status"])
        lat = a.get("latency") or {}
        t.add_row(
            a["name"], a["format"], a["precision"], status,
            _fmt((a.get("metrics") or {}).get("accuracy"), ".2f", "%"),
            _fmt(a.get("accuracy_delta"), "+.2f"),
            _fmt((a.get("agreement") or {}).get("top1_agreement"), ".3f"),
            _fmt(lat.get("p50_ms"), ".2f"), _fmt(lat.get("p90_ms"), ".2f"),
            _fmt(None if a.get("size_bytes") is None else a["size_bytes"] / 1e6, ".2f"),
            gate_txt,
        )
    return t


def print_summary(report: dict, console: Console) -> None:
    console.print(summary_table(report))
    for a in report["artifacts"]:
        if a["status"] == "failed":
            console.print(f"[red]{a['name']}: {a['error']}[/]")
        if a["status"] == "not_built":
            console.print(f"[yellow]{a['name']}: not built on this machine: {a['reason']}[/]"
                          + (f"\n  finish on the device: {a['how_to_finish']}" if a.get("how_to_finish") else ""))
        if (a.get("validation") or {}).get("numeric") is False:
            console.print(f"[yellow]{a['name']}: structural validation only: {a['validation']['reason']}[/]")
        for g in a.get("gates", []):
            if g["passed"] is False:
                console.print(f"[red]gate failed[/] {g['message']}")
    if report["data"].get("skipped"):
        console.print(f"[yellow]{len(report['data']['skipped'])} unreadable image(s) skipped[/] (listed in report.json)")
