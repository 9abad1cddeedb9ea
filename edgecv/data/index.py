"""Scan image folders into a dataset index: files, labels, a stratified split, skipped files."""

from __future__ import annotations

import os
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from edgecv.data.images import IMAGE_EXTENSIONS, ImageDecodeError, load_rgb
from edgecv.errors import DataError
from edgecv.files import name_problem, unusable_name, walk_files
from edgecv.data.groups import group_of, split_by_group


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


def check_class_name(folder: Path) -> None:
    """A class name becomes a line of labels.txt and a report key: one printable UTF-8 line."""
    why = name_problem(folder.name)
    if why:
        raise DataError(f"class folder {os.fsencode(folder)!r}: folder {why}")


def _check_class_link(root: Path, d: Path) -> None:
    """A class folder that links to the data folder or above it would hold every image (or loop)."""
    if d.is_symlink():
        target, data = d.resolve(), root.resolve()
        if target == data or target in data.parents:
            raise DataError(f"class folder {d} is a symbolic link to {target}, which contains the data folder "
                            "itself: remove the link")


def _class_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist: fix `data` in the recipe")
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise DataError(f"data folder {root} has no class sub-folders: put each class's images in root/<class>/")
    for d in dirs:
        check_class_name(d)
        _check_class_link(root, d)
    return dirs


def _image_files(d: Path) -> tuple[list[Path], list[Skipped]]:
    """Image files under a class folder, and the ones that cannot be used by name (listed, not fatal)."""
    files, skipped = [], []

    def unreadable_folder(e: OSError) -> None:
        skipped.append(Skipped(os.fsdecode(e.filename or d).encode("utf-8", "replace").decode(),
                               f"folder cannot be read: {e.strerror}"))

    for p in walk_files(d, unreadable_folder):
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        why = unusable_name(p)
        if why is None:
            files.append(p)
        else:  # the name itself may not be printable: report it with replacement characters
            skipped.append(Skipped(os.fsencode(p).decode("utf-8", "replace"), why))
    return files, skipped


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
        candidates, unusable = _image_files(d)
        ok, bad = _check_readable(candidates)
        bad += unusable
        skipped += bad
        if not ok:
            raise DataError(
                f"class `{d.name}` has no readable images in {d}"
                + (f" ({len(bad)} unreadable)" if bad else "")
                + ": add images or remove the folder"
            )
        files[d.name] = ok
    return names, files, skipped


def stratified_split(files: dict[str, list[Path]], val_fraction: float, seed: int, group_by: Optional[str] = None,
                     root: Optional[Path] = None) -> tuple[list[Sample], list[Sample]]:
    """Per class, val_fraction of its images (seeded) for validation; with `group_by`, whole groups of
    the whole data (edgecv.data.groups), so the split is not stratified by class."""
    if group_by is not None:
        return _grouped_stratified_split(files, val_fraction, seed, group_by, root)
    rng = random.Random(seed)
    train, val = [], []
    for label, name in enumerate(sorted(files)):
        paths = sorted(files[name])
        rng.shuffle(paths)
        n_val = max(1, round(len(paths) * val_fraction)) if len(paths) >= 2 else 0
        val += [Sample(str(p), label) for p in paths[:n_val]]
        train += [Sample(str(p), label) for p in paths[n_val:]]
    return train, val


def _grouped_stratified_split(files, val_fraction, seed, group_by, root):
    items = [(label, p) for label, name in enumerate(sorted(files)) for p in sorted(files[name])]
    train, val = split_by_group(items, lambda it: group_of(it[1], root, group_by), val_fraction, seed)
    return [Sample(str(p), label) for label, p in train], [Sample(str(p), label) for label, p in val]


def build_index(data_cfg, resolve) -> DataIndex:
    """Index a class-folder data section; `resolve` maps recipe-relative paths to absolute ones."""
    if data_cfg.root is not None:
        classes, files, skipped = scan_folder(resolve(data_cfg.root))
        train, val = stratified_split(files, data_cfg.val_fraction, data_cfg.seed, data_cfg.group_by,
                                      resolve(data_cfg.root))
    else:
        classes, tfiles, skipped = scan_folder(resolve(data_cfg.train))
        _, vfiles, vskipped = scan_folder(resolve(data_cfg.val), classes)
        skipped += vskipped
        train = [Sample(str(p), i) for i, c in enumerate(classes) for p in tfiles[c]]
        val = [Sample(str(p), i) for i, c in enumerate(classes) for p in vfiles[c]]
    if len(classes) < 2:
        raise DataError(f"found {len(classes)} class: classification needs at least 2 class folders")
    no_train = [c for i, c in enumerate(classes) if not any(s.label == i for s in train)]
    if no_train:
        raise DataError(f"class(es) {', '.join(no_train)} have 0 training images after the split "
                        f"(data.val_fraction {data_cfg.val_fraction}): add images or lower data.val_fraction")
    return DataIndex({"class_names": classes}, train, val, skipped)
