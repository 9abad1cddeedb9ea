"""Latency of a runtime: warm-up, then repeat until both a minimum count and a minimum time."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class Latency:
    batch: int
    runs: int
    warmup: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    throughput_ips: float  # images per second at this batch size
    samples_ms: list = field(default_factory=list, repr=False)  # every run, in order

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("samples_ms")
        return d


def measure_latency(predict, images: np.ndarray, batch: int = 1, warmup: int = 5,
                    min_runs: int = 30, min_seconds: float = 1.0, max_runs: int = 10_000) -> Latency:
    """Time `predict` on batches cut from `images` (cycled). Each run is one predict call."""
    if len(images) == 0:
        raise ValueError("latency needs at least one image")
    reps = int(np.ceil(batch / len(images)))
    pool = np.concatenate([images] * reps) if reps > 1 else images
    batches = [pool[i:i + batch] for i in range(0, len(pool) - batch + 1, batch)] or [pool[:batch]]
    for i in range(warmup):
        predict(batches[i % len(batches)])
    times = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - start < min_seconds):
        b = batches[len(times) % len(batches)]
        t0 = time.perf_counter()
        predict(b)
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1000
    return Latency(batch, len(ms), warmup, float(np.percentile(ms, 50)), float(np.percentile(ms, 90)),
                   float(np.percentile(ms, 99)), float(ms.mean()), float(ms.min()),
                   float(batch / (ms.mean() / 1000)), ms.tolist())
