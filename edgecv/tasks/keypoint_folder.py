"""Keypoints on any machine: a folder of images and an annotation file (CSV or COCO) give NME,
failure rate and the error per keypoint; numpy, Pillow and the artifact's runtime, no TensorFlow
for TFLite or ONNX.

The scheme (names, NME normalizer, resize policy) comes from `keypoints.json`, which the build
writes beside every keypoint artifact; without it NME is normalized by the labelled points' box.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from edgecv.errors import DataError
from edgecv.tasks.base import DeviceSet
from edgecv.data.keypoints import read_annotations, input_targets
from edgecv.tasks.classification_folder import list_images

SIDECAR = "keypoints.json"


def keypoint_sidecar(folder: Optional[Path]) -> Optional[dict]:
    """The build's keypoints.json in the artifact's folder."""
    if folder is not None and (Path(folder) / SIDECAR).is_file():
        return json.loads((Path(folder) / SIDECAR).read_text())
    return None


def read_keypoint_set(task, folder: Path, annotations: Optional[Path], info: dict, options: dict) -> DeviceSet:
    """The annotated images (labels: annotation rows), or with no annotations the folder's images
    unlabelled (latency inputs for `bench`)."""
    policy = options.get("resize") or info.get("resize") or "resize"
    if annotations is None:
        _, items = list_images(Path(folder))
        return DeviceSet([str(p) for p, _ in items], None, dict(info), policy)
    rows = read_annotations(Path(folder), Path(annotations))
    if not rows.samples:
        raise DataError(f"{annotations}: no usable row for the images in {folder} ({len(rows.skipped)} skipped; "
                        + "; ".join(s.reason for s in rows.skipped[:3]) + ")")
    k = len(rows.samples[0].target["xy"])
    info = dict(info or task.scheme_info(k, rows.names))
    if info.get("num_keypoints", k) != k:
        raise DataError(f"{annotations} has {k} points per image; the artifact predicts {info['num_keypoints']}")
    info["resize"] = policy
    return DeviceSet([s.path for s in rows.samples], list(rows.samples), info, policy,
                     [(s.path, s.reason) for s in rows.skipped])


def keypoint_targets(evaluation: DeviceSet, input_size) -> Optional[np.ndarray]:
    """Points in [0, 1] of the artifact's input (after its resize policy)."""
    evaluation.info["input_size"] = list(input_size)
    if evaluation.labels is None:
        return None
    return input_targets(evaluation.labels, tuple(input_size), evaluation.resize)


def keypoint_report(evaluation: DeviceSet, result, outputs: dict) -> dict:
    """`edgecv validate --json`'s fields for keypoints: images, points per image, metrics, skipped rows
    and what NME was normalized by."""
    metrics = {k: v for k, v in result.metrics.items() if k not in ("preview_points", "preview_targets")}
    norm = evaluation.info.get("normalize_by")
    return {"images": evaluation.paths, "points": np.asarray(outputs["keypoints"]).tolist(), "metrics": metrics,
            "skipped": evaluation.skipped,
            "normalized_by": f"points {norm[0]} and {norm[1]}" if norm else "the labelled points' box diagonal"}


def print_keypoint_report(report: dict, artifact: Path, data: Path, out) -> None:
    from rich.table import Table

    m = report["metrics"]
    if not m:
        out.print(f"{artifact.name} on {len(report['images'])} images from {data}: no NME without --annotations FILE")
        return
    t = Table(title=f"{artifact.name} on {data} ({m['count']} images, NME normalized by {report['normalized_by']})")
    for col in ("NME", "failure rate", "mean error px", "worst keypoint"):
        t.add_column(col)
    per_kp = [(e, i) for i, e in enumerate(m["per_keypoint_nme"]) if e is not None]
    worst = max(per_kp) if per_kp else None
    t.add_row(f"{m['nme']:.4f}", f"{m['failure_rate']:.3f}", f"{m['mean_error_px']:.2f}",
              f"#{worst[1]} NME {worst[0]:.4f}" if worst else "-")
    out.print(t)
    if report["skipped"]:
        out.print(f"skipped {len(report['skipped'])} row(s); first: {report['skipped'][0][0]}: {report['skipped'][0][1]}")
