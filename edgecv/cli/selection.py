"""`edgecv select -t TARGET -r RECIPE --budget-ms X`: the backbone to use for a latency budget.

Exit codes: 0 a candidate fits the budget; 1 none does (the table, select.json and the plot are
still written; the message names the fastest candidate); 2 bad input; 3 a failure while building.
(Named selection.py, not select.py: a module called `select` beside a script would shadow the
standard library's.)
"""
# lazy imports: a command loads only what it runs, so `edgecv --help` and light commands start fast

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from edgecv.errors import EdgecvError, GateFailure


class BudgetNotMet(GateFailure):
    """No candidate is fast enough: exit 1, as a failed gate."""


def select(
    target: str = typer.Option(..., "--target", "-t", help="target name (targets/NAME.yaml) or path: its int8 "
                               "artifact and runtime settings (threads, batch) are what candidates are timed as"),
    recipe: Path = typer.Option(Path("edgecv.yaml"), "--recipe", "-r", help="project recipe (task classification)"),
    budget_ms: float = typer.Option(..., "--budget-ms", help="latency budget: p50 of one call at the target's batch, "
                                    "in ms, on this machine"),
    out_dir: Path = typer.Option(Path("build/select"), "--out", "-o", help="select.json, select.png, select.html, "
                                 "the student target and the feature/artifact cache (.cache)"),
    set_: List[str] = typer.Option([], "--set", help="override a recipe key: --set select.repeats=5"),
    weights_dir: Optional[Path] = typer.Option(None, "--weights-dir", help="folder of keras-applications no-top h5 "
                                               "files (default: the recipe's select.weights_dir)"),
    no_catalogue: bool = typer.Option(False, "--no-catalogue", help="only the recipe's backbone and its "
                                      "select.candidates"),
    only: List[str] = typer.Option([], "--only", help="keep candidates whose name contains this text (e.g. "
                                   "'MobileNet 0.5', '/160'); repeatable; the recipe's backbone is always kept"),
    offline: bool = typer.Option(False, "--offline", help="never download ImageNet weights: candidates without "
                                 "local or cached weights are skipped (also EDGECV_OFFLINE=1; default: skipped "
                                 "only when the weights' host cannot be reached)"),
    repeats: Optional[int] = typer.Option(None, "--repeats", min=1, help="latency rounds over all candidates "
                                          "(default: select.repeats, 3)"),
    rank_by: str = typer.Option("probe", "--rank-by", help="probe: the float linear probe's accuracy on the "
                                "validation split; cv: its 5-fold mean over all images; int8: the probe in the int8 artifact"),
    drop_max: float = typer.Option(2.0, "--student-drop-max", help="accuracy_drop_max (points below the recipe's "
                                   "float model) in the student target written for the pick"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="also show TensorFlow's and the converters' output"),
):
    """Compare backbones for a target: linear-probe accuracy vs int8 latency, the Pareto front, and the pick under the budget."""
    from edgecv.cli.app import capture_native, console, out
    from edgecv.cli.app import fail as _fail
    from edgecv.extras import require_extra

    try:
        require_extra("build", "`edgecv select` (feature extraction and int8 conversion)")
        require_extra("features", "`edgecv select` (its linear probes use scikit-learn)")
        from edgecv.config import load_recipe, load_target
        from edgecv.selection import output
        from edgecv.selection.run import run_select

        with capture_native(out_dir / "select.log", verbose):
            r = load_recipe(recipe, set_)
            tg = load_target(target, r.base_dir)
            sel = run_select(r, tg, out_dir, budget_ms, offline=offline or None, weights_dir=weights_dir,
                             catalogue=False if no_catalogue else None, only=only, repeats=repeats, rank_by=rank_by,
                             log=lambda m: console.print(f"[dim]{escape(m)}[/]", highlight=False))
            student = output.student_target(sel, tg, r, drop_max)
        student_path = out_dir / f"{tg.name}-select.yaml" if student else None
        if student:
            output.write_student_target(student_path, student, recipe)
        commands = output.build_commands(sel, recipe, target, student_path)
        output.write_json(out_dir / "select.json", output.selection_json(sel, recipe, student_path))
        output.plot(sel, out_dir / "select.png")
        output.write_html(sel, out_dir / "select.html", out_dir / "select.png", commands)
        print_table(sel, out)
        for s in sel.skipped:
            console.print(f"[yellow]skipped[/] {escape(s['name'])}: {escape(s['reason'])}", highlight=False)
        for n in sel.notes:
            console.print(f"[yellow]note:[/] {escape(n)}")
        console.print(f"[dim]{output.ACCURACY_NOTE}; {sel.seconds:.0f} s; wrote {out_dir}/select.json, select.png, "
                      f"select.html[/]", highlight=False)
        if sel.pick is None:
            fastest = sel.row(sel.fastest)
            raise BudgetNotMet(f"no candidate meets --budget-ms {budget_ms:g}: the fastest is {fastest['name']} at "
                               f"{fastest['latency_ms']:.2f} ms; raise the budget or add smaller candidates "
                               "(select.candidates)")
        out.print(f"pick: [bold]{escape(sel.pick)}[/] (the most accurate under {budget_ms:g} ms). Build with it:")
        for c in commands:
            out.print(f"  {escape(c)}", highlight=False)
        if len(commands) > 1:
            out.print("  (the first distils the recipe's fine-tuned model into the pick; the second fine-tunes the "
                      "pick directly)")
    except EdgecvError as e:
        _fail(e)


def print_table(sel, console) -> None:
    from edgecv.selection.output import COLUMNS, cell

    rt = sel.runtime
    val = sel.data.get("val") or 0
    t = Table(title=f"{sel.target}: {rt['format']} {rt['precision']} ({rt['io_dtype']} I/O), {rt['threads'] or 'default'} "
                    f"threads, batch {rt['batch']}, median of {rt['repeats']} rounds; budget {sel.budget_ms:g} ms; "
                    f"{val} validation images (1 image = {100 / max(val, 1):.2f} points); ranked by {sel.rank_by}",
              box=box.SIMPLE_HEAD, title_justify="left")
    for name, _ in COLUMNS:
        t.add_column(name, justify="left" if name == "candidate" else "right", no_wrap=True)
    t.add_column("", no_wrap=True)
    for r in sorted(sel.rows, key=lambda r: r["latency_ms"]):
        marks = " ".join(m for m, on in (("front", r["on_front"]), ("PICK", r["name"] == sel.pick),
                                         ("reference", r["reference"]),
                                         ("over budget", r["latency_ms"] > sel.budget_ms)) if on)
        style = "bold green" if r["name"] == sel.pick else None if r["on_front"] else "dim"
        t.add_row(*[cell(r, k) for _, k in COLUMNS], marks, style=style)
    console.print(t)
