"""`edgecv outliers`: per class, the images an iterated-centroid filter would drop, for review.

Per class: take the centroid of the images still kept, measure each one's cosine distance to it,
drop the farthest `fraction`, and repeat `iterations` times (a far image pulls the first centroid
towards itself; the iteration lets the later centroids move away from it). The candidates are
ranked by distance to the final centroid. Nothing is deleted or moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecv.features.store import read_features
from edgecv.tasks.embedding import l2_normalize


@dataclass
class Candidate:
    path: str
    distance: float  # cosine distance to the class's final centroid
    rank: int  # 1 = farthest in its class


def class_outliers(embeddings: np.ndarray, iterations: int = 3, fraction: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(indices dropped by the filter, farthest first; distances of all rows to the final centroid)."""
    x = l2_normalize(embeddings)
    kept = np.ones(len(x), bool)
    per_round = max(1, int(round(fraction * len(x))))
    for _ in range(iterations):
        if kept.sum() <= per_round + 1:
            break
        centroid = x[kept].mean(axis=0)
        dist = 1.0 - x @ (centroid / (np.linalg.norm(centroid) or 1.0))
        far = np.flatnonzero(kept)[np.argsort(-dist[kept], kind="stable")[:per_round]]
        kept[far] = False
    centroid = x[kept].mean(axis=0)
    dist = 1.0 - x @ (centroid / (np.linalg.norm(centroid) or 1.0))
    dropped = np.flatnonzero(~kept)
    return dropped[np.argsort(-dist[dropped], kind="stable")], dist


def find_outliers(features_path: Path, iterations: int = 3, fraction: float = 0.05,
                  top: int = 0) -> dict[str, list[Candidate]]:
    """class name -> candidates: what the filter drops, or the `top` farthest when top > 0."""
    feats = read_features(features_path)
    out: dict[str, list[Candidate]] = {}
    for label in sorted(set(int(l) for l in feats.labels if l >= 0)):
        rows = np.flatnonzero(feats.labels == label)
        dropped, dist = class_outliers(feats.embeddings[rows], iterations, fraction)
        order = np.argsort(-dist, kind="stable")
        rank = {int(i): r + 1 for r, i in enumerate(order)}
        chosen = order[:top] if top > 0 else dropped
        out[feats.label_name(label)] = [Candidate(feats.paths[rows[i]], float(dist[i]), rank[int(i)]) for i in chosen]
    return out
