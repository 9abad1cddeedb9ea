"""TFLite exporter: fp32, fp16 weights, and full-integer int8 calibrated on the training split.

Converter settings live in `edgecv.formats.tflite.convert`; the model's outputs keep the task's names
(the `serving_default` signature maps each to its tensor).
"""

from __future__ import annotations

from pathlib import Path

from edgecv.errors import ConversionError
from edgecv.exporters.base import (Artifact, ExportContext, Exporter, artifact_output_names, parse_options,
                                   task_postprocess)
from edgecv.formats.accuracy_aware import check_accuracy_aware
from edgecv.files import atomic_write_bytes
from edgecv.formats.tflite.convert import convert
from edgecv.formats.tflite.checks import inspect_tflite
from edgecv.errors import ConfigError
from edgecv.formats.accuracy_aware import AccuracyAwareConfig, accuracy_aware_tflite
from edgecv.quantization.ptq import PTQConfig, int8_steps, prepare
from edgecv.formats.tflite.detection import OP_NAME


class TFLiteExporter(Exporter):
    format = "tflite"
    precisions = ("fp32", "fp16", "int8")
    needs_calibration = ("int8",)

    @classmethod
    def check_spec(cls, spec, task=None) -> None:
        check_accuracy_aware(spec, task)
        ptq_options(spec)

    @classmethod
    def export_key_fields(cls, spec, options: dict) -> tuple[dict, dict]:
        """int8: the weight preparation (options.ptq) with its defaults filled in."""
        if spec.precision != "int8":
            return options, {}

        try:
            ptq = PTQConfig.model_validate(spec.options.get("ptq") or {}).model_dump(mode="json")
            options = {k: v for k, v in options.items() if k != "ptq"}
        except ValueError:  # bad options: check_spec reports them
            ptq = spec.options.get("ptq")
        return options, {"ptq": ptq}

    @classmethod
    def int8_passes(cls, spec) -> list:
        """int8: learned rounding then bias correction by default (options.ptq switches them)."""
        cfg = ptq_options(spec)
        return int8_steps(cfg) if cfg is not None else []

    def export(self, model, spec, out_dir: Path, ctx: ExportContext) -> Artifact:
        io_dtype = spec.resolved_io_dtype
        report = None
        cfg = ptq_options(spec)
        ptq = None
        keras_model = model.keras_model
        output_dtype = (cfg.output_dtype if cfg is not None else None) or io_dtype
        postprocess = task_postprocess(model)
        if postprocess is not None:
            output_dtype = "float32"  # the post-process op's outputs
        if cfg is not None and ctx.calibration is not None:  # none: convert says int8 needs one

            keras_model, ptq = prepare(keras_model, ctx.calibration, cfg, log=ctx.log)
        if postprocess is not None and "accuracy_aware" in spec.options:
            raise ConversionError(f"{spec.name}: accuracy_aware int8 is not available for a model with a detection "
                                  "post-process yet: remove options.accuracy_aware")
        if "accuracy_aware" in spec.options and spec.precision == "int8":
            aim = AccuracyAwareConfig.model_validate(spec.options["accuracy_aware"] or {})
            flat, report = accuracy_aware_tflite(model.with_keras(keras_model), spec, ctx, out_dir, aim, log=ctx.log,
                                                 output_dtype=output_dtype)
        else:
            flat = convert(keras_model, spec.precision, io_dtype, spec.allow_float_ops, ctx.calibration,
                           output_names=model.output_names, output_dtype=output_dtype, postprocess=postprocess)
        path = out_dir / f"{ctx.model_name}_{spec.name}.tflite"
        atomic_write_bytes(path, flat)
        kept_float = bool(report and report["float_layers"])
        checks = inspect_tflite(path, spec.precision, io_dtype, spec.allow_float_ops or kept_float, output_dtype,
                                postprocess=postprocess is not None)
        if not checks["passed"]:
            raise ConversionError(f"{path.name}: {checks['message']}")
        meta = {"io_dtype": io_dtype, "outputs": artifact_output_names(model, postprocess)}
        if postprocess is not None:
            tail = ", ".join(f"{op} x{n}" for op, n in checks.get("postprocess_ops", {}).items())
            note = (f"decode + NMS in the artifact: {OP_NAME}, {postprocess.nms.variant} NMS, K "
                    f"{postprocess.nms.max_detections}")
            if spec.precision == "int8":
                note += (f"; integer-only except the post-process, which computes in float ({tail})"
                         if checks.get("integer_only") else f"; the post-process computes in float ({tail})")
            meta["postprocess"] = {**postprocess.describe(), "op": OP_NAME, "computes_in": "float32",
                                   "raw_outputs": list(postprocess.raw_outputs), "note": note}
        if ptq is not None:
            meta["ptq"] = ptq
            meta["output_dtype"] = output_dtype
        if report is not None:
            meta["accuracy_aware"] = report
        if ctx.calibration_sha256 and spec.precision == "int8":
            meta["calibration_sha256"] = ctx.calibration_sha256
        return Artifact(spec.name, self.format, spec.precision, path, "tflite", checks=checks, metadata=meta)


def ptq_options(spec):
    """An int8 artifact's `options.ptq` (defaults when absent); None for float precisions, where
    giving it is a ConfigError."""
    if spec.precision != "int8":
        if "ptq" in spec.options:
            raise ConfigError(f"options.ptq needs precision int8, not {spec.precision} (artifact {spec.name})")
        return None
    return parse_options(spec.options.get("ptq"), PTQConfig, "ptq")
