"""Tiny synthetic detection data: red and blue rectangles on grey noise, PASCAL VOC XML annotations,
and a TinyCNN recipe that trains in seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220)}


def voc_xml(filename: str, width: int, height: int, objects) -> str:
    body = "".join(f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
                   f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>" for name, (x1, y1, x2, y2) in objects)
    return (f"<annotation><filename>{filename}</filename><size><width>{width}</width><height>{height}</height>"
            f"<depth>3</depth></size>{body}</annotation>")


def make_detection_data(root: Path, count: int = 40, size: int = 64, seed: int = 0) -> tuple[Path, Path, list]:
    """(image folder, annotation folder, per image [(class name, (x1, y1, x2, y2))])."""
    rng = np.random.default_rng(seed)
    images, annotations = root / "images", root / "annotations"
    images.mkdir(parents=True, exist_ok=True)
    annotations.mkdir(parents=True, exist_ok=True)
    truth = []
    for i in range(count):
        w, h = size + int(rng.integers(0, size // 2)), size  # photos of several aspects
        img = np.clip(rng.normal(128, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        objects = []
        for _ in range(1 + int(rng.random() < 0.4)):
            bw, bh = (int(v) for v in rng.integers(size // 5, size // 2, 2))
            x1, y1 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            name = "red" if rng.random() < 0.5 else "blue"
            img[y1:y1 + bh, x1:x1 + bw] = COLOURS[name]
            objects.append((name, (x1, y1, x1 + bw, y1 + bh)))
        Image.fromarray(img).save(images / f"im{i:03d}.png")
        (annotations / f"im{i:03d}.xml").write_text(voc_xml(f"im{i:03d}.png", w, h, objects))
        truth.append(objects)
    return images, annotations, truth


def write_detection_recipe(path: Path, images: Path, annotations: Path, **task_options) -> Path:
    """TinyCNN at 64x64, anchors at strides 8 and 16: trains in seconds."""
    import yaml

    recipe = {
        "name": "boxes", "task": "detection",
        "task_options": {"strides": [8, 16], "channels": 16, **task_options},
        "data": {"root": str(images), "annotations": str(annotations), "val_fraction": 0.25, "seed": 0},
        "input": {"size": [64, 64], "resize": "resize"},
        "model": {"backbone": "TinyCNN", "weights": "none"},
        "augment": {"flip": "horizontal", "zoom": 0.1, "translate": 0.05, "contrast": 0.1},
        "train": {"batch_size": 8, "warmup": {"epochs": 0},
                  "finetune": {"epochs": 1, "learning_rate": 0.003, "unfreeze": {"all": True}}},
        "calibration": {"size": 8},
    }
    path.write_text(yaml.safe_dump(recipe))
    return path
