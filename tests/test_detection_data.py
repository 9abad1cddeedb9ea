"""Detection annotation readers: PASCAL VOC XML, COCO JSON, YOLO txt into one form; bad entries skipped
with their reason; XML parsed without DTDs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import shared_path
from edgecv.data.detection import ImageBoxes, read_coco, read_detection, read_voc, read_yolo
from edgecv.data.safe_xml import UnsafeXML, parse_bytes
from edgecv.errors import DataError


def _image(folder: Path, name: str, w: int = 100, h: int = 80) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(p)
    return p


def _voc(name: str, objects: list, size=(100, 80), filename_tag: bool = True) -> str:
    objs = "".join(
        f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>" for n, b, d in objects)
    fn = f"<filename>{name}</filename>" if filename_tag else ""
    sz = f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>" if size else ""
    return f"<annotation>{fn}{sz}{objs}</annotation>"


def _reasons(ds) -> list[str]:
    return [s.reason for s in ds.skipped]


# ---- real data ----------------------------------------------------------------------------------

def test_raccoon_voc_reads_every_box():
    images = shared_path("datasets", "raccoon", "images")
    ds = read_voc(images, shared_path("datasets", "raccoon", "annotations"))
    assert ds.class_names == ["raccoon"]
    assert len(ds.images) == 160 and ds.num_boxes == 173 and ds.skipped == []
    first = next(im for im in ds.images if im.path.endswith("raccoon-1.jpg"))
    assert (first.width, first.height) == (650, 417)
    np.testing.assert_array_equal(first.boxes, [[81, 88, 522, 408]])  # as the XML gives them
    assert first.classes.tolist() == [0] and not first.ignore.any()
    for im in ds.images:  # every box inside its image, non-empty
        assert (im.boxes[:, 2] > im.boxes[:, 0]).all() and (im.boxes[:, 3] > im.boxes[:, 1]).all()
        assert (im.boxes >= 0).all() and (im.boxes[:, [0, 2]] <= im.width).all()
        assert (im.boxes[:, [1, 3]] <= im.height).all()
    # the same set through auto-detection, and a seeded split that keeps every image once
    auto = read_detection(images, shared_path("datasets", "raccoon", "annotations"))
    assert auto.format == "voc" and auto.num_boxes == 173
    index = ds.to_index(0.2, seed=3)
    assert len(index.val) == 32 and len(index.train) == 128
    assert {s.path for s in index.train}.isdisjoint({s.path for s in index.val})
    assert index.info["class_names"] == ["raccoon"]
    back = ImageBoxes.from_sample(index.val[0])
    orig = next(im for im in ds.images if im.path == index.val[0].path)
    np.testing.assert_allclose(back.boxes, orig.boxes)
    assert index.to_json()["val"][0]["target"]["boxes"]  # JSON-able, as the build index stores it
    assert ds.to_index(0.2, seed=3).val == index.val  # seeded: the same split again


# ---- VOC bad entries ----------------------------------------------------------------------------

def test_voc_skips_each_bad_entry_with_its_reason(tmp_path):
    img, ann = tmp_path / "images", tmp_path / "ann"
    ann.mkdir()
    for n in ("good.jpg", "mixed.jpg", "allbad.jpg", "negative.jpg", "wrongsize.jpg", "noext.jpg"):
        _image(img, n)
    (img / "broken.jpg").write_bytes(b"not a jpeg")
    files = {
        "good.xml": _voc("good.jpg", [("cat", (10, 10, 50, 40), 0), ("dog", (0, 0, 100, 80), 1)]),
        "mixed.xml": _voc("mixed.jpg", [
            ("cat", (10, 10, 50, 40), 0),
            ("cat", (50, 10, 50, 40), 0),          # x2 == x1
            ("cat", (10, 40, 50, 30), 0),          # y2 < y1
            ("cat", (10, 10, 160, 40), 0),         # far outside the 100 px wide image
            ("cat", (-0.5, 10, 100.5, 40), 0),     # within the tolerance: clipped
            ("horse", (10, 10, 50, 40), 0),        # not in the classes
        ]),
        "allbad.xml": _voc("allbad.jpg", [("cat", (60, 10, 50, 40), 0)]),
        "negative.xml": _voc("negative.jpg", []),
        "missing.xml": _voc("missing.jpg", [("cat", (10, 10, 50, 40), 0)]),
        "broken.xml": _voc("broken.jpg", [("cat", (10, 10, 50, 40), 0)]),
        "wrongsize.xml": _voc("wrongsize.jpg", [("cat", (10, 10, 50, 40), 0)], size=(200, 80)),
        "noext.xml": _voc("noext", [("dog", (1, 2, 3, 4), 0)]),
        "escape.xml": _voc("../good.jpg", [("cat", (10, 10, 50, 40), 0)]),
        "malformed.xml": "<annotation><object></annotation>",
        "notvoc.xml": "<svg/>",
        "nonnumber.xml": _voc("good.jpg", [("cat", ("a", 10, 50, 40), 0)]),
        "bomb.xml": '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxx">]><annotation>&x;</annotation>',
    }
    for name, text in files.items():
        (ann / name).write_text(text)
    ds = read_voc(img, ann, classes=["cat", "dog"])
    by_name = {Path(im.path).name: im for im in ds.images}
    assert sorted(by_name) == ["good.jpg", "mixed.jpg", "negative.jpg", "noext.jpg"]
    good = by_name["good.jpg"]
    assert good.classes.tolist() == [0, 1] and good.ignore.tolist() == [False, True]  # difficult -> ignored
    mixed = by_name["mixed.jpg"]
    np.testing.assert_allclose(mixed.boxes, [[10, 10, 50, 40], [0, 10, 100, 40]])  # the tolerated one clipped
    assert len(by_name["negative.jpg"]) == 0  # annotated with no objects: a negative, kept
    reasons = "\n".join(_reasons(ds))
    for expected in ("x2 50 <= x1 50", "y2 30 <= y1 40", "is outside the 100x80 image", "unknown class 'horse'",
                     "no usable box left", "image not found", "annotated as 200x80 but the image is 100x80",
                     "not a path inside the image folder", "not well-formed XML", "expected <annotation>",
                     "<xmin> is 'a', not a number", "declares a DTD"):
        assert expected in reasons, expected
    assert any(s.path.endswith("broken.jpg") and "Error" in s.reason for s in ds.skipped)  # the decoder's reason
    # `nonnumber.xml` names good.jpg again: the second annotation of an image is left out, not merged
    assert "annotated again" in reasons
    # without a class list, the classes are the names found, sorted
    assert read_voc(img, ann).class_names == ["cat", "dog", "horse"]


def test_voc_nothing_usable_is_an_error(tmp_path):
    img, ann = tmp_path / "images", tmp_path / "ann"
    ann.mkdir()
    img.mkdir()
    (ann / "a.xml").write_text(_voc("a.jpg", [("cat", (1, 1, 5, 5), 0)]))
    with pytest.raises(DataError, match="no usable annotated image .*image not found"):
        read_voc(img, ann)
    with pytest.raises(DataError, match="no .xml files"):
        read_voc(img, img)
    with pytest.raises(DataError, match="does not exist"):
        read_voc(tmp_path / "nope", ann)


# ---- COCO ---------------------------------------------------------------------------------------

def test_coco_reads_boxes_and_skips_bad_ones(tmp_path):
    img = tmp_path / "images"
    for n in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        _image(img, n)
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80},
                   {"id": 2, "file_name": "b.jpg"},
                   {"id": 3, "file_name": "c.jpg", "width": 100, "height": 80},
                   {"id": 4, "file_name": "gone.jpg"},
                   {"id": 5, "file_name": "d.jpg", "width": 100, "height": 80}],
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 20, 30, 40], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 7, "bbox": [0, 0, 100, 80], "iscrowd": 1},
            {"id": 3, "image_id": 1, "category_id": 9, "bbox": [10, 20, 30, 40]},   # unknown category
            {"id": 4, "image_id": 1, "category_id": 3, "bbox": [10, 20, 0, 40]},    # zero width
            {"id": 5, "image_id": 1, "category_id": 3, "bbox": [10, 20, 30]},       # malformed bbox
            {"id": 6, "image_id": 99, "category_id": 3, "bbox": [10, 20, 30, 40]},  # unknown image
            {"id": 7, "image_id": 2, "category_id": 3, "bbox": [90, 70, 30, 30]},   # outside: b has none left
            {"id": 8, "image_id": 4, "category_id": 3, "bbox": [1, 1, 3, 3]},       # image missing
            {"id": 9, "image_id": 5, "category_id": 7, "bbox": [60, 10, 20, 20]},
        ],
    }
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(coco))
    ds = read_coco(img, path)
    assert ds.class_names == ["cat", "dog"]  # categories by id: 3, 7
    by_name = {Path(im.path).name: im for im in ds.images}
    assert sorted(by_name) == ["a.jpg", "c.jpg", "d.jpg"]  # c: listed without annotations, a negative
    a = by_name["a.jpg"]
    np.testing.assert_allclose(a.boxes, [[10, 20, 40, 60], [0, 0, 100, 80]])
    assert a.classes.tolist() == [0, 1] and a.crowd.tolist() == [False, True] and a.ignore.tolist() == [False, True]
    reasons = "\n".join(_reasons(ds))
    for expected in ("unknown category_id 9", "x2 10 <= x1 10", "is not [x, y, width, height]", "unknown image_id 99",
                     "is outside the 100x80 image", "no usable box left", "image not found"):
        assert expected in reasons, expected
    # a class list restricts and orders the classes by name
    only_dog = read_coco(img, path, classes=["dog"])
    assert only_dog.class_names == ["dog"]
    kept = {Path(im.path).name: im for im in only_dog.images}
    assert sorted(kept) == ["a.jpg", "c.jpg", "d.jpg"]
    assert kept["a.jpg"].crowd.tolist() == [True] and kept["d.jpg"].classes.tolist() == [0]
    assert "class 'cat' is not in the classes (dog)" in "\n".join(_reasons(only_dog))
    with pytest.raises(DataError, match="not a COCO detection file"):
        bad = tmp_path / "bad.json"
        bad.write_text('{"images": []}')
        read_coco(img, bad)


# ---- YOLO ---------------------------------------------------------------------------------------

def test_yolo_converts_normalized_centres_and_skips_bad_lines(tmp_path):
    img, lab = tmp_path / "images", tmp_path / "labels"
    lab.mkdir()
    for n in ("a.jpg", "b.png", "neg.jpg", "bad.jpg"):
        _image(img, n, w=200, h=100)
    (lab / "classes.txt").write_text("person\ncar\n")
    (lab / "a.txt").write_text("0 0.5 0.5 0.5 0.4\n1 0.25 0.25 0.1 0.2\n\n")
    (lab / "b.txt").write_text("1 0.5 0.5 1.0 1.0\n"        # the whole image
                               "0 0.5 0.5 0.1\n"            # four values
                               "5 0.5 0.5 0.1 0.1\n"        # class 5 of 2
                               "0.5 0.5 0.5 0.1 0.1\n"      # class not an integer
                               "0 x 0.5 0.1 0.1\n"          # not a number
                               "0 0.5 0.5 0 0.1\n"          # zero width
                               "0 1.5 0.5 0.2 0.2\n")       # outside
    (lab / "bad.txt").write_text("3 0.5 0.5 0.1 0.1\n")     # nothing usable: the image is left out
    (lab / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # no image
    ds = read_detection(img, lab)  # a folder of .txt: YOLO, names from its classes.txt
    assert ds.format == "yolo" and ds.class_names == ["person", "car"]
    by_name = {Path(im.path).name: im for im in ds.images}
    assert sorted(by_name) == ["a.jpg", "b.png", "neg.jpg"]
    np.testing.assert_allclose(by_name["a.jpg"].boxes, [[50, 30, 150, 70], [40, 15, 60, 35]])
    assert by_name["a.jpg"].classes.tolist() == [0, 1]
    np.testing.assert_allclose(by_name["b.png"].boxes, [[0, 0, 200, 100]])
    assert len(by_name["neg.jpg"]) == 0  # no label file: a negative
    reasons = "\n".join(_reasons(ds))
    for expected in ("4 values, expected 5", "unknown class 5 (the names list has 2: 0..1)", "class '0.5' is not an "
                     "integer", "could not convert string to float", "x2 100 <= x1 100", "is outside the 200x100 image",
                     "no usable box left", "orphan.txt: no image orphan.*"):
        assert expected in reasons, expected
    assert read_yolo(img, lab, ["person", "car"]).num_boxes == ds.num_boxes
    with pytest.raises(DataError, match="class names repeat: car"):
        read_yolo(img, lab, ["car", "car"])


# ---- safe XML -----------------------------------------------------------------------------------

@pytest.mark.parametrize("doc", [
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]><r>&b;</r>',
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
    b'<!DOCTYPE r SYSTEM "http://example.invalid/r.dtd"><r/>',
])
def test_xml_with_a_dtd_is_refused(doc):
    with pytest.raises(UnsafeXML, match="declares a DTD"):
        parse_bytes(doc)


def test_xml_without_dtd_parses_as_elementtree():
    root = parse_bytes(b'<annotation v="1"><name>a &amp; b</name><x>3</x></annotation>')
    assert root.tag == "annotation" and root.get("v") == "1" and root.find("name").text == "a & b"
    with pytest.raises(ValueError, match="undefined entity"):
        parse_bytes(b"<r>&nope;</r>")


# ---- image pixels <-> model input --------------------------------------------------------------

@pytest.mark.parametrize("policy", ["resize", "pad", "center_crop"])
def test_boxes_round_trip_through_the_input_frame(policy):
    from edgecv.data.detection import boxes_from_input, boxes_to_input

    boxes = np.array([[100, 50, 300, 250], [0, 0, 400, 300], [180, 120, 220, 180]], float)
    inp = boxes_to_input(boxes, (400, 300), (224, 224), policy)
    back = boxes_from_input(inp, (400, 300), (224, 224), policy)
    inside = (inp >= 0).all(axis=1) & (inp <= 1).all(axis=1)
    np.testing.assert_allclose(back[inside], boxes[inside], atol=1e-9)


def test_letterbox_and_crop_place_boxes_where_the_pixels_go():
    from edgecv.data.detection import boxes_to_input

    # a 400x200 image letterboxed into a square: the content fills the width and the middle half
    np.testing.assert_allclose(boxes_to_input([[0, 0, 400, 200]], (400, 200), (100, 100), "pad"),
                               [[0, 0.25, 1, 0.75]])
    # centre-cropped to a square: the middle 200 px of the width are kept
    np.testing.assert_allclose(boxes_to_input([[100, 0, 300, 200]], (400, 200), (100, 100), "center_crop"),
                               [[0, 0, 1, 1]])
    np.testing.assert_allclose(boxes_to_input([[0, 0, 400, 200]], (400, 200), (50, 100), "resize"), [[0, 0, 1, 1]])
