"""Detection metrics as the COCO benchmark computes them (pycocotools' COCOeval, bbox, area "all"),
in numpy alone, plus float-versus-artifact agreement and bootstrap intervals over images.

- `evaluate(ground_truth, detections, num_classes)` matches each image's detections to its ground
  truth once, class by class, exactly as COCOeval.evaluateImg does: detections sorted by score
  (stable) and cut to `max_dets` (100) per image and class; greedy, each detection to the
  unmatched box of highest IoU >= the threshold, ties to the later box; ignored boxes (COCO crowd,
  VOC difficult) are matched only when no counted box qualifies, and a detection on one is
  neither right nor wrong; a crowd box can take many detections and its IoU is intersection over
  the detection's area. IoU thresholds .50:.05:.95, 101 recall points, precision made monotone
  from the right, as COCOeval.accumulate. Boxes are x1, y1, x2, y2 in pixels, areas w * h (no +1).
- `DetectionEvaluation.metrics()`: mAP@[.5:.95] (the mean over the classes that have ground truth
  of each class's AP, itself the mean over thresholds and recall points), AP@0.5, AP@0.75, per-class
  AP, the precision-recall curve at IoU 0.5, and precision/recall/F1 of the detections scoring at
  least the operating threshold, matched at IoU 0.5.
- `detection_agreement(reference, candidate)`: how closely an artifact's detections follow the
  float model's on the same images: F1 of boxes matched at IoU 0.5 (same class), mean IoU of the
  matched pairs and their score error.
- `map_interval` / `map_delta_interval`: percentile bootstrap over images of mAP (or AP@0.5) and
  of its change between two models, paired (the same images drawn for both).
Tested against pycocotools to 1e-4 (tests/test_detection_metrics.py). Not computed: the area
ranges (small/medium/large) and the maxDets 1/10 recalls of COCO's summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from edgecv.metrics.bootstrap import bootstrap_interval
from edgecv.results import Interval
from edgecv.metrics.bootstrap import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, DEFAULT_CONFIDENCE
from edgecv.data.detection import boxes_from_input

# built as COCOeval's Params builds them, so thresholds compare bit for bit
IOU_THRESHOLDS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
RECALL_POINTS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
MAX_DETS = 100
DEFAULT_SCORE_THRESHOLD = 0.5


@dataclass(frozen=True, eq=False)
class ImageDetections:
    """One image's detections, in the pixel frame of its ground truth."""

    boxes: np.ndarray    # [N, 4] float64 x1, y1, x2, y2
    scores: np.ndarray   # [N] float64
    classes: np.ndarray  # [N] int64

    def __len__(self) -> int:
        return len(self.boxes)

    def above(self, threshold: float) -> "ImageDetections":
        keep = self.scores >= threshold
        return ImageDetections(self.boxes[keep], self.scores[keep], self.classes[keep])


def make_detections(boxes, scores, classes) -> ImageDetections:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    n = len(boxes)
    return ImageDetections(boxes, np.asarray(scores, np.float64).reshape(n), np.asarray(classes, np.int64).reshape(n))


def box_iou(a: np.ndarray, b: np.ndarray, crowd: Optional[np.ndarray] = None) -> np.ndarray:
    """[N, M] IoU of boxes a [N, 4] and b [M, 4] (x1, y1, x2, y2). Where crowd[j], the union is the
    area of a[i] alone (COCO: a detection inside a crowd region is fully covered by it)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    if crowd is not None:
        union = np.where(np.asarray(crowd, bool)[None, :], area_a[:, None], union)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _match_image(iou: np.ndarray, gt_ignore: np.ndarray, gt_crowd: np.ndarray,
                 thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval.evaluateImg's greedy matching for one image and class, all thresholds at once.
    `iou` [D, G] with detections sorted by score and ground truth sorted ignored-last. Returns
    (matched [T, D], ignored [T, D]) booleans."""
    t_count, (d_count, g_count) = len(thresholds), iou.shape
    matched = np.zeros((t_count, d_count), bool)
    ignored = np.zeros((t_count, d_count), bool)
    if g_count == 0:
        return matched, ignored
    taken = np.zeros((t_count, g_count), bool)
    limit = np.minimum(thresholds, 1 - 1e-10)[:, None]
    rows = np.arange(t_count)
    for d in range(d_count):
        ok = (~taken | gt_crowd[None, :]) & (iou[d][None, :] >= limit)  # [T, G]
        counted = ok & ~gt_ignore[None, :]
        pick = np.where(counted.any(axis=1, keepdims=True), counted, ok)  # counted boxes first (COCO's break)
        has = pick.any(axis=1)
        if not has.any():
            continue
        score = np.where(pick, iou[d][None, :], -1.0)
        # the best IoU; of equal ones the later box (COCO replaces on >=)
        g = g_count - 1 - np.argmax(score[:, ::-1], axis=1)
        matched[has, d] = True
        ignored[has, d] = gt_ignore[g[has]]
        taken[rows[has], g[has]] = True
    return matched, ignored


@dataclass
class _ClassMatches:
    """One class over all images, in image order; each image's detections sorted by score."""

    scores: np.ndarray     # [D]
    image: np.ndarray      # [D] image index of each detection
    matched: np.ndarray    # [T, D]
    ignored: np.ndarray    # [T, D]
    positives: np.ndarray  # [I] counted (not ignored) ground-truth boxes per image


@dataclass
class DetectionMetrics:
    """Summary of one model's detections (fractions in [0, 1]; NaN where undefined)."""

    map: float                  # mAP@[.5:.95]
    ap50: float
    ap75: float
    per_class_ap: dict          # class name -> AP@[.5:.95] (NaN: no ground truth of that class)
    per_class_ap50: dict
    precision: float            # at the operating threshold, IoU 0.5, all classes together
    recall: float
    f1: float
    score_threshold: float
    per_class_precision: dict
    per_class_recall: dict
    num_images: int
    num_ground_truth: int       # counted boxes (ignored ones left out)
    num_detections: int         # after the max_dets cut
    recall_points: list = field(repr=False, default_factory=list)
    pr_curve50: dict = field(repr=False, default_factory=dict)  # class -> precision at each recall point, IoU 0.5

    def as_dict(self) -> dict:
        """JSON-able (NaN -> None)."""
        def clean(v):
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, (list, tuple, np.ndarray)):
                return [clean(x) for x in v]
            if isinstance(v, float) and np.isnan(v):
                return None
            return v
        return clean(dict(self.__dict__))


class DetectionEvaluation:
    """Ground truth and one model's detections on the same images, matched once; metrics and
    bootstrap resamples are computed from the matches."""

    def __init__(self, ground_truth: Sequence, detections: Sequence[ImageDetections], class_names: Sequence[str],
                 iou_thresholds: np.ndarray = IOU_THRESHOLDS, max_dets: int = MAX_DETS):
        """`ground_truth`: per image an object with `boxes`, `classes` and optionally `ignore` and
        `crowd` arrays (`edgecv.data.detection.ImageBoxes`); `detections` the same images in the
        same order."""
        if len(ground_truth) != len(detections):
            raise ValueError(f"{len(ground_truth)} images of ground truth but {len(detections)} of detections: "
                             "give both for the same images in the same order")
        self.class_names = [str(c) for c in class_names]
        self.iou_thresholds = np.asarray(iou_thresholds, np.float64)
        self.max_dets = int(max_dets)
        self.num_images = len(ground_truth)
        num_classes = len(self.class_names)
        for i, (gt, dt) in enumerate(zip(ground_truth, detections)):
            for what, cls in (("ground truth", gt.classes), ("detection", dt.classes)):
                bad = np.asarray(cls)[(np.asarray(cls) < 0) | (np.asarray(cls) >= num_classes)]
                if len(bad):
                    raise ValueError(f"image {i}: {what} class {int(bad[0])} is outside 0..{num_classes - 1}")
        self.per_class = [self._match_class(ground_truth, detections, k) for k in range(num_classes)]

    def _match_class(self, ground_truth, detections, k: int) -> _ClassMatches:
        t_count = len(self.iou_thresholds)
        scores, image, matched, ignored, positives = [], [], [], [], []
        for i, (gt, dt) in enumerate(zip(ground_truth, detections)):
            g_sel = np.asarray(gt.classes) == k
            g_boxes = np.asarray(gt.boxes, np.float64).reshape(-1, 4)[g_sel]
            g_ignore = _flag(gt, "ignore")[g_sel]
            g_crowd = _flag(gt, "crowd")[g_sel]
            g_ignore = g_ignore | g_crowd
            order = np.argsort(g_ignore, kind="mergesort")  # counted boxes first
            g_boxes, g_ignore, g_crowd = g_boxes[order], g_ignore[order], g_crowd[order]
            positives.append(int((~g_ignore).sum()))
            d_sel = np.asarray(dt.classes) == k
            d_scores = np.asarray(dt.scores, np.float64)[d_sel]
            d_order = np.argsort(-d_scores, kind="mergesort")[:self.max_dets]
            d_boxes = np.asarray(dt.boxes, np.float64).reshape(-1, 4)[d_sel][d_order]
            m, ig = _match_image(box_iou(d_boxes, g_boxes, g_crowd), g_ignore, g_crowd, self.iou_thresholds)
            scores.append(d_scores[d_order])
            image.append(np.full(len(d_order), i))
            matched.append(m)
            ignored.append(ig)
        cat = lambda parts: np.concatenate(parts, axis=1) if parts else np.zeros((t_count, 0), bool)  # noqa: E731
        return _ClassMatches(np.concatenate(scores) if scores else np.zeros(0),
                             np.concatenate(image).astype(np.int64) if image else np.zeros(0, np.int64),
                             cat(matched), cat(ignored), np.asarray(positives, np.int64))

    # ---- COCOeval.accumulate, with images weighted (1 each, or bootstrap counts) ----
    def precision_table(self, weights: Optional[np.ndarray] = None) -> np.ndarray:
        """[T, R, K] interpolated precision per threshold, recall point and class; -1 for a class
        with no counted ground truth (COCO's convention)."""
        w_img = np.ones(self.num_images) if weights is None else np.asarray(weights, np.float64)
        t_count, r_count = len(self.iou_thresholds), len(RECALL_POINTS)
        table = -np.ones((t_count, r_count, len(self.per_class)))
        for k, c in enumerate(self.per_class):
            positives = float((c.positives * w_img).sum())
            if positives == 0:
                continue
            w = w_img[c.image]
            keep = w > 0
            order = np.argsort(-c.scores[keep], kind="mergesort")
            w = w[keep][order]
            matched, ignored = c.matched[:, keep][:, order], c.ignored[:, keep][:, order]
            tp = np.cumsum((matched & ~ignored) * w, axis=1)
            fp = np.cumsum((~matched & ~ignored) * w, axis=1)
            if tp.shape[1] == 0:
                table[:, :, k] = 0.0
                continue
            recall = tp / positives
            precision = tp / (fp + tp + np.spacing(1))
            precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
            for t in range(t_count):
                at = np.searchsorted(recall[t], RECALL_POINTS, side="left")
                valid = at < len(recall[t])
                table[t, :, k] = np.where(valid, precision[t][np.minimum(at, len(recall[t]) - 1)], 0.0)
        return table

    def average_precision(self, weights: Optional[np.ndarray] = None, iou: Optional[float] = None) -> float:
        """mAP over the thresholds (or AP at the one threshold `iou`, e.g. 0.5) for resample weights."""
        table = self.precision_table(weights)
        if iou is not None:
            table = table[[self._threshold_index(iou)]]
        valid = table[table > -1]
        return float(valid.mean()) if len(valid) else float("nan")

    def _threshold_index(self, iou: float) -> int:
        hits = np.flatnonzero(np.isclose(self.iou_thresholds, iou))
        if not len(hits):
            raise ValueError(f"IoU {iou} is not one of the evaluated thresholds {self.iou_thresholds.tolist()}")
        return int(hits[0])

    def operating_point(self, score_threshold: float, iou: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(true positives, false positives, counted ground truth) per class of the detections
        scoring at least `score_threshold`, matched at IoU `iou`."""
        t = self._threshold_index(iou)
        tp, fp, pos = [], [], []
        for c in self.per_class:
            keep = c.scores >= score_threshold
            m, ig = c.matched[t, keep], c.ignored[t, keep]
            tp.append(int((m & ~ig).sum()))
            fp.append(int((~m & ~ig).sum()))
            pos.append(int(c.positives.sum()))
        return np.array(tp), np.array(fp), np.array(pos)

    def metrics(self, score_threshold: float = DEFAULT_SCORE_THRESHOLD) -> DetectionMetrics:
        table = self.precision_table()
        per_class = _class_means(table)
        t50 = self._threshold_index(0.5)
        per_class50 = _class_means(table[[t50]])
        tp, fp, pos = self.operating_point(score_threshold)
        precision, recall = _ratio(tp.sum(), tp.sum() + fp.sum()), _ratio(tp.sum(), pos.sum())
        names = self.class_names
        return DetectionMetrics(
            map=_mean_valid(table), ap50=_mean_valid(table[[t50]]),
            ap75=_mean_valid(table[[self._threshold_index(0.75)]]) if np.isclose(self.iou_thresholds, 0.75).any()
            else float("nan"),
            per_class_ap=dict(zip(names, per_class)), per_class_ap50=dict(zip(names, per_class50)),
            precision=precision, recall=recall, f1=_f1(precision, recall), score_threshold=float(score_threshold),
            per_class_precision={n: _ratio(a, a + b) for n, a, b in zip(names, tp, fp)},
            per_class_recall={n: _ratio(a, p) for n, a, p in zip(names, tp, pos)},
            num_images=self.num_images, num_ground_truth=int(sum(c.positives.sum() for c in self.per_class)),
            num_detections=int(sum(len(c.scores) for c in self.per_class)),
            recall_points=RECALL_POINTS.tolist(),
            pr_curve50={n: table[t50, :, k].tolist() for k, n in enumerate(names) if table[t50, 0, k] > -1})


def _flag(gt, name: str) -> np.ndarray:
    v = getattr(gt, name, None)
    n = len(np.asarray(gt.classes))
    return np.zeros(n, bool) if v is None else np.asarray(v, bool).reshape(n)


def _mean_valid(table: np.ndarray) -> float:
    valid = table[table > -1]
    return float(valid.mean()) if len(valid) else float("nan")


def _class_means(table: np.ndarray) -> list[float]:
    return [_mean_valid(table[:, :, k]) for k in range(table.shape[2])]


def _ratio(a, b) -> float:
    return float(a) / float(b) if b else float("nan")


def _f1(p: float, r: float) -> float:
    if np.isnan(p) or np.isnan(r):
        return float("nan")
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def evaluate(ground_truth: Sequence, detections: Sequence[ImageDetections], class_names: Sequence[str],
             score_threshold: float = DEFAULT_SCORE_THRESHOLD, max_dets: int = MAX_DETS) -> DetectionMetrics:
    """COCO-style metrics of one model (see the module's docstring)."""
    return DetectionEvaluation(ground_truth, detections, class_names, max_dets=max_dets).metrics(score_threshold)


# ---- intervals ------------------------------------------------------------------------------------

def map_interval(evaluation: DetectionEvaluation, iou: Optional[float] = None,
                 confidence: float = DEFAULT_CONFIDENCE, resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = BOOTSTRAP_SEED) -> Optional[Interval]:
    """Bootstrap interval over images of mAP@[.5:.95] (or AP at `iou`, e.g. 0.5)."""
    return bootstrap_interval(evaluation.num_images, lambda w: evaluation.average_precision(w, iou),
                              confidence, resamples, seed)


def map_delta_interval(reference: DetectionEvaluation, candidate: DetectionEvaluation, iou: Optional[float] = None,
                       confidence: float = DEFAULT_CONFIDENCE, resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> Optional[Interval]:
    """Interval of (candidate mAP - reference mAP), the same images drawn for both in each resample."""
    if reference.num_images != candidate.num_images:
        raise ValueError(f"the reference was evaluated on {reference.num_images} images and the candidate on "
                         f"{candidate.num_images}: a paired interval needs the same images")
    return bootstrap_interval(reference.num_images,
                              lambda w: candidate.average_precision(w, iou) - reference.average_precision(w, iou),
                              confidence, resamples, seed, paired=True)


# ---- agreement between two models' detections ------------------------------------------------------

@dataclass
class DetectionAgreement:
    f1: float                 # 2 * matched / (reference boxes + candidate boxes); 1.0 when both have none
    mean_iou: float           # of the matched pairs (NaN: none matched)
    score_error: float        # mean |candidate score - reference score| of the matched pairs
    max_score_error: float
    matched: int
    reference_boxes: int
    candidate_boxes: int
    per_image_f1: np.ndarray = field(repr=False)  # to show the best and worst images

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "per_image_f1"}
        return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in d.items()}


def _pair(ref: ImageDetections, cand: ImageDetections, iou: float) -> list[tuple[int, int, float]]:
    """Greedy one-to-one pairs (reference index, candidate index, IoU) of the same class, highest
    IoU first: a box and its slightly moved copy pair up whatever their scores."""
    pairs = []
    for k in np.intersect1d(ref.classes, cand.classes):
        ri, ci = np.flatnonzero(ref.classes == k), np.flatnonzero(cand.classes == k)
        m = box_iou(ref.boxes[ri], cand.boxes[ci])
        flat = np.argsort(-m, axis=None, kind="stable")
        used_r, used_c = set(), set()
        for f in flat:
            a, b = divmod(int(f), len(ci))
            if m[a, b] < iou:
                break
            if a in used_r or b in used_c:
                continue
            used_r.add(a)
            used_c.add(b)
            pairs.append((int(ri[a]), int(ci[b]), float(m[a, b])))
    return pairs


def detection_agreement(reference: Sequence[ImageDetections], candidate: Sequence[ImageDetections],
                        iou: float = 0.5, score_threshold: float = DEFAULT_SCORE_THRESHOLD) -> DetectionAgreement:
    """How closely `candidate` (an artifact) reproduces `reference` (the float model) image by
    image, over the detections both keep at the operating threshold."""
    if len(reference) != len(candidate):
        raise ValueError(f"{len(reference)} images of reference detections but {len(candidate)} of candidate ones")
    ious, errors, per_image = [], [], []
    n_ref = n_cand = 0
    for r, c in zip(reference, candidate):
        r, c = r.above(score_threshold), c.above(score_threshold)
        pairs = _pair(r, c, iou)
        ious += [p[2] for p in pairs]
        errors += [abs(float(c.scores[b]) - float(r.scores[a])) for a, b, _ in pairs]
        n_ref, n_cand = n_ref + len(r), n_cand + len(c)
        total = len(r) + len(c)
        per_image.append(2 * len(pairs) / total if total else 1.0)
    total = n_ref + n_cand
    return DetectionAgreement(
        f1=2 * len(ious) / total if total else 1.0,
        mean_iou=float(np.mean(ious)) if ious else float("nan"),
        score_error=float(np.mean(errors)) if errors else float("nan"),
        max_score_error=float(np.max(errors)) if errors else float("nan"),
        matched=len(ious), reference_boxes=n_ref, candidate_boxes=n_cand, per_image_f1=np.array(per_image))


def from_postprocess(boxes: np.ndarray, classes: np.ndarray, scores: np.ndarray, count, wh: Sequence[int],
                     size: tuple[int, int], policy: str, class_offset: int = 0) -> ImageDetections:
    """One image's outputs in the contract of TFLite's detection post-process op (and the TF
    Object Detection API): `boxes` [K, 4] ymin, xmin, ymax, xmax in [0, 1] of the model input,
    `classes` [K], `scores` [K], `count` valid rows -> detections in pixels of the image of size
    wh = (w, h) that was fed through `policy` at `size`. `class_offset` is subtracted from the
    class ids (1 for a model whose label map keeps index 0 for the background)."""
    n = int(np.asarray(count).reshape(-1)[0])
    b = np.asarray(boxes, np.float64).reshape(-1, 4)[:n]
    xyxy = boxes_from_input(b[:, [1, 0, 3, 2]], wh, size, policy)
    cls = np.rint(np.asarray(classes, np.float64).reshape(-1)[:n]).astype(np.int64) - int(class_offset)
    return make_detections(xyxy, np.asarray(scores, np.float64).reshape(-1)[:n], cls)
