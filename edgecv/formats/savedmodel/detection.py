"""SavedModel detection post-process: decode + NMS in TensorFlow inside the serving signature,
whose outputs carry the TF Object Detection API's names: detection_boxes [N, K, 4] (ymin, xmin,
ymax, xmax in [0, 1]), detection_classes [N, K], detection_scores [N, K], num_detections [N].
Unlike the OD API's, whose classes are label-map ids (1-based), edgecv's classes are 0-based
indices into labels.txt, as every edgecv format's are; rows past num_detections are zero.

NMS: the fast class-agnostic variant is tf.image.non_max_suppression over each box's best class
score, image by image; the regular per-class one is tf.image.combined_non_max_suppression (both
as edgecv.metrics.nms describes; TensorFlow keeps a score > the threshold where the reference
keeps >=, a difference only for a score exactly on it).
"""

from __future__ import annotations

from edgecv.formats.detection_tf import decode
from edgecv.metrics.nms import DETECTION_OUTPUTS


def detection_outputs(pp, outputs: dict) -> dict:
    """The four outputs (TensorFlow tensors) from the raw ones by name."""
    from edgecv._keras import tf

    s, k = pp.nms, pp.nms.max_detections
    box_name, score_name = pp.raw_outputs
    boxes = decode(tf, tf.cast(outputs[box_name], tf.float32), pp)
    scores = tf.cast(outputs[score_name], tf.float32)
    if s.per_class:
        b, sc, cls, count = tf.image.combined_non_max_suppression(
            boxes[:, :, None, :], scores, k, k, s.iou_threshold, s.score_threshold, pad_per_class=False,
            clip_boxes=False)
        return dict(zip(DETECTION_OUTPUTS, (b, cls, sc, tf.cast(count, tf.float32))))
    best, best_class = tf.reduce_max(scores, axis=2), tf.argmax(scores, axis=2)

    def one(args):
        bx, sc, cl = args
        keep = tf.image.non_max_suppression(bx, sc, k, s.iou_threshold, s.score_threshold)
        n = tf.shape(keep)[0]
        pad = [[0, k - n]]
        return (tf.pad(tf.gather(bx, keep), [[0, k - n], [0, 0]]),
                tf.pad(tf.cast(tf.gather(cl, keep), tf.float32), pad),
                tf.pad(tf.gather(sc, keep), pad), tf.cast(n, tf.float32))

    spec = (tf.TensorSpec([k, 4], tf.float32), tf.TensorSpec([k], tf.float32), tf.TensorSpec([k], tf.float32),
            tf.TensorSpec([], tf.float32))
    return dict(zip(DETECTION_OUTPUTS, tf.map_fn(one, (boxes, best, best_class), fn_output_signature=spec)))
