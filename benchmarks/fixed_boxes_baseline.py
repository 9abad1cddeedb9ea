"""The floor a raccoon detector must clear (issue 24): three fixed boxes per image, no model.

Each image gets the same three detections, scaled to its size: the whole image, the centre box
of half the width and height, and the top-left quarter, scored in that order (0.3, 0.2, 0.1).
Prints AP@0.5, mAP@[.5:.95] (edgecv.metrics.detection, the COCO computation; pycocotools beside
it where installed) with the bootstrap interval over images, on all images and on the validation
split of three seeded splits (the 20 % a detector would be judged on).

  python benchmarks/fixed_boxes_baseline.py --data ../shared/datasets/raccoon
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def fixed_boxes(images):
    from edgecv.metrics.detection import make_detections

    out = []
    for im in images:
        w, h = im.width, im.height
        boxes = [[0, 0, w, h], [w / 4, h / 4, 3 * w / 4, 3 * h / 4], [0, 0, w / 2, h / 2]]
        out.append(make_detections(boxes, [0.3, 0.2, 0.1], [0, 0, 0]))
    return out


def pycocotools_map(images, dets, names):
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from detection_fixture import pycocotools_eval, to_coco
        ev = pycocotools_eval(*to_coco(images, dets, names))
    except ImportError:
        return None
    return ev.stats[0], ev.stats[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/datasets/raccoon")
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    a = ap.parse_args()

    from edgecv.data.detection import read_voc
    from edgecv.metrics.detection import DetectionEvaluation, map_interval

    ds = read_voc(a.data / "images", a.data / "annotations")
    print(f"{a.data}: {len(ds.images)} images, {ds.num_boxes} boxes, {len(ds.skipped)} skipped; classes {ds.class_names}")

    def report(what, images):
        dets = fixed_boxes(images)
        ev = DetectionEvaluation(images, dets, ds.class_names)
        m = ev.metrics(score_threshold=0.0)
        iv, iv50 = map_interval(ev, resamples=1000), map_interval(ev, iou=0.5, resamples=1000)
        ref = pycocotools_map(images, dets, ds.class_names)
        coco = f"  (pycocotools: mAP {ref[0]:.4f}, AP@0.5 {ref[1]:.4f})" if ref else ""
        print(f"{what:<28} n={len(images):>3}  AP@0.5 {m.ap50:.3f} [{iv50.low:.3f}, {iv50.high:.3f}]  "
              f"mAP@[.5:.95] {m.map:.3f} [{iv.low:.3f}, {iv.high:.3f}]{coco}")
        return m

    report("all images", ds.images)
    by_path = {im.path: im for im in ds.images}
    vals = []
    for seed in a.seeds:
        index = ds.to_index(a.val_fraction, seed)
        vals.append(report(f"val split seed {seed}", [by_path[s.path] for s in index.val]))
    ap50, maps = np.array([m.ap50 for m in vals]), np.array([m.map for m in vals])
    print(f"val splits: AP@0.5 {ap50.mean():.3f} ± {ap50.std(ddof=1) if len(vals) > 1 else 0:.3f}, "
          f"mAP {maps.mean():.3f} ± {maps.std(ddof=1) if len(vals) > 1 else 0:.3f} (mean ± std over {len(vals)} seeds); "
          "intervals: 95 % bootstrap over images, 1000 resamples")


if __name__ == "__main__":
    main()
