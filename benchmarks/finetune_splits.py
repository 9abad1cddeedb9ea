"""Judge a fine-tune recipe by repeated seeded splits, not by one 144-image validation split.

Each run is a real build (`edgecv build -t TARGET --set data.seed=K --set train.seed=K ...`) into
ROOT/<config>-s<K>, one at a time under `nice`: a new stratified split and a new training seed per
K, and the int8 artifact of each split validated like any build. The summary reads each build's
report.json and training record and prints, per config, the float validation accuracy of the kept
model, the last epoch's validation accuracy (unbiased when the recipe keeps the best epoch: picking
that epoch on the same split makes the kept number optimistic), the int8 accuracy and its delta from float, training
seconds and the load average around each build, with mean ± std (sample) and min-max per config.

    python benchmarks/finetune_splits.py run current --seeds 0 1 2
    python benchmarks/finetune_splits.py run cosine --seeds 0 1 2 --set train.warmup.schedule=cosine ...
    python benchmarks/finetune_splits.py summary            # every ROOT/<config>-s<K> with a report

Finished builds are skipped, so a run can be resumed; `summary` also writes ROOT/summary.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = Path("/work/exp/finetune")
FOLDER = re.compile(r"^(?P<config>.+)-s(?P<seed>\d+)$")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(args) -> None:
    for seed in args.seeds:
        out = args.root / f"{args.config}-s{seed}"
        if (out / args.target / "report.json").is_file():
            print(f"{out}: built already, skipped")
            continue
        cmd = ["nice", "-n", "10", sys.executable, "-m", "edgecv.cli.main", "build", "-r", str(args.recipe),
               "-t", args.target, "--no-gates", "-o", str(out),
               "--set", f"data.seed={seed}", "--set", f"train.seed={seed}"]
        for item in args.set:
            cmd += ["--set", item]
        print(" ".join(cmd), flush=True)
        load_before, t0 = _load(), time.time()
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        rc = subprocess.call(cmd, cwd=REPO, env=env)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench.json").write_text(json.dumps(
            {"command": cmd, "sets": args.set, "seed": seed, "rc": rc, "wall_seconds": time.time() - t0,
             "load_before": load_before, "load_after": _load()}, indent=2))
        print(f"{out}: exit {rc}, {time.time() - t0:.0f} s, load {load_before} -> {_load()}", flush=True)


def _row(folder: Path, target: str) -> dict | None:
    report = folder / target / "report.json"
    if not report.is_file():
        return None
    r = json.loads(report.read_text())
    history = r["training"].get("history") or []
    monitor = r["training"].get("best_metric", "val_accuracy")
    int8 = next((a for a in r["artifacts"] if a["name"] == "int8"), {})
    bench = json.loads((folder / "bench.json").read_text()) if (folder / "bench.json").is_file() else {}
    pct = lambda v: None if v is None else 100.0 * v  # noqa: E731 (history keeps fractions)
    return {
        "folder": folder.name,
        "float": r["reference"]["metrics"]["accuracy"],
        "last_epoch": pct(history[-1].get(monitor)) if history else None,
        "best_epoch": pct(max((h.get(monitor, 0.0) for h in history), default=None)),
        "int8": (int8.get("metrics") or {}).get("accuracy"),
        "int8_delta": (int8.get("deltas") or {}).get("accuracy"),  # int8 minus the kept float model
        "train_s": r["training"].get("seconds"),
        "load": f"{bench.get('load_before', '?')} -> {bench.get('load_after', '?')}",
        "sets": bench.get("sets"),
    }


def _spread(values: list) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {}
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def summary(args) -> None:
    configs: dict[str, list[dict]] = {}
    for folder in sorted(p for p in args.root.iterdir() if p.is_dir() and FOLDER.match(p.name)):
        row = _row(folder, args.target)
        if row is not None:
            configs.setdefault(FOLDER.match(folder.name)["config"], []).append(row)
    cols = ("float", "last_epoch", "int8", "int8_delta", "train_s")
    print(f"{'build':<24} {'float %':>8} {'last-ep %':>9} {'int8 %':>7} {'delta':>6} {'train s':>8}  "
          "load avg (1/5/15) before -> after")
    out = {}
    for config, rows in configs.items():
        for row in rows:
            print(f"{row['folder']:<24} {_fmt(row['float']):>8} {_fmt(row['last_epoch']):>9} {_fmt(row['int8']):>7} "
                  f"{_fmt(row['int8_delta']):>6} {_fmt(row['train_s']):>8}  {row['load']}")
        stats = {c: _spread([r[c] for r in rows]) for c in cols}
        for c in ("float", "last_epoch", "int8", "int8_delta"):
            s = stats[c]
            if s:
                print(f"  {config} {c}: {s['mean']:.2f} ± {s['std']:.2f} (min {s['min']:.2f}, max {s['max']:.2f}, n={s['n']})")
        out[config] = {"rows": rows, "stats": stats}
    (args.root / "summary.json").write_text(json.dumps(out, indent=2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="build the recipe on each seeded split")
    r.add_argument("config", help="a name for this recipe variant: the out folders are ROOT/<config>-s<K>")
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    r.add_argument("--set", action="append", default=[], help="recipe override, as for `edgecv build --set`")
    r.add_argument("--recipe", type=Path, default=REPO / "examples/flowers/edgecv.yaml")
    s = sub.add_parser("summary", help="per-split table and mean ± spread per config")
    for q in (r, s):
        q.add_argument("--root", type=Path, default=DEFAULT_ROOT)
        q.add_argument("--target", default="raspberry-pi-4")
    args = p.parse_args()
    run(args) if args.command == "run" else summary(args)


if __name__ == "__main__":
    main()
