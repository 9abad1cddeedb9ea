"""Classification on any machine: a folder with one sub-folder per class gives accuracy (sub-folder
names matched to the labels file); a flat folder of images gives top-k predictions per image.
Works for edgecv's artifacts and a third party's; no TensorFlow needed for TFLite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from edgecv.data.images import IMAGE_EXTENSIONS
from edgecv.errors import DataError
from edgecv.tasks.base import DeviceSet
from edgecv.errors import InputError


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", " ").replace("-", " ")


def read_labels(path: Path) -> list[str]:
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


def read_class_folder(folder: Path, options: dict) -> DeviceSet:
    """Class sub-folders (labels: their names) or a flat folder (unlabelled); the labels file is
    --labels or labels.txt beside the artifact."""
    mode, items = list_images(Path(folder))
    artifact = options.get("artifact")
    labels_file = options.get("labels") or (default_labels(Path(artifact)) if artifact else None)
    names = read_labels(labels_file) if labels_file else None
    return DeviceSet([str(p) for p, _ in items], [c for _, c in items] if mode == "labeled" else None,
                     resize=options.get("resize") or "center_crop",
                     state={"mode": mode, "names": names, "offset": options.get("label_offset"),
                            "warn": options.get("warn")})


def class_targets(task, evaluation: DeviceSet, outputs: dict) -> Optional[np.ndarray]:
    """Output indices of the class folders' names, once the model's output count is known (which
    also fixes the label offset)."""
    st = evaluation.state
    n_out = task.num_outputs(task.select_outputs(outputs, {}))
    names = st["names"] or [str(i) for i in range(n_out)]
    off = st["offset"] = label_offset(len(names), n_out, st["offset"], st["warn"])
    st["names"] = names
    if evaluation.labels is None:
        return None
    lookup = {_norm(name_of(names, off, i)): i for i in range(n_out)}
    missing = sorted({c for c in evaluation.labels if _norm(c) not in lookup})
    if missing:
        raise DataError(f"class folder(s) {', '.join(missing)} match no line of the labels file; "
                        "name class folders after the labels (or pass --labels)")
    return np.array([lookup[_norm(c)] for c in evaluation.labels])


def name_of(names: list[str], offset: int, i: int) -> str:
    j = i + offset
    return names[j] if 0 <= j < len(names) else str(i)


def class_report(task, evaluation: DeviceSet, result, outputs: dict, top_k: int) -> dict:
    """`edgecv validate --json`'s fields for a classifier: mode, images, top-k predictions per image,
    accuracy, top-5 accuracy, skipped, label offset, each image's class folder (truths) and whether
    its top-1 is that class (correct: what accuracy counts)."""
    st = evaluation.state
    top, scores = task.predictions(task.select_outputs(outputs, {}), top_k)
    preds = [[(name_of(st["names"], st["offset"], int(i)), float(s)) for i, s in zip(top[r], scores[r])]
             for r in range(len(top))]
    labelled = evaluation.labels is not None
    scores = result.sample_scores.get("accuracy") if labelled else None
    return {"mode": st["mode"], "images": evaluation.paths, "predictions": preds,
            "accuracy": result.metrics.get("accuracy"), "top5_accuracy": result.metrics.get("top5_accuracy"),
            "skipped": evaluation.skipped, "offset": st["offset"],
            "truths": list(evaluation.labels) if labelled else [None] * len(evaluation.paths),
            "correct": [bool(v) for v in scores] if scores is not None else None}


def print_per_image(report: dict, artifact: Path, data: Path, out, top_k) -> None:
    """Every image with its true label (its class folder), the top-1 prediction and ✓/✗, then the top-k."""
    from rich import box
    from rich.table import Table

    labelled = report["correct"] is not None
    t = Table(title=f"{artifact.name} on {data} (label offset {report['offset']})", box=box.SIMPLE_HEAD,
              pad_edge=False, title_justify="left")
    t.add_column("image", overflow="fold")
    if labelled:
        for col in ("true label", "prediction", ""):
            t.add_column(col, overflow="fold")
    t.add_column(f"top-{top_k} (score)", overflow="fold")
    for i, (img, preds) in enumerate(zip(report["images"], report["predictions"])):
        row = [f"{Path(img).parent.name}/{Path(img).name}" if labelled else Path(img).name]
        if labelled:
            ok = report["correct"][i]
            row += [report["truths"][i], preds[0][0] if preds else "-", "[green]✓ right[/]" if ok else "[red]✗ wrong[/]"]
        t.add_row(*row, ", ".join(f"{n} {s:.2f}" for n, s in preds))
    out.print(t)
