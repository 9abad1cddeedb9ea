"""Percentile bootstrap over images of a metric that is not a mean of per-image values (mAP, mIoU):
each resample draws the images with replacement and recomputes the metric from per-image counts
weighted by how often each image was drawn. The same seed draws the same images for two models,
so the interval of their difference is paired. Resample count, seed and the confidence check are
those of `edgecv.validate.intervals`, so these intervals read like the other tasks'."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from edgecv.results import Interval
from edgecv.validate.intervals import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, DEFAULT_CONFIDENCE, _z


def resample_weights(n: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED):
    """`resamples` arrays of n counts: how many times each of the n images was drawn."""
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        yield np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)


def bootstrap_interval(n: int, statistic: Callable[[np.ndarray], float], confidence: float = DEFAULT_CONFIDENCE,
                       resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                       paired: bool = False) -> Optional[Interval]:
    """The percentile interval of `statistic(weights)` over resampled images; None without images
    or when no resample gives a value (NaN: e.g. no ground truth drawn)."""
    _z(confidence)  # validates the level
    if n <= 0:
        return None
    values = np.array([statistic(w) for w in resample_weights(n, resamples, seed)], np.float64)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return None
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    method = f"{'paired ' if paired else ''}bootstrap percentile over images ({resamples} resamples, seed {seed})"
    return Interval(low=float(low), high=float(high), confidence=confidence, method=method, n=n)
