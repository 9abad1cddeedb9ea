"""Compare an artifact's outputs with the float reference's, and with the targets.

Every named output is compared as Polygraphy's comparator does (max/mean absolute error, cosine,
SNR, optional atol/rtol); the task adds its own metrics against the targets and its own agreement
(top-1 agreement for classification). Numpy only, so it runs on devices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

from edgecv.results import Interval, OutputAgreement
from edgecv.validate.intervals import DEFAULT_CONFIDENCE, as_stored, intervals_for


@dataclass
class Comparison:
    metrics: dict
    reference_metrics: dict = field(default_factory=dict)
    deltas: Dict[str, float] = field(default_factory=dict)
    agreement: dict = field(default_factory=dict)
    outputs: Dict[str, OutputAgreement] = field(default_factory=dict)
    nonfinite_outputs: int = 0
    notes: list = field(default_factory=list)
    sample_scores: Dict[str, list] = field(default_factory=dict)  # the task's per-sample scores, as stored
    reference_scores: Dict[str, list] = field(default_factory=dict)
    intervals: Dict[str, Interval] = field(default_factory=dict)
    delta_intervals: Dict[str, Interval] = field(default_factory=dict)  # paired over the same samples

    def to_result_fields(self) -> dict:
        """The fields of an ArtifactResult this comparison fills."""
        return {"metrics": self.metrics, "deltas": self.deltas, "agreement": self.agreement,
                "outputs": self.outputs, "nonfinite_outputs": self.nonfinite_outputs, "notes": self.notes,
                "sample_scores": self.sample_scores, "intervals": self.intervals,
                "delta_intervals": self.delta_intervals}


def output_agreement(reference: np.ndarray, candidate: np.ndarray, rtol: float = 0.0) -> OutputAgreement:
    ref = np.asarray(reference, np.float64)
    cand = np.asarray(candidate, np.float64)
    if ref.shape != cand.shape:
        raise ValueError(f"output shapes differ: reference {ref.shape}, candidate {cand.shape}")
    diff = cand - ref
    r2, c2 = ref.reshape(len(ref), -1) if ref.ndim else ref.reshape(1, -1), cand.reshape(len(cand), -1) if cand.ndim \
        else cand.reshape(1, -1)
    num = (r2 * c2).sum(axis=1)
    den = np.linalg.norm(r2, axis=1) * np.linalg.norm(c2, axis=1)
    cosine = np.where(den > 0, num / np.where(den > 0, den, 1), 1.0)
    noise, signal = float((diff**2).sum()), float((ref**2).sum())
    snr = float("inf") if noise == 0 else 10 * np.log10(signal / noise) if signal > 0 else float("-inf")
    excess = float((np.abs(diff) - rtol * np.abs(ref)).max()) if diff.size else 0.0
    return OutputAgreement(
        shape=list(cand.shape),
        max_abs_error=float(np.abs(diff).max()) if diff.size else 0.0,
        mean_abs_error=float(np.abs(diff).mean()) if diff.size else 0.0,
        cosine_similarity=float(cosine.mean()) if cosine.size else 1.0,
        snr_db=snr,
        max_tolerance_excess=excess,
    )


def _finite(outputs: Dict[str, np.ndarray]) -> tuple[Dict[str, np.ndarray], int]:
    count, clean = 0, {}
    for name, value in outputs.items():
        value = np.asarray(value)
        bad = int((~np.isfinite(value)).sum()) if np.issubdtype(value.dtype, np.floating) else 0
        count += bad
        clean[name] = np.nan_to_num(value, nan=0.0, posinf=0.0, neginf=0.0) if bad else value
    return clean, count


def compare(task, info: dict, candidate: Dict[str, np.ndarray], targets=None,
            reference: Optional[Dict[str, np.ndarray]] = None, rtols: Optional[Dict[str, float]] = None,
            confidence: float = DEFAULT_CONFIDENCE) -> Comparison:
    """`candidate` and `reference` map output names to arrays over the same images; `targets` is
    what the task's `targets()` gave (None for unlabelled data). Metrics the task scores per
    sample get `confidence` intervals, their deltas paired ones."""
    candidate, nonfinite = _finite(task.select_outputs(candidate, info))
    notes = [f"{nonfinite} NaN/Inf output value(s)"] if nonfinite else []
    metrics = task.evaluate(candidate, targets, info) if targets is not None else {}
    cmp = Comparison(metrics, nonfinite_outputs=nonfinite, notes=notes)
    if targets is not None:
        cmp.sample_scores = as_stored(task.sample_scores(candidate, targets, info))
    if reference is None:
        cmp.intervals, _ = intervals_for(task, cmp.sample_scores, None, confidence)
        cmp.intervals.update(task.metric_intervals(candidate, None, targets, info, confidence)[0])
        return cmp
    reference = task.select_outputs(reference, info)
    cmp.reference_metrics = task.evaluate(reference, targets, info) if targets is not None else {}
    if targets is not None:
        cmp.reference_scores = as_stored(task.sample_scores(reference, targets, info))
    cmp.intervals, cmp.delta_intervals = intervals_for(task, cmp.sample_scores, cmp.reference_scores, confidence)
    whole, whole_deltas = task.metric_intervals(candidate, reference, targets, info, confidence)
    cmp.intervals.update(whole)
    cmp.delta_intervals.update(whole_deltas)
    for name, value in metrics.items():
        ref_value = cmp.reference_metrics.get(name)
        if isinstance(value, (int, float)) and isinstance(ref_value, (int, float)) and name != "count":
            cmp.deltas[name] = float(value) - float(ref_value)
    cmp.agreement = task.agreement(reference, candidate, info)
    if targets is not None:
        cmp.agreement.update(task.agreement_with_targets(reference, candidate, targets, info))
    rtols = rtols or {}
    for name in (n for n in reference if n in candidate):  # a detector's NMS'd artifact shares none with raw
        cmp.outputs[name] = output_agreement(reference[name], candidate[name], rtols.get(name, rtols.get("*", 0.0)))
    return cmp
