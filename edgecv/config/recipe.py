"""The project recipe (`edgecv.yaml`): what to train and on which data.

Every model forbids unknown keys so a typo is an error, not a silently ignored setting.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Literal, Optional, Tuple, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from typing_extensions import Annotated

from edgecv.config.selection import SelectConfig
from edgecv.data.groups import compile_group_by
from edgecv.models.user_model import model_facts
from edgecv.tasks import task_class, get_task


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_safe_name(value: str) -> str:
    """Names that become file or folder names (recipe, target, artifact): they must stay inside the
    build folder and clear of its hidden bookkeeping (`.cache`, staging folders)."""
    if not _SAFE_NAME.fullmatch(value) or len(value) > 120:
        raise ValueError(f"{value!r} cannot be a file name: use letters, digits, '_', '-' and '.', starting with a "
                         "letter or digit (no '/', no leading '.', at most 120 characters)")
    return value


SafeName = Annotated[str, AfterValidator(check_safe_name)]


class DataConfig(Strict):
    root: Optional[Path] = Field(None, description="image folder with one sub-folder per class; split by val_fraction")
    train: Optional[Path] = Field(None, description="explicit training image folder (use with val)")
    val: Optional[Path] = Field(None, description="explicit validation image folder (use with train)")
    annotations: Optional[Path] = Field(None, description="annotation file for tasks whose targets are not folder "
                                        "names (e.g. keypoints: CSV or COCO JSON)")
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    seed: int = 0
    group_by: Optional[str] = Field(
        None, description="regular expression on each image's path under `root`: its first capture group (or the "
        "whole match) names the image's group (a person, a video), and a group's images all land on one side of the "
        "split; e.g. '^(.+)_\\d+\\.jpg$'")
    cache: Literal["memory", "none"] = "memory"

    @field_validator("group_by")
    @classmethod
    def _group_by_compiles(cls, value: Optional[str]) -> Optional[str]:
        if value is not None:
            compile_group_by(value)
        return value

    @model_validator(mode="after")
    def _one_layout(self) -> "DataConfig":
        if self.root is not None and (self.train is not None or self.val is not None):
            raise ValueError("give either `root` (split automatically) or `train` and `val`, not both")
        if self.root is None and (self.train is None or self.val is None):
            raise ValueError("give `root` (one folder, split by val_fraction) or both `train` and `val`")
        if self.group_by is not None and self.root is None:
            raise ValueError("group_by groups the images of `root` for its split; with `train` and `val` given "
                             "nothing is split: remove group_by")
        return self


class InputConfig(Strict):
    size: Tuple[int, int] = Field((224, 224), description="model input height, width in pixels")
    resize: Literal["center_crop", "resize", "pad"] = Field(
        "center_crop",
        description="center_crop keeps aspect and drops borders (photos of one centred object); "
        "resize stretches (images already at the right aspect); pad letterboxes (nothing may be cut off)",
    )

    @model_validator(mode="after")
    def _size_positive(self) -> "InputConfig":
        if min(self.size) < 8:
            raise ValueError(f"size {list(self.size)} is too small: use at least 8x8 pixels")
        return self


class HeadConfig(Strict):
    pooling: Literal["avg", "max"] = "avg"
    hidden_units: List[int] = Field(default_factory=list)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)


class PreprocessConfig(Strict):
    """Explicit input normalization of a user's model: `pixel * scale + offset` or
    `(pixel - mean) / std` (pixel 0..255), each a number or one per channel in `channel_order`."""

    scale: Optional[Union[float, List[float]]] = None
    offset: Optional[Union[float, List[float]]] = None
    mean: Optional[Union[float, List[float]]] = None
    std: Optional[Union[float, List[float]]] = None
    channel_order: Literal["rgb", "bgr"] = Field("rgb", description="the channel order the model expects")

    @model_validator(mode="after")
    def _one_form(self) -> "PreprocessConfig":
        affine = self.scale is not None or self.offset is not None
        standard = self.mean is not None or self.std is not None
        if affine == standard:
            raise ValueError("give either `scale` (and `offset`) or `mean` and `std`")
        if standard and (self.mean is None or self.std is None):
            raise ValueError("give both `mean` and `std`")
        for name in ("scale", "offset", "mean", "std"):
            v = getattr(self, name)
            if isinstance(v, list) and len(v) != 3:
                raise ValueError(f"`{name}` needs one value or three (one per channel), got {len(v)}")
        return self


class ModelConfig(Strict):
    backbone: str = "MobileNetV2"
    alpha: Optional[float] = Field(None, description="width multiplier (MobileNet families)")
    weights: str = Field("imagenet", description="imagenet | none | path to a keras-applications h5 (no_top)")
    head: HeadConfig = HeadConfig()
    # bring your own model: not trained, it is the float reference every artifact is compared with
    path: Optional[Path] = Field(None, description="a trained model: .keras file, Keras h5 or SavedModel folder")
    preprocess: Optional[Union[str, PreprocessConfig]] = Field(
        None, description="with `path`: the model's input normalization, a keras-applications family "
        "(mobilenet_v2, resnet50, efficientnet, ...) or {scale, offset} / {mean, std} with channel_order")
    architecture: Optional[str] = Field(None, description="with `path`: the keras.applications model a weights-only "
                                        "h5 belongs to (MobileNetV2, ResNet50, ...; `alpha` for width)")
    labels: Optional[Path] = Field(None, description="with `path`, classification: class names, one per line")
    label_offset: Optional[int] = Field(None, ge=0, description="output i is labels line i + N (default: "
                                        "0, or 1 when the file has one extra leading `background` line)")
    custom_objects: Optional[str] = Field(None, description="with `path`: module (package.module) whose "
                                          "`custom_objects` dict or public classes the model needs")
    unsafe_deserialization: bool = Field(False, description="with `path`: load Lambda layers (runs code stored "
                                         "in the model file: only for models you trust)")


class AugmentConfig(Strict):
    flip: Literal["none", "horizontal", "vertical", "both"] = "horizontal"
    rotation: float = Field(0.0, ge=0.0, le=0.5, description="fraction of a full turn")
    zoom: float = Field(0.0, ge=0.0, lt=1.0)
    translate: float = Field(0.0, ge=0.0, lt=1.0)
    contrast: float = Field(0.0, ge=0.0, lt=1.0)


class PhaseConfig(Strict):
    epochs: int = Field(0, ge=0)
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    learning_rate: float = Field(1e-3, gt=0.0)
    schedule: Literal["constant", "cosine"] = Field(
        "constant", description="cosine: decay the learning rate to 0 over the phase's steps")


class UnfreezeConfig(Strict):
    layers: Optional[int] = Field(None, ge=0, description="unfreeze this many layers from the top of the backbone")
    from_layer: Optional[str] = Field(None, description="unfreeze this backbone layer and every layer after it")
    all: bool = False

    @model_validator(mode="after")
    def _one_rule(self) -> "UnfreezeConfig":
        given = [self.layers is not None, self.from_layer is not None, self.all]
        if sum(given) > 1:
            raise ValueError("give one of `layers`, `from_layer` or `all: true`")
        return self


class FinetuneConfig(PhaseConfig):
    learning_rate: float = Field(1e-5, gt=0.0)
    unfreeze: UnfreezeConfig = UnfreezeConfig(layers=40)


class TrainConfig(Strict):
    batch_size: int = Field(32, ge=1)
    seed: int = 0
    warmup: PhaseConfig = PhaseConfig(epochs=3)
    finetune: FinetuneConfig = FinetuneConfig(epochs=3)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    keep: Literal["best", "last"] = Field(
        "best", description="best: the epoch with the best validation number (that number is then "
        "optimistic: it chose the epoch); last: the final weights (validation stays an unbiased estimate)")
    mixed_precision: Literal["auto", "on", "off"] = Field("auto", description="auto: on when a GPU is present")
    deterministic: bool = Field(True, description="deterministic ops: same data and seed give the same model")


class CalibrationConfig(Strict):
    size: int = Field(200, ge=1, description="images drawn from the training split, stratified by class")
    seed: int = 0
    list: Optional[Path] = Field(None, description="pin the set: a text file of image paths (train split only)")


class Recipe(Strict):
    name: SafeName = Field(..., description="used in artifact file names")
    task: str = Field("classification", description="a task name (`edgecv tasks`) or package.module:TaskClass")
    task_options: dict = Field(default_factory=dict, description="the task's own settings")
    data: DataConfig
    input: InputConfig = InputConfig()
    model: ModelConfig = ModelConfig()
    augment: AugmentConfig = AugmentConfig()
    train: TrainConfig = TrainConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    gates: Optional["Gates"] = Field(None, description="the task's default gates for every target; a target's or an "
                                     "artifact's own limit for the same gate wins")
    select: Optional[SelectConfig] = Field(None, description="`edgecv select`: the backbones to compare")

    # Where the recipe file lives; relative data paths resolve against it. Not a YAML key.
    base_dir: Path = Field(Path("."), exclude=True)

    @model_validator(mode="after")
    def _task_known(self) -> "Recipe":
        try:
            cls = task_class(self.task)
        except KeyError as e:
            raise ValueError(str(e)) from None
        try:
            cls.options_model.model_validate(self.task_options)
        except ValueError as e:
            raise ValueError(f"task_options for task {self.task}: {e}") from None
        return self

    @model_validator(mode="after")
    def _user_model(self) -> "Recipe":
        m = self.model
        own = {"preprocess", "architecture", "labels", "label_offset", "custom_objects", "unsafe_deserialization"}
        if m.path is None:
            given = sorted(own & m.model_fields_set)
            if given:
                raise ValueError(f"model.{given[0]} only applies to a model given by `model.path`")
            return self
        if "train" in self.model_fields_set:
            raise ValueError("model.path is a trained model and is not trained again: remove the `train` section")
        trained_keys = sorted({"backbone", "weights", "head"} & m.model_fields_set)
        if trained_keys:
            raise ValueError(f"model.{trained_keys[0]} describes a model edgecv trains; with `model.path` remove it")
        if "alpha" in m.model_fields_set and m.architecture is None:
            raise ValueError("model.alpha with `model.path` needs model.architecture (a keras.applications model)")
        if m.preprocess is None and m.architecture is None:
            raise ValueError("model.path needs `model.preprocess`: the model's input normalization, a family name "
                             "(mobilenet_v2, resnet50, efficientnet, ...), `none` (it normalizes inside), or "
                             "{scale, offset} / {mean, std} with channel_order, so that artifacts take pixels")
        return self

    def make_task(self):
        """The recipe's task object, with its options."""
        return get_task(self.task, self.task_options)

    def model_facts(self) -> dict:
        """What the index and the report need from a user's model (its outputs, input size)."""
        return model_facts(self)

    def resolve(self, path: Union[str, Path]) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.base_dir / p).resolve()


from edgecv.config.target import Gates  # noqa: E402  (target.py imports Strict from here)

Recipe.model_rebuild()
