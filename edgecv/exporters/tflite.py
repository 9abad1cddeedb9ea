"""TFLite exporter: fp32, fp16 weights, and full-integer int8 calibrated on the training split.

Converter settings live in `edgecv.quantization.tflite`; the model's outputs keep the task's names
(the `serving_default` signature maps each to its tensor).
"""

from __future__ import annotations

from pathlib import Path

from edgecv.errors import ConversionError
from edgecv.exporters.base import Artifact, ExportContext, Exporter, check_accuracy_aware
from edgecv.files import atomic_write_bytes
from edgecv.quantization.tflite import convert
from edgecv.validate.tflite_checks import inspect_tflite


class TFLiteExporter(Exporter):
    format = "tflite"
    precisions = ("fp32", "fp16", "int8")
    needs_calibration = ("int8",)

    @classmethod
    def check_spec(cls, spec, task=None) -> None:
        check_accuracy_aware(spec, task)

    def export(self, model, spec, out_dir: Path, ctx: ExportContext) -> Artifact:
        io_dtype = spec.resolved_io_dtype
        report = None
        if "accuracy_aware" in spec.options and spec.precision == "int8":
            from edgecv.quantization.accuracy_aware import AccuracyAwareConfig, accuracy_aware_tflite

            cfg = AccuracyAwareConfig.model_validate(spec.options["accuracy_aware"] or {})
            flat, report = accuracy_aware_tflite(model, spec, ctx, out_dir, cfg, log=ctx.log)
        else:
            flat = convert(model.keras_model, spec.precision, io_dtype, spec.allow_float_ops, ctx.calibration,
                           output_names=model.output_names)
        path = out_dir / f"{ctx.model_name}_{spec.name}.tflite"
        atomic_write_bytes(path, flat)
        kept_float = bool(report and report["float_layers"])
        checks = inspect_tflite(path, spec.precision, io_dtype, spec.allow_float_ops or kept_float)
        if not checks["passed"]:
            raise ConversionError(f"{path.name}: {checks['message']}")
        meta = {"io_dtype": io_dtype, "outputs": model.output_names}
        if report is not None:
            meta["accuracy_aware"] = report
        if ctx.calibration_sha256 and spec.precision == "int8":
            meta["calibration_sha256"] = ctx.calibration_sha256
        return Artifact(spec.name, self.format, spec.precision, path, "tflite", checks=checks, metadata=meta)
