"""Detection on any machine: a folder of images and its annotations (VOC folder, COCO JSON, YOLO
folder) give mAP, AP@0.5 and precision/recall for an artifact; numpy, Pillow and the artifact's
runtime, no TensorFlow for TFLite or ONNX.

An edgecv artifact's facts (class names, resize policy, anchors and NMS for raw outputs) come from
the `detection.json` the build writes beside it. A third party's detector with the four outputs of
TFLite's detection post-process needs none: the class names come from the annotations (in their
order: VOC's sorted names, COCO's categories, YOLO's names file) and `--label-offset 1` shifts
class ids for a label map that keeps 0 for the background.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from edgecv.data.detection import read_detection
from edgecv.errors import DataError
from edgecv.tasks.base import DeviceSet
from edgecv.tasks.classification_folder import list_images

SIDECAR = "detection.json"


def detection_sidecar(folder: Optional[Path]) -> Optional[dict]:
    if folder is not None and (Path(folder) / SIDECAR).is_file():
        return json.loads((Path(folder) / SIDECAR).read_text())
    return None


def looks_like_detection(annotations) -> bool:
    """A folder of VOC .xml or YOLO .txt files, or a COCO JSON whose annotations have boxes and no keypoints."""
    p = Path(annotations)
    if p.is_dir():
        return any(f.suffix.lower() in (".xml", ".txt") for f in p.iterdir())
    if p.is_file() and p.suffix.lower() == ".json":
        try:
            anns = json.loads(p.read_text()).get("annotations") or []
        except (OSError, ValueError, AttributeError):
            return False
        return bool(anns) and isinstance(anns[0], dict) and "bbox" in anns[0] and "keypoints" not in anns[0]
    return False


def read_detection_set(task, folder: Path, annotations: Optional[Path], info: dict, options: dict) -> DeviceSet:
    """The annotated images (labels: each one's ImageBoxes), or without annotations the folder's
    images unlabelled (latency inputs for `bench`)."""

    policy = options.get("resize") or info.get("resize") or "resize"
    info = dict(info)
    if annotations is None:
        _, items = list_images(Path(folder))
        return DeviceSet([str(p) for p, _ in items], None, info, policy)
    found = read_detection(Path(folder), Path(annotations), info.get("class_names"))
    if not found.images:
        raise DataError(f"{annotations}: no usable annotated image in {folder}")
    info.setdefault("class_names", found.class_names)
    info["resize"] = policy
    if options.get("label_offset"):
        info["class_offset"] = int(options["label_offset"])
    images = sorted(found.images, key=lambda im: im.path)  # the build's order (ties in score: see read_data)
    return DeviceSet([im.path for im in images], images, info, policy,
                     [(s.path, s.reason) for s in found.skipped])


def detection_report(task, evaluation: DeviceSet, result, outputs: dict) -> dict:
    """`edgecv validate --json` for detection: per image its detections (photo pixels), the metrics."""
    from edgecv.tasks.detection import DETECTION_OUTPUTS, RAW_OUTPUTS, image_detections  # lazy: it imports this module

    named = task.select_outputs(outputs, evaluation.info) if outputs else {}
    images = []
    if named and (all(n in named for n in DETECTION_OUTPUTS) or all(n in named for n in RAW_OUTPUTS)):
        frames = [(im.width, im.height) for im in evaluation.labels] if evaluation.labels is not None else None
        if frames is not None:
            dets = image_detections(named, evaluation.info, frames)
            images = [{"path": p, "boxes": np.round(d.boxes, 2).tolist(), "scores": np.round(d.scores, 4).tolist(),
                       "classes": d.classes.tolist()} for p, d in zip(evaluation.paths, dets)]
    metrics = {k: v for k, v in result.metrics.items() if k not in ("preview_detections", "pr_curve50",
                                                                       "recall_points")}
    return {"images": evaluation.paths, "detections": images, "metrics": metrics, "skipped": evaluation.skipped,
            "class_names": evaluation.info.get("class_names")}


def print_detection_report(report: dict, artifact: Path, data: Path, out) -> None:
    from rich.table import Table

    m = report["metrics"]
    if not m:
        out.print(f"{artifact.name} on {len(report['images'])} images from {data}: no mAP without --annotations")
        return
    t = Table(title=f"{artifact.name} on {data} ({m.get('count')} images, {m.get('num_ground_truth')} boxes)")
    for col in ("mAP@[.5:.95]", "AP@0.5", "AP@0.75", "precision", "recall", "F1", "at score"):
        t.add_column(col)

    def f(v, fmt=".4f"):
        return "-" if v is None else format(v, fmt)

    t.add_row(f(m.get("map")), f(m.get("ap50")), f(m.get("ap75")), f(m.get("precision"), ".3f"),
              f(m.get("recall"), ".3f"), f(m.get("f1"), ".3f"), f(m.get("score_threshold"), ".2f"))
    out.print(t)
    if report["skipped"]:
        out.print(f"skipped {len(report['skipped'])}; first: {report['skipped'][0][0]}: {report['skipped'][0][1]}")
