"""TFLite converter settings: fp32, fp16 weights, and full-integer int8 calibrated on training images
with the integer input pinned to the pixel value. Outputs keep the task's names (the converted
model's `serving_default` signature maps each name to its tensor)."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from edgecv.errors import ConversionError
from edgecv.formats.tflite.detection import fused_postprocess
from edgecv.metrics.nms import DETECTION_OUTPUTS
from edgecv.models.signature import serving_function  # also its old home: older imports keep working
from edgecv.formats.tflite.detection import outputs_in_op_order

# (scale, zero point) of an integer input that is the pixel itself
EXPECTED_INPUT_QUANT = {"uint8": (1.0, 0), "int8": (1.0, -128)}


def pin_pixel_range(batch: np.ndarray) -> np.ndarray:
    """Make the calibrated input range exactly 0..255 so the integer input is the pixel itself
    (scale 1, zero point 0 for uint8, -128 for int8). Two pixels of the first image change."""
    batch = batch.copy()
    batch[0, 0, 0, 0] = 0
    batch[0, 0, 0, 1] = 255
    return batch


def detection_serving_function(keras_model, output_names: Optional[Sequence[str]], postprocess):
    """The serving function ending in the fused TFLite_Detection_PostProcess op: its four detection
    outputs (edgecv.metrics.nms.DETECTION_OUTPUTS), one image per call (the op decodes one image)."""
    names = list(output_names or keras_model.output_names)
    box_name, score_name = postprocess.raw_outputs
    num_classes = int(dict(zip(names, keras_model.outputs))[score_name].shape[-1])
    fused = fused_postprocess(postprocess, num_classes)

    def tail(outputs):
        return dict(zip(DETECTION_OUTPUTS, fused(outputs[box_name], outputs[score_name])))

    return serving_function(keras_model, names, batch=1, tail=tail)


def make_converter(keras_model, precision: str, io_dtype: str, allow_float_ops: bool, calibration=None,
                   output_names: Optional[Sequence[str]] = None, output_dtype: Optional[str] = None,
                   postprocess=None):
    """A TFLiteConverter set up for the precision (int8: calibrated, input pinned to pixels; the
    outputs typed `output_dtype`, default io_dtype; with a detection post-process they are the
    op's float32 outputs)."""
    from edgecv._keras import tf

    serve = (serving_function(keras_model, output_names) if postprocess is None
             else detection_serving_function(keras_model, output_names, postprocess))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], keras_model)
    if postprocess is not None:
        converter.allow_custom_ops = True  # TFLite_Detection_PostProcess: a custom op every TFLite runtime registers
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        if calibration is None:
            raise ConversionError("int8 TFLite needs a calibration set; none was given")

        def representative():
            for i, batch in enumerate(calibration()):
                yield [(pin_pixel_range(batch) if i == 0 else batch).astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        if allow_float_ops:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        else:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = io_tf_dtype(io_dtype)
        if postprocess is None:
            converter.inference_output_type = io_tf_dtype(output_dtype or io_dtype)
    return converter


def io_tf_dtype(io_dtype: str):
    from edgecv._keras import tf

    return {"uint8": tf.uint8, "int8": tf.int8, "float32": tf.float32}[io_dtype]


def convert(keras_model, precision: str, io_dtype: str, allow_float_ops: bool, calibration=None,
            output_names: Optional[Sequence[str]] = None, output_dtype: Optional[str] = None,
            postprocess=None) -> bytes:
    converter = make_converter(keras_model, precision, io_dtype, allow_float_ops, calibration, output_names,
                               output_dtype, postprocess)
    try:
        flat = converter.convert()
        if postprocess is not None:
            flat = outputs_in_op_order(flat)
        return flat
    except Exception as e:
        hint = " Set allow_float_ops: true on the artifact to keep unsupported ops in float." if precision == "int8" else ""
        raise ConversionError(f"TFLite converter rejected the model ({precision}): {str(e).strip()[:2000]}{hint}") from None
