"""What `edgecv select` writes: select.json, select.png (accuracy vs latency), select.html, and the
target file that distils the recipe's model into the pick (the way `edgecv build` uses it)."""

from __future__ import annotations

import base64
import html
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import yaml

from edgecv.files import atomic_write_bytes, atomic_write_text
from edgecv.selection.run import RANK_BY, Selection
from edgecv.errors import InputError
from edgecv.passes.base import parse_pass_config

SCHEMA = "edgecv-select/1"
ACCURACY_NOTE = ("accuracy: a linear probe (logistic regression on the frozen backbone's pooled features of the training "
                 "split) scored on the validation split (int8: the same head in the int8 artifact; 5-fold: mean ± std "
                 "over stratified folds of all images); a fine-tune or distillation usually ends higher")


def selection_json(sel: Selection, recipe_path: Path, student_target: Optional[Path]) -> dict:
    return {"schema": SCHEMA, "recipe": str(recipe_path), "accuracy_note": ACCURACY_NOTE,
            "student_target": str(student_target) if student_target else None, **asdict(sel)}


def write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=float))


def read_selection(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable select.json ({e})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise InputError(f"{path} is not a select.json written by `edgecv select` (schema {SCHEMA})")
    return data


def swap_pass(row: dict, recipe) -> dict:
    """The swap pass settings that distil the recipe's model into this candidate; `weights` relative
    to the recipe's folder, as the swap pass reads it."""
    weights = row["weights"]
    if weights not in ("imagenet", "none"):
        weights = os.path.relpath(weights, recipe.base_dir)
    h, w = row["input_size"]
    cfg = {"name": "swap", "backbone": row["backbone"], **({"alpha": row["alpha"]} if row["alpha"] is not None else {}),
           "input_size": h if h == w else [h, w], "weights": weights}
    return {**cfg, **(recipe.select.swap if recipe.select else {})}


def student_target(sel: Selection, target, recipe, drop_max: float) -> Optional[dict]:
    """The target with its int8 artifact made from the pick by distillation; None when the pick is
    the recipe's own backbone (build as is)."""
    row = sel.row(sel.pick)
    if row is None or row["reference"]:
        return None
    swap = swap_pass(row, recipe)
    parse_pass_config(swap)  # the swap pass's own checks: a wrong setting fails here, not in the build
    spec = next((a for a in target.artifacts if a.precision == "int8" and a.format == sel.runtime["format"]), None)
    artifact = (spec.model_dump(mode="json", exclude_none=True, exclude={"gates", "passes"}) if spec is not None else
                {"name": "int8", "format": sel.runtime["format"], "precision": "int8"})
    artifact["passes"] = [swap] + (list(spec.passes) if spec is not None else [])
    gates = target.gates.model_dump(mode="json", exclude_none=True)
    # A student is another model: its accuracy is the measure, not agreement, and the target's own
    # drop limits (and their interval forms) were set for quantizing the recipe's model.
    for name in [g for g in gates if g.startswith(("top1_agreement_min", "accuracy_drop_max_"))]:
        gates.pop(name)
    gates["accuracy_drop_max"] = drop_max
    if not gates.get("tolerances"):
        gates.pop("tolerances", None)
    return {"description": f"{target.description} — int8 distilled into {row['name']} (edgecv select, "
                           f"budget {sel.budget_ms:g} ms)",
            "runtime": target.runtime.model_dump(mode="json", exclude_none=True), "artifacts": [artifact],
            "gates": gates}


def write_student_target(path: Path, content: dict, recipe_path: Path) -> None:
    header = (f"# Written by `edgecv select` for {recipe_path}: build with\n"
              f"#   edgecv build -t {path} -r {recipe_path}\n"
              "# The swap pass trains the pick by distillation from the recipe's fine-tuned model; swap weights\n"
              "# resolve against the recipe's folder. accuracy_drop_max is the student's drop from that float\n"
              "# model (top-1 agreement is not gated: the student is another model).\n")
    atomic_write_text(path, header + yaml.safe_dump(content, sort_keys=False))


def build_commands(sel: Selection, recipe_path: Path, target_arg: str, student_path: Optional[Path]) -> list[str]:
    """How `edgecv build` uses the pick: distillation through the written target (first), or the
    recipe fine-tuned directly on the pick with --set."""
    row = sel.row(sel.pick)
    if row is None:
        return []
    if row["reference"]:
        return [f"edgecv build -t {target_arg} -r {recipe_path}"]
    h, w = row["input_size"]
    sets = [f"model.backbone={row['backbone']}"] + ([f"model.alpha={row['alpha']:g}"] if row["alpha"] is not None else [])
    sets += [f"model.weights={row['weights']}", f"input.size=[{h},{w}]"]
    return [f"edgecv build -t {student_path} -r {recipe_path}",
            f"edgecv build -t {target_arg} -r {recipe_path} " + " ".join(f"--set {s}" for s in sets)]


def plot(sel: Selection, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = RANK_BY[sel.rank_by]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    rows = sel.rows
    ax.scatter([r["latency_ms"] for r in rows], [r[key] for r in rows], s=[20 + r["size_bytes"] / 2e5 for r in rows],
               c=["tab:blue" if r["on_front"] else "tab:gray" for r in rows], alpha=0.8, label="candidates (area: size)")
    front = [sel.row(n) for n in sel.front]
    ax.plot([r["latency_ms"] for r in front], [r[key] for r in front], "-", color="tab:blue", label="Pareto front")
    for r in rows:
        ax.annotate(r["name"], (r["latency_ms"], r[key]), fontsize=7, xytext=(4, 2), textcoords="offset points")
    ref, pick = sel.reference, sel.row(sel.pick)
    if ref:
        ax.scatter([ref["latency_ms"]], [ref[key]], marker="s", facecolors="none", edgecolors="black", s=120,
                   label="recipe's backbone")
    if pick:
        ax.scatter([pick["latency_ms"]], [pick[key]], marker="*", color="tab:red", s=220, label="pick", zorder=5)
    ax.axvline(sel.budget_ms, color="tab:red", linestyle="--", linewidth=1, label=f"budget {sel.budget_ms:g} ms")
    ax.set_xscale("log")
    from matplotlib.ticker import ScalarFormatter

    for axis in (ax.xaxis,):  # 0.5, 1, 2 ms rather than 5x10^-1
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(ScalarFormatter())
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel(f"int8 latency p50, ms ({sel.runtime['threads'] or 'default'} threads, batch {sel.runtime['batch']}; "
                  "median of rounds)")
    ax.set_ylabel({"probe": "linear-probe accuracy (validation split), %", "cv": "linear-probe accuracy (5-fold), %",
                   "int8": "int8 linear-probe accuracy (validation split), %"}[sel.rank_by])
    ax.set_title(f"edgecv select: {sel.target}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


COLUMNS = [("candidate", "name"), ("probe acc %", "probe_accuracy"), ("5-fold %", "cv_accuracy"),
           ("int8 acc %", "int8_accuracy"),
           ("p50 ms", "latency_ms"), ("× vs reference", "speedup_vs_reference"), ("MB", "size_bytes")]


def cell(row: dict, key: str) -> str:
    v = row.get(key)
    if v is None:
        return "-"
    if key == "size_bytes":
        return f"{v / 1e6:.2f}"
    if key == "speedup_vs_reference":
        return f"{v:.2f}"
    if key == "latency_ms":
        return f"{v:.2f}"
    if key == "cv_accuracy" and row.get("cv_std") is not None:
        return f"{v:.1f}±{row['cv_std']:.1f}"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def write_html(sel: Selection, path: Path, png: Path, commands: list[str]) -> None:
    e = html.escape
    head = "".join(f"<th>{e(c)}</th>" for c, _ in COLUMNS) + "<th>front</th><th>pick</th>"
    body = "".join("<tr>" + "".join(f"<td>{e(cell(r, k))}</td>" for _, k in COLUMNS)
                   + f"<td>{'●' if r['on_front'] else ''}</td><td>{'★' if r['name'] == sel.pick else ''}</td></tr>"
                   for r in sorted(sel.rows, key=lambda r: r["latency_ms"]))
    skipped = "".join(f"<li>{e(s['name'])}: {e(s['reason'])}</li>" for s in sel.skipped)
    img = base64.b64encode(png.read_bytes()).decode()
    page = (f"<!doctype html><meta charset='utf-8'><title>edgecv select: {e(sel.target)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:right}"
            "td:first-child{text-align:left}</style>"
            f"<h1>edgecv select: {e(sel.target)}, budget {sel.budget_ms:g} ms</h1>"
            f"<p>pick: <b>{e(sel.pick or 'none fits the budget')}</b>; {e(ACCURACY_NOTE)}.</p>"
            f"<img src='data:image/png;base64,{img}' alt='accuracy vs latency'>"
            f"<table><tr>{head}</tr>{body}</table>"
            + (f"<h2>skipped</h2><ul>{skipped}</ul>" if skipped else "")
            + "<h2>build with the pick</h2><pre>" + e("\n".join(commands)) + "</pre>")
    atomic_write_bytes(path, page.encode())
