"""Semantic-segmentation labels: a label map per image, class names from a sidecar file.

Layout: an image folder and a label folder, paired by file stem (`images/a.jpg` <-> `labels/a.png`),
and a class file, one class a line in index order (`classes.txt`, as CamVid's). Label maps are:
- index maps (default): a PNG whose pixel values are class indices, one byte (mode L, or P with a
  palette, as PASCAL VOC's: the palette index is the class) or 16 bits for more than 256 classes;
- colour maps: RGB images where each class has a colour. The class file then gives it on the
  class's line, `road 128 64 128`; a line named `ignore` gives a colour that means "not labelled".
Pixels equal to the ignore index (255 by default) are not labelled: left out of every metric.

An image is skipped with the reason (as `data.index` lists unreadable images) when its label map
is missing or unreadable, its size differs from the image's, it holds a value that is neither a
class nor the ignore index (or, for colour maps, a colour the class file does not name), or it has
no labelled pixel; a label map without its image is listed too.
No TensorFlow here: devices read labels to validate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image

from edgecv.data.images import IMAGE_EXTENSIONS, ImageDecodeError, load_rgb
from edgecv.data.index import DataIndex, Sample, Skipped, stratified_split
from edgecv.errors import DataError

IGNORE_INDEX = 255
IGNORE_NAME = "ignore"  # a class file line with this name gives a colour that is not labelled
LABEL_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".gif")  # lossless: a JPEG label map would smear classes


@dataclass(frozen=True)
class SegmentationClasses:
    names: list[str]
    colours: Optional[list[tuple[int, int, int]]] = None  # per class, for colour label maps
    ignore_colours: list[tuple[int, int, int]] = field(default_factory=list)


def read_classes(path: Path) -> SegmentationClasses:
    """`name` per line (index maps), or `name R G B` on every line (colour maps)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"class file {path} does not exist (one class name a line, in label-index order)")
    names, colours, ignore = [], [], []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e})") from None
    for n, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) not in (1, 4):
            raise DataError(f"{path} line {n}: {line.strip()!r}; expected `name` or `name R G B`")
        colour = None
        if len(parts) == 4:
            try:
                colour = tuple(int(v) for v in parts[1:])
            except ValueError:
                raise DataError(f"{path} line {n}: colour {' '.join(parts[1:])!r} is not three integers") from None
            if not all(0 <= v <= 255 for v in colour):
                raise DataError(f"{path} line {n}: colour {colour} has a value outside 0..255")
        if parts[0] == IGNORE_NAME:
            if colour is None:
                raise DataError(f"{path} line {n}: `{IGNORE_NAME}` names the colour of unlabelled pixels: give R G B")
            ignore.append(colour)
            continue
        names.append(parts[0])
        colours.append(colour)
    if not names:
        raise DataError(f"class file {path} names no class")
    if len(set(names)) != len(names):
        raise DataError(f"{path}: a class name repeats; each class is named once")
    given = [c is not None for c in colours]
    if any(given) and not all(given):
        raise DataError(f"{path}: give a colour on every line (colour label maps) or on none (index label maps)")
    if all(given):
        if len(set(colours) | set(ignore)) != len(colours) + len(set(ignore)):
            raise DataError(f"{path}: two classes share a colour")
        return SegmentationClasses(names, colours, ignore)
    return SegmentationClasses(names)


def read_label(path: Path, classes: SegmentationClasses, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """[H, W] class indices (ignore_index where not labelled); ValueError with the reason."""
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            arr = np.asarray(img.convert("RGB") if classes.colours and mode != "RGB" else img)
    except Exception as e:  # Pillow raises many types for corrupt files
        raise ValueError(f"label map cannot be read ({type(e).__name__}: {e})") from None
    if classes.colours:
        return _colours_to_index(arr, classes, ignore_index)
    if arr.ndim != 2:
        raise ValueError(f"label map is {mode} (colour): an index map has one value per pixel; for colour label "
                         "maps give each class's `R G B` in the class file")
    labels = arr.astype(np.int64)
    bad = np.setdiff1d(np.unique(labels), np.r_[np.arange(len(classes.names)), ignore_index])
    if len(bad):
        shown = ", ".join(str(int(v)) for v in bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise ValueError(f"label values {shown} are neither a class (0..{len(classes.names) - 1}) nor the ignore "
                         f"index {ignore_index}")
    return labels.astype(np.uint8 if max(len(classes.names) - 1, ignore_index) < 256 else np.int32)


def _colours_to_index(rgb: np.ndarray, classes: SegmentationClasses, ignore_index: int) -> np.ndarray:
    packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    keys = np.array([(r << 16) | (g << 8) | b for r, g, b in classes.colours]
                    + [(r << 16) | (g << 8) | b for r, g, b in classes.ignore_colours], np.int64)
    values = np.r_[np.arange(len(classes.colours)), np.full(len(classes.ignore_colours), ignore_index)]
    order = np.argsort(keys)
    pos = np.clip(np.searchsorted(keys[order], packed), 0, len(keys) - 1)
    found = keys[order][pos] == packed
    if not found.all():
        unknown = np.unique(packed[~found])[:3]
        shown = ", ".join(f"({v >> 16}, {(v >> 8) & 255}, {v & 255})" for v in unknown)
        raise ValueError(f"colours {shown} are not in the class file (add them to a class, or as `{IGNORE_NAME} R G B`)")
    return values[order][pos].astype(np.uint8 if max(len(classes.colours) - 1, ignore_index) < 256 else np.int32)


@dataclass
class SegmentationSet:
    class_names: list[str]
    samples: list[Sample]  # target: {"label": label map path, "wh": [w, h]}
    skipped: list[Skipped]
    ignore_index: int
    classes: SegmentationClasses

    def load_label(self, sample: Sample) -> np.ndarray:
        return read_label(Path(sample.target["label"]), self.classes, self.ignore_index)

    def to_index(self, val_fraction: float, seed: int) -> DataIndex:
        """A seeded random split (one stratum: an image holds many classes)."""
        by_path = {s.path: s for s in self.samples}
        train, val = stratified_split({"all": [Path(p) for p in by_path]}, val_fraction, seed)
        return DataIndex({"class_names": list(self.class_names), "ignore_index": self.ignore_index},
                         [by_path[s.path] for s in train], [by_path[s.path] for s in val], list(self.skipped))


def read_segmentation(images: Path, labels: Path, classes: Union[Path, Sequence[str], SegmentationClasses],
                      ignore_index: int = IGNORE_INDEX) -> SegmentationSet:
    """Pair images with label maps by stem and check every pair (see the module docstring)."""
    images, labels = Path(images), Path(labels)
    for folder, what in ((images, "image folder"), (labels, "label folder")):
        if not folder.is_dir():
            raise DataError(f"{what} {folder} does not exist or is not a folder")
    if isinstance(classes, SegmentationClasses):
        cls = classes
    elif isinstance(classes, (str, Path)):
        cls = read_classes(Path(classes))
    else:
        cls = SegmentationClasses([str(c) for c in classes])
    if ignore_index < len(cls.names) and ignore_index >= 0:
        raise DataError(f"ignore index {ignore_index} is also class {cls.names[ignore_index]!r}: choose an index "
                        f"outside 0..{len(cls.names) - 1} (255 by default)")
    image_files = {p.stem: p for p in sorted(images.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS}
    label_files = {p.stem: p for p in sorted(labels.iterdir()) if p.suffix.lower() in LABEL_EXTENSIONS}
    skipped = [Skipped(str(p), f"label map without an image {stem}.* in {images}")
               for stem, p in label_files.items() if stem not in image_files]
    samples = []
    for stem, img in image_files.items():
        lab = label_files.get(stem)
        if lab is None:
            skipped.append(Skipped(str(img), f"no label map {stem}.png in {labels}"))
            continue
        try:
            rgb = load_rgb(img)
            label = read_label(lab, cls, ignore_index)
        except ImageDecodeError as e:
            skipped.append(Skipped(str(img), str(e)))
            continue
        except ValueError as e:
            skipped.append(Skipped(str(lab), str(e)))
            continue
        h, w = rgb.shape[:2]
        if label.shape != (h, w):
            skipped.append(Skipped(str(lab), f"label map is {label.shape[1]}x{label.shape[0]} but the image is {w}x{h}"))
            continue
        if (label == ignore_index).all():
            skipped.append(Skipped(str(lab), "no labelled pixel (all are the ignore index)"))
            continue
        samples.append(Sample(str(img), None, {"label": str(lab), "wh": [w, h]}))
    if not samples:
        first = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:3])
        raise DataError(f"no usable image with a label map in {images} and {labels} ({len(skipped)} skipped"
                        f"{': ' + first if first else ''})")
    return SegmentationSet(list(cls.names), samples, skipped, ignore_index, cls)
