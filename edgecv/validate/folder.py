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
    from edgecv.errors import InputError

    try:
        return [line.strip() for line in Path(path).read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"labels file {path}: cannot be read ({e})") from None


def default_labels(artifact: Path) -> Optional[Path]:
    for folder in (artifact.parent, artifact.parent.parent):
        if (folder / "labels.txt").is_file():
            return folder / "labels.txt"
    return None


IMAGENET_WITH_BACKGROUND = 1001  # TF-slim's ImageNet labels: line 0 is "background", the model has 1000 outputs


def label_offset(n_labels: int, n_outputs: int, given: Optional[int], warn=None) -> int:
    """Output index i is label line i + offset. Never guessed: 0 unless `given` (--label-offset), or 1
    for the known 1001-line ImageNet labels file with a 1000-output model. A labels file whose length
    does not fit the model is an error (with --label-offset, a warning: the user chose)."""
    if given is not None:
        if given < 0 or n_labels - given != n_outputs:
            (warn or (lambda m: None))(f"with --label-offset {given}, {n_labels} label lines name outputs "
                                       f"{-given}..{n_labels - given - 1}; the model has {n_outputs} outputs")
        return given
    if n_labels == n_outputs:
        return 0
    if n_labels == IMAGENET_WITH_BACKGROUND and n_outputs == IMAGENET_WITH_BACKGROUND - 1:
        (warn or (lambda m: None))("labels file has 1001 lines for 1000 outputs (ImageNet with a 'background' "
                                   "line 0): label offset 1")
        return 1
    raise DataError(f"the labels file has {n_labels} lines but the model has {n_outputs} outputs: give the labels "
                    f"of this model (--labels FILE), or --label-offset N if output i is line i+N")


@dataclass
class FolderEval:
    mode: str  # "labeled" or "predictions"
    images: list[str]
    predictions: list[list[tuple[str, float]]]  # top-k (label, score) per image
    accuracy: Optional[float] = None
    top5_accuracy: Optional[float] = None
    skipped: list[tuple[str, str]] = None
    offset: int = 0
    truths: list = None  # each image's class folder (its true label); None per image without one
    correct: list = None  # per image: top-1 is its class (what accuracy counts); None without class folders


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
                    offset: Optional[int] = None, top_k: int = 5, batch: int = 16, warn=None) -> FolderEval:
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
    off = label_offset(len(names), n_out, offset, warn)

    def name_of(i: int) -> str:
        j = i + off
        return names[j] if 0 <= j < len(names) else str(i)

    preds = [[(name_of(int(i)), float(s)) for i, s in zip(top[r], top_scores[r])] for r in range(len(top))]
    result = FolderEval(mode, [str(p) for p, _ in good], preds, skipped=skipped, offset=off,
                        truths=[cls for _, cls in good])
    if mode == "labeled":
        lookup = {_norm(name_of(i)): i for i in range(n_out)}
        missing = sorted({cls for _, cls in good if _norm(cls) not in lookup})
        if missing:
            raise DataError(f"class folder(s) {', '.join(missing)} match no line of the labels file; "
                            "name class folders after the labels (or pass --labels)")
        y = np.array([lookup[_norm(cls)] for _, cls in good])
        m = task.evaluate(outputs, y, {})
        result.accuracy, result.top5_accuracy = m["accuracy"], m["top5_accuracy"]
        result.correct = [bool(v) for v in task.sample_scores(outputs, y, {})["accuracy"]]
    return result
