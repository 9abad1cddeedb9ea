"""`edgecv engine`: build and validate TensorRT engines from a device bundle, on the device.

No TensorFlow is imported: this runs on a Jetson (JetPack 5 or 6) with TensorRT and numpy.
"""
# lazy imports: a command loads only what it runs, so `edgecv --help` and light commands start fast

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgecv.cli.errors import App
from edgecv.errors import EdgecvError

engine_app = App(no_args_is_help=True, add_completion=False, context_settings={"help_option_names": ["-h", "--help"]},
                 help="TensorRT engines from a device bundle (run on the device: Jetson or a GPU with TensorRT).")
console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
out = Console(width=None if sys.stdout.isatty() else 160)


def _fmt(v, spec: str, suffix: str = "") -> str:
    return "-" if v is None else f"{v:{spec}}{suffix}"


def _table(report: dict, task) -> Table:
    """One row per engine: status, the task's own columns (accuracy, agreement ... as the build's
    report shows them), latency, size, gates, where it was built."""
    from edgecv.results import ArtifactResult

    t = Table(title=f"edgecv engines: {report['bundle']}")
    columns = [c for c in task.columns if c.short]
    for col in ("engine", "precision", "status", *(c.header for c in columns), "p50 ms", "p90 ms", "size MB",
                "gates", "GPU", "TensorRT"):
        t.add_column(col)
    for raw in report["engines"]:
        e = ArtifactResult.model_validate(raw)
        meta = e.artifact_metadata or {}
        lat = e.latency or {}
        status = {"ok": "[green]ok[/]", "failed": "[red]error[/]"}.get(e.status, e.status)
        failed = len(e.failed_gates)
        gates = "-" if not e.gates else f"[red]{failed} failed[/]" if failed else "[green]passed[/]"
        t.add_row(e.name, e.precision, status, *(_fmt(e.value(c.source, c.field), c.fmt, c.suffix) for c in columns),
                  _fmt(lat.get("p50_ms"), ".2f"), _fmt(lat.get("p90_ms"), ".2f"),
                  _fmt(e.size_bytes / 1e6 if e.size_bytes else None, ".2f"), gates,
                  (meta.get("gpu") or {}).get("name", "-"), meta.get("tensorrt_version", "-"))
    return t


def _run(bundle: Path, only: List[str], build: bool, validate: bool, batch: int, json_out: Optional[Path]) -> None:
    from edgecv.formats.tensorrt.bundle import build_bundle, bundle_task, read_bundle

    try:
        report = build_bundle(bundle, only, build=build, validate=validate, latency_batch=batch,
                              log=lambda m: console.print(m))
        task = bundle_task(read_bundle(bundle))
    except EdgecvError as e:
        console.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(e.exit_code)
    out.print(_table(report, task))
    failed = [e for e in report["engines"] if e["status"] == "failed"]
    for e in failed:
        console.print(f"[red]{e['name']}: {e['error']}[/]")
    gate_failures = [g for e in report["engines"] for g in e.get("gates", []) if g.get("passed") is False]
    for g in gate_failures:
        console.print(f"[red]{g['message']}[/]")
    console.print(f"report: {Path(bundle) / 'report.json'}")
    if json_out:
        json_out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    raise typer.Exit(3 if failed else 1 if gate_failures else 0)


@engine_app.command("build")
def build(
    bundle: Path = typer.Argument(..., help="device bundle folder written by `edgecv build` (holds bundle.json)"),
    only: List[str] = typer.Option([], "--only", help="build only this engine (artifact name); repeatable"),
    validate: bool = typer.Option(True, "--validate/--no-validate", help="validate on the bundle's images afterwards"),
    batch: int = typer.Option(1, "--batch", min=1, help="batch size for latency"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the report here"),
):
    """Build the bundle's TensorRT engines on this machine's GPU, then validate, time and gate them."""
    _run(bundle, only, True, validate, batch, json_out)


@engine_app.command("validate")
def validate(
    bundle: Path = typer.Argument(..., help="device bundle folder with engines built by `edgecv engine build`"),
    only: List[str] = typer.Option([], "--only", help="validate only this engine; repeatable"),
    batch: int = typer.Option(1, "--batch", min=1, help="batch size for latency"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the report here"),
):
    """Validate and time already-built engines again (the task's metrics, agreement with float, latency, gates)."""
    _run(bundle, only, False, True, batch, json_out)
