"""Helpers the training passes share: copy a model, fine-tune settings, accuracy on the val split."""

from __future__ import annotations

import gzip
import math
from typing import Optional

import numpy as np

from edgecv._keras import keras
from edgecv.models.build import NORMALIZE_LAYER

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")


def copy_keras(model: keras.Model) -> keras.Model:
    """An independent copy (new layers, same weights): a pass must not change the model it was given,
    which later artifacts of the same build still use."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


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


def val_arrays(ctx, size: Optional[tuple[int, int]] = None) -> tuple[np.ndarray, np.ndarray]:
    """Validation images (uint8, decoded at `size` by the recipe's resize policy) and labels: the
    pixels the build's validation feeds an artifact of that input size."""
    from edgecv.data.images import load_batch

    size = tuple(size or ctx.recipe.input.size)
    images = load_batch([s.path for s in ctx.index.val], size, ctx.recipe.input.resize)
    return images, np.array([s.label for s in ctx.index.val])


def accuracy(model: keras.Model, images: np.ndarray, labels: np.ndarray, batch_size: int = 32) -> float:
    """Top-1 accuracy in percent of a Keras model (float pixels in, probabilities out)."""
    probs = model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0)
    return float((probs.argmax(1) == labels).mean() * 100)


def weights_gzip_bytes(model: keras.Model) -> int:
    """gzip size of the model's float32 weights: what sparsity buys in a compressed download."""
    raw = b"".join(np.ascontiguousarray(w, np.float32).tobytes() for w in model.get_weights())
    return len(gzip.compress(raw, compresslevel=9))


def param_count(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.weights))
