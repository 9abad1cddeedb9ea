"""Detection post-process in numpy: decode box encodings against anchors, then non-max suppression.

The reference every exported detector is compared with, and what turns the float Keras model's raw
outputs (`box_encodings [N, L, 4]`, `scores [N, L, C]`) into the four detection outputs of the
TFLite post-process contract (`detection_boxes [N, K, 4]`, `detection_classes [N, K]`,
`detection_scores [N, K]`, `num_detections [N]`). numpy only: it runs on devices.

Decoding is the TF Object Detection API's center-size coder (what TFLite_Detection_PostProcess does):
anchors are (yc, xc, h, w), encodings (ty, tx, th, tw) divided by the scales (y, x, h, w);
yc = ty / y_scale * ha + ya, xc = tx / x_scale * wa + xa, h = exp(th / h_scale) * ha,
w = exp(tw / w_scale) * wa; boxes (ymin, xmin, ymax, xmax), not clipped (the TFLite op does not clip).

Two suppressions, as TFLite_Detection_PostProcess names them; every format implements both and the
settings (`per_class`) choose:
- fast, class-agnostic (`per_class: false`, TFLite's default `use_regular_nms=false`): each box
  takes its best class and that score; one greedy NMS over all boxes; the kept boxes in order of
  decreasing score, at most `max_detections`.
- regular, per class (`per_class: true`): greedy NMS within each class (each box may survive in
  several classes), at most `max_detections` per class, then the best `max_detections` overall.

Thresholds, as the runtimes apply them: a box is a candidate when its score is >= score_threshold
(TFLite; TensorFlow, ONNX and Core ML use >, which differs only for a score exactly on the
threshold) and a kept box suppresses a later one when their IoU is > iou_threshold. IoU of boxes
with no area is 0. Ties in score keep the lower index first (a stable sort), as TFLite does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

RAW_OUTPUTS = ("box_encodings", "scores")  # the Keras model's outputs, in order
DETECTION_OUTPUTS = ("detection_boxes", "detection_classes", "detection_scores", "num_detections")
DEFAULT_SCALES = (10.0, 10.0, 5.0, 5.0)  # the TF OD API's SSD defaults (y, x, h, w)


@dataclass(frozen=True)
class NmsSettings:
    """info["detection"]["nms"]: what every format's NMS and the reference use."""

    iou_threshold: float = 0.5
    score_threshold: float = 0.05
    max_detections: int = 100
    per_class: bool = False

    @classmethod
    def from_dict(cls, d: Optional[dict]) -> "NmsSettings":
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown NMS settings {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        s = cls(**d)
        if not 0.0 <= s.iou_threshold <= 1.0 or not 0.0 <= s.score_threshold <= 1.0 or int(s.max_detections) < 1:
            raise ValueError(f"NMS settings out of range: {s} (thresholds in [0, 1], max_detections >= 1)")
        return cls(float(s.iou_threshold), float(s.score_threshold), int(s.max_detections), bool(s.per_class))

    def to_json(self) -> dict:
        return {"iou_threshold": self.iou_threshold, "score_threshold": self.score_threshold,
                "max_detections": self.max_detections, "per_class": self.per_class}

    @property
    def variant(self) -> str:
        return "regular (per-class)" if self.per_class else "fast (class-agnostic)"


@dataclass(frozen=True, eq=False)
class DetectionPostProcess:
    """What a detection task asks every exporter to append after the raw outputs
    (`Task.postprocess(info)`): the anchors [L, 4] (yc, xc, h, w, normalized), the scales
    (y, x, h, w) and the NMS settings."""

    anchors: np.ndarray
    scales: Tuple[float, float, float, float] = DEFAULT_SCALES
    nms: NmsSettings = field(default_factory=NmsSettings)
    raw_outputs: Tuple[str, str] = RAW_OUTPUTS

    def __post_init__(self):
        a = np.asarray(self.anchors, np.float32)
        if a.ndim != 2 or a.shape[1] != 4 or not len(a):
            raise ValueError(f"anchors must be [L, 4] (yc, xc, h, w), got shape {a.shape}")
        if len(self.scales) != 4 or min(self.scales) <= 0:
            raise ValueError(f"scales must be 4 positive numbers (y, x, h, w), got {self.scales}")
        object.__setattr__(self, "anchors", a)
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))

    @property
    def num_anchors(self) -> int:
        return len(self.anchors)

    def __call__(self, box_encodings: np.ndarray, scores: np.ndarray) -> Dict[str, np.ndarray]:
        return postprocess(box_encodings, scores, self.anchors, self.scales, self.nms)

    def from_raw(self, outputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """The four detection outputs from a dict holding the raw outputs by name."""
        return self(outputs[self.raw_outputs[0]], outputs[self.raw_outputs[1]])

    def describe(self) -> dict:
        return {"anchors": self.num_anchors, "scales": list(self.scales), "nms": self.nms.to_json(),
                "variant": self.nms.variant}


def decode_boxes(box_encodings: np.ndarray, anchors: np.ndarray, scales: Sequence[float]) -> np.ndarray:
    """[..., L, 4] (ty, tx, th, tw) against anchors [L, 4] (yc, xc, h, w) -> (ymin, xmin, ymax, xmax)."""
    t = np.asarray(box_encodings, np.float32)
    a = np.asarray(anchors, np.float32)
    sy, sx, sh, sw = (np.float32(s) for s in scales)
    yc = t[..., 0] / sy * a[:, 2] + a[:, 0]
    xc = t[..., 1] / sx * a[:, 3] + a[:, 1]
    h = np.exp(t[..., 2] / sh) * a[:, 2]
    w = np.exp(t[..., 3] / sw) * a[:, 3]
    return np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=-1)


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (ymin, xmin, ymax, xmax) box with each of boxes [M, 4]; corners in any order, as
    TFLite and TensorFlow take them; 0 where either box has no area."""
    def norm(b):
        return np.minimum(b[..., 0], b[..., 2]), np.minimum(b[..., 1], b[..., 3]), \
            np.maximum(b[..., 0], b[..., 2]), np.maximum(b[..., 1], b[..., 3])

    y1, x1, y2, x2 = norm(box)
    Y1, X1, Y2, X2 = norm(boxes)
    area = (y2 - y1) * (x2 - x1)
    areas = (Y2 - Y1) * (X2 - X1)
    inter = np.clip(np.minimum(y2, Y2) - np.maximum(y1, Y1), 0, None) * \
        np.clip(np.minimum(x2, X2) - np.maximum(x1, X1), 0, None)
    union = area + areas - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where((area > 0) & (areas > 0) & (union > 0), inter / union, 0.0)
    return iou


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, score_threshold: float,
               max_out: int) -> np.ndarray:
    """Indices kept by greedy NMS, in order of decreasing score."""
    candidates = np.flatnonzero(scores >= score_threshold)
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    keep = []
    while len(order) and len(keep) < max_out:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        order = rest[iou_one_to_many(boxes[i], boxes[rest]) <= iou_threshold]
    return np.asarray(keep, np.int64)


def nms_one(boxes: np.ndarray, scores: np.ndarray, settings: NmsSettings):
    """One image: boxes [L, 4], scores [L, C] -> (box indices, classes, scores) of the kept
    detections, best first."""
    if not settings.per_class:
        best = scores.max(axis=1)
        cls = scores.argmax(axis=1)
        keep = greedy_nms(boxes, best, settings.iou_threshold, settings.score_threshold, settings.max_detections)
        return keep, cls[keep], best[keep]
    idx, cls, sc = [], [], []
    for c in range(scores.shape[1]):
        keep = greedy_nms(boxes, scores[:, c], settings.iou_threshold, settings.score_threshold,
                          settings.max_detections)
        idx.append(keep)
        cls.append(np.full(len(keep), c, np.int64))
        sc.append(scores[keep, c])
    idx, cls, sc = np.concatenate(idx), np.concatenate(cls), np.concatenate(sc)
    top = np.argsort(-sc, kind="stable")[:settings.max_detections]
    return idx[top], cls[top], sc[top]


def postprocess(box_encodings: np.ndarray, scores: np.ndarray, anchors: np.ndarray,
                scales: Sequence[float] = DEFAULT_SCALES, settings: Optional[NmsSettings] = None) -> Dict[str, np.ndarray]:
    """Raw outputs of a batch -> the four detection outputs, padded to K = max_detections with zeros."""
    settings = settings or NmsSettings()
    enc = np.asarray(box_encodings, np.float32)
    sc = np.asarray(scores, np.float32)
    if enc.ndim == 2:
        enc, sc = enc[None], sc[None]
    if enc.shape[:2] != sc.shape[:2] or enc.shape[-1] != 4 or enc.shape[1] != len(anchors):
        raise ValueError(f"box_encodings {enc.shape} and scores {sc.shape} do not fit {len(anchors)} anchors")
    boxes = decode_boxes(enc, anchors, scales)
    n, k = len(enc), settings.max_detections
    out = {"detection_boxes": np.zeros((n, k, 4), np.float32), "detection_classes": np.zeros((n, k), np.float32),
           "detection_scores": np.zeros((n, k), np.float32), "num_detections": np.zeros((n,), np.float32)}
    for i in range(n):
        keep, cls, s = nms_one(boxes[i], sc[i], settings)
        m = len(keep)
        out["detection_boxes"][i, :m] = boxes[i][keep]
        out["detection_classes"][i, :m] = cls
        out["detection_scores"][i, :m] = s
        out["num_detections"][i] = m
    return out


def compare_detections(reference: Dict[str, np.ndarray], candidate: Dict[str, np.ndarray]) -> dict:
    """How far a format's detections are from the reference's, image by image in order: counts
    equal, and over the valid rows the largest box coordinate, score and class differences. Rows
    are compared in order (both are sorted by score); a near-tie in score may swap two rows, which
    shows as a class/box difference."""
    n_ref = np.asarray(reference["num_detections"]).reshape(-1).astype(int)
    n_cand = np.asarray(candidate["num_detections"]).reshape(-1).astype(int)
    box_err = score_err = 0.0
    class_mismatch = 0
    for i, (a, b) in enumerate(zip(n_ref, n_cand)):
        m = min(a, b)
        rb = np.asarray(reference["detection_boxes"])[i, :m]
        cb = np.asarray(candidate["detection_boxes"])[i, :m]
        if m:
            box_err = max(box_err, float(np.abs(rb - cb).max()))
            score_err = max(score_err, float(np.abs(np.asarray(reference["detection_scores"])[i, :m]
                                                    - np.asarray(candidate["detection_scores"])[i, :m]).max()))
            class_mismatch += int(np.sum(np.rint(np.asarray(reference["detection_classes"])[i, :m])
                                         != np.rint(np.asarray(candidate["detection_classes"])[i, :m])))
    return {"counts_equal": bool(np.array_equal(n_ref, n_cand)), "reference_counts": n_ref.tolist(),
            "candidate_counts": n_cand.tolist(), "max_box_error": box_err, "max_score_error": score_err,
            "class_mismatches": class_mismatch}
