"""Small synthetic image datasets that a tiny CNN learns in seconds (class = colour + stripe pattern)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = [(220, 40, 40), (40, 200, 60), (50, 80, 230), (230, 200, 40), (160, 60, 200), (40, 200, 200)]


def class_image(label: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    base = np.array(COLOURS[label % len(COLOURS)], np.float32)
    img = np.ones((size, size, 3), np.float32) * base * rng.uniform(0.6, 1.0)
    period = 3 + label
    stripes = (np.arange(size) // period) % 2 == 0
    if label % 2:
        img[:, stripes] *= 0.5
    else:
        img[stripes, :] *= 0.5
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_image_folder(root: Path, classes: int = 3, per_class: int = 20, size: int = 32, seed: int = 0,
                      fmt: str = "png") -> Path:
    rng = np.random.default_rng(seed)
    for c in range(classes):
        d = root / f"class_{c}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(class_image(c, rng, size)).save(d / f"{i:03d}.{fmt}")
    return root


def write_recipe(path: Path, data_root: Path, **overrides) -> Path:
    """A recipe for TinyCNN on 32x32 images that trains in a few seconds."""
    import yaml

    recipe = {
        "name": "tiny",
        "data": {"root": str(data_root), "val_fraction": 0.25, "seed": 0},
        "input": {"size": [32, 32], "resize": "resize"},
        "model": {"backbone": "TinyCNN", "weights": "none", "head": {"dropout": 0.0}},
        "augment": {"flip": "none"},
        "train": {"batch_size": 16, "warmup": {"epochs": 0},
                  "finetune": {"epochs": 4, "learning_rate": 0.01, "unfreeze": {"all": True}}},
        "calibration": {"size": 16},
    }
    for dotted, value in overrides.items():
        cursor = recipe
        keys = dotted.split("__")
        for k in keys[:-1]:
            cursor = cursor.setdefault(k, {})
        cursor[keys[-1]] = value
    path.write_text(yaml.safe_dump(recipe))
    return path
