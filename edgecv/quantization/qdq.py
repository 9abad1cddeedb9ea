"""Static int8 QDQ quantization of an ONNX graph, laid out for TensorRT.

Explicit quantization (QuantizeLinear/DequantizeLinear pairs) is the only int8 TensorRT 10
recommends and TensorRT 11 accepts: symmetric int8 activations and per-channel symmetric int8
weights, every zero point 0. With `placement: tensorrt` (the default) Q/DQ sit where TensorRT fuses
them: on the inputs of Conv/ConvTranspose/Gemm/MatMul and of residual Adds, never on the outputs of
weighted ops, biases left in float (TensorRT rejects int32 DequantizeLinear). onnxruntime runs the
same graph on the CPU, so the int8 accuracy is known before any GPU sees it.
"""

from __future__ import annotations

import logging
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import Field

from edgecv.config.recipe import Strict
from edgecv.data.calibration import stacked_batches
from edgecv.errors import ConfigError, ConversionError

# Ops whose inputs TensorRT wants quantized (weighted ops, plus Add for residual connections).
TRT_QUANTIZED_OPS = ["Conv", "ConvTranspose", "Gemm", "MatMul", "Add"]
WEIGHTED_OPS = ["Conv", "ConvTranspose", "Gemm", "MatMul"]


class QdqOptions(Strict):
    """Which nodes stay float and how int8 is calibrated (the onnx exporter's options extend these)."""

    exclude_nodes: list[str] = Field(default_factory=list,
                                     description="int8/fp16: keep these in float32; an ONNX node name or a Keras layer name")
    exclude_op_types: list[str] = Field(default_factory=list,
                                        description="int8/fp16: keep every node of these ONNX op types in float32")
    calibration_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    percentile: float = Field(99.999, gt=90, le=100, description="calibration_method percentile only")
    placement: Literal["tensorrt", "all"] = Field(
        "tensorrt", description="tensorrt: Q/DQ on inputs of weighted ops and residual Adds; "
        "all: onnxruntime's default (every supported op, inputs and outputs), for CPU int8 kernels")
    calibration_batch: int = Field(16, ge=1, le=256, description="images per calibration run")


def int8_float_layers(keras_model) -> list[str]:
    """Layers that declare `int8_keep_float`: a decode whose inputs an int8 grid would ruin (the
    soft-argmax's probabilities), kept float in QDQ int8 whatever the options say."""
    return [layer.name for layer in getattr(keras_model, "layers", []) if getattr(layer, "int8_keep_float", False)]


def with_model_float_layers(opts: "QdqOptions", keras_model) -> "QdqOptions":
    keep = [name for name in int8_float_layers(keras_model) if name not in opts.exclude_nodes]
    return opts.model_copy(update={"exclude_nodes": [*opts.exclude_nodes, *keep]}) if keep else opts


def match_nodes(proto, names: list[str], op_types: list[str]) -> list[str]:
    """ONNX node names for `exclude_nodes` (an exact ONNX node name, or a Keras layer name, which
    tf2onnx keeps as a path component: model/<layer>/Conv2D) and `exclude_op_types`."""
    nodes = list(proto.graph.node)
    unknown_types = sorted(set(op_types) - {n.op_type for n in nodes})
    if unknown_types:
        present = ", ".join(sorted({n.op_type for n in nodes}))
        raise ConfigError(f"exclude_op_types {unknown_types}: no such op in the ONNX graph (present: {present})")
    picked = [n.name for n in nodes if n.op_type in op_types]
    for name in names:
        hits = [n.name for n in nodes if n.name == name or name in n.name.split("/")]
        if not hits:
            raise ConfigError(f"exclude_nodes: {name!r} names no ONNX node and no Keras layer of the model")
        picked += hits
    return sorted(set(picked))


@contextmanager
def _quiet_preprocess_advice():
    """onnxruntime.quantization warns on the root logger that pre-processing is advised; the
    graph from tf2onnx is already optimized and shape-inferred, so drop just that advice."""
    class Drop(logging.Filter):
        def filter(self, record):
            return "pre-processing" not in record.getMessage()

    f = Drop()
    root = logging.getLogger()
    root.addFilter(f)
    try:
        yield
    finally:
        root.removeFilter(f)


def _constant_operand_nodes(proto, op_types=("Add", "Mul", "Sub", "Div")) -> list[str]:
    """Elementwise nodes with a constant operand (bias adds, the input normalization): quantizing
    them buys TensorRT nothing and would put the pixel input itself on an int8 grid."""
    consts = {i.name for i in proto.graph.initializer}
    consts |= {o for n in proto.graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in proto.graph.node if n.op_type in op_types and any(i in consts for i in n.input)]


def quantize_qdq(fp32: bytes, calibration, opts: QdqOptions) -> tuple[bytes, dict]:
    """Static int8 QDQ quantization calibrated on `calibration()` (1xHxWx3 uint8 batches) fed to the
    graph's one image input."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    proto = onnx.load_from_string(fp32)
    input_name = proto.graph.input[0].name
    user_excluded = match_nodes(proto, opts.exclude_nodes, opts.exclude_op_types)
    if opts.placement == "tensorrt":
        op_types = TRT_QUANTIZED_OPS
        auto_excluded = _constant_operand_nodes(proto)
        placement = {"OpTypesToExcludeOutputQuantization": TRT_QUANTIZED_OPS, "DedicatedQDQPair": True}
    else:
        op_types, auto_excluded, placement = None, [], {}
    excluded = sorted(set(user_excluded) | set(auto_excluded))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = stacked_batches(calibration(), opts.calibration_batch)
            self.count = 0

        def get_next(self):
            batch = next(self.batches, None)
            if batch is None:
                return None
            self.count += len(batch)
            return {input_name: batch}

    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[opts.calibration_method]
    extra = {
        "ActivationSymmetric": True,    # zero point 0 for activations, as TensorRT requires
        "WeightSymmetric": True,        # and for weights
        "QuantizeBias": False,          # TensorRT has no int32 DequantizeLinear: biases stay float
        "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},  # MatMul weights are [in, out]: per output
        **placement,
    }
    if opts.calibration_method == "percentile":
        extra["CalibPercentile"] = opts.percentile
    reader = Reader()
    with tempfile.TemporaryDirectory(prefix="edgecv-qdq-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(fp32)
        try:
            with _quiet_preprocess_advice():
                quantize_static(str(src), str(dst), reader, quant_format=QuantFormat.QDQ,
                                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                                op_types_to_quantize=op_types, nodes_to_exclude=excluded,
                                calibrate_method=method, extra_options=extra)
        except Exception as e:
            raise ConversionError(f"onnxruntime int8 QDQ quantization failed: {str(e).strip()[:2000]}") from None
        out = onnx.load(str(dst))
    if reader.count == 0:
        raise ConversionError("int8 QDQ quantization got no calibration images")
    onnx.checker.check_model(out)
    info = {"calibration_images": reader.count, "calibration_method": opts.calibration_method,
            "placement": opts.placement, "kept_float": user_excluded,
            "not_quantized_constant_operand_nodes": len(auto_excluded)}
    return out.SerializeToString(), info
