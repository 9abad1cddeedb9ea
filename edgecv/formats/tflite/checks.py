"""Check that a TFLite file really has the precision it claims.

A "dynamic range" model (int8 weights, float compute) must not be reported as int8: list every op
that still computes in float, and check the input follows the pixel contract.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional

import numpy as np

from edgecv.formats.tflite.convert import EXPECTED_INPUT_QUANT
from edgecv.formats.tflite.detection import OP_NAME, postprocess_ops

# Boundary ops that legitimately touch float when the model's own input/output is float
_BOUNDARY_OPS = {"QUANTIZE", "DEQUANTIZE"}


def inspect_tflite(path: Path, precision: str, io_dtype: str = "float32", allow_float_ops: bool = False,
                   output_dtype: Optional[str] = None, postprocess: bool = False) -> dict:
    """`output_dtype` float32 (an int8 model whose outputs are dequantized): a DEQUANTIZE whose
    result is a model output is a boundary op, not float compute. `postprocess`: the model ends in
    the detection post-process op, which computes in float (with the DEQUANTIZE ops feeding it):
    listed as `postprocess_ops`, not as float compute; the model must have it."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    ops = interp._get_ops_details()
    outputs = {o["index"] for o in interp.get_output_details()}
    tensors = interp.get_tensor_details()
    inp = interp.get_input_details()[0]
    dtype_counts = Counter(np.dtype(t["dtype"]).name for t in tensors)
    op_counts = Counter(op["op_name"] for op in ops)
    float_ops = []
    tail = postprocess_ops(ops, outputs) if postprocess else set()
    for op in ops:
        if op["index"] in tail:
            continue
        types = [np.dtype(t).name for t in list(op["operand_types"]) + list(op["result_types"])]
        boundary = op["op_name"] in _BOUNDARY_OPS and (
            io_dtype == "float32"
            or (op["op_name"] == "DEQUANTIZE" and output_dtype == "float32" and set(op["outputs"]) <= outputs))
        if "float32" in types and not boundary:
            float_ops.append(op["op_name"])
    result = {
        "precision_claimed": precision,
        "op_counts": dict(op_counts),
        "tensor_dtypes": dict(dtype_counts),
        "input_dtype": np.dtype(inp["dtype"]).name,
        "input_quantization": [float(inp["quantization"][0]), int(inp["quantization"][1])],
        "float_ops": dict(Counter(float_ops)),
        **({"postprocess_ops": dict(Counter(op["op_name"] for op in ops if op["index"] in tail))} if postprocess else {}),
        "passed": True,
        "message": "",
    }
    problems = []
    if postprocess and OP_NAME not in op_counts:
        problems.append(f"the detection post-process op {OP_NAME} is missing: the converter did not fuse it")
    if precision == "int8":
        result["integer_only"] = not float_ops
        if float_ops and not allow_float_ops:
            problems.append(f"claimed int8 but {len(float_ops)} op(s) compute in float: {dict(Counter(float_ops))}")
        if result["input_dtype"] != io_dtype:
            problems.append(f"input is {result['input_dtype']}, the target asked for {io_dtype}")
        expected = EXPECTED_INPUT_QUANT.get(io_dtype)
        scale, zero = inp["quantization"]
        if expected and not (abs(scale - expected[0]) < 1e-6 and zero == expected[1]):
            problems.append(f"input quantization is (scale {scale}, zero point {zero}), not {expected}: "
                            "the integer input would not be the pixel value")
    elif precision == "fp16":
        result["float16_tensors"] = dtype_counts.get("float16", 0)
        if not dtype_counts.get("float16"):
            problems.append("claimed fp16 but no float16 weights were produced")
    if problems:
        result["passed"] = False
        result["message"] = "; ".join(problems)
    return result
