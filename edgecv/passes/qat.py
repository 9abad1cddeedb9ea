"""Quantization-aware training (tfmot `quantize_apply`): fine-tune with int8 fake quantization in
the graph, so the weights adapt to it; the int8 TFLite export then takes its ranges from the
fake-quant nodes. For targets where post-training int8 misses the accuracy gate.

Every layer is annotated with tfmot's default 8-bit scheme, with two exceptions. The input
`normalize` layer (a Rescaling or a fixed 1x1 convolution), which tfmot does not know, gets an
output-only quantize config, as the converter quantizes a MUL/ADD or a convolution there anyway.
Depthwise kernels are fake-quantized per channel, as TFLite's int8 stores them: tfmot's own
depthwise quantizer is per tensor in effect, which on the flowers MobileNetV2 (batch norm folded
into the weights) took the fake-quantized model to 28% accuracy before any training. The input
quantizer's range is pinned to 0..255, so the integer input of the exported model is the pixel
itself (scale 1), as post-training int8 gives. Before training, every activation range is set from
the calibration images (see `calibrate_ranges`), so QAT starts where post-training int8 stands.

The returned model keeps tfmot's wrappers (that is what the converter reads); it is saved as h5
and loads through `load_scope` below.
"""

from __future__ import annotations

import functools
import time
from typing import Literal, Optional

from pydantic import Field

from edgecv._keras import keras
from edgecv.errors import ConfigError
from edgecv.models.build import NORMALIZE_LAYER, TaskModel
from edgecv.passes import common
from edgecv.passes.base import Pass, PassConfig

LOAD_SCOPE = "edgecv.passes.qat:load_scope"


def _quantize_api():
    import tensorflow_model_optimization as tfmot

    return tfmot.quantization.keras


@functools.lru_cache(maxsize=None)
def _custom_objects() -> dict:
    """Quantize configs edgecv adds to tfmot's default 8-bit scheme (classes built once, lazily)."""
    q = _quantize_api()
    from edgecv._keras import tf

    class _NoWeights(q.QuantizeConfig):
        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return []

        def get_config(self):
            return {}

    class OutputQuantizeConfig(_NoWeights):
        """Quantize the layer's output only (8-bit, asymmetric): the input normalize layer, and a
        batch norm after a depthwise convolution when no ReLU follows it."""

        def get_output_quantizers(self, layer):
            return [q.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

    class NoOpQuantizeConfig(_NoWeights):
        """Leave the layer's output float (a batch norm between a convolution and its ReLU)."""

    class DepthwisePerChannelQuantizer(q.quantizers.Quantizer):
        """Symmetric 8-bit per input channel, as TFLite quantizes depthwise kernels. tfmot's own
        depthwise quantizer is per tensor in effect (its axis is the multiplier, size 1); with
        batch norm folded into the weights, channels differ in scale by orders of magnitude and
        one scale for all of them wipes out the small ones."""

        def build(self, tensor_shape, name, layer):
            return {}

        def __call__(self, inputs, training, weights, **kwargs):
            t = tf.transpose(inputs, (0, 1, 3, 2))  # [h, w, multiplier, channels]: channels last
            bound = tf.reduce_max(tf.abs(t), axis=[0, 1, 2])
            t = tf.quantization.fake_quant_with_min_max_vars_per_channel(t, -bound, bound, num_bits=8, narrow_range=True)
            return tf.transpose(t, (0, 1, 3, 2))

        def get_config(self):
            return {}

    class DepthwiseQuantizeConfig(_NoWeights):
        """Depthwise kernel per channel; output left to the batch norm / ReLU after it."""

        def get_weights_and_quantizers(self, layer):
            return [(layer.depthwise_kernel, DepthwisePerChannelQuantizer())]

        def set_quantize_weights(self, layer, quantize_weights):
            layer.depthwise_kernel = quantize_weights[0]

    return {c.__name__: c for c in (OutputQuantizeConfig, NoOpQuantizeConfig, DepthwisePerChannelQuantizer,
                                     DepthwiseQuantizeConfig)}


def load_scope():
    """Custom objects a QAT model needs to load (TaskModel.load enters this)."""
    return _quantize_api().quantize_scope(_custom_objects())


def _consumers(layer) -> list:
    return [node.outbound_layer for node in layer.outbound_nodes]


def _is_relu(layer) -> bool:
    return isinstance(layer, keras.layers.ReLU) or (
        isinstance(layer, keras.layers.Activation) and getattr(layer.activation, "__name__", "") in ("relu", "relu6"))


def quantize_model(keras_model: keras.Model) -> keras.Model:
    """A fake-quantized copy of a flat float model: tfmot's default 8-bit scheme, plus the normalize
    layer (output only), per-channel depthwise kernels, and the input range pinned to pixels."""
    q = _quantize_api()
    objs = _custom_objects()
    base = common.copy_keras(keras_model)
    common.set_finetune_trainable(base)
    # a batch norm right after a depthwise conv: annotated by hand, since a custom config on the
    # conv stops tfmot's Conv+BN(+ReLU) transform from doing it
    after_depthwise = {}
    for layer in base.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            for bn in _consumers(layer):
                if isinstance(bn, keras.layers.BatchNormalization):
                    relu_next = all(_is_relu(c) for c in _consumers(bn)) and _consumers(bn)
                    after_depthwise[bn.name] = objs["NoOpQuantizeConfig" if relu_next else "OutputQuantizeConfig"]

    def annotate(layer):
        if isinstance(layer, keras.layers.InputLayer):
            return layer
        if layer.name == NORMALIZE_LAYER:
            return q.quantize_annotate_layer(layer, quantize_config=objs["OutputQuantizeConfig"]())
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            return q.quantize_annotate_layer(layer, quantize_config=objs["DepthwiseQuantizeConfig"]())
        if layer.name in after_depthwise:
            return q.quantize_annotate_layer(layer, quantize_config=after_depthwise[layer.name]())
        if getattr(layer, "quantize_output_only", False):  # a task's weightless layer (keypoint soft-argmax)
            return q.quantize_annotate_layer(layer, quantize_config=objs["OutputQuantizeConfig"]())
        return q.quantize_annotate_layer(layer)

    annotated = keras.models.clone_model(base, clone_function=annotate)
    try:
        with q.quantize_scope(objs):
            model = q.quantize_apply(annotated)
    except (RuntimeError, ValueError) as e:  # tfmot names the layer it cannot quantize
        raise ConfigError(f"qat: tfmot's default 8-bit scheme cannot quantize this model: {str(e).strip()[:500]} "
                          "Use post-training int8 (no qat pass) or a backbone without such layers.") from None
    pin_input_range(model)
    return model


def pin_input_range(model: keras.Model, low: float = 0.0, high: float = 255.0) -> None:
    """Set the input quantizer's range to the pixel range (uint8 input = pixel, scale 1)."""
    layer = next((l for l in model.layers if type(l).__name__ == "QuantizeLayer"), None)
    if layer is None:
        return
    for v in layer.weights:
        short = v.name.split("/")[-1]
        if short.endswith("min:0"):
            v.assign(low)
        elif short.endswith("max:0"):
            v.assign(high)


_RANGE_VARS = ("output_min", "output_max", "post_activation_min", "post_activation_max")


def calibrate_ranges(qmodel: keras.Model, float_model: keras.Model, batches, max_images: int = 200) -> int:
    """Start QAT from post-training-int8 ranges instead of tfmot's defaults.

    tfmot initializes every activation range to [-6, 6] and moves it by an EMA with decay 0.999,
    so a short fine-tune (tens of steps) never leaves those defaults: outputs above 6 (linear
    bottlenecks, residual sums, logits) stay clipped. Here each quantized output gets the min/max
    that the float model's same layer reaches on the calibration images (training split), as
    post-training calibration does, and one training-mode call sets the weight ranges from the
    weights. Returns the number of ranges set."""
    import numpy as np

    from edgecv._keras import tf

    wrappers = {l.layer.name: l for l in qmodel.layers if type(l).__name__ == "QuantizeWrapperV2"}
    names = [n for n in wrappers if any(v.name.split("/")[-1].split(":")[0] in _RANGE_VARS for v in wrappers[n].weights)]
    probe = keras.Model(float_model.input, [float_model.get_layer(n).output for n in names])
    lo = {n: np.inf for n in names}
    hi = {n: -np.inf for n in names}
    seen, first = 0, None
    chunk: list = []

    def observe(x):
        outs = probe(tf.constant(x, tf.float32), training=False)
        for n, o in zip(names, outs if isinstance(outs, list) else [outs]):
            o = o.numpy()
            lo[n], hi[n] = min(lo[n], float(o.min())), max(hi[n], float(o.max()))

    for batch in batches():
        first = batch if first is None else first
        chunk.append(batch)
        seen += len(batch)
        if sum(len(b) for b in chunk) >= 16:
            observe(np.concatenate(chunk))
            chunk = []
        if seen >= max_images:
            break
    if chunk:
        observe(np.concatenate(chunk))
    if first is None:
        return 0
    qmodel(tf.constant(first, tf.float32), training=True)  # LastValue weight quantizers take the weights' range
    count = 0
    for n in names:
        for v in wrappers[n].weights:
            short = v.name.split("/")[-1].split(":")[0]
            if short in _RANGE_VARS:
                v.assign(min(lo[n], 0.0) if short.endswith("min") else max(hi[n], 0.0))
                count += 1
    pin_input_range(qmodel)
    return count


class QATConfig(PassConfig):
    epochs: int = Field(2, ge=1)
    learning_rate: float = Field(1e-5, gt=0.0)
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    batch_size: Optional[int] = Field(None, ge=1, description="default: the recipe's")
    augment: bool = True


class QAT(Pass):
    name = "qat"
    description = "quantization-aware training (tfmot, default 8-bit scheme), then int8 export"
    config = QATConfig
    needs = frozenset({"train_data", "calibration"})
    precisions = ("int8",)
    suits = "int8 targets where post-training int8 misses the accuracy gate (TFLite int8 CPU/NPU)"

    def run(self, model: TaskModel, cfg: QATConfig, ctx) -> TaskModel:
        t0 = time.perf_counter()
        r = ctx.recipe
        qmodel = quantize_model(model.keras_model)
        for layer in qmodel.layers:  # batch norm stays frozen inside the wrappers
            inner = getattr(layer, "layer", None)
            if isinstance(inner, keras.layers.BatchNormalization) or layer.name == f"quant_{NORMALIZE_LAYER}":
                layer.trainable = False
        qmodel.compile(optimizer=common.make_optimizer(cfg.optimizer, cfg.learning_rate),
                       loss=ctx.task.loss(r), metrics=ctx.task.keras_metrics())
        ranges = calibrate_ranges(qmodel, model.keras_model, ctx.calibration) if ctx.calibration else 0
        images, targets = common.val_arrays(ctx, model.input_size)
        q_float = common.quality(ctx, model.keras_model, images, targets)
        q_start = common.quality(ctx, qmodel, images, targets)
        batch = cfg.batch_size or r.train.batch_size
        callbacks = []
        if ctx.console:
            from edgecv.train.progress import RichProgress

            callbacks.append(RichProgress("qat", cfg.epochs, common.steps_per_epoch(ctx, batch), ctx.console))
        hist = qmodel.fit(ctx.train_dataset(batch, cfg.augment), epochs=cfg.epochs, verbose=0, callbacks=callbacks)
        pin_input_range(qmodel)  # training moved the input quantizer's range: put it back to pixels
        q_after = common.quality(ctx, qmodel, images, targets)
        names = {l.name for l in qmodel.layers}
        ctx.report.update({
            "quantized_layers": sum(1 for l in qmodel.layers if type(l).__name__ == "QuantizeWrapperV2"),
            "ranges_calibrated": ranges,
            **common.quality_report(ctx, "val_", _float=q_float, _fake_quant_before=q_start, _fake_quant_after=q_after),
            **common.quality_report(ctx, "", _delta=q_after - q_float),
            "history": [{k: float(v[e]) for k, v in hist.history.items()} for e in range(cfg.epochs)],
            "seconds": time.perf_counter() - t0,
        })
        backbone = [f"quant_{n}" for n in model.backbone_layers if f"quant_{n}" in names]
        return model.with_keras(qmodel, backbone_layers=backbone, load_scope=LOAD_SCOPE)
