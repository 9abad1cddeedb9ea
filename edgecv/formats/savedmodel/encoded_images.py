"""Decode and resize encoded images (JPEG, PNG, GIF, BMP bytes) inside a TensorFlow graph, by the
preprocessing contract `edgecv.data.images` applies with Pillow, so a TF Serving client can send
files instead of 0.5 MB of JSON pixels per image.

Agreement with Pillow (checked in tests/test_serving_artifacts.py): JPEG decoding is bit-exact with
INTEGER_ACCURATE (libjpeg's ISLOW, Pillow's default); the resize is the same antialiased bilinear
(triangle) filter over the same fractional crop box, within one grey level (Pillow's fixed-point
rounding). Not done in the graph: EXIF rotation, and transparent PNGs lose their alpha here
(Pillow composites them onto white).
"""

from __future__ import annotations

ENCODED_SIGNATURE = "serving_encoded"
ENCODED_INPUT = "image_bytes"  # the `_bytes` suffix: base64 over REST on Google's serving stacks too


def _scale_and_translate(img, size, scale, translation):
    """Antialiased bilinear resampling of one HxWx3 image to `size`, output pixel (y, x) taking
    input coordinate ((y + 0.5 - ty) / sy - 0.5): Pillow's `resize(box=...)` arithmetic."""
    from edgecv._keras import tf

    y = tf.raw_ops.ScaleAndTranslate(images=tf.cast(img, tf.float32)[None], size=tf.constant(size, tf.int32),
                                     scale=tf.cast(scale, tf.float32), translation=tf.cast(translation, tf.float32),
                                     kernel_type="triangle", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(y[0]), 0.0, 255.0), tf.uint8)


def resize_in_graph(img, size: tuple[int, int], policy: str, pad_value: int = 0):
    """HxWx3 uint8 -> size (height, width) uint8, as `edgecv.data.images.resize(policy)`."""
    from edgecv._keras import tf

    h, w = int(size[0]), int(size[1])
    ih = tf.cast(tf.shape(img)[0], tf.float64)
    iw = tf.cast(tf.shape(img)[1], tf.float64)
    if policy == "resize":
        return _scale_and_translate(img, [h, w], tf.stack([h / ih, w / iw]), [0.0, 0.0])
    if policy == "center_crop":  # ImageOps.fit: the largest centred box of the output's aspect
        live, out = iw / ih, w / h
        crop_w = tf.where(live >= out, out * ih, iw)
        crop_h = tf.where(live >= out, ih, iw / out)
        sy, sx = h / crop_h, w / crop_w
        return _scale_and_translate(img, [h, w], tf.stack([sy, sx]),
                                    tf.stack([-(ih - crop_h) * 0.5 * sy, -(iw - crop_w) * 0.5 * sx]))
    if policy == "pad":  # ImageOps.pad: fit inside, keep aspect, letterbox centred
        wider = iw / ih > w / h
        # Python's round() is round-half-even, as tf.round
        new_h = tf.cast(tf.where(wider, tf.round(ih / iw * w), h), tf.int32)
        new_w = tf.cast(tf.where(wider, w, tf.round(iw / ih * h)), tf.int32)
        new_h, new_w = tf.maximum(new_h, 1), tf.maximum(new_w, 1)
        scale = tf.stack([tf.cast(new_h, tf.float64) / ih, tf.cast(new_w, tf.float64) / iw])
        inner = tf.raw_ops.ScaleAndTranslate(images=tf.cast(img, tf.float32)[None], size=tf.stack([new_h, new_w]),
                                             scale=tf.cast(scale, tf.float32), translation=tf.zeros([2]),
                                             kernel_type="triangle", antialias=True)[0]
        inner = tf.clip_by_value(tf.round(inner), 0.0, 255.0)
        top = tf.cast(tf.round(tf.cast(h - new_h, tf.float32) * 0.5), tf.int32)
        left = tf.cast(tf.round(tf.cast(w - new_w, tf.float32) * 0.5), tf.int32)
        padded = tf.pad(inner - pad_value, [[top, h - new_h - top], [left, w - new_w - left], [0, 0]]) + pad_value
        return tf.cast(tf.ensure_shape(padded, [h, w, 3]), tf.uint8)
    raise ValueError(f"unknown resize policy {policy!r}")


def decode_in_graph(contents):
    """Encoded bytes -> HxWx3 uint8 RGB (JPEG with libjpeg's accurate DCT, as Pillow decodes)."""
    from edgecv._keras import tf

    return tf.cond(tf.io.is_jpeg(contents),
                   lambda: tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE"),
                   lambda: tf.ensure_shape(tf.io.decode_image(contents, channels=3, expand_animations=False),
                                           [None, None, 3]))


def encoded_to_pixels(batch, size: tuple[int, int], policy: str, pad_value: int = 0):
    """[N] encoded images -> N x H x W x 3 uint8 at the model's input size."""
    from edgecv._keras import tf

    return tf.map_fn(lambda c: resize_in_graph(decode_in_graph(c), size, policy, pad_value), batch,
                     fn_output_signature=tf.TensorSpec([size[0], size[1], 3], tf.uint8))
