"""A linear probe: logistic regression on standardized pooled features, folded into one Dense layer.

The probe's validation accuracy estimates how well a backbone's frozen features separate the
recipe's classes (a fine-tune usually does better; the ranking is what `select` uses). Folding the
standardization into the weights gives logits = features @ W + b, which is the candidate model's
own `logits` layer, so its int8 artifact is a working classifier.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgecv.errors import DataError
from edgecv.features.heads import _sklearn


@dataclass
class Probe:
    kernel: np.ndarray  # [D, C] float32
    bias: np.ndarray  # [C] float32
    accuracy: float  # percent on the validation features
    train_accuracy: float

    def logits(self, x: np.ndarray) -> np.ndarray:
        return x @ self.kernel + self.bias


def _logistic(c: float, seed: int):
    _sklearn()
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed))


def cross_validated(x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0, c: float = 1.0) -> tuple:
    """(mean, std) accuracy (%) of the same probe over stratified folds of all labelled images: a
    steadier ranking than one small validation split (1 image of 144 is 0.69 points)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    k = int(min(folds, np.bincount(y).min()))
    if k < 2:
        return None, None
    scores = cross_val_score(_logistic(c, seed), x, y, cv=StratifiedKFold(k, shuffle=True, random_state=seed)) * 100
    return float(scores.mean()), float(scores.std())


def fit_probe(train_x, train_y, val_x, val_y, num_classes: int, seed: int = 0, c: float = 1.0) -> Probe:
    missing = sorted(set(range(num_classes)) - set(int(y) for y in train_y))
    if missing:
        raise DataError(f"classes {missing} have no training image: the probe cannot learn them")
    pipe = _logistic(c, seed).fit(train_x, train_y)
    scaler, lr = pipe[0], pipe[-1]
    coef, intercept = lr.coef_, lr.intercept_
    if num_classes == 2:  # one logit z for class 1: softmax over [0, z] is the same probability
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    kernel = (coef / scaler.scale_).T
    bias = intercept - (scaler.mean_ / scaler.scale_) @ coef.T
    probe = Probe(kernel.astype(np.float32), bias.astype(np.float32), 0.0, 0.0)
    probe.accuracy = accuracy(probe.logits(val_x), val_y)
    probe.train_accuracy = accuracy(probe.logits(train_x), train_y)
    return probe


def accuracy(scores: np.ndarray, labels) -> float:
    return float(100.0 * np.mean(np.argmax(scores, axis=1) == np.asarray(labels))) if len(labels) else 0.0
