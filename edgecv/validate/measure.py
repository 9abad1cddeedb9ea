"""Measure one artifact through its runtime: outputs on the evaluation images, latency, memory.

Shared by `edgecv build` and `edgecv bench` so a number on a device means what it means in CI.
Imports no TensorFlow.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np

from edgecv.runtimes.latency import measure_latency
from edgecv.validate.memory import peak_memory
from edgecv.runtimes import load_runtime

EVAL_BATCH = 32
LATENCY_SAMPLES_KEPT = 2000


def first_inference_ms(runtime) -> float:
    """The first call after loading, on one black image (what an app waits for at start-up:
    allocation, delegate preparation, caches)."""
    import time

    h, w = runtime.input_size
    t0 = time.perf_counter()
    runtime.predict(np.zeros((1, h, w, 3), np.uint8))
    return (time.perf_counter() - t0) * 1000


def sizes(path: Path) -> dict:
    """File size and gzip size (what a download costs); a folder counts all its files."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())
    raw = sum(f.stat().st_size for f in files)
    gz = sum(len(gzip.compress(f.read_bytes(), compresslevel=9)) for f in files)
    return {"size_bytes": raw, "gzip_bytes": gz}


def measure_artifact(path: Path, fmt: Optional[str], images: Union[None, np.ndarray, Callable], threads: Optional[int],
                     batches: Sequence[int] = (1,), runtime_options: Optional[dict] = None,
                     latency_images: Union[None, np.ndarray, Callable] = None, min_runs: int = 30, min_seconds: float = 1.0,
                     progress: Optional[Callable[[float, str], None]] = None, timing: bool = True) -> dict:
    """Load, predict on `images` (if given), time each batch size. Returns a JSON-able dict plus
    the named outputs under `_outputs` (the caller compares them and drops them).
    `progress(fraction, what)` hears each part: outputs on the images, then each batch size's runs.
    Without `timing` (a search's candidates): outputs only, no first inference, memory or size.
    `images` and `latency_images` may be functions of the loaded runtime (images at its input size)."""

    def part(index: int, parts: int, what: str):
        return None if progress is None else lambda f: progress((index + f) / parts, what)

    with peak_memory() as mem:
        with load_runtime(path, fmt, threads=threads, **(runtime_options or {})) as rt:
            first_ms = first_inference_ms(rt) if timing else None
            if callable(images):  # read at the loaded artifact's input size (after its cold start)
                images = images(rt)
            has_images = images is not None and len(images) > 0
            parts = len(batches) + has_images
            outputs = rt.predict_all(images, EVAL_BATCH, progress=part(0, parts, f"{len(images)} images")) \
                if has_images else None
            # latency inputs: given, prepared from the loaded runtime (bench), or the evaluation images
            lat_imgs = (latency_images(rt) if callable(latency_images) else
                        latency_images if latency_images is not None else images[:16])
            latency = []
            for b in batches:
                lat = measure_latency(rt.predict, lat_imgs, batch=b, min_runs=min_runs, min_seconds=min_seconds,
                                      progress=part(len(latency) + has_images, parts, f"latency batch {b}"))
                latency.append({**lat.to_json(), "samples_ms": [round(x, 4) for x in lat.samples_ms[:LATENCY_SAMPLES_KEPT]]})
            described = rt.describe()
            result = {"runtime": described, "load_seconds": rt.load_seconds, "first_inference_ms": first_ms,
                      "input_size": list(rt.input_size),
                      "input_dtype": rt.input_dtype}
            if described.get("session_options") is not None:  # onnxruntime: the int8 arithmetic used
                result["session_options"] = described["session_options"]
    result["_outputs"] = outputs
    if not timing:
        result.pop("first_inference_ms")
        return result
    result.update({"latency": latency[0] if latency else None, "latency_by_batch": latency, "memory": mem,
                   **sizes(path)})
    return result
