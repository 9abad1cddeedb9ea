"""Latency of a runtime: warm-up, then repeat until both a minimum count and a minimum time."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

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
    std_ms: float = 0.0
    first_ms: Optional[float] = None  # the first inference after loading (graph preparation, caches)
    samples_ms: list = field(default_factory=list, repr=False)  # every run, in order

    @property
    def noisy(self) -> bool:
        """benchmark_model's warning sign: the slow tail far from the median (other load, throttling)."""
        return noisy(self.p50_ms, self.p99_ms)

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("samples_ms")
        return d


def measure_latency(predict, images: np.ndarray, batch: int = 1, warmup: int = 5,
                    min_runs: int = 30, min_seconds: float = 1.0, max_runs: int = 10_000,
                    progress: Optional[Callable[[float], None]] = None) -> Latency:
    """Time `predict` on batches cut from `images` (cycled). Each run is one predict call;
    `progress(fraction)` hears how far the count and time minimums are."""
    if len(images) == 0:
        raise ValueError("latency needs at least one image")
    reps = int(np.ceil(batch / len(images)))
    pool = np.concatenate([images] * reps) if reps > 1 else images
    batches = [pool[i:i + batch] for i in range(0, len(pool) - batch + 1, batch)] or [pool[:batch]]
    first_ms = None  # the first call after loading, warm-up or not
    for i in range(warmup):
        t0 = time.perf_counter()
        predict(batches[i % len(batches)])
        if first_ms is None:
            first_ms = (time.perf_counter() - t0) * 1000
    times = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - start < min_seconds):
        b = batches[len(times) % len(batches)]
        t0 = time.perf_counter()
        predict(b)
        times.append(time.perf_counter() - t0)
        if first_ms is None:
            first_ms = times[0] * 1000
        if progress is not None:
            progress(min(len(times) / min_runs, (time.perf_counter() - start) / min_seconds if min_seconds else 1.0))
    ms = np.array(times) * 1000
    return Latency(batch, len(ms), warmup, float(np.percentile(ms, 50)), float(np.percentile(ms, 90)),
                   float(np.percentile(ms, 99)), float(ms.mean()), float(ms.min()),
                   float(batch / (ms.mean() / 1000)), float(ms.std()), first_ms, ms.tolist())


NOISY_P99_OVER_P50 = 3.0


def noisy(p50_ms, p99_ms) -> bool:
    return bool(p50_ms and p99_ms and p99_ms > NOISY_P99_OVER_P50 * p50_ms)
