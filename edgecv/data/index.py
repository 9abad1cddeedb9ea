"""Scan image folders into a dataset index: files, labels, a stratified split, skipped files."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from edgecv.data.images import IMAGE_EXTENSIONS, ImageDecodeError, load_rgb
from edgecv.errors import DataError


@dataclass(frozen=True)
class Sample:
    path: str
    label: Optional[int] = None  # class index (classification, embeddings); the calibration stratum
    target: Optional[Any] = None  # anything else a task reads with the image (keypoints, boxes), JSON-able


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class DataIndex:
    """Samples per split, files skipped, and the task facts that travel with the model (`info`:
    class names, keypoint names ...)."""

    info: dict
    train: list[Sample]
    val: list[Sample]
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return list(self.info.get("class_names", []))

    def to_json(self) -> dict:
        return {
            "info": self.info,
            "train": [asdict(s) for s in self.train],
            "val": [asdict(s) for s in self.val],
            "skipped": [asdict(s) for s in self.skipped],
        }

    @classmethod
    def from_json(cls, d: dict) -> "DataIndex":
        return cls(
            d["info"],
            [Sample(**s) for s in d["train"]],
            [Sample(**s) for s in d["val"]],
            [Skipped(**s) for s in d["skipped"]],
        )


def _class_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist: fix `data` in the recipe")
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise DataError(f"data folder {root} has no class sub-folders: put each class's images in root/<class>/")
    return dirs


def _image_files(d: Path) -> list[Path]:
    return sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _check_readable(paths: list[Path], workers: int = 4) -> tuple[list[Path], list[Skipped]]:
    """Decode each file once so a corrupt image is found before training, not in epoch 3."""

    def check(p: Path) -> Optional[str]:
        try:
            load_rgb(p)
            return None
        except ImageDecodeError as e:
            return str(e)

    ok, skipped = [], []
    with ThreadPoolExecutor(workers) as pool:
        for p, reason in zip(paths, pool.map(check, paths)):
            if reason is None:
                ok.append(p)
            else:
                skipped.append(Skipped(str(p), reason))
    return ok, skipped


def scan_folder(root: Path, classes: Optional[list[str]] = None) -> tuple[list[str], dict[str, list[Path]], list[Skipped]]:
    """Class names and readable files per class under root/<class>/."""
    dirs = _class_dirs(root)
    names = [d.name for d in dirs]
    if classes is not None and names != classes:
        raise DataError(
            f"classes in {root} ({', '.join(names)}) differ from the training classes ({', '.join(classes)})"
        )
    files, skipped = {}, []
    for d in dirs:
        ok, bad = _check_readable(_image_files(d))
        skipped += bad
        if not ok:
            raise DataError(
                f"class `{d.name}` has no readable images in {d}"
                + (f" ({len(bad)} unreadable)" if bad else "")
                + ": add images or remove the folder"
            )
        files[d.name] = ok
    return names, files, skipped


def stratified_split(files: dict[str, list[Path]], val_fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    rng = random.Random(seed)
    train, val = [], []
    for label, name in enumerate(sorted(files)):
        paths = sorted(files[name])
        rng.shuffle(paths)
        n_val = max(1, round(len(paths) * val_fraction)) if len(paths) >= 2 else 0
        val += [Sample(str(p), label) for p in paths[:n_val]]
        train += [Sample(str(p), label) for p in paths[n_val:]]
    return train, val


def build_index(data_cfg, resolve) -> DataIndex:
    """Index a class-folder data section; `resolve` maps recipe-relative paths to absolute ones."""
    if data_cfg.root is not None:
        classes, files, skipped = scan_folder(resolve(data_cfg.root))
        train, val = stratified_split(files, data_cfg.val_fraction, data_cfg.seed)
    else:
        classes, tfiles, skipped = scan_folder(resolve(data_cfg.train))
        _, vfiles, vskipped = scan_folder(resolve(data_cfg.val), classes)
        skipped += vskipped
        train = [Sample(str(p), i) for i, c in enumerate(classes) for p in tfiles[c]]
        val = [Sample(str(p), i) for i, c in enumerate(classes) for p in vfiles[c]]
    if len(classes) < 2:
        raise DataError(f"found {len(classes)} class: classification needs at least 2 class folders")
    return DataIndex({"class_names": classes}, train, val, skipped)
