"""Build the task model: pixels in (float 0..255 RGB), normalization inside, backbone, the task's head.

The model is flat (the backbone's layers are the model's own layers, not a nested Model) so that
tensorflow-model-optimization's pruning and quantization wrappers apply layer by layer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np

from edgecv._keras import keras
from edgecv.errors import ConfigError
from edgecv.models.backbones import Normalization, normalization
from edgecv.models.check import check_model_config
from edgecv.models.user_model import load_keras
from edgecv.tasks import get_task, as_named

NORMALIZE_LAYER = "normalize"


@dataclass
class TaskModel:
    """A Keras model plus what every later stage needs to know about it: its task (by name, with
    options) and the task facts that travel with it (`info`: class names, keypoint names ...)."""

    keras_model: keras.Model
    task: str
    info: dict
    input_size: tuple[int, int]
    normalization: Normalization
    backbone: str
    backbone_layers: list[str]  # names, in order, for freezing/unfreezing
    # "module:function" returning a context manager that makes a wrapped model loadable (the QAT
    # pass's quantization wrappers); such models are saved as h5, which tfmot's wrappers load from.
    load_scope: Optional[str] = None
    task_options: dict = field(default_factory=dict)
    # a user's model (bring your own model): what loading it again needs
    custom_objects: Optional[str] = None
    unsafe_deserialization: bool = False

    def make_task(self):
        return get_task(self.task, self.task_options)

    @property
    def output_names(self) -> list[str]:
        return self.make_task().output_names(self.info)

    def named(self, outputs) -> dict:
        """Raw Keras outputs (tensor, list or dict) by the task's output names."""
        return as_named(outputs, self.output_names)

    def predict(self, images: np.ndarray, batch_size: int = 32) -> dict[str, np.ndarray]:
        """Named float outputs for uint8 (or float 0..255) pixel batches."""
        raw = self.keras_model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0)
        return {k: np.asarray(v) for k, v in self.named(raw).items()}

    def with_keras(self, keras_model: keras.Model, **changes) -> "TaskModel":
        """The same task model around another Keras model (a pass's result)."""
        return replace(self, keras_model=keras_model, **changes)

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
            "task_options": self.task_options,
            "info": self.info,
            "input_size": list(self.input_size),
            "normalization": self.normalization.mode,
            "normalization_params": self.normalization.to_json(),
            "backbone": self.backbone,
            "backbone_layers": self.backbone_layers,
        }
        if self.load_scope:
            meta["load_scope"] = self.load_scope
        if self.custom_objects or self.unsafe_deserialization:
            meta.update(custom_objects=self.custom_objects, unsafe_deserialization=self.unsafe_deserialization)
        (folder / "model.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: Path, unsafe: Optional[bool] = None) -> "TaskModel":
        """`unsafe`: whether Lambda layers may load; None takes model.json's word (a build's own
        cache entry, written for a recipe that said so), a command given a folder passes its flag."""
        meta = json.loads((folder / "model.json").read_text())

        get_task(meta["task"], meta.get("task_options", {})).register_keras_objects()  # a head's own layers
        scope = meta.get("load_scope")
        unsafe = bool(meta.get("unsafe_deserialization", False)) if unsafe is None else unsafe
        if scope:
            import importlib

            module, _, func = str(scope).partition(":")
            if not module.startswith("edgecv.") or not func.isidentifier():  # model.json names only edgecv's own
                raise ConfigError(f"{folder / 'model.json'}: load_scope {scope!r} is not one of edgecv's own: "
                                  "the cache entry was not written by edgecv; remove it (edgecv clean --all)")
            model = load_keras(folder / "model.h5", unsafe=unsafe, scope=getattr(importlib.import_module(module), func))
        else:
            model = load_keras(folder / "model.keras", meta.get("custom_objects"), unsafe)
        params = meta.get("normalization_params")
        norm = Normalization.from_json(params) if params else normalization(meta["normalization"])
        return cls(model, meta["task"], meta["info"], tuple(meta["input_size"]), norm, meta["backbone"],
                   meta["backbone_layers"], scope, meta.get("task_options", {}), meta.get("custom_objects"),
                   meta.get("unsafe_deserialization", False))


def copy_keras(model: keras.Model) -> keras.Model:
    """An independent copy (new layers with fresh graph nodes, same weights): a pass or a quantization
    step must not change the model it was given, which later artifacts of the same build still use.
    Raises for a model with no layer graph to copy (a subclassed user model)."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def normalization_layer(norm: Normalization) -> Optional[keras.layers.Layer]:
    if norm.mode == "none":
        return None
    if not np.allclose(norm.matrix, np.diag(np.diag(norm.matrix))):  # channels mixed (RGB->BGR): a 1x1 convolution
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


def build_task_model(recipe, info: dict, task=None) -> TaskModel:
    """Pixels in, the recipe's backbone, the task's head on the backbone's feature map."""
    m = recipe.model
    task = task or recipe.make_task()
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
    outputs = task.build_head(base.output, recipe, info)
    model = keras.Model(inputs, outputs, name=f"{recipe.name}_{task.name}")
    in_model = {l.name for l in model.layers}  # a head may read an earlier layer: the rest is cut off
    backbone_layers = [n for n in backbone_layers if n in in_model]
    return TaskModel(model, recipe.task, dict(info), (h, w), norm, spec.name, backbone_layers,
                     task_options=dict(recipe.task_options))
