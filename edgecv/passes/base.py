"""Pass interface: the one kind of model-to-model transform (pruning, QAT, backbone swap with
distillation, learned rounding, bias correction).

A pass declares what it needs (calibration data, training data, a teacher), which precisions it
suits, and which statistics of the calibration images it reads (`statistic_points`: gathered in one
pass for every step that asks, edgecv.passes.statistics), so a bad combination is rejected while
planning, before any training. Passes run at one of two points (`stage`):

- "model": chosen per artifact in the target file (`passes: [{name: prune, sparsity: 0.5}]`), run by
  the build's passes stage and cached;
- "int8": weight preparation for an int8 converter (adaround, bias_correction: their grid is the
  format's), run by the exporter right before it converts, on the model the "model" passes gave.
  Each format declares which it runs by default (its exporter's `int8_passes`); the artifact's
  options switch them (tflite: `options.ptq`, onnx: `options`). edgecv.passes.int8_weights.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Optional

from pydantic import BaseModel, ConfigDict

from edgecv.registry import LazyRegistry

PASS_MODULES: dict[str, str] = {  # pass name -> module that defines it (imported on use)
    "adaround": "edgecv.passes.adaround",
    "bias_correction": "edgecv.passes.bias_correction",
    "prune": "edgecv.passes.prune",
    "qat": "edgecv.passes.qat",
    "swap": "edgecv.passes.swap",
}
PASSES: LazyRegistry["Pass"] = LazyRegistry("pass", PASS_MODULES)


class PassConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str


@dataclass
class PassContext:
    """What a pass may use. Datasets are factories so a pass that needs none pays nothing."""

    recipe: Any
    index: Any  # DataIndex
    train_dataset: Callable[..., Any]  # (batch_size, augment: bool) -> tf.data.Dataset of (images, loss targets)
    val_dataset: Callable[..., Any]
    task: Any = None  # the recipe's Task: its loss, quality number and distillation
    calibration: Optional[Callable[[], Any]] = None  # yields 1xHxWx3 uint8 batches
    teacher: Any = None  # the reference TaskModel
    console: Any = None
    work_dir: Any = None
    report: dict = field(default_factory=dict)  # a pass writes what it measured here


def run_pass(cls: type, model, cfg, ctx: "PassContext"):
    """Run one model pass from a fixed random state (the recipe's `train.seed`). A pass that makes
    new weights or drops units while it trains (swap's student head, dropout in QAT or pruning's
    fine-tuning) otherwise draws from whatever state the process is in: the same target built alone
    and built after others would give different models, and no rebuild would be byte-identical."""
    from edgecv._keras import keras

    keras.utils.set_random_seed(ctx.recipe.train.seed)
    return cls().run(model, cfg, ctx)


def make_context(recipe, index, calibration=None, teacher=None, console=None) -> PassContext:
    """A context over the recipe's data: the task's train/val datasets at the recipe's input size."""
    r = recipe
    task = r.make_task()

    def train_ds(batch_size: int = r.train.batch_size, augment: bool = True):
        return task.train_dataset(index.train, index.info, r, batch_size, training=True, seed=r.train.seed,
                                  augment=augment)

    def val_ds(batch_size: int = r.train.batch_size):
        return task.train_dataset(index.val, index.info, r, batch_size, training=False)

    return PassContext(r, index, train_ds, val_ds, task=task, calibration=calibration, teacher=teacher,
                       console=console)


class Pass(ABC):
    name: ClassVar[str]
    description: ClassVar[str] = ""
    config: ClassVar[type[PassConfig]] = PassConfig
    needs: ClassVar[frozenset[str]] = frozenset()  # subset of {"calibration", "train_data", "teacher"}
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "fp16", "int8")
    suits: ClassVar[str] = "any target"  # which targets it is for, in words (shown by `edgecv passes`)
    stage: ClassVar[str] = "model"  # "model": listed in an artifact's `passes`; "int8": run by the exporter

    def statistic_points(self, keras_model, cfg: PassConfig) -> dict[str, set[str]]:
        """Layer name -> statistics of its input over the calibration images this pass reads
        (edgecv.passes.statistics: "gram", "row_sum"); gathered once for every pass that asks."""
        return {}

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if getattr(cls, "name", None):
            PASSES.register(cls.name, cls)

    @abstractmethod
    def run(self, model, cfg: PassConfig, ctx: PassContext):
        """Return a new TaskModel; put measurements in ctx.report."""


def get_pass(name: str) -> type[Pass]:
    return PASSES.get(name)


def parse_pass_config(raw: dict) -> tuple[type[Pass], PassConfig]:
    if "name" not in raw:
        raise ValueError("each pass needs a `name`")
    cls = get_pass(raw["name"])
    return cls, cls.config.model_validate(raw)
