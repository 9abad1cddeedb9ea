"""The calibration step: the images int8 conversion and the passes calibrate on, chosen from the
index every build (cheap: no image is decoded here)."""

from __future__ import annotations

from edgecv.data.calibration import CalibrationSet, select_calibration


def run(ctx, step, inputs) -> CalibrationSet:
    recipe = ctx.recipe
    calib = select_calibration(inputs["index"], recipe.calibration, recipe.resolve, stratum=ctx.task.stratum)
    wanted = recipe.calibration.size
    if recipe.calibration.list is None and len(calib.samples) < wanted:
        ctx.console.print(f"[yellow]calibration: {len(calib.samples)} images, not calibration.size {wanted}: "
                          "the training split has no more[/]")
    return calib
