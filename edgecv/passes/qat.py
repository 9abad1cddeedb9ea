"""Quantization-aware training (tfmot `quantize_apply`): fine-tune with int8 fake quantization in
the graph, so the weights adapt to it; the int8 TFLite export then takes its ranges from the
fake-quant nodes. For targets where post-training int8 misses the accuracy gate.

Every layer is annotated with tfmot's default 8-bit scheme except the input `normalize` layer
(a Rescaling or a fixed 1x1 convolution), which tfmot does not know: it gets an output-only
quantize config, as the converter quantizes a MUL/ADD or a convolution there anyway. The input
quantizer's range is pinned to 0..255, so the integer input of the exported model is the pixel
itself (scale 1), as post-training int8 gives.

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
def _output_only_config():
    q = _quantize_api()

    class NormalizeQuantizeConfig(q.QuantizeConfig):
        """No weights to quantize; quantize the layer's output (8-bit, asymmetric)."""

        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [q.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

        def get_config(self):
            return {}

    return NormalizeQuantizeConfig


def load_scope():
    """Custom objects a QAT model needs to load (TaskModel.load enters this)."""
    cfg = _output_only_config()
    return _quantize_api().quantize_scope({"NormalizeQuantizeConfig": cfg})


def quantize_model(keras_model: keras.Model) -> keras.Model:
    """A fake-quantized copy of a flat float model (normalize layer handled, input range pinned)."""
    q = _quantize_api()
    norm_cfg = _output_only_config()

    def annotate(layer):
        if isinstance(layer, keras.layers.InputLayer):
            return layer
        if layer.name == NORMALIZE_LAYER:
            return q.quantize_annotate_layer(layer, quantize_config=norm_cfg())
        return q.quantize_annotate_layer(layer)

    annotated = keras.models.clone_model(common.copy_keras(keras_model), clone_function=annotate)
    try:
        with q.quantize_scope({"NormalizeQuantizeConfig": norm_cfg}):
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
    needs = frozenset({"train_data"})
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
                       loss=keras.losses.CategoricalCrossentropy(label_smoothing=r.train.label_smoothing),
                       metrics=["accuracy"])
        images, labels = common.val_arrays(ctx, model.input_size)
        acc_float = common.accuracy(model.keras_model, images, labels)
        acc_fake_quant_start = common.accuracy(qmodel, images, labels)
        hist = qmodel.fit(ctx.train_dataset(cfg.batch_size or r.train.batch_size, cfg.augment),
                          epochs=cfg.epochs, verbose=0)
        pin_input_range(qmodel)  # training moved the input quantizer's range: put it back to pixels
        acc_after = common.accuracy(qmodel, images, labels)
        names = {l.name for l in qmodel.layers}
        ctx.report.update({
            "quantized_layers": sum(1 for l in qmodel.layers if type(l).__name__ == "QuantizeWrapperV2"),
            "val_accuracy_float": acc_float,
            "val_accuracy_fake_quant_before": acc_fake_quant_start,
            "val_accuracy_fake_quant_after": acc_after,
            "accuracy_delta": acc_after - acc_float,
            "history": [{k: float(v[e]) for k, v in hist.history.items()} for e in range(cfg.epochs)],
            "seconds": time.perf_counter() - t0,
        })
        backbone = [f"quant_{n}" for n in model.backbone_layers if f"quant_{n}" in names]
        return TaskModel(qmodel, model.task, model.class_names, model.input_size, model.normalization,
                         model.backbone, backbone, load_scope=LOAD_SCOPE)
