"""features.h5: image paths, class labels and embeddings, written chunk by chunk.

Layout (HDF5, h5py): datasets `paths` [N] (UTF-8), `labels` [N] int32 (-1: no class folder),
`valid` [N] bool, `skip_reason` [N] (UTF-8, empty when the image was read), `embeddings` [N, D]
float32 (rows of skipped images are zeros); attributes `model_path`, `model_sha256`,
`input_size`, `resize`, `class_names` (JSON), `chunk_size`, `chunks_done`. `chunks_done` is
raised only after a chunk's rows are flushed, so a run killed at any point resumes at the first
chunk not recorded as done and never recomputes a finished one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from edgecv.errors import ConfigError, DataError

FORMAT = "edgecv-features/1"


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ConfigError("feature files need h5py: pip install 'edgecv[features]'") from None
    return h5py


@dataclass
class Features:
    """The usable rows of a feature file (read images only), in file order."""

    paths: list[str]
    labels: np.ndarray
    embeddings: np.ndarray
    class_names: list[str]
    model_path: str
    model_sha256: str
    input_size: tuple[int, int]
    resize: str
    skipped: list[tuple[str, str]]

    def label_name(self, label: int) -> str:
        return self.class_names[label] if 0 <= label < len(self.class_names) else "-"


def open_features(path: Path | str, mode: str = "r"):
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such feature file; make one with `edgecv embed MODEL --data DIR --out {path}`")
    try:
        f = _h5py().File(path, mode)
    except OSError as e:
        raise DataError(f"{path} is not a readable HDF5 feature file ({e}); run `edgecv embed` again with "
                        "--restart to rewrite it") from None
    if f.attrs.get("format") != FORMAT:
        f.close()
        raise DataError(f"{path} is not an edgecv feature file (no format attribute {FORMAT!r})")
    return f


def _complete_rows(f) -> int:
    return min(int(f.attrs["chunks_done"]) * int(f.attrs["chunk_size"]), len(f["paths"]))


def read_features(path: Path | str, require_complete: bool = True) -> Features:
    with open_features(path) as f:
        n = _complete_rows(f)
        if require_complete and n < len(f["paths"]):
            raise DataError(f"{path} is incomplete ({n} of {len(f['paths'])} images embedded): run the same "
                            "`edgecv embed` command again to finish it")
        valid = f["valid"][:n]
        paths = [p.decode() if isinstance(p, bytes) else p for p in f["paths"][:n]]
        reasons = [r.decode() if isinstance(r, bytes) else r for r in f["skip_reason"][:n]]
        emb = f["embeddings"][:n]
        return Features(
            paths=[p for p, v in zip(paths, valid) if v],
            labels=f["labels"][:n][valid].astype(np.int64),
            embeddings=emb[valid],
            class_names=json.loads(f.attrs["class_names"]),
            model_path=str(f.attrs["model_path"]), model_sha256=str(f.attrs["model_sha256"]),
            input_size=tuple(int(x) for x in f.attrs["input_size"]), resize=str(f.attrs["resize"]),
            skipped=[(p, r) for p, r, v in zip(paths, reasons, valid) if not v],
        )


def iter_chunks(path: Path | str, rows: Optional[int] = None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(row indices, embeddings, labels) of the read, labelled images, one stored chunk at a time:
    for files larger than memory."""
    with open_features(path) as f:
        n, step = _complete_rows(f), int(rows or f.attrs["chunk_size"])
        for start in range(0, n, step):
            sl = slice(start, min(start + step, n))
            keep = f["valid"][sl] & (f["labels"][sl] >= 0)
            yield np.arange(sl.start, sl.stop)[keep], f["embeddings"][sl][keep], f["labels"][sl][keep].astype(np.int64)


def create(path: Path, paths: list[str], labels: list[int], class_names: list[str], model_path: str, sha256: str,
           input_size, resize: str, chunk_size: int, dim: int):
    h5py = _h5py()
    f = h5py.File(path, "w")
    text = h5py.string_dtype("utf-8")
    f.create_dataset("paths", data=np.array(paths, dtype=object), dtype=text)
    f.create_dataset("labels", data=np.asarray(labels, np.int32))
    f.create_dataset("valid", data=np.zeros(len(paths), bool))
    f.create_dataset("skip_reason", shape=(len(paths),), dtype=text)
    f.create_dataset("embeddings", shape=(len(paths), dim), dtype="float32", chunks=(min(chunk_size, len(paths)), dim))
    f.attrs.update({"format": FORMAT, "model_path": model_path, "model_sha256": sha256,
                    "input_size": list(input_size), "resize": resize, "class_names": json.dumps(class_names),
                    "chunk_size": chunk_size, "chunks_done": 0})
    f.flush()
    return f


def write_chunk(f, start: int, embeddings: np.ndarray, valid: np.ndarray, reasons: list[str]) -> None:
    """Store one chunk's rows, flush, then record the chunk as done (in that order: see module doc)."""
    stop = start + len(valid)
    rows = np.zeros((len(valid), f["embeddings"].shape[1]), np.float32)
    rows[valid] = embeddings
    f["embeddings"][start:stop] = rows
    f["valid"][start:stop] = valid
    f["skip_reason"][start:stop] = reasons
    f.flush()
    f.attrs["chunks_done"] = int(f.attrs["chunks_done"]) + 1
    f.flush()
