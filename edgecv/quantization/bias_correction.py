"""Bias correction for int8 weight quantization (Nagel et al. 2019, "Data-Free Quantization Through
Weight Equalization and Bias Correction", section 4.2, empirical form).

Rounding a layer's weights to int8 shifts the mean of its output: E[conv(x, Q(W))] - E[conv(x, W)]
= E[conv(x, Q(W) - W)] per output channel, which is not zero when the rounding errors of a channel
happen to line up with the mean of its inputs (ReLU6 outputs have a large positive mean). A
shift in a layer feeding a residual add or the logits moves every later layer; subtracting it from
the bias removes it at no run-time cost.

The error is measured the way TFLite will quantize: per-output-channel symmetric int8 (scale
max|w| / 127, values -127..127) on the weight after the following batch norm is folded in. Folding
scales each output channel by c = gamma / sqrt(var + eps), so Q(c W) = c Q(W) and the folded
error is c times the unfolded one: the correction goes into the batch norm's beta (or the layer's
own bias when no batch norm follows). The shift is measured on the calibration images (training
split) with the layer's own padding and strides, so border pixels count as TFLite computes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional

import numpy as np

from edgecv.data.calibration import stacked_batches

CORRECTED_LAYERS = ("Conv2D", "DepthwiseConv2D", "Dense")


def quantize_per_channel(w: np.ndarray, axes: tuple) -> np.ndarray:
    """`w` rounded onto the per-channel symmetric int8 grid TFLite uses (float values back):
    one scale per index of the axes NOT in `axes` (the output channel), scale = max|w| / 127."""
    scale = np.max(np.abs(w), axis=axes, keepdims=True) / 127.0
    scale = np.where(scale > 0, scale, 1.0)
    return np.clip(np.round(w / scale), -127, 127) * scale


def kernel_reduce_axes(layer) -> tuple:
    """The kernel axes that share one int8 scale (all but the output channel's)."""
    kind = type(layer).__name__
    if kind == "DepthwiseConv2D":  # kernel [h, w, c, mult]: TFLite's channel is c * mult + m
        return (0, 1)
    return tuple(range(layer.kernel.shape.rank - 1))


@dataclass
class BiasCorrection:
    layers: List[str] = field(default_factory=list)  # layers whose bias (or batch norm beta) changed
    max_shift: float = 0.0  # largest corrected output-mean shift, in the layer's folded output units
    images: int = 0
    skipped: str = ""  # why the model was left as it is (it cannot be copied layer by layer)

    def to_json(self) -> dict:
        out = {"layers": len(self.layers), "max_shift": round(self.max_shift, 6), "images": self.images}
        return {**out, "skipped": self.skipped} if self.skipped else out


def _consumers(model) -> Dict[str, list]:
    out: Dict[str, list] = {}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for producer in node.inbound_layers if isinstance(node.inbound_layers, list) else [node.inbound_layers]:
                out.setdefault(producer.name, []).append(layer)
    return out


def batch_norm_after(layer, consumers: Dict[str, list]):
    """The BatchNormalization that alone takes `layer`'s output (the converter folds it into the
    layer's kernel), or None."""
    after = consumers.get(layer.name, [])
    return after[0] if len(after) == 1 and type(after[0]).__name__ == "BatchNormalization" else None


def _weight_error_layer(layer, error: np.ndarray):
    """A copy of `layer` (same padding/strides, no bias, no activation) whose kernel is the error."""
    cfg = layer.get_config()
    cfg.update(name=f"{layer.name}_qerr", use_bias=False, activation="linear")
    for k in ("depthwise_initializer", "kernel_initializer", "bias_initializer", "kernel_regularizer",
              "depthwise_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
              "depthwise_constraint", "bias_constraint"):
        cfg.pop(k, None)
    copy = type(layer).from_config(cfg)
    copy.build(layer.input_shape)
    copy.set_weights([error.astype(np.float32)])
    return copy


def correct_bias(keras_model, calibration: Callable[[], Iterator[np.ndarray]], batch_size: int = 16,
                 rounded: Optional[Dict[str, np.ndarray]] = None):
    """A copy of the model whose biases cancel the mean output shift int8 weight rounding causes,
    and what was changed. `calibration()` yields float32 pixel batches (the export's calibration
    images). Layers with neither a bias nor a batch norm after them are left as they are.

    `rounded` gives kernels already on the int8 grid by layer name (learned rounding): the shift
    is measured for those instead of nearest rounding, and the copy carries them."""
    from edgecv._keras import keras

    if not any(type(layer).__name__ in CORRECTED_LAYERS for layer in keras_model.layers):
        return keras_model, BiasCorrection()  # e.g. a QAT model: its wrappers already learned the rounding
    from edgecv.models.build import copy_keras

    try:
        model = copy_keras(keras_model)
    except Exception as e:  # a subclassed user model has no layer graph to copy
        return keras_model, BiasCorrection(skipped=f"the model cannot be cloned ({type(e).__name__}: {e})"[:300])
    rounded = rounded or {}
    consumers = _consumers(model)
    targets = []
    for layer in model.layers:
        if type(layer).__name__ not in CORRECTED_LAYERS or len(layer._inbound_nodes) != 1:
            continue  # a layer called twice (shared weights) has no single input to measure
        bn = batch_norm_after(layer, consumers)
        if bn is None and not getattr(layer, "use_bias", False):
            continue
        kernel = layer.get_weights()[0]
        on_grid = rounded[layer.name] if layer.name in rounded else quantize_per_channel(kernel, kernel_reduce_axes(layer))
        targets.append((layer, bn, _weight_error_layer(layer, on_grid - kernel)))
    if not targets:
        return set_kernels(model, rounded), BiasCorrection()

    probe = keras.Model(model.inputs, [layer.input for layer, _, _ in targets])
    sums = [0.0] * len(targets)  # per layer: sum over images and positions of the output shift
    counts = [0] * len(targets)
    images = 0

    def run(batch: np.ndarray) -> None:
        inputs = probe(batch, training=False)
        inputs = inputs if isinstance(inputs, list) else [inputs]
        for i, ((_, _, err_layer), x) in enumerate(zip(targets, inputs)):
            shift = np.asarray(err_layer(x), dtype=np.float64)
            sums[i] = sums[i] + shift.reshape(-1, shift.shape[-1]).sum(axis=0)
            counts[i] += int(np.prod(shift.shape[:-1]))

    for batch in stacked_batches(calibration(), batch_size):
        run(batch)
        images += len(batch)

    report = BiasCorrection(images=images)
    for i, (layer, bn, _) in enumerate(targets):
        mean_shift = sums[i] / max(1, counts[i])
        if bn is not None:
            if not bn.center:
                continue
            weights = bn.get_weights()  # [gamma,] beta, moving_mean, moving_var
            gamma = weights[0] if bn.scale else 1.0
            c = gamma / np.sqrt(weights[-1] + bn.epsilon)
            weights[-3] = weights[-3] - c * mean_shift
            bn.set_weights(weights)
            shift = c * mean_shift
        else:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, bias - mean_shift])
            shift = mean_shift
        report.max_shift = max(report.max_shift, float(np.max(np.abs(shift))))
        report.layers.append(layer.name)
    return set_kernels(model, rounded), report


def set_kernels(model, kernels: Dict[str, np.ndarray]):
    """`model` with the kernels (first weight) of the named layers replaced, in place."""
    for name, kernel in kernels.items():
        layer = model.get_layer(name)
        layer.set_weights([kernel.astype(np.float32)] + layer.get_weights()[1:])
    return model
