"""`edgecv heads`: classic classifiers on embeddings, cross-validated, and a streaming one.

Linear SVM, logistic regression and k-NN (cosine) are fitted with stratified k-fold
cross-validation on features that fit in memory (a spot-check of which head suits the
embedding). The streaming head is an SGD logistic regression trained with `partial_fit` one
HDF5 chunk at a time, so a feature file larger than memory works; every fifth image is held out
to score it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecv.errors import DataError
from edgecv.features.store import iter_chunks, read_features
from edgecv.errors import ConfigError

HOLDOUT_EVERY = 5  # the streaming head's held-out rows: every fifth image


def _sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise ConfigError("heads need scikit-learn: pip install 'edgecv[features]'") from None


def cross_validated(features_path: Path, folds: int = 5, seed: int = 0) -> list[dict]:
    """One row per head: mean and std of fold accuracy (%), and the folds used."""
    feats = read_features(features_path)
    _sklearn()
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import LinearSVC

    keep = feats.labels >= 0
    x, y = feats.embeddings[keep], feats.labels[keep]
    counts = np.bincount(y) if len(y) else np.array([0])
    present = counts[counts > 0]
    if len(present) < 2:
        raise DataError(f"{features_path}: heads need images of at least 2 classes (class sub-folders)")
    k = int(min(folds, present.min()))
    if k < 2:
        raise DataError(f"{features_path}: a class has {present.min()} image; cross-validation needs 2 per class")
    heads = {
        "linear SVM": LinearSVC(C=1.0),
        "logistic regression": LogisticRegression(max_iter=2000),
        "k-NN (k=5, cosine)": KNeighborsClassifier(n_neighbors=min(5, len(y) - len(y) // k), metric="cosine"),
    }
    cv = StratifiedKFold(k, shuffle=True, random_state=seed)
    rows = []
    for name, model in heads.items():
        scores = cross_val_score(model, x, y, cv=cv) * 100
        rows.append({"head": name, "accuracy": float(scores.mean()), "std": float(scores.std()), "folds": k,
                     "images": int(len(y))})
    return rows


def streaming(features_path: Path, epochs: int = 5, chunk_rows: int | None = None, seed: int = 0) -> dict:
    """SGD logistic regression over the file's chunks (partial_fit), scored on the held-out rows."""
    _sklearn()
    from sklearn.linear_model import SGDClassifier

    classes = None
    for _, _, labels in iter_chunks(features_path, chunk_rows):
        classes = np.union1d(classes if classes is not None else np.array([], np.int64), labels)
    if classes is None or len(classes) < 2:
        raise DataError(f"{features_path}: the streaming head needs images of at least 2 classes")
    model = SGDClassifier(loss="log_loss", alpha=1e-4, random_state=seed)
    chunks = 0
    for _ in range(epochs):
        for rows, x, y in iter_chunks(features_path, chunk_rows):
            train = rows % HOLDOUT_EVERY != 0
            if train.any():
                model.partial_fit(x[train], y[train], classes=classes)
                chunks += 1
    correct = total = 0
    for rows, x, y in iter_chunks(features_path, chunk_rows):
        test = rows % HOLDOUT_EVERY == 0
        if test.any():
            correct += int((model.predict(x[test]) == y[test]).sum())
            total += int(test.sum())
    return {"head": "streaming SGD (partial_fit per chunk)", "accuracy": 100.0 * correct / max(total, 1),
            "held_out": total, "epochs": epochs, "partial_fit_calls": chunks}
