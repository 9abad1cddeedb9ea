"""Learned rounding of int8 weights (AdaRound: Nagel et al. 2020, "Up or Down? Adaptive Rounding
for Post-Training Quantization").

Rounding every weight to its nearest int8 step is not what keeps a layer's output closest: the
errors of one output channel add up over its inputs, and the calibration images say which ones
line up. AdaRound chooses, per weight, floor or ceiling to minimise the layer's output error
E||x (W_q - W)||^2 on the calibration images, relaxed to a continuous problem (a rectified
sigmoid per weight, pushed to 0 or 1 by an annealed regulariser).

The output error is a quadratic form in the weight error, so the calibration images are needed
only once, as each layer's input Gram matrix X^T X (over every image and output position, with
the layer's own padding and strides); the optimisation then runs on the Gram matrix alone,
exactly, without sampling images. The inputs are those of the float network.

The grid is TFLite's: per output channel, symmetric, scale max|w| / 127, values -127..127, on the
kernel after the following batch norm is folded in. Folding multiplies a channel by c = gamma /
sqrt(var + eps), which scales its grid by |c| and leaves the integers the same, so the rounding is
chosen on the unfolded kernel with each channel's error weighted by c^2 (its folded output
units). Each channel's largest weight stays at +-127, so the converter computes the same scale
and its own rounding reproduces the chosen integers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List

import numpy as np

from pydantic import Field

from edgecv.passes.base import PassConfig
from edgecv.passes.int8_weights import Int8Pass, Int8State
from edgecv.passes.statistics import GRAM, CalibrationStatistics, copy_for_statistics, gather, patch_rows
from edgecv.passes.bias_correction import batch_norm_after, _consumers

ZETA, GAMMA = 1.1, -0.1  # the rectified sigmoid's stretch (the paper's values)
# Largest K (inputs per output) a layer may have: each step costs K^2 x outputs, and a Gram matrix
# K^2 x 8 bytes (a VGG-style Flatten -> Dense has K = 25088: 5 GB). Edge backbones stay below it
# (MobileNets, EfficientNet-B0: at most 1280; ResNet50's 3x3 convolutions, 2304 and 4608, are skipped).
MAX_INPUTS = 2048


@dataclass
class AdaRoundReport:
    layers: List[str] = field(default_factory=list)
    changed: float = 0.0  # fraction of weights rounded away from the nearest step
    error_ratio: float = 1.0  # output error after / with nearest rounding, summed over layers
    images: int = 0
    iterations: int = 0
    skipped: Dict[str, str] = field(default_factory=dict)  # layer -> why it kept nearest rounding
    weights: int = 0
    gram_seconds: float = 0.0  # the pass over the calibration images
    optimise_seconds: float = 0.0  # grows with iterations x sum over layers of K^2 x outputs

    def to_json(self) -> dict:
        out = {"layers": len(self.layers), "weights": self.weights, "changed": round(self.changed, 5),
               "error_ratio": round(self.error_ratio, 4), "images": self.images, "iterations": self.iterations,
               "seconds": {"calibration_pass": round(self.gram_seconds, 1),
                           "optimisation": round(self.optimise_seconds, 1)}}
        return {**out, "skipped": self.skipped} if self.skipped else out


def _why_not(layer) -> str:
    kind = type(layer).__name__
    if kind not in ("Conv2D", "DepthwiseConv2D", "Dense"):
        return "type"
    if len(layer._inbound_nodes) != 1:
        return "the layer is called more than once (shared weights)"
    if kind != "Dense":
        if layer.data_format != "channels_last":
            return "channels_first"
        if tuple(layer.dilation_rate) != (1, 1):
            return "dilated"
        if kind == "Conv2D" and getattr(layer, "groups", 1) != 1:
            return "grouped"
        if len(layer.weights[0].shape) != 4:
            return "not a 2D convolution"
    inputs = _inputs_per_output(layer)
    if inputs > MAX_INPUTS:
        return (f"{inputs} inputs per output (more than {MAX_INPUTS}): its Gram matrix is too large to optimise "
                "on, so it keeps nearest rounding")
    return ""


def _inputs_per_output(layer) -> int:
    """K: the length of one output's dot product (the Gram matrix is K x K)."""
    kernel_shape = tuple(layer.weights[0].shape)
    if type(layer).__name__ == "DepthwiseConv2D":
        return int(kernel_shape[0] * kernel_shape[1])
    return int(np.prod(kernel_shape[:-1]))


def _as_groups(layer, kernel: np.ndarray) -> np.ndarray:
    """The kernel as [groups, K, O] with rows in the order of the layer's input patches."""
    kind = type(layer).__name__
    if kind == "DepthwiseConv2D":  # [h, w, C, m] -> [C, h*w, m]
        h, w, c, m = kernel.shape
        return kernel.reshape(h * w, c, m).transpose(1, 0, 2)
    return kernel.reshape(1, -1, kernel.shape[-1])


def _from_groups(layer, groups: np.ndarray, shape) -> np.ndarray:
    if type(layer).__name__ == "DepthwiseConv2D":
        h, w, c, m = shape
        return groups.transpose(1, 0, 2).reshape(shape)
    return groups.reshape(shape)


_patch_rows = patch_rows  # the name the tests use


def learn_rounding_for_layer(w: np.ndarray, gram: np.ndarray, channel_weight: np.ndarray, rows: int,
                             iterations: int, reg_weight: float = 0.01, lr: float = 0.01,
                             warmup: float = 0.2, beta: tuple = (20.0, 2.0)):
    """Integers q ([groups, K, O], -127..127) for `w` on its per-channel grid, chosen to minimise
    sum_o c_o^2 (q_o s_o - w_o)^T G (q_o s_o - w_o) / rows. Returns (q, scale, error_nearest,
    error_learned)."""
    w = w.astype(np.float32)
    scale = np.max(np.abs(w), axis=1, keepdims=True) / np.float32(127.0)  # [groups, 1, O]
    scale = np.where(scale > 0, scale, np.float32(1.0))
    x = w / scale
    nearest = np.clip(np.round(x), -127, 127)
    floor = np.floor(x)
    # the channel's largest weights keep +-127, so the scale stays; zeros stay zero (a pruned model's
    # sparsity is what its compressed size is made of)
    free = (np.abs(nearest) < 127) & (w != 0)
    rest = np.clip(x - floor, 1e-4, 1 - 1e-4)
    v = -np.log((ZETA - GAMMA) / (rest - GAMMA) - 1.0)  # h(v) == rest: start from the float weights
    gram = gram.astype(np.float32)
    # d error / d h = 2/rows c^2 G (q s - w) s, with q s - w = (floor + h) s - w on free weights
    grad_scale = (2.0 / rows) * channel_weight.astype(np.float32) * scale
    base = np.where(free, floor, nearest) * scale - w  # the weight error at h = 0
    step = np.where(free, scale, np.float32(0.0))  # how much h moves the weight

    def error(q):
        d = q * scale - w
        return float(np.sum(channel_weight * d * (gram @ d)) / rows)

    m = np.zeros_like(v)
    s2 = np.zeros_like(v)
    b1, b2 = 0.9, 0.999
    for t in range(1, iterations + 1):
        sig = 1.0 / (1.0 + np.exp(-v))
        h_raw = sig * np.float32(ZETA - GAMMA) + np.float32(GAMMA)
        h = np.clip(h_raw, 0.0, 1.0)
        grad_h = grad_scale * (gram @ (base + h * step))
        progress = t / iterations
        if progress > warmup:  # then push every h to 0 or 1, harder as beta falls
            b = beta[1] + (beta[0] - beta[1]) * (1.0 - (progress - warmup) / (1.0 - warmup))
            u = 2.0 * h - 1.0
            grad_h -= np.float32(2.0 * reg_weight * b) * np.abs(u) ** np.float32(b - 1.0) * np.sign(u)
        g = grad_h * np.float32(ZETA - GAMMA) * sig * (1.0 - sig) * ((h_raw > 0) & (h_raw < 1) & free)
        m = b1 * m + (1 - b1) * g
        s2 = b2 * s2 + (1 - b2) * g * g
        v -= np.float32(lr / (1 - b1 ** t)) * m / (np.sqrt(s2 / np.float32(1 - b2 ** t)) + np.float32(1e-8))
    h = np.clip((1.0 / (1.0 + np.exp(-v))) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)
    q = np.clip(np.where(free, floor + (h >= 0.5), nearest), -127, 127)
    e_near, e_q = error(nearest), error(q)
    if e_q > e_near:  # too few iterations to beat nearest rounding: keep it
        q, e_q = nearest, e_near
    return q, scale, e_near, e_q


def statistic_points(model, report: AdaRoundReport) -> Dict[str, set]:
    """The layers AdaRound rounds (their input's Gram matrix); the others it cannot handle go into
    `report.skipped` with the reason."""
    points = {}
    for layer in model.layers:
        why = _why_not(layer)
        if why == "type":
            continue
        if why:
            report.skipped[layer.name] = why
            continue
        points[layer.name] = {GRAM}
    return points


def _channel_weight(layer, consumers) -> np.ndarray:
    """c^2 per output channel: folding the following batch norm multiplies channel o by
    gamma_o / sqrt(var_o + eps)."""
    bn = batch_norm_after(layer, consumers)
    shape = tuple(layer.weights[0].shape)
    c2 = np.ones(shape[-1])
    if bn is not None:
        weights = bn.get_weights()
        c2 = (weights[0] ** 2 if bn.scale else 1.0) / (weights[-1] + bn.epsilon)
    if type(layer).__name__ == "DepthwiseConv2D":  # [h, w, C, mult]: per channel c, mult outputs
        return c2.reshape(shape[2], 1, shape[3])
    return c2.reshape(1, 1, shape[-1])


def round_from_statistics(stats: CalibrationStatistics, names, iterations: int, report: AdaRoundReport,
                          log: Callable[[str], None] = lambda m: None) -> Dict[str, np.ndarray]:
    """Kernels on TFLite's int8 grid (float values, by layer name) for the layers `names`, chosen on
    the Gram matrices in `stats` (of `stats.model`, which is not changed)."""
    model = stats.model
    consumers = _consumers(model)
    report.images = stats.images
    report.gram_seconds = stats.seconds
    started = time.perf_counter()
    rounded: Dict[str, np.ndarray] = {}
    total_near = total_learned = 0.0
    changed = weights = 0
    for name in names:
        layer, layer_stats = model.get_layer(name), stats.layers[name]
        kernel = layer.get_weights()[0]
        w = _as_groups(layer, kernel).astype(np.float64)
        q, scale, e_near, e_q = learn_rounding_for_layer(w, layer_stats.gram, _channel_weight(layer, consumers),
                                                         layer_stats.rows, iterations)
        rounded[name] = _from_groups(layer, (q * scale).astype(np.float32), kernel.shape)
        changed += int(np.sum(q != np.clip(np.round(w / scale), -127, 127)))
        weights += q.size
        total_near += e_near
        total_learned += e_q
        report.layers.append(name)
        layer_stats.gram = None  # free it: the largest are [1280, 1280]
    report.optimise_seconds = time.perf_counter() - started
    report.weights = weights
    report.changed = changed / max(1, weights)
    report.error_ratio = total_learned / total_near if total_near > 0 else 1.0
    log(f"adaround: {len(report.layers)} layers, {weights / 1e6:.2f} M weights, {report.changed:.1%} rounded the "
        f"other way, output error x{report.error_ratio:.3f} of nearest rounding ({report.images} calibration "
        f"images {report.gram_seconds:.0f} s, {iterations} iterations {report.optimise_seconds:.0f} s)"
        + (f"; nearest rounding kept for {', '.join(sorted(report.skipped))} (reasons in the report)"
           if report.skipped else ""))
    return rounded


def learn_rounding(keras_model, calibration: Callable[[], Iterator[np.ndarray]], iterations: int = 1000,
                   batch_size: int = 8, log: Callable[[str], None] = lambda m: None):
    """Kernels on TFLite's int8 grid (float values, by layer name) for every Conv2D, DepthwiseConv2D
    and Dense layer AdaRound can handle, and a report. The model is not changed. (A build gathers
    the statistics once for every int8 step: edgecv.passes.int8_weights.)"""
    report = AdaRoundReport(iterations=iterations)
    model, why = copy_for_statistics(keras_model)
    if model is None:
        report.skipped["model"] = why
        return {}, report
    points = statistic_points(model, report)
    if not points:
        return {}, report
    stats = gather(model, points, calibration, batch_size)
    if stats.skipped:
        report.skipped["model"] = stats.skipped
        return {}, report
    return round_from_statistics(stats, list(points), iterations, report, log), report


class AdaRoundConfig(PassConfig):
    name: str = "adaround"
    iterations: int = Field(1000, ge=1, description="optimisation steps per layer")


class AdaRoundPass(Int8Pass):
    name = "adaround"
    description = ("choose each weight's int8 rounding (up or down) to minimise every layer's output error on the "
                   "calibration images (AdaRound, Nagel et al. 2020)")
    config = AdaRoundConfig

    def statistic_points(self, keras_model, cfg) -> Dict[str, set]:
        return statistic_points(keras_model, AdaRoundReport())

    def apply(self, state: Int8State, cfg: AdaRoundConfig) -> None:
        report = AdaRoundReport(iterations=cfg.iterations)
        if state.skipped:
            report.skipped["model"] = state.skipped
        else:
            names = list(statistic_points(state.stats.model, report))
            if names:
                state.rounded = round_from_statistics(state.stats, names, cfg.iterations, report, state.log)
        state.details["adaround"] = report.to_json()
        if state.rounded:
            state.applied.append("adaround")
            state.changed = True
        else:
            state.log(f"adaround skipped: {report.skipped or state.why_none}")
