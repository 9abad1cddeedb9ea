"""What every `edgecv` command module shares: the typer app, the two consoles (results on stdout,
notes on stderr), the error policy (a message and the documented exit code, no traceback), the
native-output capture and the options' parsers. Command modules import this, never each other."""
# lazy imports: a command loads only what it runs, so `edgecv --help` and light commands start fast

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgecv.cli.conventions import HELP_OPTIONS, version_callback
from edgecv.cli.errors import App, handle_sigterm, set_debug
from edgecv.errors import EdgecvError, InputError
from edgecv.terminal import NativeOutput, log_tail, private_log

app = App(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
          context_settings=HELP_OPTIONS,
          help="Fine-tune a vision model and build validated, optimized artifacts for edge targets.")
# Wide enough for --wide tables when output goes to a file or CI log (rich assumes 80 there),
# unless COLUMNS says how wide
console = Console(stderr=True, width=None if sys.stderr.isatty() or "COLUMNS" in os.environ else 160)
out = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160)


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=version_callback, is_eager=True,
                                 help="print edgecv's version and exit"),
    debug: bool = typer.Option(False, "--debug", help="show the traceback of an error (for bug reports)"),
):
    """Fine-tune a vision model and build validated, optimized artifacts for edge targets."""
    set_debug(debug)
    handle_sigterm()


def fail(e: EdgecvError, log: Optional[Path] = None) -> None:
    console.print(f"[red]error:[/] {escape(str(e))}")
    if log_tail(log):
        console.print(f"[dim]TensorFlow's and the converters' own output: {log} (or run again with -v)[/]")
    raise typer.Exit(e.exit_code)


def warn(message: str) -> None:
    console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)


def parse_input_size(text: Optional[str]) -> Optional[tuple[int, int]]:
    """`--input-size 224` or `224x160` (height x width)."""
    if text is None:
        return None
    try:
        parts = [int(v) for v in text.lower().replace(",", "x").split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise InputError(f"--input-size {text!r}: give HEIGHTxWIDTH (e.g. 224x224) or one number for a square")
    return (parts[0], parts[-1])


@contextmanager
def capture_native(log: Path, verbose: bool = False):
    """Native libraries' output into `log` while edgecv's consoles keep the terminal."""
    from edgecv.files import ensure_dir

    ensure_dir(Path(log).parent)  # an unwritable --out is a clear error, not a traceback
    native = NativeOutput(verbose).start(log)
    console.file, out.file = native.terminal_err, native.terminal_out
    try:
        yield native
    finally:
        native.stop()
        console.file = out.file = None


def finish(result, wide: bool = False) -> int:
    """Print each target's table (stdout), what the build ran and each outcome (stderr); return
    the build's exit code."""
    from edgecv.report.table import print_summary

    for o in result.outcomes:
        if o.report is not None:
            print_summary(o.report, out, wide=wide, notes=console)
    ran = {s.stage for s in result.stages if not s.hit}
    console.print(f"[dim]stages run: {', '.join(sorted(ran)) or 'none (everything cached)'}[/]")
    console.print(f"[dim]{result.cache_summary()}[/]")
    for o in result.outcomes:
        if o.report is None and o.status == "ok":  # a training worker (TF_CONFIG): the chief reports
            console.print(f"{o.target}: " + "; ".join(o.messages))
        elif o.report is None:
            console.print(f"[red]{o.target}: failed[/]")
        if o.status == "gates_failed" and o.report is not None:  # the failures are in the notes above
            for line in gate_next_steps(o.report, o.report_path.parent if o.report_path else None):
                console.print(line, highlight=False)
        elif o.status != "ok":
            for m in o.messages:
                console.print(f"  [red]{m}[/]")
        if o.log is not None:
            console.print(f"  converters' and runtimes' output: {o.log} (or run again with -v)")
        if o.report_path and o.report is not None:
            console.print(f"[dim]{o.target}: {o.report_path.parent}/report.html[/]")
    return result.exit_code


def gate_next_steps(report, folder: Optional[Path]) -> list[str]:
    """What to try when gates failed: find the int8 layers at fault, keep them in float, or report only."""
    from edgecv.config.loader import targets_building

    failing = [a for a in report.artifacts if a.failed_gates]
    lines = ["[bold]next steps[/] (a gate failed; exit code 1):"]
    int8_tflite = [a for a in failing if a.precision == "int8" and a.format == "tflite" and a.path]
    for a in int8_tflite:
        path = (folder / a.path) if folder else Path(a.path)
        lines.append(f"  edgecv diagnose {escape(str(path))}   # which layers lose accuracy in int8")
    for fmt in sorted({a.format for a in failing if a.precision == "int8"}):
        aware = [n for n in targets_building(fmt) if n.endswith("accuracy-aware")]
        if aware:
            lines.append(f"  edgecv build -t {aware[0]} ...   # int8 that keeps its worst layers in float "
                         "until the accuracy gate passes (options: {accuracy_aware: ...} on your artifact)")
    lines.append("  --no-gates   # report the gates without failing the build")
    return lines


PLAN_COLORS = {"cached": "green", "run": "yellow", "each build": "dim", "not built": "dim"}


def print_plan(rows) -> None:
    """The build graph (`Build.plan(every_step=True)`): each step in the order it can run, the steps
    it reads, its key and what this build will do with it. Steps of one target name each other
    without the target (`export int8` in target pi is step `export pi/int8`)."""
    t = Table(title="build graph (each step runs after the steps it reads; cached steps are not run)")
    for col in ("target", "step", "reads", "key", "status"):
        t.add_column(col)
    shown = None
    for r in rows:
        own = f" {r.target}/" if r.target else None
        short = (lambda step: step.replace(own, " ", 1)) if own else (lambda step: step)  # noqa: E731
        color = PLAN_COLORS.get(r.status, "cyan")
        step = "folder" if r.stage == "target" else short(r.step)  # the target's folder: sidecars, report, manifest
        t.add_row(r.target if r.target != shown else "", step,
                  ", ".join(map(short, r.reads)), r.key[:12], f"[{color}]{escape(short(r.status))}[/]")
        shown = r.target
    out.print(t)


@contextmanager
def build_log(out_dir: Path, verbose: bool, dry_run: bool, wait: float = 0.0):
    """(native output, the build lock) with `<out>/build.log` opened only once the lock is held: a
    build refused by the lock (or a --dry-run beside a running build, which logs privately and
    takes no lock) never truncates the running one's log. Pass the lock on: `api.run(held=lock)`."""
    from edgecv.orchestrator.lock import BuildLock

    if dry_run:
        with private_log("plan") as log, capture_native(log, verbose) as native:
            yield native, None
        return
    fresh = not Path(out_dir).exists()
    try:
        with BuildLock(out_dir, wait) as lock, capture_native(out_dir / "build.log", verbose) as native:
            yield native, lock
    except BaseException:
        if fresh:  # refused before anything was made: leave no folder behind, as before the command
            remove_if_untouched(Path(out_dir))
        raise


def remove_if_untouched(out_dir: Path) -> None:
    """Remove a build folder this command created when it holds only the lock and an empty log."""
    try:
        items = {p.name: p for p in out_dir.iterdir()}
        if set(items) <= {".lock", "build.log"} and all(p.is_file() and not p.is_symlink() and p.stat().st_size == 0
                                                          for n, p in items.items() if n == "build.log"):
            for p in items.values():
                p.unlink()
            out_dir.rmdir()
    except OSError:  # in use or changed meanwhile: leave it
        pass


def _build_log_of(e: EdgecvError, out_dir: Path) -> Optional[Path]:
    from edgecv.orchestrator.lock import BuildLocked

    return None if isinstance(e, BuildLocked) else out_dir / "build.log"
