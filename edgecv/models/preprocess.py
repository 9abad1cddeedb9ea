"""The input normalization a user's model expects, as the Normalization edgecv builds into the model.

A user's model was trained on normalized inputs; edgecv puts that normalization in front of it so
every artifact still takes pixels (the pixel contract). It is named by a keras-applications family
(each family's `preprocess_input` mode) or given explicitly as scale/offset or mean/std.
"""

from __future__ import annotations

import re

import numpy as np

from edgecv.errors import ConfigError
from edgecv.models.backbones import BACKBONES, Normalization, normalization

MODES = ("tf", "torch", "caffe", "none")
# keras.applications module names -> their preprocess_input mode
FAMILIES = {
    "mobilenet": "tf", "mobilenet_v2": "tf", "mobilenet_v3": "none", "nasnet": "tf", "inception_v3": "tf",
    "inception_resnet_v2": "tf", "xception": "tf", "resnet": "caffe", "resnet50": "caffe", "resnet101": "caffe",
    "resnet152": "caffe", "resnet_v2": "tf", "resnet50_v2": "tf", "resnet101_v2": "tf", "resnet152_v2": "tf", "vgg16": "caffe", "vgg19": "caffe",
    "densenet": "torch", "efficientnet": "none", "efficientnet_v2": "none", "convnext": "none", "regnet": "none",
}


VARIANT = re.compile(r"^([bxy]?\d+[a-z]*|[sml]|small|large|tiny|base|xlarge|mobile)$")


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def family_mode(name: str) -> str:
    """The normalization mode of a family (`mobilenet_v2`), a backbone (`MobileNetV2`) or a mode (`tf`)."""
    key = _key(name)
    if key in MODES:
        return key
    if key in FAMILIES:
        return FAMILIES[key]
    squashed = key.replace("_", "")
    for fam, mode in FAMILIES.items():
        if fam.replace("_", "") == squashed:
            return mode
    spec = BACKBONES.get(squashed)
    if spec is not None:
        return spec.normalization
    # a model of a family (EfficientNetB3, DenseNet169, ConvNeXtTiny): family name + variant
    for fam in sorted(FAMILIES, key=len, reverse=True):
        rest = squashed[len(fam.replace("_", "")):]
        if squashed.startswith(fam.replace("_", "")) and VARIANT.match(rest):
            return FAMILIES[fam]
    raise ConfigError(f"model.preprocess: unknown family {name!r}; give a keras-applications family "
                      f"({', '.join(sorted(FAMILIES))}), a mode ({', '.join(MODES)}), or "
                      "{scale, offset} / {mean, std} with channel_order")


def _per_channel(value, default: float) -> np.ndarray:
    v = default if value is None else value
    return np.broadcast_to(np.asarray(v, np.float64), (3,)).copy()


def explicit_normalization(cfg) -> Normalization:
    """y = pixel * scale + offset, or (pixel - mean) / std, in the model's channel order."""
    if cfg.mean is not None:
        std = _per_channel(cfg.std, 1.0)
        if np.any(std == 0):
            raise ConfigError("model.preprocess.std: a standard deviation of 0 divides by zero")
        scale, offset = 1.0 / std, -_per_channel(cfg.mean, 0.0) / std
    else:
        scale, offset = _per_channel(cfg.scale, 1.0), _per_channel(cfg.offset, 0.0)
    # row i of the matrix reads the pixel channel that the model's channel i is
    order = np.eye(3)[::-1] if cfg.channel_order == "bgr" else np.eye(3)
    return Normalization("custom", np.diag(scale) @ order, offset)


def user_normalization(preprocess) -> Normalization:
    """The recipe's `model.preprocess` (a name or an explicit config) as a Normalization."""
    if isinstance(preprocess, str):
        return normalization(family_mode(preprocess))
    return explicit_normalization(preprocess)
