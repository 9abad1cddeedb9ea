"""Int8 weight preparation as passes: learned rounding (`adaround`) and bias correction
(`bias_correction`), run by an int8 exporter right before its converter (Pass.stage "int8").

Both read statistics of the float model's layer inputs over the calibration images (the Gram
matrix; the sum of the patch rows): `prepare_int8` asks every step for its statistic points,
gathers them in one pass over the calibration images (edgecv.passes.statistics), then runs the
steps in order on one copy of the model. Learned rounding chooses each kernel's int8 grid values;
bias correction then cancels the mean output shift of whatever grid values the kernels will have.

Each step is in its own module (edgecv.passes.adaround, edgecv.passes.bias_correction), as every
pass is. Which steps run by default is the format's to declare (`Exporter.int8_passes`: tflite runs both,
onnx bias correction only); an artifact's options switch them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar, Dict, List, Optional, Tuple

import numpy as np
from edgecv.passes.base import Pass, PassConfig
from edgecv.passes.statistics import CalibrationStatistics, copy_for_statistics, gather
from edgecv.models.inline import has_nested_model, inline_nested

NO_LAYERS = "no Conv2D, DepthwiseConv2D or Dense layer"


@dataclass
class Int8State:
    """What the int8 steps share: the statistics (of `stats.model`, the copy they change), the grid
    values learned rounding chose, and what goes into the artifact's metadata (`ptq`)."""

    stats: Optional[CalibrationStatistics]
    why_none: str = NO_LAYERS  # why no step could change anything, when none did
    skipped: str = ""  # the model cannot be copied or probed
    rounded: Dict[str, np.ndarray] = field(default_factory=dict)
    applied: List[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    changed: bool = False  # stats.model differs from the model given
    log: Callable[[str], None] = lambda m: None


class Int8Pass(Pass):
    stage: ClassVar[str] = "int8"
    needs = frozenset({"calibration"})
    precisions = ("int8",)
    suits = "int8 artifacts (tflite, onnx, tensorrt)"

    def apply(self, state: Int8State, cfg: PassConfig) -> None:
        raise NotImplementedError

    def run(self, model, cfg, ctx):
        """On its own (outside an exporter): this step alone, its statistics gathered for it."""
        keras_model, info = prepare_int8(model.keras_model, ctx.calibration, [(self, cfg)], log=_log(ctx))
        ctx.report.update(info)
        return model.with_keras(keras_model)


def _log(ctx):
    return (lambda m: ctx.console.print(f"    {m}")) if ctx.console is not None else (lambda m: None)


def prepare_int8(keras_model, calibration: Callable, steps: List[Tuple[Int8Pass, PassConfig]],
                 log: Callable[[str], None] = lambda m: None):
    """The Keras model to convert after the int8 `steps` (in order) and what was applied (the
    artifact's `ptq` metadata). The calibration images are read once, for every step."""
    if not steps:
        return keras_model, {"applied": []}
    details: dict = {}
    why_none = NO_LAYERS
    if has_nested_model(keras_model):  # a wrapped user model
        flat, why = inline_nested(keras_model)
        if flat is None:
            why_none = why
            log(f"int8 techniques: {why}")
        else:
            keras_model, details["inlined_nested_models"] = flat, True
    model, skipped = copy_for_statistics(keras_model)
    stats = None
    if model is not None:
        points: Dict[str, set] = {}
        for step, cfg in steps:
            for name, wanted in step.statistic_points(model, cfg).items():
                points.setdefault(name, set()).update(wanted)
        stats = gather(model, points, calibration)
        skipped = stats.skipped
    state = Int8State(stats, why_none=why_none, skipped=skipped, details=details, log=log)
    for step, cfg in steps:
        step.apply(state, cfg)
    if state.changed:
        keras_model = set_kernels(state.stats.model, state.rounded)
    wanted = [step.name for step, _ in steps]
    not_applied = {name: _why_not_applied(details.get(name), why_none) for name in wanted if name not in state.applied}
    if not_applied:  # said in the report, never left for the reader to infer from a missing name
        details["not_applied"] = not_applied
    return keras_model, {"applied": state.applied, **details}


def set_kernels(model, kernels: Dict[str, np.ndarray]):
    """`model` with the kernels (first weight) of the named layers replaced, in place."""
    for name, kernel in kernels.items():
        layer = model.get_layer(name)
        layer.set_weights([kernel.astype(np.float32)] + layer.get_weights()[1:])
    return model


def _why_not_applied(detail, default: str) -> str:
    skipped = (detail or {}).get("skipped") if isinstance(detail, dict) else None
    if isinstance(skipped, dict) and skipped:
        return "; ".join(f"{k}: {v}" for k, v in list(skipped.items())[:3])
    return str(skipped) if skipped else default
