"""Tiny synthetic segmentation data: coloured rectangles on a grey ground, labelled by colour.
Class 0 ground, 1 red box, 2 blue box; a strip of each image is not labelled (255)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ["ground", "red", "blue"]
COLOURS = {1: (220, 40, 40), 2: (40, 60, 220)}


def make_segmentation_data(root: Path, count: int = 24, size=(48, 64), seed: int = 0) -> Path:
    """root/images/*.png, root/labels/*.png, root/classes.txt; returns root."""
    rng = np.random.default_rng(seed)
    h, w = size
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    for i in range(count):
        img = np.full((h, w, 3), 128, np.uint8) + rng.integers(0, 20, (h, w, 3), dtype=np.uint8)
        label = np.zeros((h, w), np.uint8)
        for cls in (1, 2):
            bh, bw = rng.integers(h // 5, h // 2), rng.integers(w // 5, w // 2)
            y, x = rng.integers(0, h - bh), rng.integers(0, w - bw)
            img[y:y + bh, x:x + bw] = COLOURS[cls]
            label[y:y + bh, x:x + bw] = cls
        label[:, :2] = 255  # an unlabelled strip at the left edge
        Image.fromarray(img).save(root / "images" / f"s{i:03d}.png")
        Image.fromarray(label).save(root / "labels" / f"s{i:03d}.png")
    return root


def write_segmentation_recipe(path: Path, root: Path, **task_options) -> Path:
    """TinyCNN with an LR-ASPP decoder on 48x64 boxes: trains in seconds."""
    import yaml

    recipe = {
        "name": "boxes", "task": "segmentation",
        "task_options": {"high_layer": "tiny_pool2", "mid_layer": "tiny_pool1", "low_layer": "tiny_pool0",
                         **task_options},
        "data": {"root": str(root), "val_fraction": 0.25, "seed": 0},
        "input": {"size": [48, 64], "resize": "resize"},
        "model": {"backbone": "TinyCNN", "weights": "none"},
        "augment": {"flip": "horizontal", "contrast": 0.1},
        "train": {"batch_size": 8, "warmup": {"epochs": 0},
                  "finetune": {"epochs": 2, "learning_rate": 0.003, "unfreeze": {"all": True}}},
        "calibration": {"size": 8},
    }
    path.write_text(yaml.safe_dump(recipe))
    return path
