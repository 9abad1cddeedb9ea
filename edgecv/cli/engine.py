"""`edgecv engine`: build and validate TensorRT engines from a device bundle, on the device.

No TensorFlow is imported: this runs on a Jetson with TensorRT, cuda-python and numpy.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from edgecv.errors import EdgecvError

engine_app = typer.Typer(no_args_is_help=True, add_completion=False,
                         help="TensorRT engines from a device bundle (run on the device: Jetson or a GPU with TensorRT).")
console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
out = Console(width=None if sys.stdout.isatty() else 160)


def _fmt(v, spec: str) -> str:
    return "-" if v is None else f"{v:{spec}}"


def _table(report: dict) -> Table:
    t = Table(title=f"edgecv engines: {report['bundle']}")
    for col in ("engine", "precision", "status", "accuracy", "Δ vs float", "top-1 agree", "p50 ms", "p90 ms",
                "size MB", "GPU", "TensorRT"):
        t.add_column(col)
    for e in report["engines"]:
        meta = e.get("engine_metadata") or {}
        lat = e.get("latency") or {}
        status = {"ok": "[green]ok[/]", "failed": "[red]error[/]"}.get(e["status"], e["status"])
        t.add_row(e["name"], e["precision"], status, _fmt((e.get("metrics") or {}).get("accuracy"), ".2f"),
                  _fmt(e.get("accuracy_delta"), "+.2f"), _fmt((e.get("agreement") or {}).get("top1_agreement"), ".3f"),
                  _fmt(lat.get("p50_ms"), ".2f"), _fmt(lat.get("p90_ms"), ".2f"),
                  _fmt(e["size_bytes"] / 1e6 if e.get("size_bytes") else None, ".2f"),
                  (meta.get("gpu") or {}).get("name", "-"), meta.get("tensorrt_version", "-"))
    return t


def _run(bundle: Path, only: List[str], build: bool, validate: bool, batch: int, json_out: Optional[Path]) -> None:
    from edgecv.exporters.tensorrt import build_bundle

    try:
        report = build_bundle(bundle, only, build=build, validate=validate, latency_batch=batch,
                              log=lambda m: console.print(m))
    except EdgecvError as e:
        console.print(f"[red]error:[/] {e}")
        raise typer.Exit(e.exit_code)
    out.print(_table(report))
    failed = [e for e in report["engines"] if e["status"] == "failed"]
    for e in failed:
        console.print(f"[red]{e['name']}: {e['error']}[/]")
    console.print(f"report: {Path(bundle) / 'report.json'}")
    if json_out:
        json_out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    raise typer.Exit(3 if failed else 0)


@engine_app.command("build")
def build(
    bundle: Path = typer.Argument(..., help="device bundle folder written by `edgecv build` (holds bundle.json)"),
    only: List[str] = typer.Option([], "--only", help="build only this engine (artifact name); repeatable"),
    validate: bool = typer.Option(True, "--validate/--no-validate", help="validate on the bundle's images afterwards"),
    batch: int = typer.Option(1, "--batch", min=1, help="batch size for latency"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the report here"),
):
    """Build the bundle's TensorRT engines on this machine's GPU, then validate and time them."""
    _run(bundle, only, True, validate, batch, json_out)


@engine_app.command("validate")
def validate(
    bundle: Path = typer.Argument(..., help="device bundle folder with engines built by `edgecv engine build`"),
    only: List[str] = typer.Option([], "--only", help="validate only this engine; repeatable"),
    batch: int = typer.Option(1, "--batch", min=1, help="batch size for latency"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the report here"),
):
    """Validate and time already-built engines again (accuracy, agreement with float, latency)."""
    _run(bundle, only, False, True, batch, json_out)
