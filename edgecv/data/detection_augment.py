"""Augmentation that moves boxes with the pixels (numpy and Pillow, one image at a time).

Every training image is seen through a window of the photo that is mapped onto the model input:
without augmentation the recipe's resize policy gives the window (the whole photo for `resize`, the
centred part of the input's aspect for `center_crop`, the photo widened to it for `pad`). Augmenting
scales that window by 1 / s (s in [1 - zoom, 1 + zoom]: s > 1 zooms in, a crop; s < 1 zooms out,
the photo lands smaller on a padded canvas), stretches its aspect by up to `zoom` / 2 and shifts it
by up to `translate` of its size; then a horizontal flip and brightness, contrast and saturation
jitter (`color`). The window is drawn again (up to TRIES times) while it would cut any box to less
than MIN_VISIBLE of its area; boxes are clipped to the window and a box left thinner than
MIN_SIDE_PX pixels of the input, or with less than MIN_VISIBLE of its area, is dropped.

Boxes here are (x1, y1, x2, y2) in pixels of the photo in, and (ymin, xmin, ymax, xmax) in [0, 1]
of the input out (the detection contract's layout).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from edgecv.sidecars import PAD_VALUE

TRIES = 10
MIN_VISIBLE = 0.5  # of a box's area inside the window
MIN_SIDE_PX = 4.0  # of the model input


@dataclass(frozen=True)
class BoxAugment:
    flip: bool = True
    zoom: float = 0.0
    translate: float = 0.0
    color: float = 0.0

    @classmethod
    def from_recipe(cls, cfg) -> "BoxAugment":
        return cls(cfg.flip in ("horizontal", "both"), cfg.zoom, cfg.translate, cfg.contrast)

    @property
    def moves(self) -> bool:
        return bool(self.zoom or self.translate)


def base_window(wh: Sequence[float], size: tuple[int, int], policy: str) -> np.ndarray:
    """(x1, y1, x2, y2) in pixels of the photo that the resize policy maps onto the input."""
    w, h = float(wh[0]), float(wh[1])
    out_h, out_w = size
    if policy == "resize":
        return np.array([0.0, 0.0, w, h])
    src, dst = w / h, out_w / out_h
    if policy == "center_crop":
        if src > dst:
            keep = h * dst
            return np.array([(w - keep) / 2, 0.0, (w + keep) / 2, h])
        keep = w / dst
        return np.array([0.0, (h - keep) / 2, w, (h + keep) / 2])
    if policy == "pad":
        if src > dst:
            full = w / dst
            return np.array([0.0, (h - full) / 2, w, (h + full) / 2])
        full = h * dst
        return np.array([(w - full) / 2, 0.0, (w + full) / 2, h])
    raise ValueError(f"unknown resize policy {policy!r}")


def boxes_in_window(boxes: np.ndarray, window: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (ymin, xmin, ymax, xmax) in [0, 1] of the input, clipped; which boxes are kept)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    x1, y1, x2, y2 = window
    rel = (boxes - [x1, y1, x1, y1]) / [x2 - x1, y2 - y1, x2 - x1, y2 - y1]
    clipped = np.clip(rel, 0.0, 1.0)
    area = np.prod(rel[:, 2:] - rel[:, :2], axis=1)
    visible = np.prod(np.clip(clipped[:, 2:] - clipped[:, :2], 0, None), axis=1)
    side_px = np.minimum((clipped[:, 2] - clipped[:, 0]) * size[1], (clipped[:, 3] - clipped[:, 1]) * size[0])
    keep = (visible >= MIN_VISIBLE * np.maximum(area, 1e-12)) & (side_px >= MIN_SIDE_PX)
    return clipped[:, [1, 0, 3, 2]], keep


def _draw_window(base: np.ndarray, cfg: BoxAugment, rng: np.random.Generator) -> np.ndarray:
    bw, bh = base[2] - base[0], base[3] - base[1]
    s = rng.uniform(1 - cfg.zoom, 1 + cfg.zoom) if cfg.zoom else 1.0
    stretch = np.exp(rng.uniform(-cfg.zoom / 2, cfg.zoom / 2)) if cfg.zoom else 1.0
    ww, wh = bw / s * stretch, bh / s / stretch
    cx = base[0] + bw / 2 + (rng.uniform(-cfg.translate, cfg.translate) * bw if cfg.translate else 0.0)
    cy = base[1] + bh / 2 + (rng.uniform(-cfg.translate, cfg.translate) * bh if cfg.translate else 0.0)
    return np.array([cx - ww / 2, cy - wh / 2, cx + ww / 2, cy + wh / 2])


def render(rgb: np.ndarray, window: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The window of the photo resampled (bilinear) to the input size; outside the photo PAD_VALUE."""
    out_h, out_w = size
    img = Image.fromarray(rgb).transform((out_w, out_h), Image.EXTENT, tuple(float(v) for v in window),
                                         Image.BILINEAR, fillcolor=(PAD_VALUE,) * 3)
    return np.asarray(img, np.uint8)


def _jitter_colour(img: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    x = img.astype(np.float32)
    x = x * rng.uniform(1 - strength, 1 + strength)  # brightness
    mean = x.mean()
    x = (x - mean) * rng.uniform(1 - strength, 1 + strength) + mean  # contrast
    grey = x.mean(axis=2, keepdims=True)
    x = (x - grey) * rng.uniform(1 - strength, 1 + strength) + grey  # saturation
    return np.clip(x, 0, 255).astype(np.uint8)


def augment_image(rgb: np.ndarray, boxes: np.ndarray, classes: np.ndarray, size: tuple[int, int], policy: str,
                  cfg: Optional[BoxAugment], rng: Optional[np.random.Generator],
                  ignore: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One photo (HxWx3 uint8) and its boxes (x1, y1, x2, y2 pixels) -> (input image [H, W, 3] uint8,
    boxes [K, 4] (ymin, xmin, ymax, xmax) in [0, 1], classes [K], ignore [K]). cfg None: no
    augmentation, the resize policy alone."""
    classes = np.asarray(classes, np.int64).reshape(-1)
    ignore = np.zeros(len(classes), bool) if ignore is None else np.asarray(ignore, bool).reshape(-1)
    base = base_window((rgb.shape[1], rgb.shape[0]), size, policy)
    window = base
    if cfg is not None and cfg.moves:
        for _ in range(TRIES):
            cand = _draw_window(base, cfg, rng)
            _, keep = boxes_in_window(boxes, cand, size)
            if keep.all():
                window = cand
                break
    out_boxes, keep = boxes_in_window(boxes, window, size)
    out_boxes, classes, ignore = out_boxes[keep], classes[keep], ignore[keep]
    img = render(rgb, window, size)
    if cfg is not None and cfg.flip and rng.random() < 0.5:
        img = img[:, ::-1]
        out_boxes = np.stack([out_boxes[:, 0], 1 - out_boxes[:, 3], out_boxes[:, 2], 1 - out_boxes[:, 1]], axis=1)
    if cfg is not None and cfg.color:
        img = _jitter_colour(img, cfg.color, rng)
    return np.ascontiguousarray(img), out_boxes.reshape(-1, 4).astype(np.float32), classes, ignore
