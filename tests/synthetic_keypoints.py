"""A tiny keypoint dataset: coloured dots on noise whose centres are the targets (CSV and COCO)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

DOT_COLOURS = [(255, 40, 40), (40, 255, 40), (60, 60, 255)]


def draw_dots(points_px: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Dots of 4x4 pixels whose centre (continuous pixel coordinates) is each point."""
    img = rng.normal(60, 12, (size, size, 3))
    for (x, y), colour in zip(points_px, DOT_COLOURS):
        cx, cy = int(round(x)), int(round(y))
        img[cy - 2:cy + 2, cx - 2:cx + 2] = colour
    return np.clip(img, 0, 255).astype(np.uint8)


def make_keypoint_data(root: Path, count: int = 60, size: int = 32, seed: int = 0) -> tuple[Path, np.ndarray, list]:
    """images/, keypoints.csv (`image,x0,y0,...` in pixels) and keypoints.json (COCO); returns the
    image folder, the points [count, 3, 2] in pixels and the file names."""
    rng = np.random.default_rng(seed)
    folder = root / "images"
    folder.mkdir(parents=True, exist_ok=True)
    names, points = [], []
    for i in range(count):
        pts = rng.integers(4, size - 4, (len(DOT_COLOURS), 2)).astype(np.float64)  # dot centres at integers
        Image.fromarray(draw_dots(pts, size, rng)).save(folder / f"{i:03d}.png")
        names.append(f"{i:03d}.png")
        points.append(pts)
    points = np.asarray(points)
    with (root / "keypoints.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image"] + [f"{c}{k}" for k in range(len(DOT_COLOURS)) for c in "xy"])
        for n, p in zip(names, points):
            w.writerow([n] + [f"{v:g}" for v in p.ravel()])
    coco = {"images": [{"id": i, "file_name": n, "width": size, "height": size} for i, n in enumerate(names)],
            "annotations": [{"id": 100 + i, "image_id": i, "category_id": 1, "num_keypoints": len(DOT_COLOURS),
                             "keypoints": [v for x, y in p for v in (float(x), float(y), 2)]}
                            for i, p in enumerate(points)],
            "categories": [{"id": 1, "name": "dots", "keypoints": ["red", "green", "blue"], "skeleton": []}]}
    (root / "keypoints.json").write_text(json.dumps(coco))
    return folder, points, names


def write_keypoint_recipe(path: Path, folder: Path, annotations: Path, **task_options) -> Path:
    """TinyCNN on 32x32 dots, trains in seconds."""
    import yaml

    recipe = {
        "name": "dots", "task": "keypoints",
        "task_options": {"flip_pairs": [], **task_options},
        "data": {"root": str(folder), "annotations": str(annotations), "val_fraction": 0.25, "seed": 0},
        "input": {"size": [32, 32], "resize": "resize"},
        "model": {"backbone": "TinyCNN", "weights": "none"},
        "augment": {"flip": "horizontal", "rotation": 0.02, "zoom": 0.05, "translate": 0.05, "contrast": 0.1},
        "train": {"batch_size": 16, "warmup": {"epochs": 0},
                  "finetune": {"epochs": 3, "learning_rate": 0.003, "unfreeze": {"all": True}}},
        "calibration": {"size": 16},
    }
    path.write_text(yaml.safe_dump(recipe))
    return path
