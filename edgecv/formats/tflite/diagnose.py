"""Which layers lose the most to int8? Per-layer quantization error from TFLite's QuantizationDebugger.

The debugger runs the int8 model with a NumericVerify op after every quantized op: each op gets
the same (quantized) input in float and in int8, so an op's error is its own, not inherited from
earlier layers. Ops are ranked by the root-mean-square error of their dequantized output measured
in quantization steps (rmse / scale), worst first: a layer whose output needs many steps of error
to represent is one where int8 hurts. This is the ranking TensorFlow's debugger guide uses to pick
layers to keep in float.

`Diagnosis.quantized(float_tensors)` re-quantizes the calibrated model with the named ops kept in
float (`QuantizationDebugOptions(denylisted_nodes=...)`) without calibrating again; the
accuracy-aware int8 search (`edgecv.formats.accuracy_aware`) builds on it.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from dataclasses import asdict, dataclass, field
from itertools import islice
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
from edgecv.formats.tflite.convert import make_converter, io_tf_dtype


@dataclass
class LayerError:
    tensor: str  # the op's output tensor in the TFLite model: what denylisted_nodes takes
    op: str  # TFLite op (CONV_2D, DEPTHWISE_CONV_2D, ADD ...)
    layers: list[str]  # Keras layers fused into that op
    rmse_over_scale: float  # rms error of the int8 output, in quantization steps
    rmse: float
    max_abs_error: float
    mean_error: float
    scale: float
    num_elements: int

    def to_json(self) -> dict:
        return asdict(self)


def keras_layers_of(tensor: str, model_name: Optional[str] = None) -> list[str]:
    """'model/block_1_relu/Relu6;model/block_1_conv/Conv2D' -> ['block_1_relu', 'block_1_conv']."""
    out = []
    for part in tensor.split(";"):
        bits = part.split("/")
        if model_name and bits[0] == model_name and len(bits) > 1:
            name = bits[1]
        elif len(bits) > 1:
            name = bits[1] if len(bits) > 2 else bits[0]
        else:
            name = bits[0]
        if name not in out:
            out.append(name)
    return out


@dataclass
class Diagnosis:
    layers: list[LayerError]  # worst first
    debugger: object = field(repr=False)
    io_dtype: str = "uint8"
    output_dtype: Optional[str] = None  # default io_dtype
    artifact_sha256: Optional[str] = None  # `edgecv diagnose ARTIFACT`: the file checked against its manifest
    made_from: Optional[str] = None  # and the stage key of the float model re-quantized here

    def worst(self, n: int) -> list[LayerError]:
        return self.layers[:n]

    def quantized(self, float_tensors: list[str] = ()) -> bytes:
        """The int8 model with these ops kept in float (input/output type per io_dtype)."""
        from edgecv._keras import tf
        from tensorflow.lite.python.util import modify_model_io_type

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.debugger.options = tf.lite.experimental.QuantizationDebugOptions(
                denylisted_nodes=list(float_tensors) or None)
            model = self.debugger.get_nondebug_quantized_model()
        return bytes(modify_model_io_type(model, io_tf_dtype(self.io_dtype),
                                          io_tf_dtype(self.output_dtype or self.io_dtype)))

    def to_json(self, top: Optional[int] = None) -> list[dict]:
        return [e.to_json() for e in self.layers[:top]]


def diagnose(keras_model, calibration: Callable[[], Iterator[np.ndarray]], debug_samples: int = 32,
             io_dtype: str = "uint8", output_names: Optional[Sequence[str]] = None,
             output_dtype: Optional[str] = None) -> Diagnosis:
    """Calibrate like the int8 export does, then measure each op's quantization error on the first
    `debug_samples` calibration images (training split: no evaluation image is used). The
    re-quantized models (`Diagnosis.quantized`) keep `output_names` (the task's)."""
    from edgecv._keras import tf

    converter = make_converter(keras_model, "int8", io_dtype, True, calibration, output_names)

    def debug_data():
        for batch in islice(calibration(), debug_samples):
            yield [batch.astype(np.float32)]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter deprecation inside the debugger
        debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=debug_data)
        debugger.run()
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    buf.seek(0)
    rows = []
    for row in csv.DictReader(buf):
        scale = float(row["scale"])
        mse = float(row["mean_squared_error"])
        rmse = math.sqrt(max(mse, 0.0))
        rows.append(LayerError(
            tensor=row["tensor_name"], op=row["op_name"], layers=keras_layers_of(row["tensor_name"], keras_model.name),
            rmse_over_scale=rmse / scale if scale > 0 else float("inf"), rmse=rmse,
            max_abs_error=float(row["max_abs_error"]), mean_error=float(row["mean_error"]), scale=scale,
            num_elements=int(float(row["num_elements"]))))
    rows.sort(key=lambda e: -e.rmse_over_scale)
    return Diagnosis(rows, debugger, io_dtype, output_dtype)
