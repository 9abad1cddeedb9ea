"""Image decoding, the dataset index, bad images, splits and calibration provenance."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgecv.data.calibration import files_sha256, select_calibration, stratified_sample
from edgecv.data.images import ImageDecodeError, load_rgb, resize
from edgecv.data.index import build_index, stratified_split
from edgecv.errors import ConfigError, DataError
from synthetic import make_image_folder


class Data:
    def __init__(self, **kw):
        self.root, self.train, self.val, self.val_fraction, self.seed = None, None, None, 0.25, 0
        self.group_by = None  # the recipe's data.group_by: no grouping unless a test sets one
        self.__dict__.update(kw)


def resolve(p):
    return Path(p)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16", "LA", "1"])
def test_every_image_mode_decodes_to_rgb_uint8(tmp_path, mode):
    img = Image.new("RGB", (20, 10), (200, 100, 50))
    if mode == "I;16":
        img = Image.fromarray((np.ones((10, 20)) * 40000).astype(np.uint16))
    else:
        img = img.convert(mode)
    ext = "jpg" if mode == "CMYK" else "png" if mode != "1" else "bmp"
    path = tmp_path / f"x.{ext}"
    img.save(path)
    arr = load_rgb(path)
    assert arr.shape == (10, 20, 3) and arr.dtype == np.uint8
    if mode == "I;16":  # 16-bit scaled to 8 bits, not clipped to white
        assert 150 < arr[0, 0, 0] < 160


def test_transparent_pixels_composite_onto_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent black
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    assert (load_rgb(tmp_path / "t.png") == 255).all()


def test_corrupt_images_raise_with_a_reason(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buf, "JPEG")
    (tmp_path / "truncated.jpg").write_bytes(buf.getvalue()[:200])
    with pytest.raises(ImageDecodeError, match="empty file"):
        load_rgb(tmp_path / "empty.jpg")
    for name in ("text.jpg", "truncated.jpg"):
        with pytest.raises(ImageDecodeError):
            load_rgb(tmp_path / name)


@pytest.mark.parametrize("policy,expected_corner", [("resize", 255), ("center_crop", 255), ("pad", 0)])
def test_resize_policies(policy, expected_corner):
    wide = np.full((50, 100, 3), 255, np.uint8)
    out = resize(wide, (32, 32), policy)
    assert out.shape == (32, 32, 3)
    assert out[0, 0, 0] == expected_corner  # pad letterboxes with black bars top and bottom


def test_index_skips_and_counts_unreadable_images(tmp_path):
    root = make_image_folder(tmp_path / "d", classes=2, per_class=6)
    (root / "class_0" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (root / "class_1" / "zero.png").write_bytes(b"")
    (root / "class_1" / "notes.txt").write_text("ignored: not an image extension")
    index = build_index(Data(root=root), resolve)
    assert len(index.train) + len(index.val) == 12
    assert sorted(Path(s.path).name for s in index.skipped) == ["broken.jpg", "zero.png"]
    assert all(s.reason for s in index.skipped)


def test_missing_root_and_empty_class_fail_before_training(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        build_index(Data(root=tmp_path / "nope"), resolve)
    root = make_image_folder(tmp_path / "d", classes=2, per_class=3)
    (root / "empty_class").mkdir()
    with pytest.raises(DataError, match="class `empty_class` has no readable images"):
        build_index(Data(root=root), resolve)


def test_explicit_train_val_must_share_classes(tmp_path):
    train = make_image_folder(tmp_path / "train", classes=3, per_class=2)
    val = make_image_folder(tmp_path / "val", classes=2, per_class=2)
    with pytest.raises(DataError, match="differ from the training classes"):
        build_index(Data(train=train, val=val), resolve)


def test_split_is_stratified_seeded_and_disjoint(tmp_path):
    files = {"a": [Path(f"a{i}") for i in range(20)], "b": [Path(f"b{i}") for i in range(8)]}
    train, val = stratified_split(files, 0.25, seed=1)
    assert sum(s.label == 0 for s in val) == 5 and sum(s.label == 1 for s in val) == 2
    assert not {s.path for s in train} & {s.path for s in val}
    assert (train, val) == stratified_split(files, 0.25, seed=1)
    assert val != stratified_split(files, 0.25, seed=2)[1]


class Calib:
    def __init__(self, size=6, seed=0, list=None):
        self.size, self.seed, self.list = size, seed, list


def test_calibration_comes_from_train_only_stratified_and_reproducible(tmp_path):
    root = make_image_folder(tmp_path / "d", classes=3, per_class=8)
    index = build_index(Data(root=root), resolve)
    calib = select_calibration(index, Calib(size=6), resolve)
    train_paths = {s.path for s in index.train}
    assert set(calib.paths) <= train_paths
    assert sorted(s.label for s in calib.samples) == [0, 0, 1, 1, 2, 2]
    assert calib.sha256 == select_calibration(index, Calib(size=6), resolve).sha256
    assert calib.paths != select_calibration(index, Calib(size=6, seed=5), resolve).paths
    # the hash covers the bytes: changing one calibration image changes it
    before = files_sha256(calib.paths)
    Path(calib.paths[0]).write_bytes(Path(calib.paths[1]).read_bytes())
    assert files_sha256(calib.paths) != before


def test_calibration_files_are_written(tmp_path):
    root = make_image_folder(tmp_path / "d", classes=2, per_class=5)
    index = build_index(Data(root=root), resolve)
    calib = select_calibration(index, Calib(size=4), resolve)
    calib.write(tmp_path / "out", relative_to=tmp_path)
    listed = (tmp_path / "out" / "calibration.txt").read_text().split()
    assert len(listed) == 4 and all(p.startswith("d/") for p in listed)
    assert calib.sha256 in (tmp_path / "out" / "calibration.json").read_text()


def test_pinned_calibration_list_rejects_validation_images(tmp_path):
    root = make_image_folder(tmp_path / "d", classes=2, per_class=5)
    index = build_index(Data(root=root), resolve)
    pinned = tmp_path / "calib.txt"
    pinned.write_text(f"{index.train[0].path}\n{index.train[1].path}\n")
    calib = select_calibration(index, Calib(list=pinned), resolve)
    assert calib.paths == [index.train[0].path, index.train[1].path]
    pinned.write_text(f"{index.val[0].path}\n")
    with pytest.raises(ConfigError, match="validation split"):
        select_calibration(index, Calib(list=pinned), resolve)


def test_stratified_sample_caps_at_available():
    from edgecv.data.index import Sample

    samples = [Sample(f"p{i}", i % 2) for i in range(5)]
    assert len(stratified_sample(samples, 100, 0)) == 5
