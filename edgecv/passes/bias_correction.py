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

from edgecv.passes.base import PassConfig
from edgecv.passes.int8_weights import Int8Pass, Int8State, set_kernels
from edgecv.passes.statistics import (ROW_SUM, CalibrationStatistics, copy_for_statistics, gather,
                                       patch_rows_supported)

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
    """A copy of `layer` (same padding/strides, no bias, no activation) whose kernel is the error:
    its output is the shift the error causes (benchmarks/ptq_flowers.py and the tests measure with it)."""
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


def statistic_points(model) -> Dict[str, set]:
    """The layers bias correction measures (the sum of their input's patch rows): Conv2D,
    DepthwiseConv2D and Dense layers called once with a bias or a batch norm after them."""
    consumers = _consumers(model)
    points = {}
    for layer in model.layers:
        if type(layer).__name__ not in CORRECTED_LAYERS or len(layer._inbound_nodes) != 1:
            continue  # a layer called twice (shared weights) has no single input to measure
        if batch_norm_after(layer, consumers) is None and not getattr(layer, "use_bias", False):
            continue
        if patch_rows_supported(layer):  # grouped or channels_first convolutions: left as they are
            continue
        points[layer.name] = {ROW_SUM}
    return points


def mean_shift(layer, row_sum: np.ndarray, rows: int, error: np.ndarray) -> np.ndarray:
    """The mean output shift per output channel a kernel error causes: the layer is linear in its
    kernel, so the mean over rows of (row @ error) is (mean row) @ error, exactly."""
    from edgecv.passes.adaround import _as_groups  # lazy: import cycle (passes.adaround -> passes.bias_correction)

    mean = row_sum / max(1, rows)
    groups = _as_groups(layer, error.astype(np.float64))  # [groups, K, O]
    if type(layer).__name__ == "DepthwiseConv2D":  # mean [K, C], groups [C, K, mult] -> channel c*mult+m
        return np.einsum("kc,ckm->cm", mean, groups).reshape(-1)
    return mean @ groups[0]


def correct_from_statistics(stats: CalibrationStatistics, names, rounded: Optional[Dict[str, np.ndarray]] = None):
    """`stats.model` with the biases of the layers `names` corrected (in place) and the `rounded`
    kernels set, and what was changed. The shift is measured for the rounded kernels where given,
    for nearest rounding elsewhere."""
    rounded = rounded or {}
    model = stats.model
    consumers = _consumers(model)
    report = BiasCorrection(images=stats.images)
    for name in names:
        layer, layer_stats = model.get_layer(name), stats.layers[name]
        kernel = layer_stats.kernel
        on_grid = rounded[name] if name in rounded else quantize_per_channel(kernel, kernel_reduce_axes(layer))
        shift_unfolded = mean_shift(layer, layer_stats.row_sum, layer_stats.rows, on_grid - kernel)
        bn = batch_norm_after(layer, consumers)
        if bn is not None:
            if not bn.center:
                continue
            weights = bn.get_weights()  # [gamma,] beta, moving_mean, moving_var
            gamma = weights[0] if bn.scale else 1.0
            c = gamma / np.sqrt(weights[-1] + bn.epsilon)
            weights[-3] = weights[-3] - c * shift_unfolded
            bn.set_weights(weights)
            shift = c * shift_unfolded
        else:
            kernel_now, bias = layer.get_weights()
            layer.set_weights([kernel_now, bias - shift_unfolded])
            shift = shift_unfolded
        report.max_shift = max(report.max_shift, float(np.max(np.abs(shift))))
        report.layers.append(name)
    return set_kernels(model, rounded), report


def correct_bias(keras_model, calibration: Callable[[], Iterator[np.ndarray]], batch_size: int = 8,
                 rounded: Optional[Dict[str, np.ndarray]] = None):
    """A copy of the model whose biases cancel the mean output shift int8 weight rounding causes,
    and what was changed. `calibration()` yields float32 pixel batches (the export's calibration
    images). Layers with neither a bias nor a batch norm after them are left as they are.

    `rounded` gives kernels already on the int8 grid by layer name (learned rounding): the shift
    is measured for those instead of nearest rounding, and the copy carries them. (A build gathers
    the statistics once for every int8 step: edgecv.passes.int8_weights.)"""
    if not any(type(layer).__name__ in CORRECTED_LAYERS for layer in keras_model.layers):
        return keras_model, BiasCorrection()  # e.g. a QAT model: its wrappers already learned the rounding
    model, why = copy_for_statistics(keras_model)
    if model is None:
        return keras_model, BiasCorrection(skipped=why)
    points = statistic_points(model)
    if not points:
        return set_kernels(model, rounded or {}), BiasCorrection()
    stats = gather(model, points, calibration, batch_size)
    if stats.skipped:
        return keras_model, BiasCorrection(skipped=stats.skipped)
    return correct_from_statistics(stats, list(points), rounded)


class BiasCorrectionConfig(PassConfig):
    name: str = "bias_correction"


class BiasCorrectionPass(Int8Pass):
    name = "bias_correction"
    description = ("cancel the mean output shift int8 weight rounding causes, measured on the calibration images "
                   "(Nagel et al. 2019)")
    config = BiasCorrectionConfig

    def statistic_points(self, keras_model, cfg) -> Dict[str, set]:
        return statistic_points(keras_model)

    def apply(self, state: Int8State, cfg: BiasCorrectionConfig) -> None:
        if state.skipped:
            rep = BiasCorrection(skipped=state.skipped)
        elif not any(type(layer).__name__ in CORRECTED_LAYERS for layer in state.stats.model.layers):
            return  # e.g. a QAT model: its wrappers already learned the rounding
        else:
            names = list(statistic_points(state.stats.model))
            _, rep = correct_from_statistics(state.stats, names, state.rounded)
            state.changed = True
        if rep.skipped:
            state.details["bias_correction"] = rep.to_json()
            state.log(f"bias correction skipped: {rep.skipped}")
        if rep.layers:
            state.applied.append("bias_correction")
            state.details["bias_correction"] = rep.to_json()
            state.log(f"bias correction: {len(rep.layers)} layers, largest output shift {rep.max_shift:.4g} "
                      f"({rep.images} calibration images)")
