"""Keras pieces of the keypoint task: heads, losses and the training NME (TensorFlow; imported lazily).

Targets in training are [B, K, 3]: (x, y) in [0, 1] of the input and 1 where the point is labelled;
unlabelled points contribute nothing to the loss or the metric.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from edgecv._keras import keras, tf


def tensor_of_layer(features, layer_name: str):
    """The output of the backbone layer `layer_name`, found by walking back from the feature map."""
    seen, stack = set(), [features]
    names = []
    while stack:
        t = stack.pop()
        layer, node_index, _ = t._keras_history
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        names.append(layer.name)
        if layer.name == layer_name:
            return layer.output
        stack.extend(tf.nest.flatten(layer._inbound_nodes[node_index].keras_inputs))
    raise ValueError(f"task_options.feature_layer: the backbone has no layer {layer_name!r} (some of its layers: "
                     f"{', '.join(names[:6])} ...)")


def regression_head(features, k: int, name: str, dropout: float = 0.0):
    """Pooled features -> K sigmoid (x, y) pairs."""
    y = keras.layers.GlobalAveragePooling2D(name="kp_pool")(features)
    if dropout:
        y = keras.layers.Dropout(dropout, name="kp_dropout")(y)
    y = keras.layers.Dense(2 * k, activation="sigmoid", dtype="float32", name="kp_dense")(y)
    return keras.layers.Reshape((k, 2), dtype="float32", name=name)(y)


@keras.utils.register_keras_serializable(package="edgecv")
class SoftArgmax2D(keras.layers.Layer):
    """[N, h, w, K] heatmap logits -> [N, K, 2]: the expected (x, y) under each map's softmax, with
    cell (i, j) at ((j + 0.5) / w, (i + 0.5) / h). No weights: nothing for a pass to prune or train.

    The expectation is taken about the image centre, 0.5 + sum p (g - 0.5), which equals sum p g in
    float. In int8 the softmax's 1/256 steps drop some probability mass: about the origin that pulls
    every point towards (0, 0), about the centre only slightly inwards. Measured on face_keypoints
    (692 validation frames, MobileNetV2 at 128 px, float NME 0.0577): int8 TFLite NME 0.0797 about
    the origin, 0.0602 about the centre; dividing by the kept mass as well gave 0.0609."""

    quantize_output_only = True  # the qat pass fake-quantizes its output, as TFLite int8 does
    # QDQ int8 keeps the decode float: on a symmetric int8 grid (steps of about 1/127) the small
    # probabilities of a spread-out map round to 0 and their mass is lost, pulling the point towards
    # the centre (face_keypoints, jetson-orin-nano: one point of a flat-heatmap frame moved 16.95 px).
    # The decode is one tiny MatMul, so TensorRT loses nothing measurable running it in float.
    int8_keep_float = True

    def call(self, logits):
        h, w, k = logits.shape[1], logits.shape[2], logits.shape[3]
        flat = tf.transpose(tf.reshape(logits, [-1, h * w, k]), [0, 2, 1])  # [N, K, h*w]
        probs = tf.nn.softmax(flat, axis=-1)
        ys, xs = np.meshgrid((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w, indexing="ij")
        offsets = tf.constant(np.stack([xs.ravel(), ys.ravel()], axis=1) - 0.5, probs.dtype)  # [h*w, 2]
        points = tf.matmul(tf.reshape(probs, [-1, h * w]), offsets) + 0.5  # one plain MatMul in every format
        return tf.reshape(points, [-1, k, 2])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[3], 2)


def heatmap_head(features, k: int, name: str):
    """A 1x1 convolution to one heatmap per point, decoded inside the model (the output contract is
    the regression head's)."""
    logits = keras.layers.Conv2D(k, 1, dtype="float32", name="kp_heatmaps")(features)
    return SoftArgmax2D(dtype="float32", name=name)(logits)


def _mask(y_true):
    return y_true[..., :2], y_true[..., 2:3]


def masked_l1(y_true, y_pred):
    """Mean |error| over labelled coordinates (per image, so Keras averages images)."""
    xy, v = _mask(y_true)
    err = tf.abs(tf.cast(y_pred, tf.float32) - xy) * v
    return tf.reduce_sum(err, axis=[1, 2]) / tf.maximum(2.0 * tf.reduce_sum(v, axis=[1, 2]), 1.0)


def wing_loss(input_size: Sequence[int], width_px: float = 10.0, curvature_px: float = 2.0):
    """Wing loss (Feng et al., CVPR 2018) on errors in pixels of the input: log-shaped below
    `width_px`, so small errors keep a useful gradient; L1 above."""
    h, w = input_size
    scale = tf.constant([w, h], tf.float32)
    c = width_px - width_px * np.log(1 + width_px / curvature_px)

    def wing(y_true, y_pred):
        xy, v = _mask(y_true)
        d = tf.abs(tf.cast(y_pred, tf.float32) - xy) * scale
        loss = tf.where(d < width_px, width_px * tf.math.log(1 + d / curvature_px), d - c) * v
        return tf.reduce_sum(loss, axis=[1, 2]) / tf.maximum(2.0 * tf.reduce_sum(v, axis=[1, 2]), 1.0) / float(w)

    return wing


def keras_nme(normalize_by: Optional[Sequence[int]], input_size: Sequence[int]):
    """Per-image NME in TensorFlow for the training log (`val_nme` picks the kept weights); the
    report's NME is the numpy one in tasks/keypoints.py."""
    h, w = input_size
    scale = tf.constant([w, h], tf.float32)

    def nme(y_true, y_pred):
        xy, v = _mask(y_true)
        xy_px, pred_px = xy * scale, tf.cast(y_pred, tf.float32) * scale
        if normalize_by is not None:
            a, b = normalize_by
            norm = tf.norm(xy_px[:, a] - xy_px[:, b], axis=-1)
        else:
            big = 1e6 * (1.0 - v)
            span = tf.reduce_max(xy_px - big, axis=1) - tf.reduce_min(xy_px + big, axis=1)
            norm = tf.norm(span, axis=-1)
        dist = tf.norm(pred_px - xy_px, axis=-1) * v[..., 0]
        return tf.reduce_sum(dist, axis=1) / tf.maximum(tf.reduce_sum(v[..., 0], axis=1), 1.0) / tf.maximum(norm, 1e-6)

    return nme
