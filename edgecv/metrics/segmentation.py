"""Segmentation metrics from a confusion matrix accumulated image by image, in numpy alone.

- `ConfusionAccumulator.add(label, predicted)` per image (label pixels equal to the ignore index
  are left out); `.metrics()` gives per-class IoU = TP / (TP + FP + FN), mIoU (the mean over the
  classes that occur in the labels or the predictions: a class absent from both has no IoU and is
  left out, not counted as 0 or 1), pixel accuracy (correct / labelled pixels), per-class and mean
  Dice = 2 TP / (2 TP + FP + FN), and mean class accuracy (recall).
- `AgreementAccumulator`: float versus artifact on the same images: the share of pixels whose
  argmax class is the same, and the mIoU of the artifact's map taking the float one as labels.
- `miou_interval` / `miou_delta_interval`: percentile bootstrap over images (per-image TP/FP/FN
  are kept, so a resample re-weights images without touching pixels); the delta draws the same
  images for both models.
- `upsample_scores`: per-class scores of any stride (or any size) to the label's size, bilinear or
  nearest, with half-pixel centres (TF2 `tf.image.resize` without antialiasing: pixel i covers
  [i, i + 1) in both grids); `resize_class_map` for a model that outputs classes (nearest).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from edgecv.metrics.bootstrap import bootstrap_interval
from edgecv.results import Interval
from edgecv.metrics.bootstrap import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, DEFAULT_CONFIDENCE

IGNORE_INDEX = 255


def confusion_matrix(label: np.ndarray, predicted: np.ndarray, num_classes: int,
                     ignore_index: Optional[int] = IGNORE_INDEX) -> np.ndarray:
    """[C, C] pixel counts, rows the label class, columns the predicted class."""
    label, predicted = np.asarray(label), np.asarray(predicted)
    if label.shape != predicted.shape:
        raise ValueError(f"label map {label.shape} and prediction {predicted.shape} differ in size: upsample the "
                         "prediction to the label's size first (upsample_scores / resize_class_map)")
    keep = np.ones(label.shape, bool) if ignore_index is None else label != ignore_index
    lab, pred = label[keep].astype(np.int64), predicted[keep].astype(np.int64)
    if len(lab) and (lab.min() < 0 or lab.max() >= num_classes):
        raise ValueError(f"label value {int(lab.max() if lab.max() >= num_classes else lab.min())} is neither a "
                         f"class (0..{num_classes - 1}) nor the ignore index {ignore_index}")
    if len(pred) and (pred.min() < 0 or pred.max() >= num_classes):
        raise ValueError(f"predicted class {int(pred.max() if pred.max() >= num_classes else pred.min())} is outside "
                         f"0..{num_classes - 1}")
    return np.bincount(lab * num_classes + pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


@dataclass
class SegmentationMetrics:
    miou: float
    per_class_iou: dict        # class -> IoU (NaN: in neither labels nor predictions)
    pixel_accuracy: float
    mean_dice: float
    per_class_dice: dict
    mean_class_accuracy: float
    num_images: int
    num_pixels: int            # labelled pixels counted

    def as_dict(self) -> dict:
        def clean(v):
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            return None if isinstance(v, float) and np.isnan(v) else v
        return clean(dict(self.__dict__))


def _nanmean(v: np.ndarray) -> float:
    v = v[~np.isnan(v)]
    return float(v.mean()) if len(v) else float("nan")


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


class ConfusionAccumulator:
    """Confusion matrix over all images, and each image's per-class TP, FP, FN for the bootstrap
    (3 x C numbers an image, not C x C)."""

    def __init__(self, class_names, ignore_index: Optional[int] = IGNORE_INDEX):
        self.class_names = [str(c) for c in class_names]
        self.num_classes = len(self.class_names)
        self.ignore_index = ignore_index
        self.matrix = np.zeros((self.num_classes, self.num_classes), np.int64)
        self._tp, self._fp, self._fn = [], [], []

    @property
    def num_images(self) -> int:
        return len(self._tp)

    def add(self, label: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        """Count one image (label and predicted class maps of the same size); returns its matrix."""
        m = confusion_matrix(label, predicted, self.num_classes, self.ignore_index)
        self.matrix += m
        tp = np.diag(m)
        self._tp.append(tp)
        self._fp.append(m.sum(axis=0) - tp)
        self._fn.append(m.sum(axis=1) - tp)
        return m

    def counts(self, weights: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-class (TP, FP, FN) summed over images, each image counted `weights[i]` times."""
        if not self._tp:
            z = np.zeros(self.num_classes)
            return z, z, z
        w = np.ones(self.num_images) if weights is None else np.asarray(weights, np.float64)
        return tuple(w @ np.asarray(a, np.float64) for a in (self._tp, self._fp, self._fn))

    def miou(self, weights: Optional[np.ndarray] = None) -> float:
        tp, fp, fn = self.counts(weights)
        return _nanmean(_ratio(tp, tp + fp + fn))

    def metrics(self) -> SegmentationMetrics:
        tp, fp, fn = self.counts()
        iou = _ratio(tp, tp + fp + fn)
        dice = _ratio(2 * tp, 2 * tp + fp + fn)
        recall = _ratio(tp, tp + fn)
        labelled = self.matrix.sum()
        return SegmentationMetrics(
            miou=_nanmean(iou), per_class_iou=dict(zip(self.class_names, iou.tolist())),
            pixel_accuracy=float(tp.sum() / labelled) if labelled else float("nan"),
            mean_dice=_nanmean(dice), per_class_dice=dict(zip(self.class_names, dice.tolist())),
            mean_class_accuracy=_nanmean(recall), num_images=self.num_images, num_pixels=int(labelled))


@dataclass
class SegmentationAgreement:
    pixel_agreement: float      # share of pixels with the same argmax class
    miou: float                 # the candidate's mIoU taking the reference's map as labels
    per_image_agreement: np.ndarray = field(repr=False)  # to show the best and worst images


class AgreementAccumulator:
    """Float (reference) versus artifact (candidate) class maps, image by image. `valid` (e.g.
    label != ignore) restricts both numbers to labelled pixels; by default every pixel counts."""

    def __init__(self, class_names):
        self.confusion = ConfusionAccumulator(class_names, ignore_index=None)
        self._same, self._total = [], []

    def add(self, reference: np.ndarray, candidate: np.ndarray, valid: Optional[np.ndarray] = None) -> float:
        reference, candidate = np.asarray(reference), np.asarray(candidate)
        if valid is not None:
            reference, candidate = reference[valid], candidate[valid]
        self.confusion.add(reference, candidate)
        same, total = int((reference == candidate).sum()), int(reference.size)
        self._same.append(same)
        self._total.append(total)
        return same / total if total else float("nan")

    def result(self) -> SegmentationAgreement:
        total = sum(self._total)
        return SegmentationAgreement(
            pixel_agreement=sum(self._same) / total if total else float("nan"), miou=self.confusion.miou(),
            per_image_agreement=np.array([s / t if t else np.nan for s, t in zip(self._same, self._total)]))


def miou_interval(acc: ConfusionAccumulator, confidence: float = DEFAULT_CONFIDENCE,
                  resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> Optional[Interval]:
    """Bootstrap interval over images of mIoU."""
    return bootstrap_interval(acc.num_images, acc.miou, confidence, resamples, seed)


def miou_delta_interval(reference: ConfusionAccumulator, candidate: ConfusionAccumulator,
                        confidence: float = DEFAULT_CONFIDENCE, resamples: int = BOOTSTRAP_RESAMPLES,
                        seed: int = BOOTSTRAP_SEED) -> Optional[Interval]:
    """Interval of (candidate mIoU - reference mIoU) over the same images, paired."""
    if reference.num_images != candidate.num_images:
        raise ValueError(f"the reference counted {reference.num_images} images and the candidate "
                         f"{candidate.num_images}: a paired interval needs the same images")
    return bootstrap_interval(reference.num_images, lambda w: candidate.miou(w) - reference.miou(w),
                              confidence, resamples, seed, paired=True)


# ---- resizing model outputs to the label's size -------------------------------------------------

def _source_coords(out_size: int, in_size: int, nearest: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower index, upper index, weight of upper) per output pixel, half-pixel centres."""
    scale = in_size / out_size
    x = np.arange(out_size, dtype=np.float64)
    if nearest:  # TF's nearest with half_pixel_centers: floor((x + 0.5) * scale)
        i = np.minimum(np.floor((x + 0.5) * scale).astype(np.int64), in_size - 1)
        return i, i, np.zeros(out_size)
    src = (x + 0.5) * scale - 0.5
    lo = np.floor(src)
    frac = src - lo
    return np.clip(lo, 0, in_size - 1).astype(np.int64), np.clip(lo + 1, 0, in_size - 1).astype(np.int64), frac


def upsample_scores(scores: np.ndarray, size: tuple[int, int], method: str = "bilinear") -> np.ndarray:
    """Scores [h, w, C] or [N, h, w, C] resized to size = (H, W) (any ratio, not only integer
    strides). Bilinear blends scores (better boundaries; take the argmax after it); nearest copies
    them (the argmax before or after is the same: cheaper as `resize_class_map` of the argmax)."""
    if method not in ("bilinear", "nearest"):
        raise ValueError(f"upsampling method {method!r}: use bilinear or nearest")
    s = np.asarray(scores)
    single = s.ndim == 3
    if single:
        s = s[None]
    if s.ndim != 4:
        raise ValueError(f"scores of shape {np.shape(scores)}: expected [h, w, C] or [N, h, w, C]")
    s = s.astype(np.float32, copy=False)
    out_h, out_w = int(size[0]), int(size[1])
    y0, y1, wy = _source_coords(out_h, s.shape[1], method == "nearest")
    x0, x1, wx = _source_coords(out_w, s.shape[2], method == "nearest")
    wy, wx = wy.astype(np.float32)[None, :, None, None], wx.astype(np.float32)[None, None, :, None]
    rows = s[:, y0] * (1 - wy) + s[:, y1] * wy if method == "bilinear" else s[:, y0]
    out = rows[:, :, x0] * (1 - wx) + rows[:, :, x1] * wx if method == "bilinear" else rows[:, :, x0]
    return out[0] if single else out


def resize_class_map(classes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A class map [h, w] or [N, h, w] to size = (H, W) by nearest neighbour (classes are not blended)."""
    c = np.asarray(classes)
    y, _, _ = _source_coords(int(size[0]), c.shape[-2], True)
    x, _, _ = _source_coords(int(size[1]), c.shape[-1], True)
    return c[..., y, :][..., x]


def predicted_classes(scores: np.ndarray, size: tuple[int, int], method: str = "bilinear") -> np.ndarray:
    """The argmax class map at `size` of per-class scores [.., h, w, C]."""
    if method == "nearest":
        return resize_class_map(np.argmax(scores, axis=-1), size)
    return np.argmax(upsample_scores(scores, size, method), axis=-1)
