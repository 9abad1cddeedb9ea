"""Each candidate's int8 artifact, built by edgecv's own exporter as the target's int8 artifact is
(full-integer, calibrated on the recipe's calibration images at the candidate's size), and timed
through edgecv's runtime with the target's threads and batch size.

Latency is measured in rounds over every candidate, the order rotated each round, and each
candidate's median over rounds is kept: load that changes during the run (this machine is
shared) then falls on every candidate alike, so ratios between them hold even when absolute
milliseconds do not.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edgecv.orchestrator.cache import StageCache, stable_hash
from edgecv.orchestrator.keys import EXPORT_LIBS, versions
from edgecv.config.target import ArtifactSpec
from edgecv.exporters import ExportContext, get_exporter
from edgecv.runtimes import load_runtime
from edgecv.runtimes.latency import measure_latency
from edgecv.selection.probe import accuracy

SUPPORTED_FORMATS = ("tflite", "onnx")  # int8 formats this machine builds and runs
# Candidates' int8: bias correction, no learned rounding. Rounding changes no latency and a fraction
# of a point at most, and costs minutes per large backbone (its time grows with the weights); the
# build applies it to the pick.
QUICK_INT8 = {"tflite": {"ptq": {"adaround": False}}, "onnx": {"adaround": False}}


def timing_spec(target):
    """The target's int8 artifact to time candidates as (its format, I/O type and float-op rule;
    passes and exporter options belong to the recipe's model and are left out), or TFLite int8
    when the target has none this machine can run. Returns (spec, note)."""
    for spec in target.artifacts:
        if spec.precision == "int8" and spec.format in SUPPORTED_FORMATS:
            return spec.model_copy(update={"passes": [], "options": QUICK_INT8[spec.format], "gates": None}), None
    note = (f"{target.name} has no int8 artifact in {', '.join(SUPPORTED_FORMATS)}: candidates are timed as "
            "TFLite int8 (uint8 I/O) with the target's runtime settings")
    return ArtifactSpec(name="int8", format="tflite", precision="int8", options=QUICK_INT8["tflite"]), note


def export_key(feat_key: str, probe_digest: str, spec, calib_key: str) -> str:
    return stable_hash({"stage": "select-export", "features": feat_key, "probe": probe_digest,
                        "spec": spec.model_dump(mode="json", exclude={"gates", "passes"}), "calibration": calib_key,
                        "versions": versions(EXPORT_LIBS)})


def export_candidate(cache: StageCache, key: str, model_fn: Callable[[], object], spec, name: str,
                     calibration: Callable, calibration_sha256: str) -> tuple[Path, str, bool]:
    """(artifact path, runtime format, from the cache)."""
    hit = cache.get("select-export", key)
    was_hit = hit is not None
    if hit is None:
        ctx = ExportContext(name, calibration, calibration_sha256)
        with cache.put("select-export", key) as tmp:
            art = get_exporter(spec.format)().export(model_fn(), spec, tmp, ctx)
            (tmp / "artifact.json").write_text(json.dumps({"path": art.path.relative_to(tmp).as_posix(),
                                                           "runtime_format": art.runtime_format,
                                                           "checks": art.checks}, default=float))
        hit = cache.get("select-export", key)
    meta = json.loads((hit / "artifact.json").read_text())
    return hit / meta["path"], meta["runtime_format"], was_hit


@dataclass
class Timed:
    path: Path
    runtime_format: str
    images: np.ndarray  # latency inputs at the candidate's size
    p50_rounds: list = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return float(statistics.median(self.p50_rounds))


def time_candidates(items: list[Timed], threads: Optional[int], batch: int, repeats: int,
                    min_runs: int = 20, min_seconds: float = 0.5, log: Callable[[str], None] = lambda m: None) -> None:
    """Fill each item's p50 per round: `repeats` rounds over all items, order rotated per round."""
    runtimes = [load_runtime(t.path, t.runtime_format, threads=threads) for t in items]
    try:
        for r in range(repeats):
            shift = r % len(items) if items else 0
            for i in list(range(shift, len(items))) + list(range(shift)):
                lat = measure_latency(runtimes[i].predict, items[i].images, batch=batch, warmup=3,
                                      min_runs=min_runs, min_seconds=min_seconds)
                items[i].p50_rounds.append(lat.p50_ms)
            log(f"latency round {r + 1}/{repeats} done")
    finally:
        for rt in runtimes:
            rt.close()


def artifact_accuracy(path: Path, runtime_format: str, images: np.ndarray, labels, output: str,
                      threads: Optional[int]) -> float:
    """Top-1 accuracy (%) of the artifact, through its runtime, on the validation images."""
    with load_runtime(path, runtime_format, threads=threads) as rt:
        return accuracy(rt.predict_all(images)[output], labels)
