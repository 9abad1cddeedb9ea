"""The calibration set for post-training quantization: drawn from the training split only.

Calibrating on evaluation images inflates the measured int8 accuracy, so a pinned list that names
a validation image is an error. The file list and a hash of the files' bytes are written into the
build so anyone can see (and reproduce) exactly what calibrated each artifact.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from edgecv.data.index import DataIndex, Sample
from edgecv.errors import ConfigError
from edgecv.files import atomic_write_text


@dataclass(frozen=True)
class CalibrationSet:
    samples: list[Sample]
    seed: int
    source: str  # "train split (stratified)" or the pinned list's path
    sha256: str

    @property
    def paths(self) -> list[str]:
        return [s.path for s in self.samples]

    def write(self, out_dir: Path, relative_to: Optional[Path] = None) -> None:

        def show(p: str) -> str:
            if relative_to is not None:
                try:
                    return str(Path(p).resolve().relative_to(relative_to.resolve()))
                except ValueError:
                    pass
            return p

        atomic_write_text(out_dir / "calibration.txt", "".join(f"{show(p)}\n" for p in self.paths))
        meta = {"size": len(self.samples), "seed": self.seed, "source": self.source, "sha256": self.sha256,
                "file_list": "calibration.txt"}
        atomic_write_text(out_dir / "calibration.json", json.dumps(meta, indent=2) + "\n")


def files_sha256(paths: list[str]) -> str:
    """Hash of the ordered file list and each file's bytes: same hash, same calibration data."""
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).name.encode() + b"\t" + hashlib.sha256(Path(p).read_bytes()).digest() + b"\n")
    return h.hexdigest()


def by_label(sample: Sample):
    return sample.label if sample.label is not None else 0


def stratified_sample(samples: list[Sample], size: int, seed: int, stratum=by_label) -> list[Sample]:
    """Round-robin over strata (the task's: classes for classification), each shuffled by seed, so
    every stratum is represented."""
    by_class: dict = defaultdict(list)
    for s in sorted(samples, key=lambda s: s.path):
        by_class[stratum(s)].append(s)
    rng = random.Random(seed)
    for lst in by_class.values():
        rng.shuffle(lst)
    picked: list[Sample] = []
    try:
        order = sorted(by_class)
    except TypeError:  # strata of mixed types: any fixed order will do
        order = sorted(by_class, key=repr)
    queues = [by_class[k] for k in order]
    i = 0
    while len(picked) < min(size, len(samples)):
        q = queues[i % len(queues)]
        if q:
            picked.append(q.pop())
        i += 1
    return picked


def select_calibration(index: DataIndex, cfg, resolve, stratum=by_label) -> CalibrationSet:
    if cfg.list is not None:
        list_path = resolve(cfg.list)
        if not list_path.is_file():
            raise ConfigError(f"calibration.list: {list_path} not found")
        train_by_path = {str(Path(s.path).resolve()): s for s in index.train}
        val_paths = {str(Path(s.path).resolve()) for s in index.val}
        samples = []
        for line in list_path.read_text().splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            p = str((list_path.parent / line.strip()).resolve())
            if p in val_paths:
                raise ConfigError(f"calibration.list {list_path}: {line.strip()} is in the validation split; "
                                  "calibrate on training images only")
            if p not in train_by_path:
                raise ConfigError(f"calibration.list {list_path}: {line.strip()} is not a training image")
            samples.append(train_by_path[p])
        source = str(list_path)
    else:
        samples = stratified_sample(index.train, cfg.size, cfg.seed, stratum)
        source = "train split (stratified)"
    return CalibrationSet(samples, cfg.seed, source, files_sha256([s.path for s in samples]))


def stacked_batches(batches, size: int):
    """Regroup the calibration's 1xHxWx3 uint8 batches into float32 batches of `size` images (the
    last may be smaller): ranges, histograms and sums over images do not depend on the grouping."""
    buf = []
    for b in batches:
        buf.append(np.asarray(b, np.float32))
        if sum(len(x) for x in buf) >= size:
            yield np.concatenate(buf)
            buf = []
    if buf:
        yield np.concatenate(buf)
