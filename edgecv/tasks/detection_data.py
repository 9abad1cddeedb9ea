"""Training batches for the detection task: photos decoded once, augmented with their boxes in numpy
(edgecv.data.detection_augment) and given anchor targets (detection_anchors.assign_targets) every
epoch, batched by tf.data.

Validation batches are the images exactly as evaluation decodes them (edgecv.data.images.load_image
with the resize policy), with their targets: the loss the trainer watches is the one on the pixels
the metrics see. Each epoch's draws come from a generator seeded by (seed, epoch): the same recipe
gives the same batches.
"""

from __future__ import annotations

import itertools

import numpy as np

from edgecv.data.detection import ImageBoxes, boxes_to_input
from edgecv.data.detection_augment import BoxAugment, augment_image
from edgecv.data.images import load_image, load_rgb
from edgecv.tasks.detection_anchors import assign_targets, generate_anchors

PHOTO_OVERSIZE = 1.5  # photos are kept at most this times the input's larger side (crops keep detail)


def input_boxes(gt: ImageBoxes, size, policy: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ground truth in [0, 1] of the input (ymin, xmin, ymax, xmax), clipped; boxes a centre crop
    removes are dropped."""
    b = boxes_to_input(gt.boxes, (gt.width, gt.height), size, policy)
    b = np.clip(b, 0.0, 1.0)
    keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    return b[keep][:, [1, 0, 3, 2]], gt.classes[keep], gt.ignore[keep]


def detection_dataset(task, samples, info: dict, recipe, batch_size: int, *, training: bool, seed: int,
                      augment: bool, size):
    from edgecv._keras import tf

    o = task.options
    det = info["detection"]
    anchors = generate_anchors(det["anchors"])
    scales = det["scales"]
    num_classes = len(info["class_names"])
    policy = recipe.input.resize
    gts = [ImageBoxes.from_sample(s) for s in samples]

    def targets(boxes, classes, ignore):
        cls_t, box_t = assign_targets(boxes, classes, anchors, num_classes, o.positive_iou, o.negative_iou, scales,
                                      ignore)
        return box_t, cls_t

    h, w = size
    L = len(anchors)
    signature = (tf.TensorSpec((h, w, 3), tf.float32),
                 (tf.TensorSpec((L, 5), tf.float32), tf.TensorSpec((L, num_classes + 1), tf.float32)))

    if not (training and augment):
        images = [load_image(s.path, size, policy) for s in samples]
        encoded = [targets(*input_boxes(g, size, policy)) for g in gts]

        def fixed():
            for img, y in zip(images, encoded):
                yield img.astype(np.float32), y

        ds = tf.data.Dataset.from_generator(fixed, output_signature=signature)
        return ds.batch(batch_size).prefetch(2)

    cfg = BoxAugment.from_recipe(recipe.augment)
    photos = []
    for g in gts:
        rgb = load_rgb(g.path)
        f = min(1.0, PHOTO_OVERSIZE * max(size) / max(rgb.shape[:2]))
        if f < 1.0:
            from PIL import Image

            nw, nh = max(1, round(rgb.shape[1] * f)), max(1, round(rgb.shape[0] * f))
            rgb = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.BILINEAR), np.uint8)
        sx, sy = rgb.shape[1] / g.width, rgb.shape[0] / g.height
        photos.append((rgb, g.boxes * [sx, sy, sx, sy], g.classes, g.ignore))
    epochs = itertools.count()

    def augmented():
        rng = np.random.default_rng([seed, next(epochs)])
        for i in rng.permutation(len(photos)):
            rgb, boxes, classes, ignore = photos[i]
            img, b, c, ig = augment_image(rgb, boxes, classes, size, policy, cfg, rng, ignore)
            yield img.astype(np.float32), targets(b, c, ig)

    ds = tf.data.Dataset.from_generator(augmented, output_signature=signature)
    return ds.batch(batch_size).prefetch(2)
