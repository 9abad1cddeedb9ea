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
    from edgecv.models.inline import has_nested_model, inline_nested

    applied: List[str] = []
    details: dict = {}
    rounded: dict = {}
    why_none = "no Conv2D, DepthwiseConv2D or Dense layer"
    if (cfg.adaround or cfg.bias_correction) and has_nested_model(keras_model):  # a wrapped user model
        flat, why = inline_nested(keras_model)
        if flat is None:
            why_none = why
            log(f"int8 techniques: {why}")
        else:
            keras_model, details["inlined_nested_models"] = flat, True
    if cfg.adaround:
        from edgecv.quantization.adaround import learn_rounding

        rounded, ada = learn_rounding(keras_model, calibration, cfg.adaround_iterations, log=log)
        details["adaround"] = ada.to_json()
        if rounded:
            applied.append("adaround")
        else:
            log(f"adaround skipped: {ada.skipped or why_none}")
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
    wanted = [name for name in ("adaround", "bias_correction") if getattr(cfg, name)]
    not_applied = {name: _why_not_applied(details.get(name), why_none) for name in wanted if name not in applied}
    if not_applied:  # said in the report, never left for the reader to infer from a missing name
        details["not_applied"] = not_applied
    return keras_model, {"applied": applied, **details}


def _why_not_applied(detail, default: str) -> str:
    skipped = (detail or {}).get("skipped") if isinstance(detail, dict) else None
    if isinstance(skipped, dict) and skipped:
        return "; ".join(f"{k}: {v}" for k, v in list(skipped.items())[:3])
    return str(skipped) if skipped else default
