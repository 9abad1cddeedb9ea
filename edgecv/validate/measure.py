"""Measure one artifact through its runtime: outputs on the evaluation images, latency, memory.

Shared by `edgecv build` and `edgecv bench` so a number on a device means what it means in CI.
Imports no TensorFlow.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np

from edgecv.validate.latency import measure_latency
from edgecv.validate.memory import peak_memory

EVAL_BATCH = 32
LATENCY_SAMPLES_KEPT = 2000


def predict_all(runtime, images: np.ndarray, batch: int = EVAL_BATCH) -> dict[str, np.ndarray]:
    """Every named output of the runtime over all images, in batches."""
    parts = [runtime.predict(images[i:i + batch]) for i in range(0, len(images), batch)]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]} if parts else {}


def sizes(path: Path) -> dict:
    """File size and gzip size (what a download costs); a folder counts all its files."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())
    raw = sum(f.stat().st_size for f in files)
    gz = sum(len(gzip.compress(f.read_bytes(), compresslevel=9)) for f in files)
    return {"size_bytes": raw, "gzip_bytes": gz}


def measure_artifact(path: Path, fmt: Optional[str], images: Optional[np.ndarray], threads: Optional[int],
                     batches: Sequence[int] = (1,), runtime_options: Optional[dict] = None,
                     latency_images: Union[None, np.ndarray, Callable] = None, min_runs: int = 30, min_seconds: float = 1.0) -> dict:
    """Load, predict on `images` (if given), time each batch size. Returns a JSON-able dict plus
    the named outputs under `_outputs` (the caller compares them and drops them)."""
    from edgecv.runtimes import load_runtime

    with peak_memory() as mem:
        with load_runtime(path, fmt, threads=threads, **(runtime_options or {})) as rt:
            outputs = predict_all(rt, images) if images is not None and len(images) else None
            # latency inputs: given, prepared from the loaded runtime (bench), or the evaluation images
            lat_imgs = (latency_images(rt) if callable(latency_images) else
                        latency_images if latency_images is not None else images[:16])
            latency = []
            for b in batches:
                lat = measure_latency(rt.predict, lat_imgs, batch=b, min_runs=min_runs, min_seconds=min_seconds)
                latency.append({**lat.to_json(), "samples_ms": [round(x, 4) for x in lat.samples_ms[:LATENCY_SAMPLES_KEPT]]})
            result = {"runtime": rt.describe(), "load_seconds": rt.load_seconds, "input_size": list(rt.input_size),
                      "input_dtype": rt.input_dtype}
    result.update({"latency": latency[0] if latency else None, "latency_by_batch": latency, "memory": mem,
                   **sizes(path), "_outputs": outputs})
    return result
