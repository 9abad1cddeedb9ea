"""Percentile bootstrap over images of a metric that is not a mean of per-image values (mAP, mIoU):
each resample draws the images with replacement and recomputes the metric from per-image counts
weighted by how often each image was drawn. The same seed draws the same images for two models,
so the interval of their difference is paired. Resample count, seed and the confidence check are
those of `edgecv.validate.intervals`, so these intervals read like the other tasks'."""

from __future__ import annotations

from statistics import NormalDist
from typing import Callable, Optional

import numpy as np

from edgecv.results import Interval

# shared with edgecv.validate.intervals (defined here, below it: validate imports tasks, tasks import metrics)
DEFAULT_CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 4000
BOOTSTRAP_SEED = 0  # fixed: the same scores give the same interval on every machine and every run


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (e.g. 0.95), not {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


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
