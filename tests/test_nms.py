"""The numpy detection post-process (edgecv.metrics.nms): decode and both NMS variants."""

import numpy as np
import pytest

from edgecv.metrics.nms import DetectionPostProcess, NmsSettings, decode_boxes, greedy_nms, postprocess


def test_decode_is_the_center_size_coder():
    anchors = np.array([[0.5, 0.5, 0.2, 0.4]], np.float32)
    enc = np.array([[[1.0, -2.0, 5 * np.log(2.0), 0.0]]], np.float32)  # y +0.1*0.2, x -0.2*0.4, h*2
    box = decode_boxes(enc, anchors, (10, 10, 5, 5))[0, 0]
    np.testing.assert_allclose(box, [0.52 - 0.2, 0.42 - 0.2, 0.52 + 0.2, 0.42 + 0.2], atol=1e-6)


def test_greedy_nms_suppresses_overlaps_above_the_threshold_only():
    boxes = np.array([[0, 0, 1, 1], [0, 0, 1, 0.9], [0, 0, 1, 0.4], [2, 2, 3, 3]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.01], np.float32)
    # IoU(0,1) = 0.9 > 0.5: suppressed; IoU(0,2) = 0.4: kept; box 3 under the score threshold
    assert greedy_nms(boxes, scores, 0.5, 0.05, 10).tolist() == [0, 2]
    assert greedy_nms(boxes, scores, 0.95, 0.0, 10).tolist() == [0, 1, 2, 3]
    assert greedy_nms(boxes, scores, 0.95, 0.0, 2).tolist() == [0, 1]


def _raw(seed=0, n=2, anchors=24, classes=3):
    rng = np.random.default_rng(seed)
    a = np.stack([rng.uniform(.2, .8, anchors), rng.uniform(.2, .8, anchors), rng.uniform(.1, .4, anchors),
                  rng.uniform(.1, .4, anchors)], 1).astype(np.float32)
    return a, rng.normal(0, 1, (n, anchors, 4)).astype(np.float32), rng.uniform(0, 1, (n, anchors, classes)).astype(np.float32)


def test_class_agnostic_nms_equals_tensorflow():
    tf = pytest.importorskip("tensorflow")
    a, enc, sc = _raw()
    s = NmsSettings(iou_threshold=0.4, score_threshold=0.2, max_detections=8, per_class=False)
    out = postprocess(enc, sc, a, settings=s)
    boxes = decode_boxes(enc, a, (10, 10, 5, 5))
    for i in range(len(enc)):
        keep = tf.image.non_max_suppression(boxes[i], sc[i].max(1), 8, 0.4, 0.2).numpy()
        assert out["num_detections"][i] == len(keep)
        np.testing.assert_allclose(out["detection_boxes"][i, :len(keep)], boxes[i][keep], atol=1e-6)
        np.testing.assert_array_equal(out["detection_classes"][i, :len(keep)], sc[i][keep].argmax(1))


def test_per_class_nms_equals_tensorflow_combined_nms():
    tf = pytest.importorskip("tensorflow")
    a, enc, sc = _raw(1)
    s = NmsSettings(iou_threshold=0.5, score_threshold=0.3, max_detections=10, per_class=True)
    out = postprocess(enc, sc, a, settings=s)
    boxes = decode_boxes(enc, a, (10, 10, 5, 5))
    b, scores, classes, count = tf.image.combined_non_max_suppression(
        boxes[:, :, None, :], sc, 10, 10, 0.5, 0.3, clip_boxes=False)
    np.testing.assert_array_equal(out["num_detections"], count.numpy())
    np.testing.assert_allclose(out["detection_scores"], scores.numpy(), atol=1e-6)
    np.testing.assert_allclose(out["detection_boxes"], b.numpy(), atol=1e-6)
    np.testing.assert_array_equal(out["detection_classes"], classes.numpy())


def test_settings_and_anchors_are_checked():
    with pytest.raises(ValueError, match="unknown NMS settings"):
        NmsSettings.from_dict({"iou": 0.5})
    with pytest.raises(ValueError, match="out of range"):
        NmsSettings.from_dict({"iou_threshold": 1.5})
    with pytest.raises(ValueError, match=r"anchors must be \[L, 4\]"):
        DetectionPostProcess(np.zeros((3, 2)))
    pp = DetectionPostProcess(_raw()[0], nms=NmsSettings(max_detections=5))
    out = pp.from_raw({"box_encodings": _raw()[1], "scores": _raw()[2]})
    assert out["detection_boxes"].shape == (2, 5, 4) and out["num_detections"].shape == (2,)
