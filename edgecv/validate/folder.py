"""Evaluate any classifier artifact on an image folder (edgecv's own or a third party's).

A folder with one sub-folder per class gives accuracy (sub-folder names matched to the labels
file); a flat folder of images gives top-k predictions per image. No TensorFlow needed for TFLite.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from edgecv.data.images import IMAGE_EXTENSIONS, ImageDecodeError, load_image
from edgecv.errors import DataError


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", " ").replace("-", " ")


def read_labels(path: Path) -> list[str]:
    return [line.strip() for line in Path(path).read_text().splitlines()]


def default_labels(artifact: Path) -> Optional[Path]:
    for folder in (artifact.parent, artifact.parent.parent):
        if (folder / "labels.txt").is_file():
            return folder / "labels.txt"
    return None


def label_offset(n_labels: int, n_outputs: int, given: Optional[int]) -> int:
    """Output index i is label line i + offset. Auto: the labels file's extra leading lines
    (e.g. a 'background' line 0 for a 1000-class model)."""
    if given is not None:
        return given
    return max(0, n_labels - n_outputs)


@dataclass
class FolderEval:
    mode: str  # "labeled" or "predictions"
    images: list[str]
    predictions: list[list[tuple[str, float]]]  # top-k (label, score) per image
    accuracy: Optional[float] = None
    top5_accuracy: Optional[float] = None
    skipped: list[tuple[str, str]] = None
    offset: int = 0


def list_images(folder: Path) -> tuple[str, list[tuple[Path, Optional[str]]]]:
    if not folder.is_dir():
        raise DataError(f"--data {folder}: not a folder")
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if subdirs:
        items = [(f, d.name) for d in subdirs for f in sorted(d.rglob("*")) if f.suffix.lower() in IMAGE_EXTENSIONS]
        return "labeled", items
    items = [(f, None) for f in sorted(folder.iterdir()) if f.suffix.lower() in IMAGE_EXTENSIONS]
    if not items:
        raise DataError(f"--data {folder}: no images found (.jpg, .png, .bmp, ...)")
    return "predictions", items


def evaluate_folder(runtime, folder: Path, labels: Optional[list[str]], resize_policy: str = "center_crop",
                    offset: Optional[int] = None, top_k: int = 5, batch: int = 16) -> FolderEval:
    mode, items = list_images(Path(folder))
    size = runtime.input_size
    good, pixels, skipped = [], [], []
    for path, cls in items:
        try:
            pixels.append(load_image(path, size, resize_policy))
            good.append((path, cls))
        except ImageDecodeError as e:
            skipped.append((str(path), str(e)))
    if not good:
        raise DataError(f"--data {folder}: none of the {len(items)} image(s) could be read")
    from edgecv.tasks import get_task
    from edgecv.validate.measure import predict_all

    task = get_task("classification")
    arr = np.stack(pixels)
    outputs = task.select_outputs(predict_all(runtime, arr, batch), {})
    top, top_scores = task.predictions(outputs, top_k)
    n_out = task.num_outputs(outputs)
    names = labels or [str(i) for i in range(n_out)]
    off = label_offset(len(names), n_out, offset)

    def name_of(i: int) -> str:
        j = i + off
        return names[j] if 0 <= j < len(names) else str(i)

    preds = [[(name_of(int(i)), float(s)) for i, s in zip(top[r], top_scores[r])] for r in range(len(top))]
    result = FolderEval(mode, [str(p) for p, _ in good], preds, skipped=skipped, offset=off)
    if mode == "labeled":
        lookup = {_norm(name_of(i)): i for i in range(n_out)}
        missing = sorted({cls for _, cls in good if _norm(cls) not in lookup})
        if missing:
            raise DataError(f"class folder(s) {', '.join(missing)} match no line of the labels file; "
                            "name class folders after the labels (or pass --labels)")
        y = np.array([lookup[_norm(cls)] for _, cls in good])
        m = task.evaluate(outputs, y, {})
        result.accuracy, result.top5_accuracy = m["accuracy"], m["top5_accuracy"]
    return result
