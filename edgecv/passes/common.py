"""Helpers the training passes share: copy a model, fine-tune settings, accuracy on the val split."""

from __future__ import annotations

import gzip
import math
from typing import Optional

import numpy as np

from edgecv._keras import keras
from edgecv.models.build import NORMALIZE_LAYER, copy_keras  # noqa: F401 (copy_keras: the passes' copy)
from edgecv.data.images import load_batch
from edgecv.tasks import as_named

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")


def set_finetune_trainable(model: keras.Model) -> None:
    """Everything trainable except batch norm (kept in inference mode: folded weights) and the
    fixed input normalization."""
    for layer in model.layers:
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization) and layer.name != NORMALIZE_LAYER


def make_optimizer(name: str, learning_rate: float):
    return {
        "adam": lambda: keras.optimizers.Adam(learning_rate),
        "adamw": lambda: keras.optimizers.AdamW(learning_rate),
        "sgd": lambda: keras.optimizers.SGD(learning_rate, momentum=0.9),
        "rmsprop": lambda: keras.optimizers.RMSprop(learning_rate),
    }[name]()


def steps_per_epoch(ctx, batch_size: int) -> int:
    return max(1, math.ceil(len(ctx.index.train) / batch_size))


def val_arrays(ctx, size: Optional[tuple[int, int]] = None) -> tuple[np.ndarray, object]:
    """Validation images (uint8, decoded at `size` by the recipe's resize policy) and the task's
    targets: the pixels the build's validation feeds an artifact of that input size."""
    size = tuple(size or ctx.recipe.input.size)
    samples = ctx.task.eval_samples(ctx.index)
    images = load_batch([s.path for s in samples], size, ctx.recipe.input.resize)
    return images, ctx.task.targets(samples, ctx.index.info)


def quality(ctx, model: keras.Model, images: np.ndarray, targets, batch_size: int = 32) -> float:
    """The task's quality metric (what passes optimize: accuracy in percent for classification) of
    a Keras model on float pixels, in the metric's own units."""
    task, info = ctx.task, ctx.index.info
    raw = model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0)
    outputs = {k: np.asarray(v) for k, v in as_named(raw, task.output_names(info)).items()}
    return float(task.evaluate(outputs, targets, info)[task.quality_metric])


def quality_report(ctx, prefix: str, **values: float) -> dict:
    """Pass report fields named after the task's metric: val_accuracy_before ... for classification."""
    name = ctx.task.quality_metric
    return {f"{prefix}{name}{suffix}": v for suffix, v in values.items()}


def weights_gzip_bytes(model: keras.Model) -> int:
    """gzip size of the model's float32 weights: what sparsity buys in a compressed download."""
    raw = b"".join(np.ascontiguousarray(w, np.float32).tobytes() for w in model.get_weights())
    return len(gzip.compress(raw, compresslevel=9))


def param_count(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.weights))
