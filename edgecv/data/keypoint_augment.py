"""Augmentation that moves keypoints with the pixels: one random affine per image (horizontal flip
with left/right pairs swapped, rotation, scale, translation) applied to the image and its points
by the same matrix, then colour jitter on the pixels only.

Points are (x, y) in [0, 1] of the image with continuous pixel coordinates (pixel i covers
[i, i+1)); the image warp samples at pixel centres, so a dot drawn at a point stays on that point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgecv._keras import tf


@dataclass(frozen=True)
class KeypointAugment:
    flip_perm: np.ndarray  # perm[i]: the point that becomes point i after a horizontal flip
    flip: bool = True
    rotation: float = 0.0  # max |angle|, fraction of a full turn
    zoom: float = 0.0  # scale in [1 - zoom, 1 + zoom]
    translate: float = 0.0  # max shift, fraction of the image
    color: float = 0.0  # brightness, contrast, saturation jitter

    @classmethod
    def from_recipe(cls, cfg, flip_perm: np.ndarray) -> "KeypointAugment":
        return cls(np.asarray(flip_perm), cfg.flip == "horizontal", cfg.rotation, cfg.zoom, cfg.translate, cfg.contrast)


def affine_matrices(n, height: int, width: int, angle, scale, shift_x, shift_y, flip):
    """[n, 3, 3] maps a source point (continuous pixels) to its place in the augmented image:
    p' = c + s R F (p - c) + t, with F the horizontal mirror where `flip`."""
    cx, cy = width / 2.0, height / 2.0
    fx = tf.where(flip, -1.0, 1.0)
    cos, sin = tf.cos(angle) * scale, tf.sin(angle) * scale
    a00, a01, a10, a11 = cos * fx, -sin, sin * fx, cos
    a02 = cx + shift_x - (a00 * cx + a01 * cy)
    a12 = cy + shift_y - (a10 * cx + a11 * cy)
    zero, one = tf.zeros([n]), tf.ones([n])
    return tf.reshape(tf.stack([a00, a01, a02, a10, a11, a12, zero, zero, one], axis=1), [n, 3, 3])


def warp(images, points, matrices, flip, flip_perm):
    """Apply the matrices to float images [n, H, W, 3] and points [n, K, 3] ((x, y) in [0, 1], labelled)."""
    n = tf.shape(images)[0]
    h, w = images.shape[1], images.shape[2]
    # ImageProjectiveTransformV3 maps each output pixel index to an input pixel index (centres at +0.5)
    half = tf.constant([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]], tf.float32)
    back = tf.constant([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]], tf.float32)
    inverse = half[None] @ tf.linalg.inv(matrices) @ back[None]
    inverse = inverse / inverse[:, 2:3, 2:3]
    images = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=tf.reshape(inverse, [n, 9])[:, :8], output_shape=[h, w],
        interpolation="BILINEAR", fill_mode="REFLECT", fill_value=0.0)
    px = points[..., :2] * tf.constant([w, h], tf.float32)
    moved = tf.einsum("nij,nkj->nki", matrices, tf.concat([px, tf.ones_like(px[..., :1])], -1))[..., :2]
    xy = moved / tf.constant([w, h], tf.float32)
    out = tf.concat([xy, points[..., 2:3]], -1)
    out = tf.where(flip[:, None, None], tf.gather(out, flip_perm, axis=1), out)  # left/right swap names
    inside = tf.reduce_all((out[..., :2] >= 0.0) & (out[..., :2] <= 1.0), axis=-1, keepdims=True)
    return images, tf.concat([out[..., :2], out[..., 2:3] * tf.cast(inside, tf.float32)], -1)


def color_jitter(images, amount: float):
    n = tf.shape(images)[0]

    def factor():
        return tf.random.uniform([n, 1, 1, 1], 1.0 - amount, 1.0 + amount)

    images = images + (factor() - 1.0) * 255.0 * 0.5  # brightness
    mean = tf.reduce_mean(images, [1, 2, 3], keepdims=True)
    images = (images - mean) * factor() + mean  # contrast
    gray = tf.reduce_mean(images, -1, keepdims=True)
    images = (images - gray) * factor() + gray  # saturation
    return tf.clip_by_value(images, 0.0, 255.0)


def augment_batch(images, points, cfg: KeypointAugment):
    """A random transform per image of a float 0..255 batch and its [n, K, 3] points."""
    n = tf.shape(images)[0]
    h, w = images.shape[1], images.shape[2]
    angle = tf.random.uniform([n], -1.0, 1.0) * cfg.rotation * 2 * np.pi
    scale = tf.random.uniform([n], 1.0 - cfg.zoom, 1.0 + cfg.zoom)
    shift_x = tf.random.uniform([n], -1.0, 1.0) * cfg.translate * w
    shift_y = tf.random.uniform([n], -1.0, 1.0) * cfg.translate * h
    flip = tf.random.uniform([n]) < (0.5 if cfg.flip else 0.0)
    matrices = affine_matrices(n, h, w, angle, scale, shift_x, shift_y, flip)
    images, points = warp(images, points, matrices, flip, tf.constant(cfg.flip_perm, tf.int32))
    if cfg.color:
        images = color_jitter(images, cfg.color)
    return images, points
