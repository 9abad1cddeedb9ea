"""tf.data pipelines over the dataset index: decode (Pillow), resize, cache, shuffle, augment, batch."""

from __future__ import annotations

import numpy as np

from edgecv._keras import keras, tf
from edgecv.data.images import load_image
from edgecv.data.index import Sample


def augmentation(cfg, seed: int) -> keras.Sequential | None:
    """Random geometric/photometric augmentation applied to float 0-255 batches while training."""
    layers = []
    if cfg.flip != "none":
        mode = {"horizontal": "horizontal", "vertical": "vertical", "both": "horizontal_and_vertical"}[cfg.flip]
        layers.append(keras.layers.RandomFlip(mode, seed=seed))
    if cfg.rotation:
        layers.append(keras.layers.RandomRotation(cfg.rotation, fill_mode="reflect", seed=seed + 1))
    if cfg.zoom:
        layers.append(keras.layers.RandomZoom(cfg.zoom, fill_mode="reflect", seed=seed + 2))
    if cfg.translate:
        layers.append(keras.layers.RandomTranslation(cfg.translate, cfg.translate, fill_mode="reflect", seed=seed + 3))
    if cfg.contrast:
        layers.append(keras.layers.RandomContrast(cfg.contrast, seed=seed + 4))
    return keras.Sequential(layers, name="augment") if layers else None


def image_dataset(
    samples: list[Sample],
    size: tuple[int, int],
    resize_policy: str,
    batch_size: int,
    targets: np.ndarray,
    target_map=None,
    *,
    shuffle: bool = False,
    augment: keras.Sequential | None = None,
    seed: int = 0,
    cache: bool = True,
) -> tf.data.Dataset:
    """Batches of (float32 0-255 RGB images, targets): `targets` has one row per sample (the
    task's encoding); `target_map` turns a batch of them into what the loss takes (one-hot ...)."""
    paths = np.array([s.path for s in samples])
    labels = np.asarray(targets)
    if labels.dtype == np.int64:
        labels = labels.astype(np.int32)
    h, w = size

    def decode(path):
        return load_image(path.decode(), size, resize_policy)

    def load(path, label):
        img = tf.numpy_function(decode, [path], tf.uint8, stateful=False)
        img.set_shape((h, w, 3))
        return img, label

    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        ds = ds.cache()  # decoded uint8: decode once, not every epoch
    if shuffle:
        ds = ds.shuffle(len(samples), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    to_loss = target_map or (lambda y: y)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), to_loss(y)), num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:
        ds = ds.map(
            lambda x, y: (tf.clip_by_value(augment(x, training=True), 0.0, 255.0), y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return ds.prefetch(tf.data.AUTOTUNE)
