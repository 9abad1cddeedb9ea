"""Numpy detection metrics: equal to pycocotools on real annotations with synthetic detections, the
operating point, agreement between two models' detections, and bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_path
from detection_fixture import pycocotools_eval, relabel, synthetic_detections, to_coco
from edgecv.data.detection import make_image_boxes
from edgecv.metrics.detection import (DetectionEvaluation, box_iou, detection_agreement, evaluate, make_detections,
                                      map_delta_interval, map_interval)

TOLERANCE = 1e-4  # issue 24's bar; the implementation agrees exactly on these fixtures


@pytest.fixture(scope="module")
def raccoon():
    from edgecv.data.detection import read_voc

    return read_voc(shared_path("datasets", "raccoon", "images"), shared_path("datasets", "raccoon", "annotations"))


@pytest.mark.parametrize("num_classes,crowd_share,seed", [(1, 0.0, 0), (3, 0.0, 1), (4, 0.0, 2), (3, 0.15, 3)],
                         ids=["1-class", "3-classes", "4-classes", "3-classes-crowd"])
def test_equals_pycocotools_on_raccoon(raccoon, num_classes, crowd_share, seed):
    pytest.importorskip("pycocotools", reason="pycocotools (the `test` extra) is not installed")
    names = [f"class{k}" for k in range(num_classes)]
    gts = relabel(raccoon.images, num_classes, crowd_share, seed)
    dets = synthetic_detections(gts, num_classes, seed + 100)
    ours = DetectionEvaluation(gts, dets, names)
    ref = pycocotools_eval(*to_coco(gts, dets, names))
    m = ours.metrics()
    assert abs(m.map - ref.stats[0]) < TOLERANCE
    assert abs(m.ap50 - ref.stats[1]) < TOLERANCE
    assert abs(m.ap75 - ref.stats[2]) < TOLERANCE
    coco_table = ref.eval["precision"][:, :, :, 0, 2]  # [T, R, K] at area "all", maxDets 100
    assert np.abs(ours.precision_table() - coco_table).max() < TOLERANCE
    for k, name in enumerate(names):
        p = coco_table[:, :, k]
        assert abs(m.per_class_ap[name] - p[p > -1].mean()) < TOLERANCE
    assert 0.2 < m.map < 0.6 and m.ap50 > m.map  # the fixture is neither trivial nor hopeless
    assert m.num_detections < sum(len(d) for d in dets)  # the maxDets cut was exercised


def test_perfect_and_empty_detections():
    gts = [make_image_boxes("a", (100, 100), [[10, 10, 50, 50], [60, 60, 90, 95]], [0, 1]),
           make_image_boxes("b", (100, 100), [[0, 0, 100, 100]], [1])]
    perfect = [make_detections(g.boxes, [0.9] * len(g), g.classes) for g in gts]
    m = evaluate(gts, perfect, ["a", "b", "never"])
    assert m.map == pytest.approx(1.0) and m.ap50 == pytest.approx(1.0)
    assert np.isnan(m.per_class_ap["never"])  # no ground truth: left out of the mean, not a zero
    assert m.precision == 1.0 and m.recall == 1.0 and m.f1 == 1.0
    none = [make_detections(np.zeros((0, 4)), [], []) for _ in gts]
    m0 = evaluate(gts, none, ["a", "b", "never"])
    assert m0.map == 0.0 and m0.recall == 0.0 and np.isnan(m0.precision)


def test_operating_point_counts_duplicates_and_misses():
    gts = [make_image_boxes("a", (100, 100), [[0, 0, 40, 40], [50, 50, 90, 90], [0, 60, 30, 90]], [0, 0, 0])]
    dets = [make_detections([[0, 0, 40, 40],      # right, 0.9
                             [1, 1, 40, 40],      # duplicate of it: a false positive, 0.8
                             [50, 50, 90, 90],    # right but under the threshold, 0.3
                             [60, 0, 90, 30]],    # nothing there, 0.7
                            [0.9, 0.8, 0.3, 0.7], [0, 0, 0, 0])]
    m = evaluate(gts, dets, ["x"], score_threshold=0.5)
    assert m.precision == pytest.approx(1 / 3) and m.recall == pytest.approx(1 / 3)
    assert m.f1 == pytest.approx(1 / 3)
    m_all = evaluate(gts, dets, ["x"], score_threshold=0.0)
    assert m_all.precision == pytest.approx(2 / 4) and m_all.recall == pytest.approx(2 / 3)
    # AP@0.5 by hand: ranked right, wrong, wrong, right -> precision 1 up to recall 1/3, 1/2 up to 2/3, then 0
    expected = (34 * 1.0 + 33 * 0.5) / 101
    assert m.ap50 == pytest.approx(expected)


def test_difficult_boxes_are_neither_found_nor_missed():
    gts = [make_image_boxes("a", (100, 100), [[0, 0, 40, 40], [50, 50, 90, 90]], [0, 0], ignore=[False, True])]
    found_both = [make_detections([[0, 0, 40, 40], [50, 50, 90, 90]], [0.9, 0.95], [0, 0])]
    m = evaluate(gts, found_both, ["x"], score_threshold=0.0)
    # (COCO divides by tp + fp + machine epsilon: 1.0 within 1e-15)
    assert m.map == pytest.approx(1.0) and m.precision == 1.0 and m.recall == 1.0 and m.num_ground_truth == 1
    only_difficult = [make_detections([[50, 50, 90, 90]], [0.9], [0])]
    assert evaluate(gts, only_difficult, ["x"]).recall == 0.0


def test_box_iou_and_crowd_iou():
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[5, 0, 15, 10], [0, 0, 100, 100], [20, 20, 30, 30]], float)
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 100 / 10000, 0.0]])
    np.testing.assert_allclose(box_iou(a, b, crowd=[False, True, False]), [[50 / 150, 1.0, 0.0]])


def test_class_outside_the_names_is_an_error():
    gts = [make_image_boxes("a", (10, 10), [[0, 0, 5, 5]], [2])]
    with pytest.raises(ValueError, match="ground truth class 2 is outside 0..1"):
        DetectionEvaluation(gts, [make_detections(np.zeros((0, 4)), [], [])], ["a", "b"])
    with pytest.raises(ValueError, match="same images in the same order"):
        DetectionEvaluation(gts, [], ["a", "b", "c"])


def test_agreement_of_float_and_artifact_detections():
    ref = [make_detections([[0, 0, 40, 40], [50, 50, 90, 90]], [0.9, 0.8], [0, 1]),
           make_detections(np.zeros((0, 4)), [], []),
           make_detections([[10, 10, 20, 20]], [0.6], [0])]
    cand = [make_detections([[0, 0, 40, 44], [50, 50, 90, 90]], [0.85, 0.8], [0, 0]),  # second: class changed
            make_detections(np.zeros((0, 4)), [], []),                                 # both empty: agree
            make_detections([[10, 10, 20, 20], [60, 60, 70, 70]], [0.62, 0.4], [0, 0])]  # 0.4: under threshold
    a = detection_agreement(ref, cand)
    assert (a.matched, a.reference_boxes, a.candidate_boxes) == (2, 3, 3)
    assert a.f1 == pytest.approx(4 / 6)
    assert a.mean_iou == pytest.approx((1600 / 1760 + 1.0) / 2)
    assert a.score_error == pytest.approx((0.05 + 0.02) / 2) and a.max_score_error == pytest.approx(0.05)
    np.testing.assert_allclose(a.per_image_f1, [0.5, 1.0, 1.0])
    assert detection_agreement(ref, ref).f1 == 1.0
    assert a.as_dict()["matched"] == 2


def test_resample_weights_equal_repeating_the_images(raccoon):
    """A bootstrap resample weights each image by how often it was drawn; that must be what COCO gives
    on the drawn images listed out (exactly, without tied scores, whose order COCO leaves to the list)."""
    from edgecv.metrics.bootstrap import resample_weights

    names = ["a", "b", "c"]
    gts = relabel(raccoon.images, 3, 0.1, 1)
    dets = synthetic_detections(gts, 3, 7, ties=False)
    ev = DetectionEvaluation(gts, dets, names)
    for w in resample_weights(len(gts), 4, seed=3):
        drawn = np.repeat(np.arange(len(gts)), w.astype(int))
        listed = DetectionEvaluation([gts[i] for i in drawn], [dets[i] for i in drawn], names)
        assert ev.average_precision(w) == pytest.approx(listed.average_precision(), abs=1e-12)
        assert ev.average_precision(w, iou=0.5) == pytest.approx(listed.average_precision(iou=0.5), abs=1e-12)


def test_bootstrap_intervals_over_images(raccoon):
    names = ["a", "b"]
    gts = relabel(raccoon.images, 2, 0.0, 5)
    good = DetectionEvaluation(gts, synthetic_detections(gts, 2, 6), names)
    worse_dets = [make_detections(d.boxes + 6.0, d.scores, d.classes) for d in synthetic_detections(gts, 2, 6)]
    worse = DetectionEvaluation(gts, worse_dets, names)
    point = good.metrics().map
    iv = map_interval(good, resamples=300)
    assert iv.low < point < iv.high and iv.high - iv.low < 0.2 and iv.n == 160
    assert map_interval(good, resamples=300) == iv  # seeded: the same interval every run
    ap50 = map_interval(good, iou=0.5, resamples=300)
    assert ap50.low < good.metrics().ap50 < ap50.high
    same = map_delta_interval(good, good, resamples=300)
    assert same.low == same.high == 0.0 and same.method.startswith("paired")
    delta = map_delta_interval(good, worse, resamples=300)
    assert delta.high < 0  # shifting every box by 6 px loses mAP, and the paired interval says so
    assert delta.low < worse.metrics().map - point < delta.high


def test_dense_metrics_and_readers_need_numpy_alone():
    """Devices validate without TensorFlow, scipy, scikit-learn or pycocotools."""
    import subprocess
    import sys
    import textwrap

    from conftest import REPO

    code = textwrap.dedent("""
        import sys
        BLOCKED = ("tensorflow", "tf_keras", "scipy", "sklearn", "pycocotools", "defusedxml")

        class Absent:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(name)

        sys.meta_path.insert(0, Absent())
        import numpy as np
        from edgecv.data import detection, segmentation
        from edgecv.metrics.detection import evaluate, make_detections, map_interval, DetectionEvaluation
        from edgecv.metrics.segmentation import ConfusionAccumulator, upsample_scores
        gt = [detection.make_image_boxes("a", (10, 10), [[0, 0, 5, 5]], [0])]
        ev = DetectionEvaluation(gt, [make_detections([[0, 0, 5, 5]], [0.9], [0])], ["x"])
        acc = ConfusionAccumulator(["a", "b"])
        acc.add(np.array([[0, 1]]), np.array([[0, 1]]))
        print(round(ev.metrics().map, 6), map_interval(ev, resamples=10).n, acc.metrics().miou,
              upsample_scores(np.zeros((2, 2, 3)), (4, 4)).shape)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO,
                       env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1.0", "1", "1.0", "(4,", "4,", "3)"]


def test_postprocess_contract_outputs_become_image_detections():
    """TFLite's detection post-process outputs (ymin, xmin, ymax, xmax in [0, 1] of a letterboxed
    input; padded to K rows, `count` valid) -> boxes in pixels of the photo."""
    from edgecv.metrics.detection import from_postprocess

    boxes = np.zeros((1, 10, 4), np.float32)
    boxes[0, 0] = [0.25, 0.0, 0.75, 1.0]   # the whole 400x200 photo inside a square letterbox
    boxes[0, 1] = [0.25, 0.5, 0.5, 0.75]
    boxes[0, 2] = [0.0, 0.0, 0.2, 0.2]     # in the padding: clipped to an empty box at the edge
    classes = np.array([[1, 2, 1, 7, 7, 7, 7, 7, 7, 7]], np.float32)
    scores = np.array([[0.9, 0.8, 0.3, 0, 0, 0, 0, 0, 0, 0]], np.float32)
    d = from_postprocess(boxes[0], classes[0], scores[0], np.array([3.0]), (400, 200), (320, 320), "pad",
                         class_offset=1)
    np.testing.assert_allclose(d.boxes[:2], [[0, 0, 400, 200], [200, 0, 300, 100]], atol=1e-4)
    assert d.classes.tolist() == [0, 1, 0] and len(d) == 3
    np.testing.assert_allclose(d.scores, [0.9, 0.8, 0.3], atol=1e-6)
