"""Keras pieces of the segmentation task (TensorFlow; imported lazily): decoders on a backbone's
feature maps, the in-model class map, the class-weighted loss and the training pipeline whose
augmentation moves label maps with the pixels.

Decoders (both read three backbone layers by name, MobileNetV2's by default):
- `lraspp`: Lite R-ASPP (Howard et al., "Searching for MobileNetV3", 2019): the stride-16 features
  through a 1x1 convolution gated by their global average (a squeeze-excite), upsampled x2 and
  classified, plus a 1x1 classifier on the stride-8 features. Scores at stride 8.
- `unet`: a small U-Net-style decoder: stride 16 -> 8 -> 4 with a skip connection and a separable
  3x3 convolution at each level. Scores at stride 4.
Both use only ops TFLite runs in int8 (1x1/separable convolutions, bilinear resize, mean, mul, add,
concat). Batch norm layers of the head stay in inference mode as the backbone's do (the trainer
freezes every BatchNormalization): with moving mean 0 and variance 1 they are a learned scale and
bias, which the converters fold into the convolution before them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from edgecv._keras import keras, tf
from edgecv.tasks.keypoint_heads import tensor_of_layer

IGNORE = 255


@keras.utils.register_keras_serializable(package="edgecv")
class ClassMap(keras.layers.Layer):
    """Per-class scores [N, h, w, C] -> class map [N, H, W] uint8: bilinear resize to the input
    size, then argmax. In TFLite int8 both are integer ops (RESIZE_BILINEAR, ARG_MAX, CAST); an
    app gets a mask it can draw without touching the scores."""

    def __init__(self, size: Sequence[int], cast_dtype: str = "uint8", **kw):
        super().__init__(**kw)
        self.size = [int(size[0]), int(size[1])]
        self.cast_dtype = cast_dtype  # a format without uint8 (Core ML) rebuilds the layer with int32

    def call(self, scores):
        up = tf.image.resize(scores, self.size, method="bilinear")
        return tf.cast(tf.argmax(up, axis=-1), tf.as_dtype(self.cast_dtype))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size[0], self.size[1])

    def get_config(self):
        return {**super().get_config(), "size": self.size, "cast_dtype": self.cast_dtype}


def _conv_bn_relu(x, filters: int, name: str, separable: bool = False):
    conv = keras.layers.SeparableConv2D if separable else keras.layers.Conv2D
    x = conv(filters, 3 if separable else 1, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_relu")(x)


def _upsample_to(x, like, name: str):
    """Bilinear x2 when the shapes allow it exactly, else a resize to `like`'s size (odd input sizes)."""
    h, w = like.shape[1], like.shape[2]
    if x.shape[1] * 2 == h and x.shape[2] * 2 == w:
        return keras.layers.UpSampling2D(2, interpolation="bilinear", name=name)(x)
    return keras.layers.Resizing(h, w, interpolation="bilinear", name=name)(x)


def lraspp_head(high, low, num_classes: int, name: str, filters: int = 128):
    a = _conv_bn_relu(high, filters, "seg_aspp")
    gate = keras.layers.GlobalAveragePooling2D(keepdims=True, name="seg_pool")(high)
    gate = keras.layers.Conv2D(filters, 1, activation="sigmoid", name="seg_gate")(gate)
    a = keras.layers.Multiply(name="seg_gated")([a, gate])
    a = _upsample_to(a, low, "seg_up")
    high_scores = keras.layers.Conv2D(num_classes, 1, name="seg_high_classifier")(a)
    low_scores = keras.layers.Conv2D(num_classes, 1, name="seg_low_classifier")(low)
    return keras.layers.Add(dtype="float32", name=name)([high_scores, low_scores])


def unet_head(high, mid, low, num_classes: int, name: str):
    x = _conv_bn_relu(high, 128, "seg_top")
    x = _upsample_to(x, mid, "seg_up16")
    x = keras.layers.Concatenate(name="seg_cat8")([x, _conv_bn_relu(mid, 64, "seg_skip8")])
    x = _conv_bn_relu(x, 96, "seg_dec8", separable=True)
    x = _upsample_to(x, low, "seg_up8")
    x = keras.layers.Concatenate(name="seg_cat4")([x, _conv_bn_relu(low, 32, "seg_skip4")])
    x = _conv_bn_relu(x, 64, "seg_dec4", separable=True)
    return keras.layers.Conv2D(num_classes, 1, dtype="float32", name=name)(x)


def build_head(features, options, num_classes: int, name: str):
    high = tensor_of_layer(features, options.high_layer)
    if options.decoder == "lraspp":
        return lraspp_head(high, tensor_of_layer(features, options.mid_layer), num_classes, name)
    return unet_head(high, tensor_of_layer(features, options.mid_layer), tensor_of_layer(features, options.low_layer),
                     num_classes, name)


def with_class_map(model, scores_name: str, classes_name: str):
    """The trained model with the class map appended as a second output."""
    h, w = model.input_shape[1:3]
    scores = model.get_layer(scores_name).output if scores_name in [l.name for l in model.layers] else model.output
    classes = ClassMap((h, w), name=classes_name)(scores)
    return keras.Model(model.inputs, [scores, classes], name=model.name)


# ---- loss -------------------------------------------------------------------------------------

def weighted_cross_entropy(class_weights: Sequence[float]):
    """Softmax cross-entropy of the scores upsampled (bilinear) to the label's size, each pixel
    weighted by its class's weight; ignored pixels count nowhere. One number per batch: the
    weighted mean over labelled pixels."""
    weights = tf.constant(np.asarray(class_weights, np.float32))

    def loss(y_true, y_pred):
        labels = tf.cast(y_true, tf.int32)
        if labels.shape.rank == 4:
            labels = labels[..., 0]
        size = tf.shape(labels)[1:3]
        logits = tf.image.resize(tf.cast(y_pred, tf.float32), size, method="bilinear")
        valid = tf.not_equal(labels, IGNORE)
        safe = tf.where(valid, labels, 0)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
        w = tf.gather(weights, safe) * tf.cast(valid, tf.float32)
        return tf.reduce_sum(ce * w) / tf.maximum(tf.reduce_sum(w), 1.0)

    return loss


# ---- training data ----------------------------------------------------------------------------

def augment_pair(image, label, size: Sequence[int], scale: tuple, flip: bool, colour: float):
    """One image (float 0..255 [H, W, 3]) and its label map ([H, W] int32) moved together: random
    scale (bilinear for pixels, nearest for labels so no class is blended), a random crop of
    `size` (padding with the ignore index where the scaled image is smaller), a horizontal flip,
    then colour jitter on the pixels alone."""
    h, w = int(size[0]), int(size[1])
    s = tf.random.uniform([], scale[0], scale[1])
    nh = tf.cast(tf.round(h * s), tf.int32)
    nw = tf.cast(tf.round(w * s), tf.int32)
    image = tf.image.resize(image, [nh, nw], method="bilinear")
    label = tf.image.resize(label[..., None], [nh, nw], method="nearest")
    ph, pw = tf.maximum(h - nh, 0), tf.maximum(w - nw, 0)
    image = tf.pad(image, [[0, ph], [0, pw], [0, 0]])
    label = tf.pad(label - IGNORE, [[0, ph], [0, pw], [0, 0]]) + IGNORE  # padding is the ignore index
    both = tf.image.random_crop(tf.concat([image, tf.cast(label, tf.float32)], axis=-1), [h, w, 4])
    if flip:
        both = tf.image.random_flip_left_right(both)
    image, label = both[..., :3], tf.cast(tf.round(both[..., 3]), tf.int32)
    if colour > 0:
        image = tf.image.random_brightness(image, 128.0 * colour)
        image = tf.image.random_contrast(image, 1 - colour, 1 + colour)
        image = tf.image.random_saturation(image, 1 - colour, 1 + colour)
    return tf.clip_by_value(image, 0.0, 255.0), label


def segmentation_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int, *, training: bool, seed: int,
                         augment: bool, scale: tuple, flip: bool, colour: float):
    """Batches of (float32 pixels [B, H, W, 3], int32 labels [B, H, W]) from arrays at the input size."""
    tf.random.set_seed(seed)
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if training:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    size = images.shape[1:3]
    if training and augment:
        ds = ds.map(lambda x, y: augment_pair(tf.cast(x, tf.float32), tf.cast(y, tf.int32), size, scale, flip, colour),
                    num_parallel_calls=1, deterministic=True)
    else:
        ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), tf.cast(y, tf.int32)))
    return ds.batch(batch_size).prefetch(1)
