"""Segmentation on any machine: a folder with `images/` and `labels/` (paired by stem) gives mIoU,
pixel accuracy, Dice and per-class IoU for any segmentation TFLite/ONNX artifact whose output is
per-class scores [N, h, w, C] or a class map [N, H, W]; numpy, Pillow and the artifact's runtime.

Class names: `--labels FILE`, else classes.txt in the folder or the one above it, else the build's
segmentation.json beside the artifact. When both the folder's class file and the sidecar name
classes they must agree: the label values are read as the model's class indices.
A folder without labels/ is read unlabelled (its images, for `bench` latency).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from edgecv.data.segmentation import SegmentationClasses, read_classes, read_segmentation
from edgecv.errors import DataError
from edgecv.tasks.base import DeviceSet
from edgecv.tasks.classification_folder import list_images

SIDECAR = "segmentation.json"


def segmentation_sidecar(folder: Optional[Path]) -> Optional[dict]:
    if folder is not None and (Path(folder) / SIDECAR).is_file():
        return json.loads((Path(folder) / SIDECAR).read_text())
    return None


def _class_file(data: Path, options: dict) -> Optional[Path]:
    if options.get("labels"):
        return Path(options["labels"])
    for candidate in (data / "classes.txt", data.parent / "classes.txt"):
        if candidate.is_file():
            return candidate
    return None


def read_segmentation_set(task, data: Path, info: dict, options: dict) -> DeviceSet:

    info = dict(info or {})
    if options.get("resize") not in (None, "resize"):
        raise DataError(f"--resize {options['resize']}: segmentation maps the scores back to the photo by a plain "
                        "resize; leave --resize out (or give resize)")
    if not (data / "labels").is_dir():
        folder = data / "images" if (data / "images").is_dir() else data
        _, items = list_images(folder)
        return DeviceSet([str(p) for p, _ in items], None, info, "resize")
    class_file = _class_file(data, options)
    if class_file is not None:
        classes = read_classes(class_file)
        built = info.get("class_names")
        if built and list(built) != list(classes.names):
            raise DataError(f"{class_file} names the classes {classes.names[:4]}... but the artifact was built for "
                            f"{list(built)[:4]}...: label values would be read as the wrong classes. Give the build's "
                            "class file (--labels) or remove the folder's")
    elif info.get("class_names"):
        classes = SegmentationClasses(list(info["class_names"]))
    else:
        raise DataError(f"--data {data}: no class file (classes.txt in {data} or {data.parent}, or --labels FILE) and "
                        "no segmentation.json beside the artifact names the classes")
    ignore = int(info.get("ignore_index", 255))
    found = read_segmentation(data / "images", data / "labels", classes, ignore)
    info.update(class_names=list(found.class_names), num_classes=len(found.class_names), ignore_index=ignore,
                resize="resize")
    labels = [found.load_label(s) for s in found.samples]
    return DeviceSet([s.path for s in found.samples], labels, info, "resize",
                     [(s.path, s.reason) for s in found.skipped])
