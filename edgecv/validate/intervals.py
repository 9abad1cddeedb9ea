"""Confidence intervals for a task's metrics and for their change against the float model, paired
over the same images, so that a gate can tell one image flipping from a real loss.

A task gives per-sample scores (`Task.sample_scores`) for the metrics it declares `per_sample`:
- a share of samples (accuracy, failure rate: each sample 0 or 1) gets Wilson's score interval, and
  its change Newcombe's paired score interval (method 10 of Newcombe 1998, from the two Wilson
  intervals and the correlation of the pairs) with the exact McNemar p-value: exact counting
  methods that stay sensible at a few hundred images and need only the standard library;
- a mean of per-sample values (NME) gets a percentile bootstrap over samples with a fixed seed, its
  change resampling the same samples for both models (the mean of the paired differences).
Numpy and the standard library only: devices validate without scipy, and a report made on a
Raspberry Pi has the same intervals as the build host's. Tests check these against scipy.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from edgecv.metrics.bootstrap import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, DEFAULT_CONFIDENCE, _z  # noqa: F401
from edgecv.results import Interval


def wilson(k: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> Tuple[float, float]:
    """Wilson's score interval of the share k/n (Wilson 1927; scipy's `binomtest(k, n)
    .proportion_ci(method="wilson")`)."""
    if n <= 0:
        return float("nan"), float("nan")
    z = _z(confidence)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # k = 0 and k = n reach the bound exactly (rounding would leave 100 % outside 0.99999...)
    return (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))


def newcombe_paired(both: int, cand_only: int, ref_only: int, neither: int,
                    confidence: float = DEFAULT_CONFIDENCE) -> Tuple[float, float]:
    """Interval of (candidate share - reference share) over the same n samples (Newcombe 1998,
    method 10). `cand_only`: samples the candidate gets right and the reference wrong; `ref_only`
    the reverse; only these discordant samples move the difference."""
    n = both + cand_only + ref_only + neither
    if n <= 0:
        return float("nan"), float("nan")
    p1, p2 = (both + cand_only) / n, (both + ref_only) / n
    l1, u1 = wilson(both + cand_only, n, confidence)
    l2, u2 = wilson(both + ref_only, n, confidence)
    # correlation of the pairs, with Newcombe's continuity correction of its numerator
    a = both * neither - cand_only * ref_only
    a = a - n / 2 if a > n / 2 else 0.0 if a >= 0 else a
    den = (both + cand_only) * (ref_only + neither) * (both + ref_only) * (cand_only + neither)
    phi = a / math.sqrt(den) if den > 0 else 0.0
    d = p1 - p2
    low = d - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    high = d + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return max(-1.0, low), min(1.0, high)


def mcnemar_exact_p(cand_only: int, ref_only: int) -> float:
    """Two-sided exact McNemar test: the chance that the discordant samples split at least this
    unevenly if both models were equally good (a binomial test of cand_only in cand_only + ref_only)."""
    m = cand_only + ref_only
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, i) for i in range(min(cand_only, ref_only) + 1)) / 2.0 ** m
    return min(1.0, 2 * tail)


def bootstrap_mean(values: np.ndarray, confidence: float = DEFAULT_CONFIDENCE, resamples: int = BOOTSTRAP_RESAMPLES,
                   seed: int = BOOTSTRAP_SEED) -> Tuple[float, float]:
    """Percentile bootstrap interval of the mean, resampling the samples with a fixed seed. Given
    paired differences (candidate - reference per sample) it is the paired bootstrap of the change."""
    values = np.asarray(values, np.float64)
    if len(values) == 0:
        return float("nan"), float("nan")
    _z(confidence)  # validates the level
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 256):  # chunks: bounded memory for tens of thousands of samples
        stop = min(resamples, start + 256)
        means[start:stop] = values[rng.integers(0, len(values), (stop - start, len(values)))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def _clean(values) -> np.ndarray:
    """Stored scores (None for a sample the metric leaves out) as floats with NaN."""
    return np.array([np.nan if v is None else v for v in values], np.float64)


def metric_interval(spec, scores, confidence: float = DEFAULT_CONFIDENCE) -> Optional[Interval]:
    """The interval of a metric from its per-sample scores, in the metric's units."""
    s = _clean(scores)
    s = s[~np.isnan(s)]
    if len(s) == 0:
        return None
    if spec.per_sample == "share":
        low, high = wilson(int(s.sum()), len(s), confidence)
        method = "wilson"
    else:
        low, high = bootstrap_mean(s, confidence)
        method = f"bootstrap percentile ({BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED})"
    return Interval(low=low * spec.scale, high=high * spec.scale, confidence=confidence, method=method, n=len(s))


def delta_interval(spec, scores, reference, confidence: float = DEFAULT_CONFIDENCE) -> Optional[Interval]:
    """The interval of (metric - the reference's metric), paired sample by sample; None when the
    two do not score the same samples."""
    c, r = _clean(scores), _clean(reference)
    if len(c) != len(r):
        return None
    keep = ~(np.isnan(c) | np.isnan(r))
    c, r = c[keep], r[keep]
    if len(c) == 0:
        return None
    if spec.per_sample == "share":
        ci, ri = c > 0.5, r > 0.5
        counts = (int((ci & ri).sum()), int((ci & ~ri).sum()), int((~ci & ri).sum()), int((~ci & ~ri).sum()))
        low, high = newcombe_paired(*counts, confidence=confidence)
        p = mcnemar_exact_p(counts[1], counts[2])
        return Interval(low=low * spec.scale, high=high * spec.scale, confidence=confidence,
                        method="newcombe paired (method 10)", n=len(c), p_value=p,
                        discordant={"gained": counts[1], "lost": counts[2]})
    low, high = bootstrap_mean(c - r, confidence)
    return Interval(low=low * spec.scale, high=high * spec.scale, confidence=confidence, n=len(c),
                    method=f"paired bootstrap percentile ({BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED})")


def per_sample_specs(task) -> list:
    return [m for m in task.metrics if m.per_sample]


def intervals_for(task, scores: Dict[str, Sequence], reference: Optional[Dict[str, Sequence]] = None,
                  confidence: float = DEFAULT_CONFIDENCE) -> Tuple[Dict[str, Interval], Dict[str, Interval]]:
    """(metric intervals, paired delta intervals) of every per-sample metric `scores` has."""
    metrics, deltas = {}, {}
    for spec in per_sample_specs(task):
        if spec.name not in scores:
            continue
        iv = metric_interval(spec, scores[spec.name], confidence)
        if iv is not None:
            metrics[spec.name] = iv
        if reference is not None and spec.name in reference:
            dv = delta_interval(spec, scores[spec.name], reference[spec.name], confidence)
            if dv is not None:
                deltas[spec.name] = dv
    return metrics, deltas


def as_stored(scores: Dict[str, np.ndarray]) -> Dict[str, list]:
    """Per-sample scores as report.json keeps them: floats, None where the metric leaves a sample out."""
    return {k: [None if np.isnan(x) else float(x) for x in np.asarray(v, np.float64)] for k, v in scores.items()}


def attach_intervals(result, task, reference_scores: Optional[Dict[str, Sequence]],
                     confidence: Optional[float] = None) -> None:
    """Set a result's `intervals` and `delta_intervals` from its stored per-sample scores (a cached
    validation is re-judged at the gates' confidence without running the artifact again)."""
    if task is None or not result.sample_scores:
        return
    # metrics that are not a mean over samples (mAP, mIoU: per_sample "images") cannot be re-derived
    # from stored scores: their intervals from validation (Task.metric_intervals) are kept
    whole = {m.name for m in task.metrics if m.per_sample == "images"}
    kept = {k: v for k, v in result.intervals.items() if k in whole}
    kept_deltas = {k: v for k, v in result.delta_intervals.items() if k in whole}
    intervals, deltas = intervals_for(task, result.sample_scores, reference_scores, confidence or DEFAULT_CONFIDENCE)
    result.intervals, result.delta_intervals = {**kept, **intervals}, {**kept_deltas, **deltas}
