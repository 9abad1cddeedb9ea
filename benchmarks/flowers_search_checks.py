"""The flowers-search feature checks, end to end through the CLI, on a built artifact.

1. `edgecv embed` of the flowers training split (the build's own split: symlinks in a temp folder)
   is SIGKILLed after a few chunks and run again: it must resume at the next chunk and embed only
   the rest, and the file must equal an uninterrupted run's.
2. `edgecv index` of that file, `edgecv search` with every validation (held-out) image: the share
   of queries whose 5 neighbours are all of the query's class, and whose top-1 is.
3. `edgecv outliers --top 15`: 10 quickstart digits planted in one flower class; how many of them
   are among that class's 15 farthest.

    python examples/quickstart/make_data.py
    nice -n 10 python benchmarks/flowers_search_checks.py build-flowers-search/raspberry-pi-4/flowers_search_int8.tflite
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "examples" / "flowers-search" / "edgecv.yaml"
DIGITS = REPO / "examples" / "quickstart" / "data"
ENV = {**os.environ, "PYTHONPATH": str(REPO), "HDF5_USE_FILE_LOCKING": "FALSE"}


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgecv.cli.main", *map(str, args)], capture_output=True, text=True,
                          env=ENV)


def split_folders(tmp: Path) -> tuple[Path, list]:
    """The build's training split as a class-folder tree of symlinks, and its validation samples."""
    from edgecv.config import load_recipe

    recipe = load_recipe(RECIPE)
    index = recipe.make_task().read_data(recipe)
    train = tmp / "train"
    for s in index.train:
        d = train / index.classes[s.label]
        d.mkdir(parents=True, exist_ok=True)
        (d / Path(s.path).name).symlink_to(s.path)
    return train, [(s.path, index.classes[s.label]) for s in index.val]


def embed_with_kill(artifact: Path, data: Path, out: Path, chunk: int, kill_after: int) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "edgecv.cli.main", "embed", str(artifact), "--data", str(data),
                             "--out", str(out), "--chunk", str(chunk)], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    done = 0
    while proc.poll() is None:
        try:
            with h5py.File(out, "r", locking=False) as f:
                done = int(f.attrs["chunks_done"])
        except (OSError, KeyError):
            pass
        if done >= kill_after:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    with h5py.File(out, "r") as f:
        killed_at = int(f.attrs["chunks_done"])
    resumed = cli("embed", artifact, "--data", data, "--out", out, "--chunk", chunk)
    return {"killed_by_sigkill": proc.returncode == -signal.SIGKILL, "chunks_done_at_kill": killed_at,
            "resume_rc": resumed.returncode, "resume_message": resumed.stderr.strip().splitlines()[-1],
            "progress_bar_seen": "embedding" in resumed.stderr, "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("artifact", type=Path)
    ap.add_argument("--chunk", type=int, default=32)
    args = ap.parse_args()
    if not DIGITS.is_dir():
        sys.exit(f"{DIGITS} missing: run python examples/quickstart/make_data.py first")
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train, val = split_folders(tmp)
        feats = tmp / "features.h5"
        results["embed"] = embed_with_kill(args.artifact, train, feats, args.chunk, kill_after=3)
        fresh = tmp / "fresh.h5"
        cli("embed", args.artifact, "--data", train, "--out", fresh, "--chunk", args.chunk)
        with h5py.File(feats, "r") as a, h5py.File(fresh, "r") as b:
            results["embed"]["equal_to_uninterrupted_run"] = bool(np.array_equal(a["embeddings"][:], b["embeddings"][:]))
            results["embed"]["images"] = int(len(a["paths"]))

        gallery = tmp / "gallery"
        cli("index", feats, "--out", gallery)
        run = cli("search", gallery, *[p for p, _ in val], "-k", 5, "--json")
        found = json.loads(run.stdout)
        top1 = [r["neighbours"][0]["label"] == cls for r, (_, cls) in zip(found, val)]
        all5 = [all(n["label"] == cls for n in r["neighbours"]) for r, (_, cls) in zip(found, val)]
        results["search"] = {"queries": len(val), "top1_same_class": float(np.mean(top1)),
                             "all5_same_class": float(np.mean(all5))}

        victim = sorted(p.name for p in train.iterdir())[0]
        mixed = tmp / "mixed"
        shutil.copytree(train, mixed, symlinks=True)
        digits = sorted(DIGITS.rglob("*.png"))[::180][:10]  # 10 digits of different classes
        for i, d in enumerate(digits):
            shutil.copy(d, mixed / victim / f"planted_digit_{i}.png")
        mixed_feats = tmp / "mixed.h5"
        cli("embed", args.artifact, "--data", mixed, "--out", mixed_feats, "--chunk", args.chunk)
        ranked = json.loads(cli("outliers", mixed_feats, "--top", 15, "--json").stdout)[victim]
        filtered = json.loads(cli("outliers", mixed_feats, "--json").stdout)[victim]
        results["outliers"] = {"class": victim, "class_size": len(list((mixed / victim).iterdir())),
                               "planted_in_15_farthest": sum("planted_digit" in c["path"] for c in ranked),
                               "planted_dropped_by_filter": sum("planted_digit" in c["path"] for c in filtered),
                               "filter_drops": len(filtered)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
