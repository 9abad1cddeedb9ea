"""Post-training int8 settings of a TFLite artifact (`options: {ptq: {...}}`) and applying them.

The model's ops stay integer-only whatever is chosen; these change what the converter is given
(a bias-corrected copy of the float model) and the form of the output tensor (the int8 result
dequantized to float32 by the model's last op, so the host need not). What was applied is listed
in the artifact's metadata (`ptq.applied`) and in the report (`ArtifactResult.quantization`).
Defaults are the settings that measured better on examples/flowers (docs/int8-flowers.md): learned
rounding (edgecv.quantization.adaround), then bias correction measured against it.
"""

from __future__ import annotations

from typing import Callable, List, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field


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


def prepare(keras_model, calibration: Callable, cfg: PTQConfig, log: Callable[[str], None] = lambda m: None):
    """The Keras model to convert and what was applied to it (for the artifact's metadata)."""
    applied: List[str] = []
    details: dict = {}
    rounded: dict = {}
    if cfg.adaround:
        from edgecv.quantization.adaround import learn_rounding

        rounded, ada = learn_rounding(keras_model, calibration, cfg.adaround_iterations, log=log)
        details["adaround"] = ada.to_json()
        if rounded:
            applied.append("adaround")
        else:
            log(f"adaround skipped: {ada.skipped or 'no Conv2D, DepthwiseConv2D or Dense layer'}")
    if cfg.bias_correction:
        from edgecv.quantization.bias_correction import correct_bias

        keras_model, rep = correct_bias(keras_model, calibration, rounded=rounded)
        if rep.skipped:
            details["bias_correction"] = rep.to_json()
            log(f"bias correction skipped: {rep.skipped}")
        if rep.layers:
            applied.append("bias_correction")
            details["bias_correction"] = rep.to_json()
            log(f"bias correction: {len(rep.layers)} layers, largest output shift {rep.max_shift:.4g} "
                f"({rep.images} calibration images)")
    elif rounded:
        from edgecv.models.build import copy_keras
        from edgecv.quantization.bias_correction import set_kernels

        keras_model = set_kernels(copy_keras(keras_model), rounded)
    if cfg.output_dtype == "float32":
        applied.append("float_output")
    return keras_model, {"applied": applied, **details}
