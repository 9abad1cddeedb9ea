"""Backbone registry: keras-applications families with their input normalization.

Each family normalizes pixels differently (Keras' `preprocess_input` modes): `tf` maps 0..255 to
-1..1, `torch` divides by 255 then standardizes with ImageNet mean/std, `caffe` flips RGB to BGR and
subtracts the ImageNet mean, `none` means the backbone normalizes inside itself (EfficientNet,
MobileNetV3). edgecv builds the normalization into the model, so every artifact takes pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
from edgecv.errors import did_you_mean

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68])


@dataclass(frozen=True)
class Normalization:
    """y = matrix @ pixel + bias per pixel (pixel in 0..255, RGB)."""

    mode: str
    matrix: np.ndarray  # 3x3
    bias: np.ndarray  # 3

    @property
    def is_scale_bias(self) -> bool:
        """True when it is one scale for all channels plus per-channel bias (Core ML ImageType can fold it)."""
        d = np.diag(self.matrix)
        return bool(np.allclose(self.matrix, np.diag(d)) and np.allclose(d, d[0]))

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        return pixels.astype(np.float32) @ self.matrix.T.astype(np.float32) + self.bias.astype(np.float32)

    def to_json(self) -> dict:
        return {"mode": self.mode, "matrix": self.matrix.tolist(), "bias": self.bias.tolist()}

    @classmethod
    def from_json(cls, d: dict) -> "Normalization":
        return cls(d["mode"], np.asarray(d["matrix"], np.float64), np.asarray(d["bias"], np.float64))


def normalization(mode: str) -> Normalization:
    eye = np.eye(3)
    if mode == "tf":
        return Normalization(mode, eye / 127.5, -np.ones(3))
    if mode == "torch":
        return Normalization(mode, np.diag(1.0 / (255.0 * IMAGENET_STD)), -IMAGENET_MEAN / IMAGENET_STD)
    if mode == "caffe":
        return Normalization(mode, eye[::-1].copy(), -CAFFE_MEAN_BGR)
    if mode == "none":
        return Normalization(mode, eye, np.zeros(3))
    raise ValueError(f"unknown normalization mode {mode!r}")


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    build: Callable[..., object]  # (input_tensor|input_shape, weights, alpha) -> keras Model without top
    normalization: str
    default_size: int
    takes_alpha: bool = False
    min_size: int = 32
    notes: str = ""
    extra: dict = field(default_factory=dict)


BACKBONES: dict[str, BackboneSpec] = {}


def register(spec: BackboneSpec) -> BackboneSpec:
    BACKBONES[spec.name.lower()] = spec
    return spec


def _app(name: str, **fixed):
    def build(*, weights, alpha=None, **kw):
        from edgecv._keras import keras

        ctor = getattr(keras.applications, name)
        if alpha is not None:
            kw["alpha"] = alpha
        return ctor(include_top=False, weights=weights, **fixed, **kw)

    return build


for _name, _mode, _size, _alpha, _min, _fixed in [
    ("MobileNet", "tf", 224, True, 32, {}),
    ("MobileNetV2", "tf", 224, True, 32, {}),
    ("MobileNetV3Small", "none", 224, True, 32, {"include_preprocessing": True}),
    ("MobileNetV3Large", "none", 224, True, 32, {"include_preprocessing": True}),
    ("ResNet50", "caffe", 224, False, 32, {}),
    ("ResNet50V2", "tf", 224, False, 32, {}),
    ("VGG16", "caffe", 224, False, 32, {}),
    ("VGG19", "caffe", 224, False, 32, {}),
    ("InceptionV3", "tf", 299, False, 75, {}),
    ("Xception", "tf", 299, False, 71, {}),
    ("EfficientNetB0", "none", 224, False, 32, {}),
    ("EfficientNetV2B0", "none", 224, False, 32, {}),
    ("DenseNet121", "torch", 224, False, 32, {}),
]:
    register(BackboneSpec(_name, _app(_name, **_fixed), _mode, _size, takes_alpha=_alpha, min_size=_min))


def _tiny_cnn(*, weights, alpha=None, input_tensor=None, input_shape=None):
    """A few conv layers: for tests, the offline quickstart and smoke builds. Seconds to train."""
    from edgecv._keras import keras

    width = max(4, int(16 * (alpha or 1.0)))
    x = input_tensor if input_tensor is not None else keras.Input(shape=input_shape)
    # like keras-applications: the model starts at the tensor's source inputs (normalization included)
    inputs = keras.utils.get_source_inputs(x)
    for i, filters in enumerate([width, width * 2, width * 4]):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"tiny_conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"tiny_bn{i}")(x)
        x = keras.layers.ReLU(6.0, name=f"tiny_relu{i}")(x)
        x = keras.layers.MaxPooling2D(name=f"tiny_pool{i}")(x)
    model = keras.Model(inputs, x, name="tiny_cnn")
    if weights not in (None, "none"):
        if weights == "imagenet":
            raise ValueError("TinyCNN has no ImageNet weights: use `weights: none` or a path")
        model.load_weights(weights)
    return model


register(BackboneSpec("TinyCNN", _tiny_cnn, "tf", 32, takes_alpha=True, min_size=8,
                      notes="tiny test/quickstart network, no pretrained weights"))


def get_backbone(name: str) -> BackboneSpec:
    spec = BACKBONES.get(name.lower())
    if spec is None:
        known = ", ".join(s.name for s in BACKBONES.values())
        raise KeyError(f"unknown backbone {name!r}{did_you_mean(name, (s.name for s in BACKBONES.values()))}; "
                       f"known: {known}")
    return spec


def backbone_names() -> list[str]:
    return [s.name for s in BACKBONES.values()]


def describe(name: str) -> Optional[str]:
    spec = BACKBONES.get(name.lower())
    return None if spec is None else f"{spec.name}: {spec.normalization} normalization, {spec.default_size}px"
