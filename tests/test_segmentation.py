"""Segmentation labels (index maps, colour maps, ignore index, class sidecar) and numpy metrics: IoU known
by construction on the real CamVid labels, a cross-check against scikit-learn, agreement, bootstrap
intervals and upsampling of score maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import shared_path
from edgecv.data.segmentation import read_classes, read_label, read_segmentation
from edgecv.errors import DataError
from edgecv.metrics.segmentation import (AgreementAccumulator, ConfusionAccumulator, confusion_matrix,
                                         miou_delta_interval, miou_interval, predicted_classes, resize_class_map,
                                         upsample_scores)

ROAD, PAVEMENT = 3, 4  # CamVid's classes.txt order


@pytest.fixture(scope="module")
def camvid_val():
    """(class names, [label maps]) of CamVid's 101 validation photos."""
    ds = read_segmentation(shared_path("datasets", "camvid", "val", "images"),
                           shared_path("datasets", "camvid", "val", "labels"),
                           shared_path("datasets", "camvid", "classes.txt"))
    return ds, [ds.load_label(s) for s in ds.samples]


def test_camvid_val_reads_every_pair(camvid_val):
    ds, labels = camvid_val
    assert len(ds.samples) == 101 and ds.skipped == []
    assert ds.class_names[:4] == ["sky", "building", "pole", "road"] and len(ds.class_names) == 11
    assert all(lab.shape == (360, 480) and lab.dtype == np.uint8 for lab in labels)
    values = np.unique(np.concatenate([np.unique(lab) for lab in labels]))
    assert set(values.tolist()) <= set(range(11)) | {255} and 255 in values
    index = ds.to_index(0.2, seed=0)
    assert len(index.train) + len(index.val) == 101 and index.info["ignore_index"] == 255


def test_iou_known_by_construction_on_camvid(camvid_val):
    ds, labels = camvid_val
    acc = ConfusionAccumulator(ds.class_names)
    road_everywhere = ConfusionAccumulator(ds.class_names)
    for lab in labels:
        pred = lab.copy()
        pred[lab == 255] = 0         # whatever is predicted on unlabelled pixels must not count
        pred[lab == ROAD] = PAVEMENT  # every road pixel called pavement
        acc.add(lab, pred)
        road_everywhere.add(lab, np.full(lab.shape, ROAD))
    counts = np.bincount(np.concatenate([lab[lab != 255] for lab in labels]), minlength=11)
    n_road, n_pav, n = counts[ROAD], counts[PAVEMENT], counts.sum()
    m = acc.metrics()
    assert m.per_class_iou["road"] == 0.0
    assert m.per_class_iou["pavement"] == pytest.approx(n_pav / (n_pav + n_road))
    others = [m.per_class_iou[c] for i, c in enumerate(ds.class_names) if i not in (ROAD, PAVEMENT)]
    assert others == [1.0] * 9
    assert m.miou == pytest.approx((9 + n_pav / (n_pav + n_road)) / 11)
    assert m.pixel_accuracy == pytest.approx(1 - n_road / n) and m.num_pixels == n
    assert m.per_class_dice["pavement"] == pytest.approx(2 * n_pav / (2 * n_pav + n_road))
    assert m.per_class_dice["road"] == 0.0
    # "road everywhere" (issue 25: 2.4 % on CamVid's test split): road's share of the pixels, over 11
    r = road_everywhere.metrics()
    assert r.miou == pytest.approx(n_road / n / 11)
    assert 0.015 < r.miou < 0.035 and r.pixel_accuracy == pytest.approx(n_road / n)


def test_miou_matches_scikit_learn(camvid_val):
    sk = pytest.importorskip("sklearn.metrics", reason="scikit-learn (the `test` extra) is not installed")
    ds, labels = camvid_val
    rng = np.random.default_rng(0)
    acc = ConfusionAccumulator(ds.class_names)
    flat_l, flat_p = [], []
    for lab in labels[:15]:
        pred = lab.astype(np.int64)
        noise = rng.random(lab.shape) < 0.3          # 30 % of pixels get a random class
        pred[noise] = rng.integers(0, 11, noise.sum())
        pred[lab == 255] = rng.integers(0, 11, (lab == 255).sum())
        pred = np.roll(pred, 7, axis=1)              # and everything moves 7 px: boundary errors
        acc.add(lab, pred)
        keep = lab != 255
        flat_l.append(lab[keep])
        flat_p.append(pred[keep])
    y, p = np.concatenate(flat_l), np.concatenate(flat_p)
    np.testing.assert_array_equal(acc.matrix, sk.confusion_matrix(y, p, labels=list(range(11))))
    m = acc.metrics()
    np.testing.assert_allclose(list(m.per_class_iou.values()), sk.jaccard_score(y, p, labels=list(range(11)),
                                                                                average=None), atol=1e-12)
    assert m.miou == pytest.approx(sk.jaccard_score(y, p, labels=list(range(11)), average="macro"), abs=1e-12)
    assert m.pixel_accuracy == pytest.approx(sk.accuracy_score(y, p), abs=1e-12)
    np.testing.assert_allclose(list(m.per_class_dice.values()), sk.f1_score(y, p, labels=list(range(11)),
                                                                            average=None), atol=1e-12)
    assert 0.2 < m.miou < 0.8


def test_absent_class_is_left_out_of_the_mean():
    acc = ConfusionAccumulator(["a", "b", "c"])
    acc.add(np.array([[0, 0], [1, 255]]), np.array([[0, 1], [1, 2]]))
    m = acc.metrics()
    assert np.isnan(m.per_class_iou["c"])  # neither labelled nor predicted (the 2 is on an ignored pixel)
    assert m.per_class_iou["a"] == 0.5 and m.per_class_iou["b"] == 0.5 and m.miou == 0.5
    assert m.as_dict()["per_class_iou"]["c"] is None
    with pytest.raises(ValueError, match="predicted class 3 is outside 0..2"):
        acc.add(np.zeros((2, 2)), np.full((2, 2), 3))
    with pytest.raises(ValueError, match="differ in size: upsample"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((4, 4)), 3)


def test_agreement_and_intervals(camvid_val):
    ds, labels = camvid_val
    labels = labels[:40]
    rng = np.random.default_rng(1)
    ref, cand, agree = ConfusionAccumulator(ds.class_names), ConfusionAccumulator(ds.class_names), \
        AgreementAccumulator(ds.class_names)
    changed = 0
    for i, lab in enumerate(labels):
        a = np.where(lab == 255, 0, lab)
        b = a.copy()
        if i % 2:  # the "artifact" mislabels a 40-row band on every other image
            b[100:140] = (b[100:140] + 1) % 11
            changed += 40 * 480
        ref.add(lab, a)
        cand.add(lab, b)
        agree.add(a, b)
    result = agree.result()
    assert result.pixel_agreement == pytest.approx(1 - changed / (40 * 360 * 480))
    assert result.per_image_agreement[0] == 1.0 and result.per_image_agreement[1] == pytest.approx(1 - 40 / 360)
    assert 0.5 < result.miou < 1.0
    point = ref.metrics().miou
    iv = miou_interval(ref, resamples=500)
    assert iv.low <= point <= iv.high and iv.n == 40
    delta = miou_delta_interval(ref, cand, resamples=500)
    assert delta.high < 0 and delta.low < cand.metrics().miou - point < delta.high
    same = miou_delta_interval(ref, ref, resamples=200)
    assert same.low == same.high == 0.0


def test_upsampling_any_stride():
    scores = np.zeros((45, 60, 3), np.float32)
    scores[:, :30, 1] = 1.0  # class 1 on the left half, class 0 on the right: stride 8, edge at x = 30
    scores[:, 30:, 0] = 1.0
    up = upsample_scores(scores, (360, 480))
    assert up.shape == (360, 480, 3)
    classes = predicted_classes(scores, (360, 480))
    # half-pixel centres keep the edge where it was: 30 * 8 = 240 (align-corners would move it)
    assert (classes[:, :240] == 1).all() and (classes[:, 240:] == 0).all()
    # a non-integer ratio (513 -> 360x480), and nearest agrees with the class-map resize
    s = np.random.default_rng(0).normal(size=(2, 65, 65, 4)).astype(np.float32)
    np.testing.assert_array_equal(predicted_classes(s, (360, 480), "nearest"),
                                  np.argmax(upsample_scores(s, (360, 480), "nearest"), axis=-1))
    assert resize_class_map(np.argmax(s, -1), (360, 480)).shape == (2, 360, 480)
    with pytest.raises(ValueError, match="bilinear or nearest"):
        upsample_scores(scores, (10, 10), "cubic")


@pytest.mark.parametrize("method", ["bilinear", "nearest"])
def test_upsampling_equals_tensorflow_resize(method):
    tf = pytest.importorskip("tensorflow", reason="TensorFlow (the `build` extra) is not installed")
    s = np.random.default_rng(2).normal(size=(2, 23, 30, 5)).astype(np.float32)
    for size in [(360, 480), (19, 33), (7, 9)]:
        ours = upsample_scores(s, size, method)
        theirs = tf.image.resize(s, size, method=method).numpy()
        np.testing.assert_allclose(ours, theirs, atol=2e-5)


# ---- crafted label files -------------------------------------------------------------------------

def _save(path: Path, arr: np.ndarray, mode: str = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path)


def test_bad_pairs_are_skipped_with_reasons(tmp_path):
    img, lab = tmp_path / "images", tmp_path / "labels"
    rgb = np.full((8, 10, 3), 100, np.uint8)
    good = np.zeros((8, 10), np.uint8)
    good[:, 5:] = 1
    good[0, 0] = 255
    for name in ("good", "palette", "badvalue", "wrongsize", "allignored", "colour", "nolabel"):
        _save(img / f"{name}.jpg", rgb)
    _save(lab / "good.png", good)
    pal = Image.fromarray(good, "P")
    pal.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)  # PASCAL-style: the palette index is the class
    pal.save(lab / "palette.png")
    _save(lab / "badvalue.png", np.full((8, 10), 7, np.uint8))
    _save(lab / "wrongsize.png", np.zeros((4, 5), np.uint8))
    _save(lab / "allignored.png", np.full((8, 10), 255, np.uint8))
    _save(lab / "colour.png", rgb)
    _save(lab / "orphan.png", good)
    (lab / "corrupt.png").write_bytes(b"\x89PNG broken")
    _save(img / "corrupt.jpg", rgb)
    (tmp_path / "classes.txt").write_text("background\nthing\n")
    ds = read_segmentation(img, lab, tmp_path / "classes.txt")
    assert sorted(Path(s.path).stem for s in ds.samples) == ["good", "palette"]
    np.testing.assert_array_equal(ds.load_label(ds.samples[1]), good)
    reasons = {Path(s.path).stem: s.reason for s in ds.skipped}
    assert reasons["badvalue"] == "label values 7 are neither a class (0..1) nor the ignore index 255"
    assert reasons["wrongsize"] == "label map is 5x4 but the image is 10x8"
    assert reasons["allignored"].startswith("no labelled pixel")
    assert "is RGB (colour)" in reasons["colour"]
    assert reasons["nolabel"].startswith("no label map nolabel.png")
    assert reasons["orphan"].startswith("label map without an image")
    assert reasons["corrupt"].startswith("label map cannot be read")
    with pytest.raises(DataError, match="ignore index 1 is also class 'thing'"):
        read_segmentation(img, lab, ["background", "thing"], ignore_index=1)


def test_colour_label_maps(tmp_path):
    (tmp_path / "classes.txt").write_text("sky 128 128 128\nroad 128 64 128\nignore 0 0 0\n")
    classes = read_classes(tmp_path / "classes.txt")
    assert classes.names == ["sky", "road"] and classes.ignore_colours == [(0, 0, 0)]
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0] = (128, 128, 128)
    rgb[1, :2] = (128, 64, 128)
    _save(tmp_path / "a.png", rgb)
    np.testing.assert_array_equal(read_label(tmp_path / "a.png", classes), [[0, 0, 0], [1, 1, 255]])
    rgb[1, 2] = (1, 2, 3)
    _save(tmp_path / "b.png", rgb)
    with pytest.raises(ValueError, match=r"colours \(1, 2, 3\) are not in the class file"):
        read_label(tmp_path / "b.png", classes)
    (tmp_path / "mixed.txt").write_text("sky 1 2 3\nroad\n")
    with pytest.raises(DataError, match="on every line"):
        read_classes(tmp_path / "mixed.txt")
    (tmp_path / "same.txt").write_text("sky 1 2 3\nroad 1 2 3\n")
    with pytest.raises(DataError, match="share a colour"):
        read_classes(tmp_path / "same.txt")
