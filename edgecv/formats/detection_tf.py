"""The detection decode in TensorFlow, for the formats that convert a TensorFlow graph holding it
(SavedModel's serving signature, Core ML's detector): the center-size coder of
edgecv.metrics.nms.decode_boxes, in the same order of operations."""

from __future__ import annotations


def decode(tf, encodings, pp):
    """(ty, tx, th, tw) [N, L, 4] against pp.anchors -> (ymin, xmin, ymax, xmax) [N, L, 4]."""
    a = tf.constant(pp.anchors)
    sy, sx, sh, sw = pp.scales
    yc = encodings[..., 0] / sy * a[:, 2] + a[:, 0]
    xc = encodings[..., 1] / sx * a[:, 3] + a[:, 1]
    h = tf.exp(encodings[..., 2] / sh) * a[:, 2]
    w = tf.exp(encodings[..., 3] / sw) * a[:, 3]
    return tf.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=-1)
