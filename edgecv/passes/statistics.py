"""Statistics over the calibration images, gathered in one pass for every step that asks for them
(as NNCF's statistic points): each step names the layers it needs and what of their input, the
float model runs once over the calibration images, and every layer's input is turned into patch
rows once and accumulated into each statistic asked of it.

A layer's input "patch rows" are what one output of the layer is a dot product with: for a
convolution, the K = kh x kw x C input values under the kernel at one output position (with the
layer's own padding, strides and dilation); for a Dense layer, its input vector. Statistics:

- `gram`: sum over rows of row^T row, [groups, K, K] (learned rounding's output-error quadratic form)
- `row_sum`: sum over rows, [K] or [K, C] for depthwise (bias correction: the mean output shift of a
  weight error E is (row_sum / rows) @ E, exactly, since a layer is linear in its kernel)

The model is not changed: the statistics are of a copy (the model's own layers carry a node for
every call made on them since it was built).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, Optional, Set

import numpy as np

from edgecv.data.calibration import stacked_batches

GRAM, ROW_SUM = "gram", "row_sum"
LAYER_KINDS = ("Conv2D", "DepthwiseConv2D", "Dense")
# Images per forward pass. Learned rounding's Gram matrices are summed per batch in float32 first, so
# the batch size is part of its numbers: 8, as learned rounding always used.
BATCH_SIZE = 8


@dataclass
class LayerStatistics:
    gram: Optional[np.ndarray] = None  # [groups, K, K] float64
    row_sum: Optional[np.ndarray] = None  # [K] or [K, C] (depthwise) float64
    rows: int = 0  # rows summed (images x output positions)
    kernel: Optional[np.ndarray] = None  # the layer's kernel when the statistics were taken


@dataclass
class CalibrationStatistics:
    """What one pass over the calibration images measured, by layer name (names of `model`, the
    copy the statistics were taken on)."""

    layers: Dict[str, LayerStatistics] = field(default_factory=dict)
    images: int = 0
    seconds: float = 0.0
    model: object = None  # the copy the statistics are of (its layers carry one node each)
    skipped: str = ""  # why none were gathered (the model cannot be copied or probed)


def copy_for_statistics(keras_model):
    """A copy of the model whose layers carry one inbound node each, or (None, why)."""
    from edgecv.models.build import copy_keras

    try:
        return copy_keras(keras_model), ""
    except Exception as e:  # a subclassed user model has no layer graph to copy
        return None, f"the model cannot be cloned ({type(e).__name__}: {e})"[:300]


def patch_rows_supported(layer) -> str:
    """'' when patch rows can be taken of the layer's input, else why not."""
    kind = type(layer).__name__
    if kind == "Dense":
        return ""
    if layer.data_format != "channels_last":
        return "channels_first"
    if kind == "Conv2D" and getattr(layer, "groups", 1) != 1:
        return "grouped"
    if len(layer.weights[0].shape) != 4:
        return "not a 2D convolution"
    return ""


def patch_rows(layer, x) -> np.ndarray:
    """The layer's input as rows of patches: [rows, K] (one group) or [rows, K, C] (depthwise)."""
    from edgecv._keras import tf

    kind = type(layer).__name__
    if kind == "Dense":
        return np.asarray(x, np.float32).reshape(-1, x.shape[-1])
    kh, kw = layer.kernel_size
    sh, sw = layer.strides
    dh, dw = layer.dilation_rate
    if (kh, kw, sh, sw) == (1, 1, 1, 1):
        rows = np.asarray(x, np.float32).reshape(-1, x.shape[-1])
    else:
        patches = tf.image.extract_patches(x, [1, kh, kw, 1], [1, sh, sw, 1], [1, dh, dw, 1], layer.padding.upper())
        rows = patches.numpy().reshape(-1, kh * kw * x.shape[-1])  # (row, col, channel) order
    if kind == "DepthwiseConv2D":
        return rows.reshape(len(rows), kh * kw, x.shape[-1])
    return rows


def _accumulate(stats: LayerStatistics, rows: np.ndarray, wanted: Set[str]) -> None:
    if GRAM in wanted:
        if rows.ndim == 3:  # depthwise: one Gram matrix per channel
            gram = np.einsum("rkc,rlc->ckl", rows, rows, optimize=True)
        else:
            gram = (rows.T @ rows)[None]
        stats.gram = gram.astype(np.float64) if stats.gram is None else stats.gram + gram
    if ROW_SUM in wanted:
        s = rows.sum(axis=0, dtype=np.float64)
        stats.row_sum = s if stats.row_sum is None else stats.row_sum + s
    stats.rows += len(rows)


def gather(model, points: Dict[str, Set[str]], calibration: Callable[[], Iterator[np.ndarray]],
           batch_size: int = BATCH_SIZE) -> CalibrationStatistics:
    """One pass of `model` (a copy from `copy_for_statistics`) over the calibration images,
    accumulating the statistics `points` asks for: layer name -> {"gram", "row_sum"}."""
    from edgecv._keras import keras

    out = CalibrationStatistics(model=model)
    names = [layer.name for layer in model.layers if points.get(layer.name)]  # in the model's order
    if not names:
        return out
    layers = [model.get_layer(n) for n in names]
    try:
        probe = keras.Model(model.inputs, [layer.input for layer in layers])
    except Exception as e:  # a subclassed user model has no layer graph to read inputs from
        out.skipped = f"no layer graph ({type(e).__name__}: {e})"[:300]
        return out
    for layer in layers:
        out.layers[layer.name] = LayerStatistics(kernel=layer.get_weights()[0])
    started = time.perf_counter()
    for batch in stacked_batches(calibration(), batch_size):
        inputs = probe(batch, training=False)
        for layer, x in zip(layers, inputs if isinstance(inputs, list) else [inputs]):
            _accumulate(out.layers[layer.name], patch_rows(layer, x), points[layer.name])
        out.images += len(batch)
    out.seconds = time.perf_counter() - started
    return out
