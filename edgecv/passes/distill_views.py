"""The teacher's answers cached once: augmented views of the training images (and of unlabelled
images) decoded at the teacher's size, labelled by the teacher, stored at the student's size.

Distillation spends most of its time in the teacher's forward pass when the teacher is the larger
network; caching `views` augmented copies of each training image with the teacher's outputs and
pooled features makes each student epoch cost only the student. Each view is what the teacher saw
(random-resized crop, the recipe's augmentation, optionally blended with another image by mixup or
cutmix) resized to the student's input, so the teacher's label always belongs to the student's
pixels. Blended images and unlabelled images carry no ground truth: they are trained on the
teacher's outputs only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from edgecv._keras import keras, tf
from edgecv.data.images import IMAGE_EXTENSIONS
from edgecv.errors import ConfigError


@dataclass
class ViewPool:
    """Cached views: student-size uint8 images, the teacher's distilled outputs and pooled
    features, the task's loss targets (None where the view has no ground truth)."""

    images: np.ndarray
    teacher: Any  # nested structure of arrays, one row per view
    features: np.ndarray
    targets: Any  # nested structure of arrays for the labelled views (rows 0..labelled-1)
    labelled: int  # views [0, labelled) have targets; the rest are teacher-only

    def __len__(self) -> int:
        return len(self.images)


def pooled_features(keras_model: keras.Model, backbone_layers: list) -> keras.Model:
    """A model giving the backbone's last feature map averaged over space: what the head reads."""
    if not backbone_layers:
        raise ConfigError("swap: feature_weight needs a model with a known backbone (a recipe backbone, not a "
                          "loaded model); set feature_weight: 0")
    fmap = keras_model.get_layer(backbone_layers[-1]).output
    pooled = keras.layers.GlobalAveragePooling2D()(fmap) if len(fmap.shape) == 4 else keras.layers.Flatten()(fmap)
    return keras.Model(keras_model.input, pooled)


def random_resized_crop(x, min_area: float, seed: int):
    """Crop a random box of area min_area..1 of the image (aspect 3/4..4/3, as in Inception
    training) and resize it back to the batch's size."""
    n, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    gen = tf.random.Generator.from_seed(seed)
    area = gen.uniform([n], min_area, 1.0)
    log_ratio = gen.uniform([n], np.log(3 / 4), np.log(4 / 3))
    ratio = tf.exp(log_ratio)
    bh = tf.minimum(tf.sqrt(area / ratio), 1.0)
    bw = tf.minimum(tf.sqrt(area * ratio), 1.0)
    y0 = gen.uniform([n]) * (1.0 - bh)
    x0 = gen.uniform([n]) * (1.0 - bw)
    boxes = tf.stack([y0, x0, y0 + bh, x0 + bw], axis=1)
    return tf.image.crop_and_resize(x, boxes, tf.range(n), tf.stack([h, w]))


def blend(x, kind: str, rng: np.random.Generator) -> tf.Tensor:
    """Mixup (pixel average) or cutmix (a pasted box) of each image with another of the batch."""
    x = tf.convert_to_tensor(x)
    n = int(x.shape[0])
    perm = rng.permutation(n)
    other = tf.gather(x, perm)
    lam = rng.beta(1.0, 1.0, n).astype(np.float32)
    if kind == "mixup":
        lam = lam[:, None, None, None]
        return lam * x + (1.0 - lam) * other
    h, w = int(x.shape[1]), int(x.shape[2])
    mask = np.ones((n, h, w, 1), np.float32)
    for i, l in enumerate(lam):
        ch, cw = int(h * np.sqrt(1 - l)), int(w * np.sqrt(1 - l))
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        mask[i, max(cy - ch // 2, 0):cy + ch // 2, max(cx - cw // 2, 0):cx + cw // 2] = 0.0
    return mask * x + (1.0 - mask) * other


def unlabelled_files(folder: Path) -> list:
    if not folder.is_dir():
        raise ConfigError(f"swap: unlabelled folder {folder} not found; give a folder of images (any depth)")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise ConfigError(f"swap: unlabelled folder {folder} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return files


def build_pool(train_batches: Callable[[], Any], unlabelled_batches: Optional[Callable[[], Any]], *,
               teacher_out: keras.Model, teacher_feat: keras.Model, student_size, views: int, mixed_views: int,
               mix: str, crop_min_area: Optional[float], crop_labelled: bool, seed: int, log=None) -> ViewPool:
    """Run the teacher once over `views` augmented passes of the training split (labelled),
    `mixed_views` blended passes and one augmented pass of each unlabelled image per view
    (teacher-only). `teacher_feat` None: no features (zeros). Crops reach labelled views only with
    `crop_labelled` (targets that a crop does not move, like class labels)."""
    rng = np.random.default_rng(seed)
    images, teach, feats, targets = [], [], [], []
    labelled_images, labelled_teach, labelled_feats = [], [], []

    def add(x, y, into):
        if crop_min_area is not None and (y is None or crop_labelled):
            x = random_resized_crop(x, crop_min_area, int(rng.integers(2**31)))
        t = tf.nest.map_structure(lambda a: a.numpy(), teacher_out(x, training=False))
        f = teacher_feat(x, training=False).numpy() if teacher_feat is not None else np.zeros((len(x), 1), np.float32)
        xs = tf.image.resize(x, student_size, method="bilinear", antialias=True)
        imgs, tl, fl = into
        imgs.append(tf.cast(tf.round(tf.clip_by_value(xs, 0.0, 255.0)), tf.uint8).numpy())
        tl.append(t)
        fl.append(f)
        if y is not None:
            targets.append(tf.nest.map_structure(lambda a: np.asarray(a), y))

    dataset = train_batches()  # one dataset iterated again and again: each pass draws new augmentation
    for v in range(views):
        for x, y in dataset:
            add(x, y, (labelled_images, labelled_teach, labelled_feats))
        if log:
            log(f"    distill: teacher labelled view {v + 1}/{views}")
    for v in range(mixed_views):
        for x, _ in dataset:
            if int(x.shape[0]) > 1:
                add(blend(x, mix, rng), None, (images, teach, feats))
    if unlabelled_batches is not None:
        for v in range(max(views, 1)):
            for x in unlabelled_batches():
                add(x, None, (images, teach, feats))
    all_images = labelled_images + images
    all_teach = labelled_teach + teach
    concat = lambda *parts: np.concatenate(parts)  # noqa: E731
    return ViewPool(
        images=np.concatenate(all_images),
        teacher=tf.nest.map_structure(concat, *all_teach),
        features=np.concatenate(labelled_feats + feats),
        targets=tf.nest.map_structure(concat, *targets),
        labelled=sum(len(a) for a in labelled_images),
    )


def epoch_batches(pool: ViewPool, batch_size: int, rng: np.random.Generator) -> list:
    """Index batches over the whole pool in random order; a batch is all labelled or all
    teacher-only, so the label loss is a plain batch mean."""
    lab = rng.permutation(pool.labelled)
    unl = pool.labelled + rng.permutation(len(pool) - pool.labelled)
    batches = [lab[i:i + batch_size] for i in range(0, len(lab), batch_size)]
    batches += [unl[i:i + batch_size] for i in range(0, len(unl), batch_size)]
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def steps_per_epoch(pool: ViewPool, views: int, batch_size: int) -> int:
    """An epoch is as long as one view of each image (the pool's size over the view count), so
    `epochs` keeps its meaning of passes over the training split; each one sees fresh views."""
    return max(1, math.ceil(len(pool) / max(views, 1) / batch_size))


def epoch_plans(pool: ViewPool, views: int, epochs: int, batch_size: int, rng: np.random.Generator) -> list:
    """`epochs` lists of index batches, cut from successive shuffled passes over the whole pool."""
    steps = steps_per_epoch(pool, views, batch_size)
    stream: list = []
    while len(stream) < epochs * steps:
        stream += epoch_batches(pool, batch_size, rng)
    return [stream[e * steps:(e + 1) * steps] for e in range(epochs)]
