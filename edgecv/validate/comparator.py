"""Compare an artifact's outputs with the float reference's, and with the labels.

Numpy only (no TensorFlow) so it runs on devices. Agreement metrics follow common practice:
top-1 agreement and PSNR/SNR as Qualcomm AI Hub reports them, max/mean absolute error as
Polygraphy's comparator does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np


@dataclass
class Agreement:
    top1_agreement: float
    max_abs_error: float
    mean_abs_error: float
    cosine_similarity: float  # mean over samples
    snr_db: float  # signal = reference, noise = candidate - reference


@dataclass
class ClassificationMetrics:
    count: int
    accuracy: float  # percent
    top5_accuracy: Optional[float]
    per_class_recall: list[float]
    confusion_matrix: list[list[int]]


@dataclass
class Comparison:
    metrics: ClassificationMetrics
    reference_accuracy: Optional[float] = None
    accuracy_delta: Optional[float] = None  # candidate - reference, points
    agreement: Optional[Agreement] = None
    nonfinite_outputs: int = 0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def classification_metrics(scores: np.ndarray, labels: np.ndarray, num_classes: Optional[int] = None) -> ClassificationMetrics:
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, np.int64)
    n_cls = num_classes or scores.shape[1]
    pred = scores.argmax(axis=1)
    acc = float((pred == labels).mean() * 100) if len(labels) else float("nan")
    top5 = None
    if scores.shape[1] > 5:
        top5_idx = np.argsort(-scores, axis=1)[:, :5]
        top5 = float((top5_idx == labels[:, None]).any(axis=1).mean() * 100)
    cm = np.zeros((n_cls, n_cls), np.int64)
    np.add.at(cm, (labels, np.clip(pred, 0, n_cls - 1)), 1)
    support = cm.sum(axis=1)
    recall = [float(cm[i, i] / support[i]) if support[i] else float("nan") for i in range(n_cls)]
    return ClassificationMetrics(len(labels), acc, top5, recall, cm.tolist())


def agreement(reference: np.ndarray, candidate: np.ndarray) -> Agreement:
    ref = np.asarray(reference, np.float64)
    cand = np.asarray(candidate, np.float64)
    if ref.shape != cand.shape:
        raise ValueError(f"output shapes differ: reference {ref.shape}, candidate {cand.shape}")
    diff = cand - ref
    num = (ref * cand).sum(axis=1)
    den = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    cosine = np.where(den > 0, num / np.where(den > 0, den, 1), 1.0)
    noise = float((diff**2).sum())
    signal = float((ref**2).sum())
    snr = float("inf") if noise == 0 else 10 * np.log10(signal / noise) if signal > 0 else float("-inf")
    return Agreement(
        top1_agreement=float((ref.argmax(1) == cand.argmax(1)).mean()),
        max_abs_error=float(np.abs(diff).max()) if diff.size else 0.0,
        mean_abs_error=float(np.abs(diff).mean()) if diff.size else 0.0,
        cosine_similarity=float(cosine.mean()),
        snr_db=snr,
    )


def compare_classification(candidate: np.ndarray, labels: np.ndarray, reference: Optional[np.ndarray] = None) -> Comparison:
    candidate = np.asarray(candidate)
    nonfinite = int((~np.isfinite(candidate)).sum())
    notes = []
    if nonfinite:
        notes.append(f"{nonfinite} NaN/Inf output value(s)")
        candidate = np.nan_to_num(candidate, nan=0.0, posinf=0.0, neginf=0.0)
    m = classification_metrics(candidate, labels)
    cmp = Comparison(m, nonfinite_outputs=nonfinite, notes=notes)
    if reference is not None:
        ref_m = classification_metrics(reference, labels)
        cmp.reference_accuracy = ref_m.accuracy
        cmp.accuracy_delta = m.accuracy - ref_m.accuracy
        cmp.agreement = agreement(reference, candidate)
    return cmp
