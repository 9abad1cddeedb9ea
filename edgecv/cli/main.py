"""The `edgecv` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from edgecv.errors import EdgecvError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  help="Fine-tune a vision model and build validated, optimized artifacts for edge targets.")
# Wide enough for the summary table when output goes to a file or CI log (rich assumes 80 there)
console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
out = Console(width=None if sys.stdout.isatty() else 160)


def _fail(e: EdgecvError) -> None:
    console.print(f"[red]error:[/] {e}")
    raise typer.Exit(e.exit_code)


@app.command()
def build(
    target: List[str] = typer.Option(..., "--target", "-t", help="target name (targets/NAME.yaml) or path; repeatable"),
    recipe: Path = typer.Option(Path("edgecv.yaml"), "--recipe", "-r", help="project recipe"),
    out_dir: Path = typer.Option(Path("build"), "--out", "-o", help="build folder: <out>/<target>/"),
    set_: List[str] = typer.Option([], "--set", help="override a recipe key: --set train.warmup.epochs=1"),
    no_gates: bool = typer.Option(False, "--no-gates", help="report gates without failing the build"),
):
    """Train the recipe's model and build, validate and gate every artifact of the target(s)."""
    from edgecv.build.runner import run_build

    try:
        result = run_build(recipe, target, out_dir, set_, console, gates=not no_gates)
    except EdgecvError as e:
        _fail(e)
    for o in result.outcomes:
        style = {"ok": "green", "gates_failed": "red", "failed": "red"}[o.status]
        console.print(f"[{style}]{o.target}: {o.status}[/]" + (f" — report: {o.report_path}" if o.report_path else ""))
        for m in o.messages:
            console.print(f"  [{style}]{m}[/]")
    raise typer.Exit(result.exit_code)


@app.command()
def validate(
    artifact: Path = typer.Argument(..., help=".tflite file or SavedModel folder"),
    data: Path = typer.Option(..., "--data", help="folder of images, or of class sub-folders for accuracy"),
    labels: Optional[Path] = typer.Option(None, "--labels", help="labels file, one per line (default: labels.txt beside the artifact)"),
    label_offset: Optional[int] = typer.Option(None, "--label-offset", help="output i is label line i+N (default: auto)"),
    resize: str = typer.Option("center_crop", "--resize", help="center_crop | resize | pad"),
    threads: Optional[int] = typer.Option(None, "--threads"),
    top_k: int = typer.Option(3, "--top-k"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the result as JSON"),
):
    """Evaluate any classifier artifact on an image folder (third-party TFLite models included)."""
    from edgecv.runtimes import load_runtime
    from edgecv.validate.folder import default_labels, evaluate_folder, read_labels

    try:
        if not artifact.exists():
            raise EdgecvError(f"{artifact}: no such file or folder")
        labels = labels or default_labels(artifact)
        names = read_labels(labels) if labels else None
        with load_runtime(artifact, threads=threads) as rt:
            res = evaluate_folder(rt, data, names, resize, label_offset, top_k)
    except (EdgecvError, ValueError) as e:
        _fail(e if isinstance(e, EdgecvError) else EdgecvError(str(e)))
    t = Table(title=f"{artifact.name} on {data} (label offset {res.offset})")
    t.add_column("image")
    t.add_column(f"top-{top_k}")
    for img, preds in zip(res.images, res.predictions):
        t.add_row(Path(img).name, ", ".join(f"{n} {s:.2f}" for n, s in preds))
    out.print(t)
    if res.accuracy is not None:
        out.print(f"top-1 accuracy {res.accuracy:.2f}%  top-5 {res.top5_accuracy:.2f}%  on {len(res.images)} images")
    for p, why in res.skipped:
        console.print(f"[yellow]skipped unreadable image[/] {p}: {why}")
    if json_out:
        json_out.write_text(json.dumps(res.__dict__, indent=2, default=str))


@app.command()
def targets(recipe_dir: Optional[Path] = typer.Option(None, "--recipe-dir")):
    """List the known targets with a one-line description."""
    from edgecv.config import list_targets, load_target

    t = Table()
    for col in ("target", "artifacts", "description"):
        t.add_column(col)
    for name, path in list_targets(recipe_dir):
        try:
            tg = load_target(str(path))
            t.add_row(name, ", ".join(f"{a.name} ({a.format} {a.precision})" for a in tg.artifacts), tg.description)
        except EdgecvError as e:
            t.add_row(name, "[red]invalid[/]", str(e).splitlines()[0])
    out.print(t)


@app.command()
def formats():
    """List artifact formats with their precisions."""
    from edgecv.exporters import EXPORTER_MODULES, get_exporter

    t = Table()
    for col in ("format", "precisions", "needs calibration"):
        t.add_column(col)
    for fmt in sorted(EXPORTER_MODULES):
        try:
            e = get_exporter(fmt)
            t.add_row(fmt, ", ".join(e.precisions), ", ".join(e.needs_calibration) or "-")
        except ImportError as err:
            t.add_row(fmt, f"[yellow]unavailable: {err}[/]", "")
    out.print(t)


@app.command()
def backbones():
    """List the backbones a recipe can name, with their built-in normalization."""
    from edgecv.models.backbones import BACKBONES

    t = Table()
    for col in ("backbone", "normalization", "default size", "alpha"):
        t.add_column(col)
    for s in BACKBONES.values():
        t.add_row(s.name, s.normalization, str(s.default_size), "yes" if s.takes_alpha else "-")
    out.print(t)


from edgecv.cli.engine import engine_app  # noqa: E402

app.add_typer(engine_app, name="engine")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
