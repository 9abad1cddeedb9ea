"""The backbones `edgecv select` compares: edgecv's catalogue, the recipe's `select.candidates` and
the recipe's own backbone (the reference), each with the weights it would load.

Weights: a candidate's own `weights`, else its keras-applications no-top file found in
`select.weights_dir` (ImageNet convolution weights work at any input size, so MobileNet v1 0.5
weights made for 160 px serve 128 to 224 px), else `imagenet` (Keras' download cache). Whether
`imagenet` would download is only known once Keras asks for the file: see `offline.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from edgecv.config.selection import CandidateConfig
from edgecv.errors import ConfigError
from edgecv.models.backbones import get_backbone
from edgecv.models.check import check_model_config

# (backbone, widths, input heights): the published grids of the edge families, plus the heavier
# EfficientNet-B0 and ResNet50 for scale. Candidates the target cannot afford fall off the front.
CATALOGUE = [
    ("MobileNet", (0.25, 0.5, 0.75, 1.0), (128, 160, 192, 224)),
    ("MobileNetV2", (0.35, 0.5, 0.75, 1.0), (128, 160, 192, 224)),
    ("MobileNetV2", (1.4,), (224,)),
    ("MobileNetV3Small", (0.75, 1.0), (224,)),
    ("MobileNetV3Large", (0.75, 1.0), (224,)),
    ("EfficientNetB0", (None,), (224,)),
    ("ResNet50", (None,), (224,)),
]

_V1_ALPHA = {0.25: "2_5", 0.5: "5_0", 0.75: "7_5", 1.0: "1_0"}
_SIZES = (224, 192, 160, 128, 96)


@dataclass(frozen=True)
class Candidate:
    backbone: str
    alpha: Optional[float]
    size: tuple  # (height, width)
    weights: str  # a file path, "imagenet" or "none"
    source: str  # catalogue | recipe select.candidates | recipe model (reference)
    reference: bool = False

    @property
    def name(self) -> str:
        width = "" if self.alpha is None else f" {self.alpha:g}" if self.alpha % 1 else f" {self.alpha:.1f}"
        return f"{self.backbone}{width}/{self.size[0]}"

    @property
    def slug(self) -> str:
        return self.name.replace(" ", "-").replace("/", "-").lower()

    @property
    def identity(self) -> tuple:
        return self.backbone.lower(), self.alpha, tuple(self.size)

    def to_json(self) -> dict:
        return {"name": self.name, "backbone": self.backbone, "alpha": self.alpha, "input_size": list(self.size),
                "weights": self.weights, "source": self.source, "reference": self.reference}


def weights_file_names(backbone: str, alpha: Optional[float], height: int) -> list[str]:
    """keras-applications' no-top file names for this backbone and width, the one made for
    `height` first (the others hold the same convolution weights)."""
    sizes = [height] + [s for s in _SIZES if s != height]
    name = backbone.lower()
    if name == "mobilenet" and (alpha or 1.0) in _V1_ALPHA:
        return [f"mobilenet_{_V1_ALPHA[alpha or 1.0]}_{s}_tf_no_top.h5" for s in sizes]
    if name == "mobilenetv2":
        return [f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha or 1.0)}_{s}_no_top.h5" for s in sizes]
    if name in ("mobilenetv3small", "mobilenetv3large"):
        kind = name[len("mobilenetv3"):]
        return [f"weights_mobilenet_v3_{kind}_224_{alpha or 1.0:g}_float_no_top_v2.h5"]
    if name == "efficientnetb0":
        return ["efficientnetb0_notop.h5"]
    if name == "resnet50":
        return ["resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"]
    return []


def find_weights(weights_dir: Optional[Path], backbone: str, alpha: Optional[float], height: int) -> Optional[Path]:
    if weights_dir is None:
        return None
    for name in weights_file_names(backbone, alpha, height):
        if (weights_dir / name).is_file():
            return weights_dir / name
    return None


def _size(height: int, recipe_size) -> tuple:
    """The candidate's (height, width): the recipe's aspect ratio at `height` (a swap needs it)."""
    rh, rw = recipe_size
    return int(height), int(round(height * rw / rh))


def _weights(given: Optional[str], recipe, weights_dir: Optional[Path], backbone: str, alpha, height: int) -> str:
    if given in ("imagenet", "none"):
        return given
    if given is not None:
        return str(recipe.resolve(given))
    found = find_weights(weights_dir, backbone, alpha, height)
    return str(found) if found else "imagenet"


def reference_candidate(recipe) -> Candidate:
    m = recipe.model
    if m.path is not None:
        raise ConfigError("edgecv select compares backbones that edgecv fine-tunes; this recipe brings its own model "
                          "(model.path): give a recipe with model.backbone")
    weights = m.weights if m.weights in ("imagenet", "none") else str(recipe.resolve(m.weights))
    spec = get_backbone(m.backbone)
    return Candidate(spec.name, _width(spec, m.alpha), tuple(recipe.input.size), weights,
                     "recipe model (reference)", reference=True)


def _width(spec, alpha: Optional[float]) -> Optional[float]:
    """The width multiplier as Keras applies it: 1.0 when a family takes one and none is given."""
    return (1.0 if alpha is None else alpha) if spec.takes_alpha else None


def _checked_backbone(recipe, c: CandidateConfig, size: tuple):
    """The candidate's backbone, width and size checked as the recipe's model is (weights aside:
    a candidate whose weights are missing is skipped, not an error)."""
    model = recipe.model.model_copy(update={"backbone": c.backbone, "alpha": c.alpha, "weights": "none"})
    try:
        spec, _ = check_model_config(recipe.model_copy(update={"model": model, "input": recipe.input.model_copy(
            update={"size": size})}))
    except ConfigError as e:
        raise ConfigError(f"select.candidates ({c.backbone}, input_size {c.input_size}): {e}") from None
    return spec


def candidate_list(recipe, weights_dir: Optional[Path] = None, catalogue: Optional[bool] = None) -> list[Candidate]:
    """The reference first, then the recipe's candidates, then the catalogue's; one per backbone,
    width and size (the first wins: the recipe's own settings over the catalogue's)."""
    cfg = recipe.select
    weights_dir = weights_dir or (recipe.resolve(cfg.weights_dir) if cfg and cfg.weights_dir else None)
    use_catalogue = catalogue if catalogue is not None else (cfg.catalogue if cfg else True)
    wanted: list[tuple[CandidateConfig, str]] = [(c, "recipe select.candidates") for c in (cfg.candidates if cfg else [])]
    if use_catalogue:
        for backbone, alphas, heights in CATALOGUE:
            wanted += [(CandidateConfig(backbone=backbone, alpha=a, input_size=h), "catalogue")
                       for a in alphas for h in heights]
    out = [reference_candidate(recipe)]
    seen = {out[0].identity}
    for c, source in wanted:
        size = _size(c.input_size, recipe.input.size)
        spec = _checked_backbone(recipe, c, size)
        alpha = _width(spec, c.alpha)
        cand = Candidate(spec.name, alpha, size, _weights(c.weights, recipe, weights_dir, spec.name, alpha, c.input_size),
                         source)
        if cand.identity not in seen:
            seen.add(cand.identity)
            out.append(cand)
    return out
