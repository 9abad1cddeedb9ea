"""ONNX exporter: fp32 through tf2onnx, fp16 for GPUs, and int8 QDQ laid out for TensorRT.

Contract of every ONNX file edgecv writes: one input `image`, float32 NHWC pixel values 0..255
(normalization is inside the model), a dynamic batch axis named `batch`, and the task's outputs
under the task's names (`model.output_names`). fp16 keeps that float32 interface and converts
weights and compute inside.

int8 is explicit quantization (QuantizeLinear/DequantizeLinear pairs) laid out for TensorRT; see
`edgecv.quantization.qdq`. onnxruntime runs the same graph on the CPU, so the int8 accuracy is
known before any GPU sees it.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from pydantic import Field

from edgecv.errors import ConversionError
from edgecv.exporters.base import (Artifact, ExportContext, Exporter, artifact_output_names, parse_options,
                                   task_postprocess)
from edgecv.formats.accuracy_aware import check_accuracy_aware
from edgecv.files import atomic_write_bytes
from edgecv.quantization.qdq import WEIGHTED_OPS, QdqOptions, match_nodes, quantize_qdq, with_model_float_layers
from edgecv.formats.accuracy_aware import AccuracyAwareConfig, accuracy_aware_onnx
from edgecv.models.signature import serving_function
from edgecv.passes.int8_weights import prepare_int8
from edgecv.quantization.ptq import PTQConfig, int8_steps
from edgecv.formats.onnx.detection import append_postprocess

INPUT_NAME = "image"
BATCH_DIM = "batch"
DEFAULT_OPSET = 17


class OnnxOptions(QdqOptions):
    """`options:` of an onnx artifact (and the ONNX half of a tensorrt artifact)."""

    opset: int = Field(DEFAULT_OPSET, ge=13, le=21, description="ONNX opset (13+ for per-channel Q/DQ)")
    bias_correction: bool = Field(True, description="int8: cancel the mean output shift that int8 weight rounding "
                                  "causes, measured on the calibration images, before quantizing (as the TFLite "
                                  "int8 export does; flowers QDQ: 97.22 -> 97.92 %, float 98.61)")
    adaround: bool = Field(False, description="int8: choose each weight's rounding to minimise every layer's output "
                           "error on the calibration images (AdaRound) before quantizing; the QDQ weights are "
                           "per-channel symmetric, the grid the rounding is chosen on")
    adaround_iterations: int = Field(1000, ge=1, description="optimisation steps per layer for adaround")


def _ensure_onnx():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError as e:
        raise ConversionError(f"ONNX export needs the onnx extra: pip install 'edgecv[onnx]' ({e})") from None


# ---- fp32: Keras -> SavedModel -> tf2onnx ------------------------------------------------------

def model_fingerprint(keras_model) -> str:
    """Hash of the architecture and every weight: same fingerprint, same ONNX."""
    h = hashlib.sha256(keras_model.to_json().encode())
    for w in keras_model.get_weights():
        h.update(str((w.shape, w.dtype.str)).encode())
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


# Conversions are deterministic in (model, options): a target that needs the same ONNX for several
# artifacts (an onnx int8 artifact and the int8 engine built from it) converts once per process.
_MEMO: dict[str, object] = {}
_MEMO_MAX = 8


def _memo(key: str, make):
    if key not in _MEMO:
        if len(_MEMO) >= _MEMO_MAX:
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[key] = make()
    return _MEMO[key]


def keras_to_onnx(keras_model, opset: int = DEFAULT_OPSET, output_names: Optional[Sequence[str]] = None) -> bytes:
    """Serialize the Keras model as a SavedModel with a float32 [batch,H,W,3] `image` signature
    returning the outputs by name (the task's; Keras' when none are given), then convert it with
    tf2onnx the way its `--saved-model` command line does."""
    _ensure_onnx()
    names = list(output_names or keras_model.output_names)
    key = f"fp32:{model_fingerprint(keras_model)}:{opset}:{','.join(names)}"
    return _memo(key, lambda: _convert_saved_model(keras_model, opset, names))


def _convert_saved_model(keras_model, opset: int, output_names: list[str]) -> bytes:
    import onnx
    from tf2onnx import tf_loader
    from tf2onnx.convert import _convert_common  # what `python -m tf2onnx.convert --saved-model` runs

    from edgecv._keras import tf

    module = tf.Module()
    module.model = keras_model
    module.serve = serving_function(keras_model, output_names)
    with tempfile.TemporaryDirectory(prefix="edgecv-onnx-") as tmp:
        try:
            tf.saved_model.save(module, tmp, signatures={"serving_default": module.serve})
            graph_def, inputs, outputs, tables, renames = tf_loader.from_saved_model(
                tmp, None, None, tag="serve", signatures=["serving_default"],
                return_initialized_tables=True, return_tensors_to_rename=True)
            with tf.device("/cpu:0"):
                proto, _ = _convert_common(graph_def, name=f"edgecv:{keras_model.name}", opset=opset,
                                           input_names=inputs, output_names=outputs, tensors_to_rename=renames,
                                           initialized_tables=tables, continue_on_error=False)
        except Exception as e:
            raise ConversionError(f"tf2onnx could not convert the model (opset {opset}): {str(e).strip()[:2000]}") from None
    _name_batch_axis(proto)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _name_batch_axis(proto) -> None:
    """tf2onnx names the unknown batch dimension `unk__N`; call it `batch` on every graph input/output."""
    for vi in list(proto.graph.input) + list(proto.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = BATCH_DIM


# ---- fp16 -----------------------------------------------------------------------------------------

def to_fp16(fp32: bytes, keep_nodes: list[str], keep_op_types: list[str]) -> bytes:
    """Weights and compute in float16; the `image` input and the outputs stay float32."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load_from_string(fp32)
    try:
        model16 = convert_float_to_float16(model, keep_io_types=True, node_block_list=keep_nodes or None,
                                           op_block_list=sorted(set(DEFAULT_OP_BLOCK_LIST) | set(keep_op_types)))
    except Exception as e:
        raise ConversionError(f"fp16 conversion failed: {e}") from None
    _topological_sort(model16.graph)  # the converter appends the input Casts at the end
    onnx.checker.check_model(model16)
    return model16.SerializeToString()


def _topological_sort(graph) -> None:
    """Reorder nodes so each comes after the producers of its inputs (ONNX requires it)."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ConversionError(f"graph has a cycle or a dangling input near node {pending[0].name}")
        for n in ready:
            ordered.append(n)
            available.update(n.output)
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
    copies = [type(n)() for n in ordered]
    for c, n in zip(copies, ordered):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)


# ---- checks -----------------------------------------------------------------------------------

_ONNX_TYPES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 10: "float16"}


def _io(vi) -> str:
    t = vi.type.tensor_type
    dims = ",".join(d.dim_param or str(d.dim_value) for d in t.shape.dim)
    return f"{_ONNX_TYPES.get(t.elem_type, t.elem_type)}[{dims}]"


def inspect_onnx(data: bytes, precision: str, output_names: Optional[Sequence[str]] = None) -> dict:
    """Structural checks every edgecv ONNX must pass (with `output_names`: exactly those outputs),
    plus the precision-specific ones."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load_from_string(data)
    g = proto.graph
    inputs = {i.name: _io(i) for i in g.input}
    outputs = {o.name: _io(o) for o in g.output}
    problems = []
    if list(inputs) != [INPUT_NAME] or not inputs[INPUT_NAME].startswith(f"float32[{BATCH_DIM},"):
        problems.append(f"input must be float32 `{INPUT_NAME}` with a dynamic batch axis, got {inputs}")
    if output_names is not None and sorted(outputs) != sorted(output_names):
        problems.append(f"outputs must be the task's {list(output_names)}, got {list(outputs)}")
    unbatched = {k: v for k, v in outputs.items() if v.split("[", 1)[1].rstrip("]").split(",")[0] != BATCH_DIM}
    if unbatched:
        problems.append(f"every output needs the dynamic batch axis `{BATCH_DIM}` first, got {unbatched}")
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    inits = {i.name: i for i in g.initializer}
    float_params = {"float32": 0, "float16": 0}
    for i in g.initializer:
        name = _ONNX_TYPES.get(i.data_type)
        if name in float_params:
            float_params[name] += int(np.prod(i.dims)) if i.dims else 1
    checks = {"inputs": inputs, "outputs": outputs, "opset": opset, "nodes": len(g.node),
              "op_types": dict(sorted(_count(n.op_type for n in g.node).items())),
              "float_parameters": float_params}
    if precision == "fp16":
        if float_params["float16"] == 0 or float_params["float16"] < float_params["float32"]:
            problems.append(f"fp16 model holds {float_params['float16']} float16 and {float_params['float32']} "
                            "float32 parameters: most weights should be float16")
    if precision == "int8":
        q = inspect_qdq(proto, inits, numpy_helper)
        checks["qdq"] = q
        problems += q.pop("problems")
    elif any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in g.node):
        problems.append(f"{precision} model contains Q/DQ nodes")
    checks["passed"] = not problems
    checks["message"] = "; ".join(problems) if problems else "ok"
    return checks


def _count(items) -> dict:
    out: dict = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


def inspect_qdq(proto, inits, numpy_helper) -> dict:
    """Every Q/DQ is int8 with zero point 0 and positive finite scales; weights per-channel;
    no int32 (bias) DequantizeLinear; which ops take quantized inputs."""
    g = proto.graph
    producers = {o: n for n in g.node for o in n.output}
    problems = []
    q_nodes = [n for n in g.node if n.op_type == "QuantizeLinear"]
    dq_nodes = [n for n in g.node if n.op_type == "DequantizeLinear"]
    nonzero, bad_scales, bad_types, weight_dq, per_channel = [], [], [], 0, 0
    for n in q_nodes + dq_nodes:
        scale = inits.get(n.input[1])
        zp = inits.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if scale is None:
            bad_scales.append(n.name)
            continue
        s = numpy_helper.to_array(scale)
        if not (np.all(np.isfinite(s)) and np.all(s > 0)):
            bad_scales.append(n.name)
        if zp is None:  # absent zero point means 0 with uint8 type: TensorRT needs int8
            bad_types.append(n.name)
        else:
            z = numpy_helper.to_array(zp)
            if z.dtype != np.int8:
                bad_types.append(f"{n.name} ({z.dtype})")
            if np.any(z != 0):
                nonzero.append(n.name)
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:
            weight_dq += 1
            w = inits[n.input[0]]
            if _ONNX_TYPES.get(w.data_type) != "int8":
                bad_types.append(f"{n.name} (weights {_ONNX_TYPES.get(w.data_type, w.data_type)})")
            if s.size > 1:
                per_channel += 1
    if not q_nodes:
        problems.append("no QuantizeLinear nodes: nothing was quantized")
    if nonzero:
        problems.append(f"{len(nonzero)} Q/DQ node(s) with a non-zero zero point (TensorRT needs symmetric int8): {nonzero[:5]}")
    if bad_scales:
        problems.append(f"{len(bad_scales)} Q/DQ node(s) with missing, non-positive or non-finite scales: {bad_scales[:5]}")
    if bad_types:
        problems.append(f"{len(bad_types)} Q/DQ node(s) not int8: {bad_types[:5]}")
    quantized_inputs: dict = {}
    for n in g.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if any(i in producers and producers[i].op_type == "DequantizeLinear" for i in n.input):
            quantized_inputs[n.op_type] = quantized_inputs.get(n.op_type, 0) + 1
    weighted = sum(1 for n in g.node if n.op_type in WEIGHTED_OPS)
    return {
        "quantize_nodes": len(q_nodes), "dequantize_nodes": len(dq_nodes),
        "weight_dequantize_nodes": weight_dq, "per_channel_weights": per_channel,
        "ops_with_int8_inputs": dict(sorted(quantized_inputs.items())),
        "weighted_ops": weighted, "weighted_ops_int8": sum(quantized_inputs.get(t, 0) for t in WEIGHTED_OPS),
        "zero_points_all_zero": not nonzero, "scales_positive": not bad_scales, "all_int8": not bad_types,
        "problems": problems,
    }


# ---- the exporter -------------------------------------------------------------------------------

def export_onnx_bytes(model, precision: str, opts: OnnxOptions, ctx: ExportContext) -> tuple[bytes, dict]:
    """The ONNX for `precision` plus what went into it (used by the onnx and tensorrt exporters)."""
    import onnxruntime

    if precision == "int8":
        opts = with_model_float_layers(opts, model.keras_model)
    meta = onnx_metadata(model, opts)
    if precision == "int8" and ctx.calibration is None:
        raise ConversionError("int8 QDQ ONNX needs a calibration set; none was given")
    if precision == "int8" and (opts.bias_correction or opts.adaround):  # quantized from the prepared
        fp32, meta["ptq"] = _ptq_prepared_onnx(model, opts, ctx)  # model: the plain fp32 graph is not needed
    else:
        fp32 = keras_to_onnx(model.keras_model, opts.opset, model.output_names)
    if precision == "fp32":
        return fp32, meta
    import onnx

    if precision == "fp16":
        keep = match_nodes(onnx.load_from_string(fp32), opts.exclude_nodes, opts.exclude_op_types)
        meta.update({"onnxruntime": onnxruntime.__version__, "kept_float": keep, "io": "float32"})
        return to_fp16(fp32, keep, opts.exclude_op_types), meta
    opts_key = json.dumps(opts.model_dump(mode="json"), sort_keys=True)
    key = f"int8:{hashlib.sha256(fp32).hexdigest()}:{opts_key}:{ctx.calibration_sha256}"
    make = lambda: quantize_qdq(fp32, ctx.calibration, opts)  # noqa: E731
    data, info = _memo(key, make) if ctx.calibration_sha256 else make()
    meta.update({"onnxruntime": onnxruntime.__version__, **info})
    if ctx.calibration_sha256:
        meta["calibration_sha256"] = ctx.calibration_sha256
    return data, meta


def _ptq_prepared_onnx(model, opts: OnnxOptions, ctx: ExportContext) -> tuple[bytes, dict]:
    """The fp32 ONNX of the model prepared for int8 (learned rounding, bias correction: their weight
    grid is per-channel symmetric int8 with scale max|w| / 127, as onnxruntime's symmetric QDQ
    weights are) and what was applied."""
    cfg = PTQConfig(bias_correction=opts.bias_correction, adaround=opts.adaround,
                    adaround_iterations=opts.adaround_iterations)

    def make():
        prepared, info = prepare_int8(model.keras_model, ctx.calibration, int8_steps(opts), log=ctx.log)
        return keras_to_onnx(prepared, opts.opset, model.output_names), info

    if not ctx.calibration_sha256:
        return make()
    # an onnx int8 artifact and the int8 engine built from the same QDQ graph prepare once
    settings = json.dumps(cfg.model_dump(mode="json"), sort_keys=True)
    return _memo(f"ptq:{model_fingerprint(model.keras_model)}:{opts.opset}:{settings}:{ctx.calibration_sha256}", make)


def onnx_metadata(model, opts: OnnxOptions) -> dict:
    import tf2onnx

    return {"opset": opts.opset, "tf2onnx": tf2onnx.__version__, "input": INPUT_NAME, "outputs": model.output_names,
            "pixels": "float32 NHWC 0..255, dynamic batch"}


def qdq_key_fields(spec, options: dict) -> tuple[dict, dict]:
    """int8 (ONNX and the TensorRT bundle's QDQ graph): the weight preparation with its defaults."""
    if spec.precision != "int8":
        return options, {}
    resolved = ("bias_correction", "adaround", "adaround_iterations")
    ptq = {k: spec.options.get(k, OnnxOptions.model_fields[k].default) for k in resolved}
    return {k: v for k, v in options.items() if k not in resolved}, {"ptq": ptq}


def qdq_int8_passes(spec) -> list:
    """int8 (ONNX and the TensorRT bundle's QDQ graph): bias correction by default, learned rounding
    when `adaround: true` (the options of the same names switch them)."""
    if spec.precision != "int8":
        return []
    return int8_steps(OnnxOptions.model_validate({k: v for k, v in spec.options.items() if k in OnnxOptions.model_fields}))


class OnnxExporter(Exporter):
    format = "onnx"
    precisions = ("fp32", "fp16", "int8")
    needs_calibration = ("int8",)

    @classmethod
    def check_spec(cls, spec, task=None) -> None:
        parse_options({k: v for k, v in spec.options.items() if k != "accuracy_aware"}, OnnxOptions, "onnx artifact")
        check_accuracy_aware(spec, task)

    @classmethod
    def export_key_fields(cls, spec, options: dict) -> tuple[dict, dict]:
        return qdq_key_fields(spec, options)

    @classmethod
    def int8_passes(cls, spec) -> list:
        return qdq_int8_passes(spec)

    def export(self, model, spec, out_dir: Path, ctx: ExportContext) -> Artifact:
        _ensure_onnx()
        # accuracy_aware (int8): keep the worst layers float until the gate passes (edgecv.formats.accuracy_aware)
        opts = parse_options({k: v for k, v in spec.options.items() if k != "accuracy_aware"}, OnnxOptions, "onnx artifact")
        postprocess = task_postprocess(model)
        if postprocess is not None and "accuracy_aware" in spec.options:
            raise ConversionError(f"{spec.name}: accuracy_aware int8 is not available for a model with a detection "
                                  "post-process yet: remove options.accuracy_aware")
        if "accuracy_aware" in spec.options and spec.precision == "int8":
            import onnxruntime


            cfg = AccuracyAwareConfig.model_validate(spec.options["accuracy_aware"] or {})
            opts = with_model_float_layers(opts, model.keras_model)
            ptq = None
            if (opts.bias_correction or opts.adaround) and ctx.calibration is not None:  # the search starts
                fp32, ptq = _ptq_prepared_onnx(model, opts, ctx)  # from the prepared model
            else:
                fp32 = keras_to_onnx(model.keras_model, opts.opset, model.output_names)
            data, info, report = accuracy_aware_onnx(model, fp32, opts, spec, ctx, out_dir, cfg, log=ctx.log)
            meta = {**onnx_metadata(model, opts), "onnxruntime": onnxruntime.__version__, **info,
                    "accuracy_aware": report}
            if ptq is not None:
                meta["ptq"] = ptq
            if ctx.calibration_sha256:
                meta["calibration_sha256"] = ctx.calibration_sha256
        else:
            data, meta = export_onnx_bytes(model, spec.precision, opts, ctx)
        if postprocess is not None:  # after QDQ: the int8 flow sees the raw outputs, the post-process stays float
            data = append_postprocess(data, postprocess)
            meta["outputs"] = artifact_output_names(model, postprocess)
            meta["postprocess"] = {**postprocess.describe(), "op": "NonMaxSuppression", "computes_in": "float32",
                                   "raw_outputs": list(postprocess.raw_outputs),
                                   "note": f"decode + NonMaxSuppression in the graph ({postprocess.nms.variant} NMS, K "
                                           f"{postprocess.nms.max_detections}), float32"
                                           + (" after the int8 QDQ graph" if spec.precision == "int8" else "")}
        checks = inspect_onnx(data, spec.precision, artifact_output_names(model, postprocess))
        if not checks["passed"]:
            raise ConversionError(f"{spec.name}: ONNX checks failed: {checks['message']}")
        path = out_dir / f"{ctx.model_name}_{spec.name}.onnx"
        atomic_write_bytes(path, data)
        return Artifact(spec.name, self.format, spec.precision, path, "onnx", checks=checks, metadata=meta)
