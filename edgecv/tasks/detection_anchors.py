"""Anchors of the detection head, their box encoding and the training target assignment (numpy only:
a device regenerates the anchors from the parameters in preprocessing.json and decodes without
TensorFlow).

Anchors are (yc, xc, h, w) in [0, 1] of the model input, in the order the head's outputs are
flattened: level by level (finest first), then row, column, and the anchors of one location.
Each level of stride s has ceil(H / s) x ceil(W / s) locations centred at ((i + 0.5) / rows,
(j + 0.5) / cols); an anchor of scale k and aspect ratio a there is a box of side
`anchor_scale * s * k` (in pixels of the input) with h / w = 1 / a (a = w / h, as the TF Object
Detection API). One scale and aspect ratio 1 is the anchor-free layout: one box per location,
centred on it.

Encoding is the TF Object Detection API's center-size coder (the detection contract):
ty = (yc - ya) / ha * y_scale, tx likewise, th = log(h / ha) * h_scale, tw likewise.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

DEFAULT_SCALES = (10.0, 10.0, 5.0, 5.0)  # y, x, h, w: what TFLite's detection post-process takes


def anchor_params(input_size: Sequence[int], strides: Sequence[int], anchor_scale: float,
                  scales_per_octave: int, aspect_ratios: Sequence[float]) -> dict:
    """The JSON-able description the anchors are regenerated from (info["detection"]["anchors"])."""
    return {"input_size": [int(v) for v in input_size], "strides": [int(s) for s in strides],
            "anchor_scale": float(anchor_scale), "scales_per_octave": int(scales_per_octave),
            "aspect_ratios": [float(a) for a in aspect_ratios]}


def grid_shape(input_size: Sequence[int], stride: int) -> tuple[int, int]:
    """Rows and columns of a level: what a stack of 'same'-padded stride-2 layers gives."""
    return math.ceil(input_size[0] / stride), math.ceil(input_size[1] / stride)


def anchors_per_location(params: dict) -> int:
    return int(params["scales_per_octave"]) * len(params["aspect_ratios"])


def explicit_anchor_params(anchors: np.ndarray, source: str) -> dict:
    """info["detection"]["anchors"] for a brought detector's own anchors: the [L, 4] (yc, xc, h, w)
    array itself (float32 values, exact in JSON) and where it came from."""
    a = np.asarray(anchors, np.float32)
    return {"boxes": a.astype(np.float64).tolist(), "count": int(len(a)), "source": source}


def anchor_boxes(params: dict) -> np.ndarray:
    """[L, 4] float32 (yc, xc, h, w): the stored array of a brought detector (`boxes`), else the
    anchors regenerated from their parameters. What every decode (numpy, each format's NMS) uses."""
    if "boxes" in params:
        return np.asarray(params["boxes"], np.float32).reshape(-1, 4)
    return generate_anchors(params)


def read_anchor_file(path) -> np.ndarray:
    """A .npy file of [L, 4] (yc, xc, h, w) in [0, 1] of the input (TFLite_Detection_PostProcess's
    anchor layout), checked: finite, positive sizes. ValueError says what is wrong."""
    path = Path(path)
    if path.suffix.lower() != ".npy":
        raise ValueError(f"anchors {path}: give a .npy file of [L, 4] (yc, xc, h, w) in [0, 1] of the input "
                         "(numpy.save('anchors.npy', anchors))")
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"anchors {path}: cannot be read as a .npy array ({e})") from None
    if a.ndim != 2 or a.shape[1] != 4 or len(a) == 0:
        raise ValueError(f"anchors {path}: shape {list(a.shape)}, expected [L, 4] (yc, xc, h, w)")
    if not np.issubdtype(a.dtype, np.number) or not np.all(np.isfinite(a)):
        raise ValueError(f"anchors {path}: values must be finite numbers")
    if np.any(a[:, 2:] <= 0):
        raise ValueError(f"anchors {path}: {int(np.sum(np.any(a[:, 2:] <= 0, axis=1)))} anchor(s) with a height or "
                         "width <= 0; the columns are (yc, xc, h, w)")
    if np.max(np.abs(a)) > 4:
        raise ValueError(f"anchors {path}: values up to {float(np.max(np.abs(a))):g}; give them normalised to [0, 1] "
                         "of the input, not in pixels")
    return a.astype(np.float32)


def generate_anchors(params: dict) -> np.ndarray:
    """[L, 4] float32 (yc, xc, h, w) in [0, 1] of the input, in the head's output order."""
    h_in, w_in = params["input_size"]
    octave = [2.0 ** (i / params["scales_per_octave"]) for i in range(params["scales_per_octave"])]
    out = []
    for stride in params["strides"]:
        rows, cols = grid_shape((h_in, w_in), stride)
        shapes = []  # (h, w) in [0, 1] of the input, one per anchor of a location
        for k in octave:
            side = params["anchor_scale"] * stride * k
            for a in params["aspect_ratios"]:
                shapes.append((side / math.sqrt(a) / h_in, side * math.sqrt(a) / w_in))
        yc, xc = np.meshgrid((np.arange(rows) + 0.5) / rows, (np.arange(cols) + 0.5) / cols, indexing="ij")
        centres = np.stack([yc.ravel(), xc.ravel()], axis=1)  # [rows * cols, 2]
        sizes = np.asarray(shapes)  # [A, 2]
        level = np.concatenate([np.repeat(centres, len(sizes), axis=0), np.tile(sizes, (len(centres), 1))], axis=1)
        out.append(level)
    return np.concatenate(out, axis=0).astype(np.float32)


def corners(anchors: np.ndarray) -> np.ndarray:
    """(yc, xc, h, w) -> (ymin, xmin, ymax, xmax)."""
    a = np.asarray(anchors, np.float64)
    return np.stack([a[..., 0] - a[..., 2] / 2, a[..., 1] - a[..., 3] / 2,
                     a[..., 0] + a[..., 2] / 2, a[..., 1] + a[..., 3] / 2], axis=-1)


def encode(boxes: np.ndarray, anchors: np.ndarray, scales: Sequence[float] = DEFAULT_SCALES) -> np.ndarray:
    """Boxes (ymin, xmin, ymax, xmax) [..., 4] against anchors [..., 4] -> (ty, tx, th, tw)."""
    b = np.asarray(boxes, np.float64)
    a = np.asarray(anchors, np.float64)
    h = np.maximum(b[..., 2] - b[..., 0], 1e-8)
    w = np.maximum(b[..., 3] - b[..., 1], 1e-8)
    yc, xc = b[..., 0] + h / 2, b[..., 1] + w / 2
    sy, sx, sh, sw = scales
    return np.stack([(yc - a[..., 0]) / a[..., 2] * sy, (xc - a[..., 1]) / a[..., 3] * sx,
                     np.log(h / a[..., 2]) * sh, np.log(w / a[..., 3]) * sw], axis=-1).astype(np.float32)


def decode(encodings: np.ndarray, anchors: np.ndarray, scales: Sequence[float] = DEFAULT_SCALES) -> np.ndarray:
    """The contract's decode: (ty, tx, th, tw) [..., L, 4] -> (ymin, xmin, ymax, xmax) [..., L, 4]."""
    t = np.asarray(encodings, np.float64)
    a = np.asarray(anchors, np.float64)
    sy, sx, sh, sw = scales
    yc = t[..., 0] / sy * a[..., 2] + a[..., 0]
    xc = t[..., 1] / sx * a[..., 3] + a[..., 1]
    h = np.exp(np.minimum(t[..., 2] / sh, 10.0)) * a[..., 2]  # exp capped: a wild int8 value stays finite
    w = np.exp(np.minimum(t[..., 3] / sw, 10.0)) * a[..., 3]
    return np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=-1)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, M] IoU of corner boxes a [N, 4] and b [M, 4] (any consistent corner order)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=-1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def assign_targets(boxes: np.ndarray, classes: np.ndarray, anchors: np.ndarray, num_classes: int,
                   positive_iou: float = 0.5, negative_iou: float = 0.4,
                   scales: Sequence[float] = DEFAULT_SCALES, ignore: Optional[np.ndarray] = None) -> tuple:
    """One image's training targets.

    `boxes` [M, 4] (ymin, xmin, ymax, xmax) in [0, 1] of the input, `classes` [M]. An anchor is
    positive for the box it overlaps most when that IoU >= positive_iou, and every box also takes
    its best anchor (so a box no anchor fits well is still learnt); an anchor below negative_iou
    with every box is background; in between it is ignored (no classification loss). Anchors
    matched to an `ignore` box (VOC difficult) are ignored.

    Returns (classification [L, C + 1] float32: one-hot classes then the state 1 positive, 0
    negative, -1 ignored; regression [L, 5] float32: encoded box then 1 where positive)."""
    L = len(anchors)
    cls_t = np.zeros((L, num_classes + 1), np.float32)
    box_t = np.zeros((L, 5), np.float32)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return cls_t, box_t
    iou = iou_matrix(corners(anchors), boxes)  # [L, M]
    best_box = iou.argmax(axis=1)
    best_iou = iou[np.arange(L), best_box]
    state = np.where(best_iou >= positive_iou, 1.0, np.where(best_iou < negative_iou, 0.0, -1.0))
    forced = iou.argmax(axis=0)  # each box's best anchor
    keep = iou[forced, np.arange(len(boxes))] > 0
    best_box[forced[keep]] = np.arange(len(boxes))[keep]
    state[forced[keep]] = 1.0
    if ignore is not None and np.any(ignore):
        state[(state == 1.0) & np.asarray(ignore, bool)[best_box]] = -1.0
    pos = state == 1.0
    cls_t[pos, np.asarray(classes, np.int64)[best_box[pos]]] = 1.0
    cls_t[:, -1] = state
    box_t[pos, :4] = encode(boxes[best_box[pos]], anchors[pos], scales)
    box_t[pos, 4] = 1.0
    return cls_t, box_t
