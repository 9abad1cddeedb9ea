"""Evaluate a keypoint artifact on a folder of images and an annotation file (CSV or COCO), on any
machine: numpy, Pillow and the artifact's runtime, no TensorFlow for TFLite or ONNX.

The scheme (names, NME normalizer, resize policy) comes from `keypoints.json`, which the build
writes beside every keypoint artifact; without it NME is normalized by the labelled points' box.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from edgecv.data.images import load_image
from edgecv.errors import DataError

SIDECAR = "keypoints.json"


def keypoint_sidecar(artifact: Path) -> Optional[dict]:
    """The build's keypoints.json beside the artifact (or one folder up, for SavedModel versions)."""
    artifact = Path(artifact)
    for folder in (artifact.parent, artifact.parent.parent, artifact.parent.parent.parent):
        if (folder / SIDECAR).is_file():
            return json.loads((folder / SIDECAR).read_text())
    return None


@dataclass
class KeypointEval:
    images: list[str]
    points: list  # [N, K, 2] in [0, 1] of the input
    metrics: dict
    skipped: list[tuple[str, str]] = field(default_factory=list)
    normalized_by: str = ""


def evaluate_keypoints(runtime, folder: Path, annotations: Path, info: Optional[dict], resize_policy: Optional[str],
                       batch: int = 16) -> KeypointEval:
    from edgecv.data.keypoints import input_targets, read_annotations
    from edgecv.tasks import get_task
    from edgecv.validate.measure import predict_all

    rows = read_annotations(Path(folder), Path(annotations))
    if not rows.samples:
        raise DataError(f"{annotations}: no usable row for the images in {folder} ({len(rows.skipped)} skipped; "
                        + "; ".join(s.reason for s in rows.skipped[:3]) + ")")
    task = get_task("keypoints")
    k = len(rows.samples[0].target["xy"])
    info = dict(info or task.scheme_info(k, rows.names))
    if info.get("num_keypoints", k) != k:
        raise DataError(f"{annotations} has {k} points per image; the artifact predicts {info['num_keypoints']}")
    size = runtime.input_size
    policy = resize_policy or info.get("resize") or "resize"
    info.update(input_size=list(size), resize=policy)
    pixels = np.stack([load_image(s.path, size, policy) for s in rows.samples])
    outputs = task.select_outputs(predict_all(runtime, pixels, batch), info)
    targets = input_targets(rows.samples, size, policy)
    metrics = task.evaluate(outputs, targets, info)
    for key in ("preview_points", "preview_targets"):
        metrics.pop(key, None)
    norm = info.get("normalize_by")
    return KeypointEval([s.path for s in rows.samples], np.asarray(outputs["keypoints"]).tolist(), metrics,
                        [(s.path, s.reason) for s in rows.skipped],
                        f"points {norm[0]} and {norm[1]}" if norm else "the labelled points' box diagonal")


def keypoint_inputs(runtime, folder: Path, annotations: Optional[Path], info: Optional[dict], policy: str,
                    found: dict, count: int = 32) -> np.ndarray:
    """`edgecv bench` on a keypoint artifact: NME with annotations (kept in found["keypoints"]), and
    the first images of the folder as latency inputs."""
    from edgecv.data.images import load_batch
    from edgecv.validate.folder import list_images

    if annotations is not None:
        ev = evaluate_keypoints(runtime, folder, annotations, info, policy)
        found["keypoints"] = ev
        paths = ev.images
    else:
        _, items = list_images(Path(folder))
        paths = [p for p, _ in items]
    return load_batch(paths[:count], runtime.input_size, policy)
