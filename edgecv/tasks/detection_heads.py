"""Keras pieces of the detection task: the feature pyramid and head, the losses (TensorFlow;
imported lazily by edgecv.tasks.detection).

The head reads MobileNetV2's stride-16 and stride-32 maps and adds coarser levels by stride-2
convolutions; a light top-down pyramid (1x1 laterals, nearest upsampling, add) gives every level
`channels` features; one shared tower (a 3x3 separable convolution, ReLU6) and two 3x3
convolutions predict per location A x C class logits and A x 4 box encodings. No batch norm in
the head: the trainer keeps batch norm frozen, and plain convolutions quantize per channel.
Outputs: `box_encodings [N, L, 4]` and `scores [N, L, C]` (sigmoid), the detection contract.

Losses take the targets of `detection_anchors.assign_targets`: focal loss (Lin et al. 2017) on the
sigmoid scores over positive and negative anchors, and on positive anchors smooth L1 on the
encodings plus GIoU (Rezatofighi et al. 2019) of the decoded boxes; both are normalized by the
number of positive anchors in the batch.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from edgecv._keras import keras, tf

BOX_OUTPUT, SCORE_OUTPUT = "box_encodings", "scores"


def _layer_output(features, layer_name: str):
    from edgecv.tasks.keypoint_heads import tensor_of_layer

    return tensor_of_layer(features, layer_name)


def build_detection_head(features, num_classes: int, anchors_per_location: int, strides: Sequence[int],
                         channels: int, output_stride: int, feature_layers: dict, prior: float = 0.01):
    """[box_encodings, scores] on the backbone's output `features` (of stride `output_stride`) and
    the finer layers `feature_layers` ({stride: layer name})."""
    L = keras.layers
    by_stride = {output_stride: features, **{s: _layer_output(features, name) for s, name in feature_layers.items()}}
    levels = []
    last = None
    for s in sorted(strides):
        if s in by_stride:
            x = by_stride[s]
        elif last is not None and s == last[0] * 2:
            x = L.Conv2D(channels, 3, strides=2, padding="same", activation="relu6", name=f"det_extra_s{s}")(last[1])
        else:
            raise ValueError(f"stride {s}: the backbone gives strides {sorted(by_stride)}; extra levels must "
                             "double the one before")
        last = (s, x)
        levels.append((s, x))
    lateral = {s: L.Conv2D(channels, 1, name=f"det_lateral_s{s}")(x) for s, x in levels}
    merged = {}
    top = None
    for s in sorted(lateral, reverse=True):  # coarse to fine: the coarser level's features added in
        merged[s] = lateral[s] if top is None else L.Add(name=f"det_topdown_s{s}")(
            [lateral[s], L.UpSampling2D(2, interpolation="nearest", name=f"det_up_s{s}")(top)])
        top = merged[s]
    tower = L.SeparableConv2D(channels, 3, padding="same", activation="relu6", name="det_tower")
    a = anchors_per_location
    cls_conv = L.Conv2D(a * num_classes, 3, padding="same", name="det_class",
                        bias_initializer=keras.initializers.Constant(-math.log((1 - prior) / prior)))
    box_conv = L.Conv2D(a * 4, 3, padding="same", name="det_box", kernel_initializer=keras.initializers.RandomNormal(
        stddev=0.01))
    boxes, logits = [], []
    for s in sorted(merged):
        t = tower(merged[s])
        h, w = t.shape[1], t.shape[2]
        boxes.append(L.Reshape((h * w * a, 4), name=f"det_box_flat_s{s}")(box_conv(t)))
        logits.append(L.Reshape((h * w * a, num_classes), name=f"det_class_flat_s{s}")(cls_conv(t)))
    box_out = L.Concatenate(axis=1, dtype="float32", name=BOX_OUTPUT)(boxes) if len(boxes) > 1 else \
        L.Activation("linear", dtype="float32", name=BOX_OUTPUT)(boxes[0])
    cat = L.Concatenate(axis=1, name="det_logits")(logits) if len(logits) > 1 else logits[0]
    score_out = L.Activation("sigmoid", dtype="float32", name=SCORE_OUTPUT)(cat)
    return [box_out, score_out]


def focal_loss(alpha: float = 0.25, gamma: float = 2.0):
    """y_true [B, L, C + 1] (one-hot classes, then state 1/0/-1), y_pred [B, L, C] probabilities."""

    def loss(y_true, y_pred):
        onehot, state = y_true[..., :-1], y_true[..., -1:]
        p = tf.clip_by_value(tf.cast(y_pred, tf.float32), 1e-6, 1 - 1e-6)
        p_t = onehot * p + (1 - onehot) * (1 - p)
        alpha_t = onehot * alpha + (1 - onehot) * (1 - alpha)
        fl = -alpha_t * tf.pow(1 - p_t, gamma) * tf.math.log(p_t) * tf.cast(state >= 0, tf.float32)
        positives = tf.reduce_sum(tf.cast(tf.equal(state, 1.0), tf.float32))
        batch = tf.cast(tf.shape(y_true)[0], tf.float32)
        return tf.reduce_sum(fl, axis=[1, 2]) / tf.maximum(positives, 1.0) * batch

    loss.__name__ = "focal_loss"
    return loss


def box_loss(anchors: np.ndarray, scales: Sequence[float], giou_weight: float = 1.0):
    """y_true [B, L, 5] (encoded box, positive flag), y_pred [B, L, 4] encodings."""
    a = tf.constant(np.asarray(anchors, np.float32))
    sy, sx, sh, sw = (float(s) for s in scales)

    def decode(t):
        yc = t[..., 0] / sy * a[:, 2] + a[:, 0]
        xc = t[..., 1] / sx * a[:, 3] + a[:, 1]
        h = tf.exp(tf.minimum(t[..., 2] / sh, 4.0)) * a[:, 2]
        w = tf.exp(tf.minimum(t[..., 3] / sw, 4.0)) * a[:, 3]
        return yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2

    def giou(t_true, t_pred):
        y1, x1, y2, x2 = decode(t_true)
        p1, q1, p2, q2 = decode(t_pred)
        inter = tf.nn.relu(tf.minimum(y2, p2) - tf.maximum(y1, p1)) * tf.nn.relu(tf.minimum(x2, q2) - tf.maximum(x1, q1))
        union = (y2 - y1) * (x2 - x1) + (p2 - p1) * (q2 - q1) - inter
        hull = (tf.maximum(y2, p2) - tf.minimum(y1, p1)) * (tf.maximum(x2, q2) - tf.minimum(x1, q1))
        iou = inter / tf.maximum(union, 1e-9)
        return iou - (hull - union) / tf.maximum(hull, 1e-9)

    def loss(y_true, y_pred):
        target, pos = y_true[..., :4], y_true[..., 4]
        pred = tf.cast(y_pred, tf.float32)
        diff = tf.abs(pred - target)
        smooth = tf.reduce_sum(tf.where(diff < 1.0, 0.5 * diff * diff, diff - 0.5), axis=-1)
        per_anchor = smooth + giou_weight * (1.0 - giou(target, pred))
        positives = tf.reduce_sum(pos)
        batch = tf.cast(tf.shape(y_true)[0], tf.float32)
        return tf.reduce_sum(per_anchor * pos, axis=1) / tf.maximum(positives, 1.0) * batch

    loss.__name__ = "box_loss"
    return loss
