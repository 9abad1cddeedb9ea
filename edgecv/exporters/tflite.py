"""TFLite exporter: fp32, fp16 weights, and full-integer int8 calibrated on the training split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecv.files import atomic_write_bytes
from edgecv.errors import ConversionError
from edgecv.exporters.base import Artifact, ExportContext, Exporter
from edgecv.validate.tflite_checks import inspect_tflite


def _pin_pixel_range(batch: np.ndarray) -> np.ndarray:
    """Make the calibrated input range exactly 0..255 so the integer input is the pixel itself
    (scale 1, zero point 0 for uint8, -128 for int8). Two pixels of the first image change."""
    batch = batch.copy()
    batch[0, 0, 0, 0] = 0
    batch[0, 0, 0, 1] = 255
    return batch


def make_converter(keras_model, precision: str, io_dtype: str, allow_float_ops: bool, calibration=None):
    """A TFLiteConverter set up for the precision (int8: calibrated, input pinned to pixels)."""
    from edgecv._keras import tf

    h, w = keras_model.input_shape[1:3]

    @tf.function(input_signature=[tf.TensorSpec([None, h, w, 3], tf.float32, name="image")])
    def serve(image):
        return {"probabilities": keras_model(image, training=False)}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], keras_model)
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        if calibration is None:
            raise ConversionError("int8 TFLite needs a calibration set; none was given")

        def representative():
            for i, batch in enumerate(calibration()):
                yield [(_pin_pixel_range(batch) if i == 0 else batch).astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        if allow_float_ops:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        else:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io = {"uint8": tf.uint8, "int8": tf.int8, "float32": tf.float32}[io_dtype]
        converter.inference_input_type = io
        converter.inference_output_type = io
    return converter


def convert(keras_model, precision: str, io_dtype: str, allow_float_ops: bool, calibration=None) -> bytes:
    converter = make_converter(keras_model, precision, io_dtype, allow_float_ops, calibration)
    try:
        return converter.convert()
    except Exception as e:
        hint = " Set allow_float_ops: true on the artifact to keep unsupported ops in float." if precision == "int8" else ""
        raise ConversionError(f"TFLite converter rejected the model ({precision}): {str(e).strip()[:2000]}{hint}") from None


class TFLiteExporter(Exporter):
    format = "tflite"
    precisions = ("fp32", "fp16", "int8")
    needs_calibration = ("int8",)

    @classmethod
    def check_spec(cls, spec) -> None:
        from edgecv.exporters.accuracy_aware import check_options

        check_options(spec)

    def export(self, model, spec, out_dir: Path, ctx: ExportContext) -> Artifact:
        io_dtype = spec.resolved_io_dtype
        report = None
        if "accuracy_aware" in spec.options and spec.precision == "int8":
            from edgecv.exporters.accuracy_aware import AccuracyAwareConfig, accuracy_aware_tflite

            cfg = AccuracyAwareConfig.model_validate(spec.options["accuracy_aware"] or {})
            flat, report = accuracy_aware_tflite(model.keras_model, spec, ctx, out_dir, cfg, log=ctx.log)
        else:
            flat = convert(model.keras_model, spec.precision, io_dtype, spec.allow_float_ops, ctx.calibration)
        path = out_dir / f"{ctx.model_name}_{spec.name}.tflite"
        atomic_write_bytes(path, flat)
        kept_float = bool(report and report["float_layers"])
        checks = inspect_tflite(path, spec.precision, io_dtype, spec.allow_float_ops or kept_float)
        if not checks["passed"]:
            raise ConversionError(f"{path.name}: {checks['message']}")
        meta = {"io_dtype": io_dtype}
        if report is not None:
            meta["accuracy_aware"] = report
        if ctx.calibration_sha256 and spec.precision == "int8":
            meta["calibration_sha256"] = ctx.calibration_sha256
        return Artifact(spec.name, self.format, spec.precision, path, "tflite", checks=checks, metadata=meta)
