"""Object-detection annotations: PASCAL VOC XML, COCO JSON and YOLO txt read into one form.

Every reader returns a `DetectionSet`: class names, and per usable image its path, its size as
decoded (`load_rgb`, EXIF rotation applied: the pixels training and validation see) and its
boxes as float pixels `(x1, y1, x2, y2)` with class indices into the class names. Coordinates are
kept as the file gives them, converted only between layouts (COCO `[x, y, w, h]` -> corners;
YOLO's normalized centre and size times the image size): VOC's 1-based corners are not shifted,
as the TF Object Detection API and most tools read them.

What cannot be used is skipped with the reason listed (`Skipped`, as `data.index` lists
unreadable images), never fatal unless nothing is left:
- a box with x2 <= x1 or y2 <= y1, a coordinate that is not a number, or one further than
  OUTSIDE_TOLERANCE outside the image (a box within it is clipped to the image: labelling tools
  often put the edge one pixel past it);
- a box of a class not in the class list (`classes=` given, or an id outside the COCO categories
  or the YOLO names): the box is left out and its object becomes background;
- an image that is missing, cannot be decoded, whose size disagrees with the annotation's, whose
  name leaves the image folder, or whose boxes were all bad (an image that had objects but none
  usable would teach the model that they are background). An image annotated with no objects at
  all is kept: it is a negative example.

VOC `difficult` and COCO `iscrowd` boxes are kept with flags: `ignore` (neither a positive to
find nor a false positive when found, as in both benchmarks) and `crowd` (COCO: one region many
detections may match, IoU over the detection's area). XML is parsed with `safe_xml` (no DTDs).

No TensorFlow here: `edgecv validate --annotations` reads the same files on a device.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from edgecv.data.images import IMAGE_EXTENSIONS, ImageDecodeError, load_rgb
from edgecv.data.index import DataIndex, Sample, Skipped, stratified_split
from edgecv.data.safe_xml import UnsafeXML, parse_file
from edgecv.errors import DataError
from edgecv.data.keypoints import crop_transform

OUTSIDE_TOLERANCE = 0.01  # of the image side (at least 1 px): further outside than this, a box is bad
FORMATS = ("voc", "coco", "yolo")
NO_BOXES = "(no boxes)"  # the split stratum of negative images


@dataclass(frozen=True, eq=False)
class ImageBoxes:
    """One image's ground truth. Arrays have one row per box."""

    path: str
    width: int
    height: int
    boxes: np.ndarray    # [K, 4] float64 x1, y1, x2, y2 in pixels of the decoded image
    classes: np.ndarray  # [K] int64 index into the set's class names
    ignore: np.ndarray   # [K] bool: VOC difficult / COCO crowd: not counted, not penalised
    crowd: np.ndarray    # [K] bool: COCO iscrowd (implies ignore)

    def __len__(self) -> int:
        return len(self.boxes)

    def target(self) -> dict:
        """The JSON-able form a `Sample.target` carries (build index, cache)."""
        return {"wh": [self.width, self.height], "boxes": np.round(self.boxes, 4).tolist(),
                "classes": self.classes.tolist(), "ignore": self.ignore.astype(int).tolist(),
                "crowd": self.crowd.astype(int).tolist()}

    @classmethod
    def from_sample(cls, sample: Sample) -> "ImageBoxes":
        t = sample.target
        return make_image_boxes(sample.path, t["wh"], t["boxes"], t["classes"], t.get("ignore"), t.get("crowd"))


def make_image_boxes(path: str, wh: Sequence[int], boxes, classes, ignore=None, crowd=None) -> ImageBoxes:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    k = len(boxes)
    crowd = np.zeros(k, bool) if crowd is None else np.asarray(crowd, bool).reshape(k)
    ignore = np.zeros(k, bool) if ignore is None else np.asarray(ignore, bool).reshape(k)
    return ImageBoxes(str(path), int(wh[0]), int(wh[1]), boxes, np.asarray(classes, np.int64).reshape(k),
                      ignore | crowd, crowd)


@dataclass
class DetectionSet:
    """What a reader found: class names, usable images (in a stable order), what was skipped."""

    class_names: list[str]
    images: list[ImageBoxes]
    skipped: list[Skipped] = field(default_factory=list)
    format: str = ""

    @property
    def num_boxes(self) -> int:
        return sum(len(im) for im in self.images)

    def samples(self) -> list[Sample]:
        """Images as `data.index` samples: `label` is the image's most frequent class (the split
        and calibration stratum; None for an image without boxes), `target` its boxes."""
        return [Sample(im.path, _dominant_class(im), im.target()) for im in self.images]

    def to_index(self, val_fraction: float, seed: int) -> DataIndex:
        """A seeded split stratified by each image's most frequent class (negatives as their own
        stratum), as classification splits by class."""
        by_path = {s.path: s for s in self.samples()}
        strata: dict[str, list[Path]] = {}
        for s in by_path.values():
            strata.setdefault(NO_BOXES if s.label is None else self.class_names[s.label], []).append(Path(s.path))
        train, val = stratified_split(strata, val_fraction, seed)
        return DataIndex({"class_names": list(self.class_names), "annotation_format": self.format},
                         [by_path[s.path] for s in train], [by_path[s.path] for s in val], list(self.skipped))


def _dominant_class(im: ImageBoxes) -> Optional[int]:
    counted = im.classes[~im.ignore] if (~im.ignore).any() else im.classes
    return int(Counter(counted.tolist()).most_common(1)[0][0]) if len(counted) else None


# ---- checks shared by the readers ----------------------------------------------------------------

def check_box(box: Sequence[float], width: int, height: int) -> tuple[Optional[np.ndarray], Optional[str]]:
    """(the box clipped to the image, None) or (None, why it cannot be used)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return None, "a coordinate is not a number"
    if x2 <= x1:
        return None, f"x2 {x2:g} <= x1 {x1:g} (empty or inverted box)"
    if y2 <= y1:
        return None, f"y2 {y2:g} <= y1 {y1:g} (empty or inverted box)"
    tx, ty = max(1.0, OUTSIDE_TOLERANCE * width), max(1.0, OUTSIDE_TOLERANCE * height)
    if x1 < -tx or y1 < -ty or x2 > width + tx or y2 > height + ty:
        return None, f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) is outside the {width}x{height} image"
    return np.clip([x1, y1, x2, y2], 0, [width, height, width, height]).astype(np.float64), None


def _inside(folder: Path, name: str) -> tuple[Optional[Path], Optional[str]]:
    """The image a file names, which must stay inside the image folder."""
    p = Path(name)
    if not name or p.is_absolute() or ".." in p.parts:
        return None, f"image name {name!r} is not a path inside the image folder"
    return folder / p, None


def _find_image(folder: Path, name: str) -> tuple[Optional[Path], Optional[str]]:
    """`name` in the folder, or (VOC files written without the extension) the image of that stem."""
    path, why = _inside(folder, name)
    if why or path.is_file():
        return path, why
    if not path.suffix:
        for ext in sorted(IMAGE_EXTENSIONS):
            for cand in (path.with_name(path.name + ext), path.with_name(path.name + ext.upper())):
                if cand.is_file():
                    return cand, None
    return path, None


@dataclass
class _Pending:
    """An annotated image before its file is checked."""

    path: Path
    where: str                       # the annotation it comes from, for skip reasons
    boxes: list                      # raw boxes, in the layout `to_xyxy` reads
    classes: list[int]
    ignore: list[bool]
    crowd: list[bool]
    size: Optional[tuple[int, int]]  # (width, height) the annotation states, if any
    had_objects: bool = False        # any object was annotated (even ones skipped already)
    refs: list[str] = field(default_factory=list)  # per box: where it is in the file


def _decode_sizes(paths: Sequence[Path], workers: int = 4) -> list[Union[tuple[int, int], str]]:
    """(width, height) of each image after a full decode, or why it cannot be used."""

    def size(p: Path):
        if not p.is_file():
            return "image not found"
        try:
            rgb = load_rgb(p)
        except ImageDecodeError as e:
            return str(e)
        return rgb.shape[1], rgb.shape[0]

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(size, paths))


def _finish(pending: list[_Pending], to_xyxy, class_names: list[str], skipped: list[Skipped], fmt: str,
            source: Path) -> DetectionSet:
    """Decode every image, convert and check every box, and keep what is usable."""
    seen: set[str] = set()
    unique = []
    for p in pending:
        key = os.path.normpath(str(p.path))
        if key in seen:
            skipped.append(Skipped(str(p.path), f"{p.where}: image annotated again (already read from an earlier "
                                                "annotation); this one is left out"))
            continue
        seen.add(key)
        unique.append(p)
    images = []
    for p, size in zip(unique, _decode_sizes([p.path for p in unique])):
        if isinstance(size, str):
            skipped.append(Skipped(str(p.path), f"{p.where}: {size}"))
            continue
        w, h = size
        if p.size is not None and tuple(p.size) != (w, h):
            skipped.append(Skipped(str(p.path), f"{p.where}: annotated as {p.size[0]}x{p.size[1]} but the image is "
                                                f"{w}x{h}: boxes would land in the wrong place"))
            continue
        keep_boxes, keep = [], []
        for i, raw in enumerate(p.boxes):
            box, why = check_box(to_xyxy(raw, w, h), w, h)
            if why:
                skipped.append(Skipped(f"{p.path}#{p.refs[i]}", f"{p.where}, {p.refs[i]}: {why}"))
            else:
                keep_boxes.append(box)
                keep.append(i)
        if p.had_objects and not keep:
            skipped.append(Skipped(str(p.path), f"{p.where}: no usable box left (see the boxes skipped above); the "
                                                "image is left out rather than taught as background"))
            continue
        images.append(make_image_boxes(str(p.path), (w, h), np.array(keep_boxes).reshape(-1, 4),
                                       [p.classes[i] for i in keep], [p.ignore[i] for i in keep],
                                       [p.crowd[i] for i in keep]))
    if not images:
        first = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:3])
        raise DataError(f"{source}: no usable annotated image ({len(skipped)} skipped{': ' + first if first else ''})")
    return DetectionSet(list(class_names), images, skipped, fmt)


def _class_index(names: Optional[Sequence[str]]) -> Optional[dict[str, int]]:
    if names is None:
        return None
    names = [str(n) for n in names]
    dup = sorted(n for n, c in Counter(names).items() if c > 1)
    if dup:
        raise DataError(f"class names repeat: {', '.join(dup)}; each class must be named once")
    if not names:
        raise DataError("empty class list: name at least one class")
    return {n: i for i, n in enumerate(names)}


def _require_dir(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{what} {path} does not exist or is not a folder")
    return path


# ---- PASCAL VOC ----------------------------------------------------------------------------------

def _text(el, tag: str) -> Optional[str]:
    child = el.find(tag)
    return None if child is None or child.text is None else child.text.strip()


def _number(el, tag: str) -> float:
    t, short = _text(el, tag), tag.split("/")[-1]
    if t is None:
        raise ValueError(f"no <{short}>")
    try:
        return float(t)
    except ValueError:
        raise ValueError(f"<{short}> is {t!r}, not a number") from None


def read_voc(images: Path, annotations: Path, classes: Optional[Sequence[str]] = None) -> DetectionSet:
    """A folder of PASCAL VOC XML files (one per image: `<filename>`, `<size>`, `<object>`s with
    `<name>`, `<bndbox>` xmin/ymin/xmax/ymax and optional `<difficult>`). Without `classes`, the
    class names are the names found, sorted."""
    images, annotations = _require_dir(images, "image folder"), _require_dir(annotations, "annotation folder")
    files = sorted(p for p in annotations.iterdir() if p.suffix.lower() == ".xml" and p.is_file())
    if not files:
        raise DataError(f"annotation folder {annotations} has no .xml files (PASCAL VOC: one XML file per image)")
    skipped: list[Skipped] = []
    parsed = []  # (xml, root)
    for f in files:
        try:
            root = parse_file(f)
        except (UnsafeXML, ValueError, OSError) as e:
            skipped.append(Skipped(str(f), f"{f.name}: {e}"))
            continue
        if root.tag != "annotation":
            skipped.append(Skipped(str(f), f"{f.name}: root element <{root.tag}>, expected <annotation> (PASCAL VOC)"))
            continue
        parsed.append((f, root))
    found = sorted({_text(o, "name") or "" for _, r in parsed for o in r.findall("object")} - {""})
    index = _class_index(classes if classes is not None else found)
    pending = []
    for f, root in parsed:
        name = _text(root, "filename") or f.stem
        path, why = _find_image(images, name)
        if why:
            skipped.append(Skipped(str(f), f"{f.name}: {why}"))
            continue
        size = None
        if root.find("size") is not None:
            try:
                size = (int(_number(root, "size/width")), int(_number(root, "size/height")))
            except ValueError:
                size = None  # a broken <size> is not needed: the image's own size is used
            if size is not None and 0 in size:
                size = None  # some tools write 0x0 when they did not read the image
        p = _Pending(path, f.name, [], [], [], [], size)
        for i, obj in enumerate(root.findall("object"), start=1):
            p.had_objects = True
            label = _text(obj, "name") or ""
            ref = f"object {i} ({label or 'no name'})"
            if label not in index:
                skipped.append(Skipped(f"{path}#{ref}", f"{f.name}, {ref}: unknown class {label!r} "
                                                        f"(classes: {', '.join(index)})"))
                continue
            try:
                box = [_number(obj, f"bndbox/{k}") for k in ("xmin", "ymin", "xmax", "ymax")]
            except ValueError as e:
                skipped.append(Skipped(f"{path}#{ref}", f"{f.name}, {ref}: {e}"))
                continue
            difficult = _text(obj, "difficult") in ("1", "true")
            p.boxes.append(box)
            p.classes.append(index[label])
            p.ignore.append(difficult)
            p.crowd.append(False)
            p.refs.append(ref)
        pending.append(p)
    return _finish(pending, lambda b, w, h: b, list(index), skipped, "voc", annotations)


# ---- COCO ----------------------------------------------------------------------------------------

def read_coco(images: Path, json_path: Path, classes: Optional[Sequence[str]] = None) -> DetectionSet:
    """A COCO detection file: `images` (id, file_name, width, height), `annotations` (image_id,
    category_id, bbox [x, y, w, h] in pixels, iscrowd), `categories` (id, name). Class indices
    follow the categories sorted by id (or `classes`, by name); images listed without
    annotations are negatives. `segmentation` is not read (boxes only)."""
    images = _require_dir(images, "image folder")
    json_path = Path(json_path)
    if not json_path.is_file():
        raise DataError(f"annotation file {json_path} does not exist")
    try:
        coco = json.loads(json_path.read_text(encoding="utf-8"))
        image_list, anns, cats = coco["images"], coco.get("annotations", []), coco["categories"]
        cat_names = {int(c["id"]): str(c["name"]) for c in cats}
        image_rows = {im["id"]: im for im in image_list}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise DataError(f"{json_path}: not a COCO detection file ({type(e).__name__}: {e}); expected `images` "
                        "(id, file_name), `annotations` (image_id, category_id, bbox) and `categories` (id, name)") \
            from None
    if len(image_rows) != len(image_list):
        raise DataError(f"{json_path}: image ids repeat; each entry of `images` needs its own id")
    index = _class_index(classes if classes is not None else [cat_names[k] for k in sorted(cat_names)])
    skipped: list[Skipped] = []
    pending: dict = {}
    for image_id, im in image_rows.items():
        name = str(im.get("file_name", ""))
        path, why = _inside(images, name)
        if why:
            skipped.append(Skipped(f"{json_path}#image {image_id}", f"image {image_id}: {why}"))
            continue
        size = (im["width"], im["height"]) if isinstance(im.get("width"), int) and isinstance(im.get("height"), int) \
            else None
        pending[image_id] = _Pending(path, f"{json_path.name} image {image_id}", [], [], [], [], size)
    for n, a in enumerate(anns):
        aid = a.get("id", f"#{n}") if isinstance(a, dict) else f"#{n}"
        ref = f"annotation {aid}"
        if not isinstance(a, dict) or a.get("image_id") not in image_rows:
            skipped.append(Skipped(f"{json_path}#{ref}", f"{ref}: unknown image_id "
                                                         f"{a.get('image_id') if isinstance(a, dict) else None!r}"))
            continue
        p = pending.get(a["image_id"])
        if p is None:
            continue  # its image is skipped already
        p.had_objects = True
        cat = a.get("category_id")
        label = cat_names.get(cat) if isinstance(cat, int) else None
        if label is None or label not in index:
            known = ", ".join(index)
            why = f"unknown category_id {cat!r}" if label is None else f"class {label!r} is not in the classes ({known})"
            skipped.append(Skipped(f"{p.path}#{ref}", f"{p.where}, {ref}: {why}"))
            continue
        bbox = a.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
            skipped.append(Skipped(f"{p.path}#{ref}", f"{p.where}, {ref}: bbox {bbox!r} is not [x, y, width, height]"))
            continue
        crowd = bool(a.get("iscrowd", 0))
        p.boxes.append(bbox)
        p.classes.append(index[label])
        p.ignore.append(crowd)
        p.crowd.append(crowd)
        p.refs.append(ref)
    to_xyxy = lambda b, w, h: (b[0], b[1], b[0] + b[2], b[1] + b[3])  # noqa: E731
    return _finish(list(pending.values()), to_xyxy, list(index), skipped, "coco", json_path)


# ---- YOLO ----------------------------------------------------------------------------------------

def read_names(path: Path) -> list[str]:
    """Class names, one a line (YOLO `classes.txt` / `obj.names`); blank lines are left out."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"class names file {path} does not exist (one class name a line)")
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e})") from None
    _class_index(names)
    return names


def read_yolo(images: Path, labels: Path, classes: Union[Sequence[str], Path]) -> DetectionSet:
    """YOLO txt: for each image `<stem>.txt` in the label folder, one line per box
    `class x_centre y_centre width height`, the last four in [0, 1] of the image. An image with
    no label file, or an empty one, is a negative; a label file without its image is skipped."""
    images, labels = _require_dir(images, "image folder"), _require_dir(labels, "label folder")
    names = read_names(classes) if isinstance(classes, (str, Path)) else list(classes)
    _class_index(names)
    image_files = {p.stem: p for p in sorted(images.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS}
    label_files = {p.stem: p for p in sorted(labels.iterdir()) if p.suffix.lower() == ".txt"
                   and p.name not in ("classes.txt",)}
    if not image_files:
        raise DataError(f"image folder {images} has no images")
    skipped = [Skipped(str(f), f"{f.name}: no image {f.stem}.* in {images}") for s, f in label_files.items()
               if s not in image_files]
    pending = []
    for stem, img in image_files.items():
        p = _Pending(img, label_files[stem].name if stem in label_files else f"{stem} (no label file)",
                     [], [], [], [], None)
        if stem in label_files:
            try:
                lines = label_files[stem].read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as e:
                skipped.append(Skipped(str(img), f"{label_files[stem].name}: cannot be read ({e})"))
                continue
            for n, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                p.had_objects = True
                ref = f"line {n}"
                parts = line.split()
                try:
                    if len(parts) != 5:
                        raise ValueError(f"{len(parts)} values, expected 5 (class x_centre y_centre width height)")
                    cls = float(parts[0])
                    if cls != int(cls):
                        raise ValueError(f"class {parts[0]!r} is not an integer")
                    vals = [float(v) for v in parts[1:]]
                except ValueError as e:
                    skipped.append(Skipped(f"{img}#{ref}", f"{p.where}, {ref}: {e}"))
                    continue
                if not 0 <= int(cls) < len(names):
                    skipped.append(Skipped(f"{img}#{ref}", f"{p.where}, {ref}: unknown class {int(cls)} "
                                                           f"(the names list has {len(names)}: 0..{len(names) - 1})"))
                    continue
                p.boxes.append(vals)
                p.classes.append(int(cls))
                p.ignore.append(False)
                p.crowd.append(False)
                p.refs.append(ref)
        pending.append(p)

    def to_xyxy(b, w, h):
        cx, cy, bw, bh = b
        return ((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h)

    return _finish(pending, to_xyxy, names, skipped, "yolo", labels)


def read_detection(images: Path, annotations: Path, classes: Union[None, Sequence[str], Path] = None,
                   format: Optional[str] = None) -> DetectionSet:
    """Any of the three by `format`, or by what `annotations` is: a .json file is COCO; a folder
    of .xml files VOC; a folder of .txt files YOLO (`classes`: the names or a names file,
    default `classes.txt` in that folder)."""
    annotations = Path(annotations)
    if format is None:
        if annotations.is_file() and annotations.suffix.lower() == ".json":
            format = "coco"
        elif annotations.is_dir() and any(p.suffix.lower() == ".xml" for p in annotations.iterdir()):
            format = "voc"
        elif annotations.is_dir() and any(p.suffix.lower() == ".txt" for p in annotations.iterdir()):
            format = "yolo"
        else:
            raise DataError(f"annotations {annotations}: give a COCO .json file, a folder of PASCAL VOC .xml files "
                            "or a folder of YOLO .txt files")
    if format not in FORMATS:
        raise DataError(f"annotation format {format!r}: use one of {', '.join(FORMATS)}")
    if isinstance(classes, (str, Path)):
        classes = read_names(Path(classes))
    if format == "voc":
        return read_voc(images, annotations, classes)
    if format == "coco":
        return read_coco(images, annotations, classes)
    if classes is None:
        classes = read_names(annotations / "classes.txt")
    return read_yolo(images, annotations, classes)



# ---- between image pixels and the model input ----------------------------------------------------

def boxes_to_input(boxes: np.ndarray, wh: Sequence[int], size: tuple[int, int], policy: str) -> np.ndarray:
    """Boxes [K, 4] x1, y1, x2, y2 in pixels of an image of size wh = (w, h) -> the same boxes in
    [0, 1] of the model input of `size` (height, width) after the recipe's resize policy (stretch,
    letterbox `pad`, `center_crop`), as `data.keypoints.crop_transform` maps points. A centre crop
    can cut a box: clip it (and drop what becomes empty) where training needs it."""
    scale, offset = crop_transform(wh, size, policy)
    rel = np.asarray(boxes, np.float64).reshape(-1, 4) / np.tile(np.asarray(wh, np.float64), 2)
    return rel * np.tile(scale, 2) + np.tile(offset, 2)


def boxes_from_input(boxes: np.ndarray, wh: Sequence[int], size: tuple[int, int], policy: str) -> np.ndarray:
    """The inverse of `boxes_to_input`: boxes in [0, 1] of the model input -> pixels of the image,
    clipped to it (a letterboxed model may put a box edge in the padding)."""
    scale, offset = crop_transform(wh, size, policy)
    w, h = float(wh[0]), float(wh[1])
    rel = (np.asarray(boxes, np.float64).reshape(-1, 4) - np.tile(offset, 2)) / np.tile(scale, 2)
    return np.clip(rel * [w, h, w, h], 0, [w, h, w, h])
