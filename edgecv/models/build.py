"""Build the task model: pixels in (float 0..255 RGB), normalization inside, backbone, task head.

The model is flat (the backbone's layers are the model's own layers, not a nested Model) so that
tensorflow-model-optimization's pruning and quantization wrappers apply layer by layer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from edgecv._keras import keras
from edgecv.errors import ConfigError
from edgecv.models.backbones import Normalization, normalization
from edgecv.models.check import check_model_config

NORMALIZE_LAYER = "normalize"


@dataclass
class TaskModel:
    """A Keras model plus what every later stage needs to know about it."""

    keras_model: keras.Model
    task: str
    class_names: list[str]
    input_size: tuple[int, int]
    normalization: Normalization
    backbone: str
    backbone_layers: list[str]  # names, in order, for freezing/unfreezing
    # "module:function" returning a context manager that makes a wrapped model loadable (the QAT
    # pass's quantization wrappers); such models are saved as h5, which tfmot's wrappers load from.
    load_scope: Optional[str] = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if self.load_scope:
            import warnings

            with warnings.catch_warnings():  # "HDF5 is legacy": it is what tfmot's wrappers reload from
                warnings.simplefilter("ignore", UserWarning)
                self.keras_model.save(folder / "model.h5")
        else:
            self.keras_model.save(folder / "model.keras")
        meta = {
            "task": self.task,
            "class_names": self.class_names,
            "input_size": list(self.input_size),
            "normalization": self.normalization.mode,
            "backbone": self.backbone,
            "backbone_layers": self.backbone_layers,
        }
        if self.load_scope:
            meta["load_scope"] = self.load_scope
        (folder / "model.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: Path) -> "TaskModel":
        meta = json.loads((folder / "model.json").read_text())
        scope = meta.get("load_scope")
        if scope:
            import importlib

            module, func = scope.split(":")
            with getattr(importlib.import_module(module), func)():
                model = keras.models.load_model(folder / "model.h5", compile=False)
        else:
            model = keras.models.load_model(folder / "model.keras", compile=False)
        return cls(model, meta["task"], meta["class_names"], tuple(meta["input_size"]),
                   normalization(meta["normalization"]), meta["backbone"], meta["backbone_layers"], scope)


def normalization_layer(norm: Normalization) -> Optional[keras.layers.Layer]:
    if norm.mode == "none":
        return None
    if norm.mode == "caffe":  # channel flip + mean: a fixed 1x1 convolution
        return keras.layers.Conv2D(3, 1, trainable=False, name=NORMALIZE_LAYER,
                                   kernel_initializer=keras.initializers.Constant(norm.matrix.T.reshape(1, 1, 3, 3)),
                                   bias_initializer=keras.initializers.Constant(norm.bias))
    scale, bias = np.diag(norm.matrix), norm.bias
    if np.allclose(scale, scale[0]) and np.allclose(bias, bias[0]):
        return keras.layers.Rescaling(float(scale[0]), float(bias[0]), name=NORMALIZE_LAYER)
    return keras.layers.Rescaling(scale.tolist(), bias.tolist(), name=NORMALIZE_LAYER)


def _load_reference_backbone(spec, weights: str, alpha, input_shape):
    try:
        return spec.build(weights=weights, alpha=alpha, input_shape=input_shape)
    except Exception as e:  # download failures, wrong file layout
        if weights == "imagenet":
            raise ConfigError(
                f"could not load ImageNet weights for {spec.name} ({type(e).__name__}: {e}). Without network "
                "access give a local file: model.weights: /path/to/<name>_weights_..._no_top.h5"
            ) from None
        raise ConfigError(
            f"model.weights {weights} does not fit {spec.name} (alpha={alpha}, include_top=False): {e}. "
            "Use the keras-applications '..._no_top.h5' file of the same width and family."
        ) from None


def build_classifier(recipe, class_names: list[str]) -> TaskModel:
    m = recipe.model
    spec, weights = check_model_config(recipe)
    h, w = recipe.input.size
    norm = normalization(spec.normalization)

    inputs = keras.Input((h, w, 3), name="image")
    norm_layer = normalization_layer(norm)
    x = norm_layer(inputs) if norm_layer is not None else inputs
    base = spec.build(weights=None, alpha=m.alpha, input_tensor=x)
    if weights is not None:
        ref = _load_reference_backbone(spec, weights, m.alpha, (h, w, 3))
        for layer in ref.layers:
            if layer.weights:
                base.get_layer(layer.name).set_weights(layer.get_weights())
        del ref
    upstream = {inputs.node.layer.name if hasattr(inputs, "node") else "image", NORMALIZE_LAYER}
    backbone_layers = [l.name for l in base.layers if l.name not in upstream and not isinstance(l, keras.layers.InputLayer)]

    y = base.output
    y = (keras.layers.GlobalAveragePooling2D if m.head.pooling == "avg" else keras.layers.GlobalMaxPooling2D)(name="pool")(y)
    for i, units in enumerate(m.head.hidden_units):
        y = keras.layers.Dense(units, activation="relu", name=f"head_dense{i}")(y)
    if m.head.dropout:
        y = keras.layers.Dropout(m.head.dropout, name="head_dropout")(y)
    y = keras.layers.Dense(len(class_names), name="logits")(y)
    y = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(y)
    model = keras.Model(inputs, y, name=f"{recipe.name}_classifier")
    return TaskModel(model, "classification", list(class_names), (h, w), norm, spec.name, backbone_layers)
