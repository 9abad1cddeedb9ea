"""Keypoint annotations: a CSV `image,x0,y0,...` in pixels or COCO keypoints JSON, named schemes.

A sample's target is `{"xy": [[x, y], ...] in pixels of the image file, "v": [0|1, ...], "wh": [w, h]}`:
`v` 0 marks a point that is not labelled (COCO v=0) and is left out of loss and metrics. Pixel
coordinates are continuous (pixel i covers [i, i+1)), so x / width is the point in [0, 1] and a
horizontal flip is width - x. Rows that cannot be used (missing or unreadable image, wrong number
of values, points far outside the image) are skipped with the reason, as unreadable images are.

Nothing here imports TensorFlow: `edgecv validate --annotations` reads the same files on a device.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from edgecv.data.images import ImageDecodeError, load_rgb
from edgecv.data.index import Sample, Skipped
from edgecv.errors import DataError

OUTSIDE_MARGIN = 0.25  # a labelled point further than this fraction of the image outside it is a bad row


def _ibug68() -> tuple[list[str], list[tuple[int, int]]]:
    """The 68-point iBUG/300-W face scheme (subject's right is image left): names and mirror pairs."""
    names = [f"jaw_{i}" for i in range(17)] + [f"right_brow_{i}" for i in range(5)] + \
        [f"left_brow_{i}" for i in range(5)] + [f"nose_bridge_{i}" for i in range(4)] + \
        [f"nose_base_{i}" for i in range(5)] + [f"right_eye_{i}" for i in range(6)] + \
        [f"left_eye_{i}" for i in range(6)] + [f"outer_lip_{i}" for i in range(12)] + \
        [f"inner_lip_{i}" for i in range(8)]
    pairs = [(i, 16 - i) for i in range(8)]                              # jaw, around the chin (8)
    pairs += [(17 + i, 26 - i) for i in range(5)]                        # brows
    pairs += [(31, 35), (32, 34)]                                        # nose base, around 33
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]          # outer lip, around 51 and 57
    pairs += [(60, 64), (61, 63), (65, 67)]                              # inner lip, around 62 and 66
    return names, pairs


@dataclass(frozen=True)
class Scheme:
    """A keypoint layout: names, left/right mirror pairs, the two points whose distance normalizes NME."""

    names: list[str]
    flip_pairs: list[tuple[int, int]]
    normalize_by: Optional[tuple[int, int]] = None  # None: the diagonal of the labelled points' box


_ib_names, _ib_pairs = _ibug68()
PRESETS: dict[str, Scheme] = {
    "ibug68": Scheme(_ib_names, _ib_pairs, (36, 45)),  # inter-ocular: outer eye corners
}


def flip_permutation(num_keypoints: int, pairs: Sequence[Sequence[int]]) -> np.ndarray:
    """perm[i] is the point that becomes point i after a horizontal flip (left and right swap)."""
    perm = np.arange(num_keypoints)
    for a, b in pairs:
        if not (0 <= a < num_keypoints and 0 <= b < num_keypoints):
            raise DataError(f"flip pair ({a}, {b}) names a point outside 0..{num_keypoints - 1}")
        perm[a], perm[b] = b, a
    return perm


@dataclass
class KeypointRows:
    """What a reader found: usable samples (in file order), skipped rows, and the names the file gave."""

    samples: list[Sample]
    skipped: list[Skipped] = field(default_factory=list)
    names: Optional[list[str]] = None


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) after a full decode (a truncated file is found now, not in epoch 3)."""
    rgb = load_rgb(path)
    return rgb.shape[1], rgb.shape[0]


def _target(xy: np.ndarray, v: np.ndarray, wh: tuple[int, int]) -> Optional[str]:
    """None when the row is usable, otherwise why not."""
    if not np.all(np.isfinite(xy)):
        return "a coordinate is not a number"
    if not v.any():
        return "no labelled point"
    w, h = wh
    lab = xy[v > 0]
    lo, hi = -OUTSIDE_MARGIN, 1 + OUTSIDE_MARGIN
    rel = lab / np.array([w, h], np.float64)
    if (rel < lo).any() or (rel > hi).any():
        i = int(np.flatnonzero(v > 0)[np.flatnonzero(((rel < lo) | (rel > hi)).any(axis=1))[0]])
        return f"point {i} at ({xy[i, 0]:g}, {xy[i, 1]:g}) is far outside the {w}x{h} image"
    return None


def _sample(folder: Path, name: str, xy: np.ndarray, v: np.ndarray, where: str) -> tuple[Optional[Sample], Optional[Skipped]]:
    path = folder / name
    if not path.is_file():
        return None, Skipped(str(path), f"{where}: image not found")
    try:
        wh = _image_size(path)
    except ImageDecodeError as e:
        return None, Skipped(str(path), f"{where}: {e}")
    why = _target(xy, v, wh)
    if why:
        return None, Skipped(str(path), f"{where}: {why}")
    target = {"xy": np.round(xy, 4).tolist(), "v": v.astype(int).tolist(), "wh": [int(wh[0]), int(wh[1])]}
    return Sample(str(path), None, target), None


def read_csv(folder: Path, csv_path: Path) -> KeypointRows:
    """`image,x0,y0,x1,y1,...` in pixels; an empty cell is an unlabelled point."""
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise DataError(f"{csv_path}: empty annotation file; expected a header `image,x0,y0,...`")
    header = rows[0]
    if len(header) < 3 or (len(header) - 1) % 2:
        raise DataError(f"{csv_path}: header has {len(header)} columns; expected `image,x0,y0,...` (an image column "
                        "and two per keypoint)")
    k = (len(header) - 1) // 2
    out = KeypointRows([], names=_names_from_header(header[1:]))
    for line, row in enumerate(rows[1:], start=2):
        where = f"{csv_path.name} line {line}"
        if not row or not row[0].strip():
            out.skipped.append(Skipped(f"{csv_path}:{line}", f"{where}: no image name"))
            continue
        if len(row) != len(header):
            out.skipped.append(Skipped(str(folder / row[0]), f"{where}: {len(row) - 1} values, expected {2 * k}"))
            continue
        try:
            vals = np.array([float(c) if c.strip() else math.nan for c in row[1:]], np.float64).reshape(k, 2)
        except ValueError as e:
            out.skipped.append(Skipped(str(folder / row[0]), f"{where}: {e}"))
            continue
        v = (~np.isnan(vals).any(axis=1)).astype(np.int64)
        sample, skip = _sample(folder, row[0].strip(), np.nan_to_num(vals), v, where)
        out.samples.append(sample) if sample else out.skipped.append(skip)
    return out


def _names_from_header(cols: list[str]) -> Optional[list[str]]:
    """`nose_x,nose_y,...` names the points; `x0,y0,...` does not."""
    names = []
    for cx, cy in zip(cols[::2], cols[1::2]):
        if not (cx.endswith("_x") and cy.endswith("_y") and cx[:-2] == cy[:-2]):
            return None
        names.append(cx[:-2])
    return names


def read_coco(folder: Path, json_path: Path) -> KeypointRows:
    """COCO keypoints: one instance per image (with several, the one with the most labelled points);
    v=0 points are unlabelled, v=1 (occluded) and v=2 (visible) count."""
    try:
        coco = json.loads(Path(json_path).read_text())
        images = {im["id"]: im for im in coco["images"]}
        cats = [c for c in coco["categories"] if c.get("keypoints")]
        anns = coco["annotations"]
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{json_path}: not a COCO keypoints file ({type(e).__name__}: {e}); expected `images`, "
                        "`annotations` and `categories` with `keypoints` names") from None
    if len(cats) != 1:
        raise DataError(f"{json_path}: {len(cats)} categories with keypoints; the keypoints task trains one scheme")
    names = list(cats[0]["keypoints"])
    k = len(names)
    best: dict = {}
    out = KeypointRows([], names=names)
    for a in anns:
        kp = a.get("keypoints")
        if a.get("image_id") not in images:
            out.skipped.append(Skipped(f"{json_path}#annotation {a.get('id')}", "annotation of an unknown image_id"))
            continue
        if not isinstance(kp, list) or len(kp) != 3 * k:
            im = images[a["image_id"]]
            out.skipped.append(Skipped(str(folder / im["file_name"]), f"annotation {a.get('id')}: "
                                       f"{len(kp) if isinstance(kp, list) else 'no'} keypoint values, expected {3 * k}"))
            continue
        labelled = sum(1 for v in kp[2::3] if v)
        if a["image_id"] not in best or labelled > best[a["image_id"]][0]:
            best[a["image_id"]] = (labelled, a)
    bad_images = {Path(s.path).name for s in out.skipped}
    for image_id, im in sorted(images.items()):
        if image_id not in best:
            if im["file_name"] not in bad_images:
                out.skipped.append(Skipped(str(folder / im["file_name"]), "no keypoint annotation"))
            continue
        a = best[image_id][1]
        try:
            vals = np.array(a["keypoints"], np.float64).reshape(k, 3)
        except (ValueError, TypeError) as e:
            out.skipped.append(Skipped(str(folder / im["file_name"]), f"annotation {a.get('id')}: {e}"))
            continue
        sample, skip = _sample(folder, im["file_name"], vals[:, :2], (vals[:, 2] > 0).astype(np.int64),
                               f"annotation {a.get('id')}")
        out.samples.append(sample) if sample else out.skipped.append(skip)
    return out


def read_annotations(folder: Path, path: Path) -> KeypointRows:
    """CSV or COCO JSON by the file's extension."""
    folder, path = Path(folder), Path(path)
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist: fix `data.root` in the recipe (or --data)")
    if not path.is_file():
        raise DataError(f"annotation file {path} does not exist: fix `data.annotations` in the recipe (or --annotations)")
    if path.suffix.lower() == ".json":
        return read_coco(folder, path)
    if path.suffix.lower() == ".csv":
        return read_csv(folder, path)
    raise DataError(f"annotation file {path}: give a .csv (`image,x0,y0,...` in pixels) or a COCO keypoints .json")


def crop_transform(wh: Sequence[int], size: tuple[int, int], policy: str) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) with p_input = p_file * scale + offset, both in [0, 1] coordinates: where a
    point of the image file lands in the model input after the recipe's resize policy."""
    w, h = float(wh[0]), float(wh[1])
    out_h, out_w = size
    if policy == "resize":
        return np.ones(2), np.zeros(2)
    src_aspect, dst_aspect = w / h, out_w / out_h
    if policy == "center_crop":  # the kept window of the file, in its own [0, 1] coordinates
        if src_aspect > dst_aspect:
            keep = dst_aspect / src_aspect
            return np.array([1 / keep, 1.0]), np.array([-(1 - keep) / 2 / keep, 0.0])
        keep = src_aspect / dst_aspect
        return np.array([1.0, 1 / keep]), np.array([0.0, -(1 - keep) / 2 / keep])
    if policy == "pad":  # the content's share of the letterboxed input
        if src_aspect > dst_aspect:
            share = dst_aspect / src_aspect
            return np.array([1.0, share]), np.array([0.0, (1 - share) / 2])
        share = src_aspect / dst_aspect
        return np.array([share, 1.0]), np.array([(1 - share) / 2, 0.0])
    raise ValueError(f"unknown resize policy {policy!r}")


def input_targets(samples: Sequence[Sample], size: tuple[int, int], policy: str) -> np.ndarray:
    """[N, K, 3]: (x, y) in [0, 1] of the model input, and 1 where the point is labelled and inside it."""
    out = []
    for s in samples:
        t = s.target
        xy = np.asarray(t["xy"], np.float64) / np.asarray(t["wh"], np.float64)
        scale, offset = crop_transform(t["wh"], size, policy)
        xy = xy * scale + offset
        v = np.asarray(t["v"], np.float64)
        inside = ((xy >= 0) & (xy <= 1)).all(axis=1)  # a centre crop can cut a labelled point off
        out.append(np.concatenate([xy, (v * inside)[:, None]], axis=1))
    return np.asarray(out, np.float32).reshape(len(out), -1, 3)
