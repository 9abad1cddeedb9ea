"""`edgecv index` / `edgecv search`: an exact cosine-similarity gallery.

Exact search is one matrix product: a gallery of N embeddings of D floats costs N*D*4 bytes
(100k x 128 = 51 MB) and a query about N*D multiply-adds (milliseconds up to a few hundred
thousand images on a CPU). Beyond that, an approximate index (FAISS IVF/HNSW, ScaNN) is the tool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecv.errors import ConfigError, DataError
from edgecv.features.store import read_features
from edgecv.files import atomic_write_text, ensure_dir
from edgecv.tasks.embedding import l2_normalize, nearest

EMBEDDINGS, ITEMS = "embeddings.npy", "gallery.json"


@dataclass
class Gallery:
    embeddings: np.ndarray  # [N, D] float32, unit rows
    paths: list[str]
    labels: list[str]  # class names ("-" without a class folder)
    model_path: str
    model_sha256: str
    input_size: tuple[int, int]
    resize: str

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if queries.shape[1] != self.embeddings.shape[1]:
            raise ConfigError(f"query embeddings have {queries.shape[1]} dimensions, the gallery {self.embeddings.shape[1]}:"
                              " embed the queries with the gallery's model")
        return nearest(queries, self.embeddings, k)


def build_gallery(features_path: Path, out: Path) -> Gallery:
    feats = read_features(features_path)
    if not len(feats.paths):
        raise DataError(f"{features_path} holds no readable image to index")
    gallery = Gallery(l2_normalize(feats.embeddings).astype(np.float32), feats.paths,
                      [feats.label_name(int(l)) for l in feats.labels], feats.model_path, feats.model_sha256,
                      feats.input_size, feats.resize)
    ensure_dir(out)
    np.save(out / EMBEDDINGS, gallery.embeddings)
    meta = {"paths": gallery.paths, "labels": gallery.labels, "model_path": gallery.model_path,
            "model_sha256": gallery.model_sha256, "input_size": list(gallery.input_size), "resize": gallery.resize}
    atomic_write_text(out / ITEMS, json.dumps(meta))
    return gallery


def load_gallery(folder: Path) -> Gallery:
    folder = Path(folder)
    if not (folder / ITEMS).is_file() or not (folder / EMBEDDINGS).is_file():
        raise DataError(f"{folder} is not a gallery: make one with `edgecv index features.h5 --out {folder}`")
    meta = json.loads((folder / ITEMS).read_text())
    return Gallery(np.load(folder / EMBEDDINGS), meta["paths"], meta["labels"], meta["model_path"], meta["model_sha256"],
                   tuple(meta["input_size"]), meta["resize"])
