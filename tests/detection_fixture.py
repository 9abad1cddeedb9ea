"""Synthetic, seeded detections on real ground truth, and the same data as pycocotools input.

Detections mimic a detector's mistakes: jittered copies of the boxes (IoU anywhere from 0.3 to
0.99, score rising with IoU), misses, duplicates, class confusions, false positives, tied
scores, and an image with more than 100 detections (COCO's maxDets cut)."""

from __future__ import annotations

import numpy as np

from edgecv.data.detection import ImageBoxes, make_image_boxes
from edgecv.metrics.detection import ImageDetections, make_detections


def relabel(images: list[ImageBoxes], num_classes: int, crowd_share: float, seed: int) -> list[ImageBoxes]:
    """The same boxes spread over `num_classes` classes, a share of them marked crowd."""
    rng = np.random.default_rng(seed)
    out = []
    for im in images:
        k = len(im.boxes)
        crowd = rng.random(k) < crowd_share
        out.append(make_image_boxes(im.path, (im.width, im.height), im.boxes, rng.integers(0, num_classes, k),
                                    crowd, crowd))
    return out


def synthetic_detections(images: list[ImageBoxes], num_classes: int, seed: int,
                         many_on_image: int = 3, ties: bool = True) -> list[ImageDetections]:
    rng = np.random.default_rng(seed)
    out = []
    for n, im in enumerate(images):
        w, h = im.width, im.height
        boxes, scores, classes = [], [], []
        for (x1, y1, x2, y2), c in zip(im.boxes, im.classes):
            if rng.random() < 0.12:
                continue  # missed
            bw, bh = x2 - x1, y2 - y1
            for copy in range(1 + (rng.random() < 0.15)):  # sometimes a duplicate
                spread = rng.choice([0.02, 0.08, 0.2, 0.35])
                j = rng.normal(0, spread, 4) * [bw, bh, bw, bh]
                b = np.array([x1 + j[0], y1 + j[1], x2 + j[2], y2 + j[3]])
                b = np.clip(b, 0, [w, h, w, h])
                if b[2] - b[0] < 1 or b[3] - b[1] < 1:
                    continue
                cls = c if rng.random() > 0.1 else rng.integers(0, num_classes)  # class confusion
                boxes.append(b)
                scores.append(float(np.clip(0.9 - spread + rng.normal(0, 0.15) - 0.2 * copy, 0.01, 1)))
                classes.append(cls)
        extra = 500 if n == many_on_image else rng.integers(0, 4)  # false positives; one image over maxDets in every class
        for _ in range(extra):
            bw, bh = rng.uniform(0.05, 0.6) * w, rng.uniform(0.05, 0.6) * h
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            boxes.append([x, y, x + bw, y + bh])
            scores.append(float(rng.uniform(0.01, 0.7)))
            classes.append(rng.integers(0, num_classes))
        scores = np.round(scores, 2) if ties else np.asarray(scores)  # ties, as a quantized model gives
        # corners from x, y, w, h as pycocotools will see them, so both compute the same IoUs
        b = np.array(boxes, np.float64).reshape(-1, 4)
        xywh = np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)
        out.append(make_detections(np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1), scores, classes))
    return out


def to_coco(images: list[ImageBoxes], detections: list[ImageDetections], class_names: list[str]):
    """(ground truth dict, results list) for pycocotools: ids from 1 in list order."""
    gt = {"images": [], "annotations": [], "categories": [{"id": k + 1, "name": n} for k, n in enumerate(class_names)]}
    results = []
    for i, (im, dt) in enumerate(zip(images, detections), start=1):
        gt["images"].append({"id": i, "file_name": im.path, "width": im.width, "height": im.height})
        for b, c, crowd in zip(im.boxes, im.classes, im.crowd):
            wh = b[2:] - b[:2]
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i, "category_id": int(c) + 1,
                                      "bbox": [float(b[0]), float(b[1]), float(wh[0]), float(wh[1])],
                                      "area": float(wh[0] * wh[1]), "iscrowd": int(crowd)})
        for b, s, c in zip(dt.boxes, dt.scores, dt.classes):
            results.append({"image_id": i, "category_id": int(c) + 1, "score": float(s),
                            "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]})
    return gt, results


def pycocotools_eval(gt: dict, results: list):
    """COCOeval after evaluate/accumulate/summarize, its printing silenced."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        dt = coco.loadRes(results)
        ev = COCOeval(coco, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev
