"""Recipe model checks that need no TensorFlow: run while planning, before any work."""

from __future__ import annotations

from typing import Optional

from edgecv.errors import ConfigError
from edgecv.models.backbones import get_backbone
from edgecv.models.preprocess import user_normalization
from edgecv.models.user_model import model_format


def resolve_weights(weights: str, resolve) -> Optional[str]:
    if weights == "none":
        return None
    if weights == "imagenet":
        return "imagenet"
    path = resolve(weights)
    if not path.is_file():
        raise ConfigError(f"model.weights: {path} not found; give `imagenet`, `none` or the path of an h5 file")
    return str(path)



def check_model_config(recipe):
    """Backbone, width, input size and weights file, checked before any work. Returns (spec, weights)."""
    m = recipe.model
    if m.path is not None:  # a user's model: no backbone to check; its preprocessing must be known

        model_format(recipe.resolve(m.path))
        user_normalization(m.preprocess or m.architecture)
        return None, None
    try:
        spec = get_backbone(m.backbone)
    except KeyError as e:
        raise ConfigError(f"model.backbone: {e.args[0]}") from None
    if m.alpha is not None and not spec.takes_alpha:
        raise ConfigError(f"model.alpha: {spec.name} has no width multiplier; remove `alpha`")
    h, w = recipe.input.size
    if min(h, w) < spec.min_size:
        raise ConfigError(f"input.size {h}x{w}: {spec.name} needs at least {spec.min_size}x{spec.min_size}")
    return spec, resolve_weights(m.weights, recipe.resolve)
