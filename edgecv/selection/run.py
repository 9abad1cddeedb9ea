"""`edgecv select`: candidates -> cached features -> linear probe -> int8 artifact -> latency rounds
-> Pareto front and the pick under the budget."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from edgecv.errors import ConfigError, EdgecvError
from edgecv.selection.candidates import Candidate, candidate_list
from edgecv.selection.features import Unavailable, build_candidate, extract, features_key, set_probe
from edgecv.selection.measure import Timed, artifact_accuracy, export_candidate, export_key, time_candidates, timing_spec
from edgecv.selection.pareto import pareto_front, pick_under_budget
from edgecv.data.calibration import select_calibration
from edgecv.data.images import load_batch
from edgecv.orchestrator.cache import StageCache
from edgecv.orchestrator.keys import calibration_key, index_key
from edgecv.selection.offline import network_reachable
from edgecv.selection.probe import cross_validated, fit_probe

RANK_BY = {"probe": "probe_accuracy", "cv": "cv_accuracy", "int8": "int8_accuracy"}
LATENCY_IMAGES = 16


@dataclass
class Selection:
    target: str
    budget_ms: float
    rank_by: str
    runtime: dict  # threads, batch, artifact format/precision/io the candidates were timed as
    rows: list[dict]  # measured candidates, reference first
    skipped: list[dict]  # candidate + reason
    front: list[str] = field(default_factory=list)  # names, fastest first
    pick: Optional[str] = None
    fastest: Optional[str] = None
    notes: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    machine: dict = field(default_factory=dict)
    seconds: float = 0.0

    def row(self, name: Optional[str]) -> Optional[dict]:
        return next((r for r in self.rows if r["name"] == name), None)

    @property
    def reference(self) -> Optional[dict]:
        return next((r for r in self.rows if r["reference"]), None)


def _check_task(recipe) -> None:
    task = recipe.make_task()
    if task.name != "classification":
        raise ConfigError(f"edgecv select fits a linear classifier on each backbone's features: it needs task "
                          f"classification, not {task.name}")


def run_select(recipe, target, out_dir: Path, budget_ms: float, *, offline: Optional[bool] = None,
               weights_dir: Optional[Path] = None, catalogue: Optional[bool] = None, only: Sequence[str] = (),
               repeats: Optional[int] = None,
               rank_by: str = "probe", min_runs: int = 20, min_seconds: float = 0.5,
               log: Callable[[str], None] = lambda m: None) -> Selection:
    t_start = time.perf_counter()
    if rank_by not in RANK_BY:
        raise ConfigError(f"--rank-by {rank_by}: give one of {', '.join(RANK_BY)}")
    if budget_ms <= 0:
        raise ConfigError(f"--budget-ms {budget_ms:g}: give a positive latency in milliseconds")
    _check_task(recipe)
    candidates = candidate_list(recipe, weights_dir, catalogue)
    if only:
        words = [w.lower() for w in only]
        candidates = [c for c in candidates if c.reference or any(w in c.name.lower() for w in words)]
    repeats = repeats or (recipe.select.repeats if recipe.select else 3)
    spec, note = timing_spec(target)
    batch, threads = target.runtime.batches[0], target.runtime.threads
    sel = Selection(target.name, budget_ms, rank_by, {"threads": threads, "batch": batch, "format": spec.format,
                                                       "precision": spec.precision, "io_dtype": spec.resolved_io_dtype,
                                                       "repeats": repeats}, [], [])
    if note:
        sel.notes.append(note)

    task = recipe.make_task()
    index = task.read_data(recipe)
    info, output = index.info, task.output_names(index.info)[0]
    train_y = np.array([s.label for s in index.train])
    val_y = np.array([s.label for s in index.val])
    calib = select_calibration(index, recipe.calibration, recipe.resolve, stratum=task.stratum)
    idx_key = index_key(recipe)
    calib_key = calibration_key(recipe, idx_key)
    sel.data = {"classes": len(info["class_names"]), "train": len(index.train), "val": len(index.val),
                "calibration": len(calib.samples), "resize": recipe.input.resize}
    cache = StageCache(Path(out_dir) / ".cache", log=log)
    needs_net = any(c.weights == "imagenet" for c in candidates)
    allow = bool(needs_net and not offline and network_reachable())  # a TCP probe only: nothing is fetched
    if needs_net and not allow:
        log("no network here: candidates whose ImageNet weights are not in Keras' cache are skipped")

    decoded: dict[tuple, tuple] = {}

    def images(size) -> tuple:
        size = tuple(size)
        if size not in decoded:
            decoded[size] = (load_batch([s.path for s in index.train], size, recipe.input.resize),
                             load_batch([s.path for s in index.val], size, recipe.input.resize))
        return decoded[size]

    def calibration(size):
        def batches():
            for s in calib.samples:
                yield load_batch([s.path], size, recipe.input.resize)
        return batches

    timed: list[Timed] = []
    for n, c in enumerate(candidates, 1):
        t0 = time.perf_counter()
        built: dict = {}

        def model_fn(c=c, built=built):
            if "model" not in built:
                built["model"] = build_candidate(recipe, info, c, allow)
            return built["model"]

        try:
            if c.weights not in ("imagenet", "none") and not Path(c.weights).is_file():
                raise Unavailable(f"weights file {c.weights} not found")
            feats = extract(cache, features_key(recipe, c, idx_key), model_fn, lambda: images(c.size), train_y, val_y)
            probe = fit_probe(feats.train_x, feats.train_y, feats.val_x, feats.val_y, len(info["class_names"]),
                              seed=recipe.train.seed)
            cv_mean, cv_std = cross_validated(np.concatenate([feats.train_x, feats.val_x]),
                                              np.concatenate([feats.train_y, feats.val_y]), seed=recipe.train.seed)
            digest = hashlib.sha256(probe.kernel.tobytes() + probe.bias.tobytes()).hexdigest()
            path, fmt, exp_hit = export_candidate(
                cache, export_key(feats.key, digest, spec, calib_key),
                lambda: set_probe(model_fn(), probe.kernel, probe.bias), spec, f"{recipe.name}_{c.slug.replace('.', '_')}",
                calibration(tuple(c.size)), calib.sha256)
            val_imgs = images(c.size)[1]
            int8_acc = artifact_accuracy(path, fmt, val_imgs, val_y, output, threads)
        except Unavailable as e:
            sel.skipped.append({**c.to_json(), "reason": str(e)})
            log(f"[{n}/{len(candidates)}] {c.name}: skipped: {e}")
            continue
        except EdgecvError as e:
            sel.skipped.append({**c.to_json(), "reason": f"failed: {e}"})
            log(f"[{n}/{len(candidates)}] {c.name}: failed: {e}")
            continue
        except Exception as e:  # a converter's or runtime's own failure on one backbone: the others go on
            sel.skipped.append({**c.to_json(), "reason": f"failed: {type(e).__name__}: {str(e)[:500]}"})
            log(f"[{n}/{len(candidates)}] {c.name}: failed: {type(e).__name__}: {str(e)[:200]}")
            continue
        finally:
            if built:  # one Keras graph per candidate: free it before the next
                from edgecv._keras import keras

                built.clear()
                keras.backend.clear_session()
        row = {**c.to_json(), "path": str(path), "size_bytes": path.stat().st_size if path.is_file() else None,
               "probe_accuracy": probe.accuracy, "probe_train_accuracy": probe.train_accuracy,
               "cv_accuracy": cv_mean, "cv_std": cv_std, "int8_accuracy": int8_acc, "features_dim": int(feats.train_x.shape[1]),
               "features_cached": feats.cached, "artifact_cached": exp_hit, "features_key": feats.key,
               "seconds": time.perf_counter() - t0}
        if c.weights == "none":
            row["note"] = "random initial weights (weights: none)"
        sel.rows.append(row)
        timed.append(Timed(path, fmt, val_imgs[:LATENCY_IMAGES]))
        log(f"[{n}/{len(candidates)}] {c.name}: probe {probe.accuracy:.2f}%, int8 {int8_acc:.2f}%, "
            f"{row['size_bytes'] / 1e6:.2f} MB; features {'cached' if feats.cached else 'extracted'}, artifact "
            f"{'cached' if exp_hit else 'built'} ({row['seconds']:.0f} s)")
    decoded.clear()

    if not sel.rows:
        raise ConfigError("no candidate could be built here: " + "; ".join(f"{s['name']}: {s['reason']}"
                                                                           for s in sel.skipped[:5]))
    log(f"timing {len(timed)} artifacts: {repeats} rounds, {threads or 'default'} threads, batch {batch}")
    time_candidates(timed, threads, batch, repeats, min_runs, min_seconds, log)
    ref = sel.reference
    for row, t in zip(sel.rows, timed):
        row.update(latency_ms=t.median_ms, latency_rounds_ms=t.p50_rounds)
    for row in sel.rows:
        row["speedup_vs_reference"] = ref["latency_ms"] / row["latency_ms"] if ref else None
    if ref is None:
        sel.notes.append("the recipe's own backbone could not be built here: no speed-up ratios")
    acc = [r[RANK_BY[rank_by]] for r in sel.rows]
    lat = [r["latency_ms"] for r in sel.rows]
    front = pareto_front(acc, lat)
    sel.front = [sel.rows[i]["name"] for i in front]
    for i, row in enumerate(sel.rows):
        row["on_front"] = i in front
    chosen = pick_under_budget(acc, lat, budget_ms)
    sel.pick = None if chosen is None else sel.rows[chosen]["name"]
    sel.fastest = min(sel.rows, key=lambda r: r["latency_ms"])["name"]
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    sel.machine = {"loadavg": list(load) if load else None, "cpu_count": os.cpu_count()}
    sel.seconds = time.perf_counter() - t_start
    return sel
