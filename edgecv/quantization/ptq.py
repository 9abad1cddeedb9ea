"""Post-training int8 settings of a TFLite artifact (`options: {ptq: {...}}`) and applying them.

The model's ops stay integer-only whatever is chosen; these change what the converter is given
(a bias-corrected copy of the float model: the int8 passes, edgecv.passes.int8_weights) and the form of the output tensor (the int8 result
dequantized to float32 by the model's last op, so the host need not). What was applied is listed
in the artifact's metadata (`ptq.applied`) and in the report (`ArtifactResult.quantization`).
Defaults are the settings that measured better on examples/flowers (docs/int8-flowers.md): learned
rounding (edgecv.passes.adaround), then bias correction measured against it.
"""

from __future__ import annotations

from typing import Callable, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field
from edgecv.passes.adaround import AdaRoundConfig, AdaRoundPass
from edgecv.passes.bias_correction import BiasCorrectionConfig, BiasCorrectionPass
from edgecv.passes.int8_weights import prepare_int8


class PTQConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bias_correction: bool = Field(
        True, description="cancel the mean output shift int8 weight rounding causes (Nagel et al. 2019), "
                          "measured on the calibration images")
    adaround: bool = Field(
        True, description="choose each weight's rounding (up or down) to minimise every layer's output error on "
                           "the calibration images (AdaRound, Nagel et al. 2020) instead of rounding to nearest")
    adaround_iterations: int = Field(1000, ge=1, description="optimisation steps per layer for adaround")
    output_dtype: Optional[Literal["uint8", "int8", "float32"]] = Field(
        None, description="type of the model's outputs; default the artifact's io_dtype. float32 adds "
                          "one DEQUANTIZE after the last integer op")


def int8_steps(cfg) -> list:
    """The int8 passes (edgecv.passes.int8_weights) that settings with `adaround`,
    `adaround_iterations` and `bias_correction` ask for, in the order they run."""
    steps = []
    if cfg.adaround:
        steps.append((AdaRoundPass(), AdaRoundConfig(iterations=cfg.adaround_iterations)))
    if cfg.bias_correction:
        steps.append((BiasCorrectionPass(), BiasCorrectionConfig()))
    return steps


def prepare(keras_model, calibration: Callable, cfg: PTQConfig, log: Callable[[str], None] = lambda m: None):
    """The Keras model to convert and what was applied to it (for the artifact's metadata)."""
    keras_model, info = prepare_int8(keras_model, calibration, int8_steps(cfg), log=log)
    if cfg.output_dtype == "float32":
        info["applied"].append("float_output")
    return keras_model, info
