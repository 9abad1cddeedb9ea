"""Check a Core ML package against what the target asked for, without running Core ML.

Core ML predicts on macOS only, but coremltools reads an .mlpackage anywhere: the spec (inputs,
outputs, metadata) and the ML Program itself (every op, every weight). Everything here is read
back from the saved package, never taken from what the exporter meant to write:

- the image input (name, size, colour layout) and the scale/bias Core ML applies to its pixels,
  found as the `<input>__scaled__` / `<input>__biased__` ops coremltools puts at the top of the
  program for an ImageType;
- the outputs: a classifier's labels (the `classify` op) and outputs, or the named multi-arrays;
- the compute precision (dtype of every computing op) and the deployment target (spec version);
- the weights: how each is stored (fp16/fp32 const, int8 linear, n-bit palette, sparse), their
  element counts and the sparsity of the decompressed values.

This module imports coremltools, never TensorFlow; the parity check takes the reference
preprocessing as a numpy function.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

PREPROCESSING_KEY = "edgecv.preprocessing"  # user-defined metadata: JSON of ImagePreprocessing
OUTPUTS_KEY = "edgecv.outputs"  # user-defined metadata: JSON list of the task's output spec
REQUIRED_METADATA = ("edgecv.version", "edgecv.recipe_sha256", PREPROCESSING_KEY, OUTPUTS_KEY)
CLASSIFIER_OUTPUTS = ("classLabel", "classLabel_probs")  # coremltools' ClassifierConfig names

# constexpr op -> how the compression is named in `compression` options
_COMPRESSION_OPS = {
    "int8": ("constexpr_affine_dequantize", "constexpr_blockwise_shift_scale"),
    "palettize": ("constexpr_lut_to_dense",),
    "prune": ("constexpr_sparse_to_dense",),
}
# ops that only move data or wrap the classifier: they say nothing about compute precision
_NOT_COMPUTE = {"const", "cast", "classify"}


@dataclass
class ImagePreprocessing:
    """What Core ML does to a camera frame before the network: y = scale * pixel + bias[c],
    channels in `color_layout` order (bias per channel, added after the scale)."""

    color_layout: str = "RGB"  # RGB | BGR
    scale: float = 1.0
    bias: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    folded: bool = False  # True: the model's `normalize` layer was removed and this replaces it
    normalization: str = ""  # the backbone's normalization mode (tf, caffe, torch, none)
    note: str = ""

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """N x H x W x 3 uint8 RGB -> float32 as the network's first layer receives it."""
        x = pixels.astype(np.float32)
        if self.color_layout == "BGR":
            x = x[..., ::-1]
        return x * np.float32(self.scale) + np.asarray(self.bias, np.float32)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Expected:
    """What the target and the recipe ask of the package."""

    input_name: str
    input_size: tuple[int, int]  # (height, width)
    labels: Optional[list[str]]  # a classifier's labels; None: multi-array outputs named `outputs`
    preprocessing: ImagePreprocessing
    compute_precision: str  # fp16 | fp32
    deployment_target: str  # iOS15, iOS16 ...
    compression: str = "none"  # none | int8 | palettize6 | palettize4 | prune
    sparsity: Optional[float] = None  # prune: target fraction of zeros in the pruned tensors
    weight_threshold: int = 2048  # tensors with more elements than this must be compressed
    outputs: tuple[str, ...] = ()  # the task's output names (multi-array outputs when labels is None)


# ---- reading a package -------------------------------------------------------------------------
def load_package(path: Path):
    """(MLModel without compiling it, spec, the program's `main` function as pyMIL)."""
    import coremltools as ct

    mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
    spec = mlmodel.get_spec()
    if spec.WhichOneof("Type") != "mlProgram":
        raise ValueError(f"{path}: a {spec.WhichOneof('Type')} model, not an ML Program")
    return mlmodel, spec, main_function(mlmodel, spec)


def main_function(mlmodel, spec=None):
    """The ML Program's `main` function as pyMIL (ops with their values), from a saved or in-memory model."""
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_to_pymil

    spec = spec or mlmodel.get_spec()
    prog = milproto_to_pymil(spec, spec.specificationVersion, file_weights_dir=mlmodel.weights_dir)
    return prog.functions["main"]


def _dtype(var) -> str:
    from coremltools.converters.mil.mil import types

    try:
        return types.builtin_to_string(var.dtype)
    except ValueError:  # list vars
        return "list"


def read_preprocessing(spec, func, input_name: str) -> ImagePreprocessing:
    """The ImageType's colour layout, scale and bias as the saved package applies them."""
    from coremltools.proto import FeatureTypes_pb2 as ft

    feature = next(f for f in spec.description.input if f.name == input_name)
    layout = ft.ImageFeatureType.ColorSpace.Name(feature.type.imageType.colorSpace)
    scale, bias = 1.0, [0.0, 0.0, 0.0]
    for op in func.operations:
        if op.op_type == "mul" and op.name == f"{input_name}__scaled__":
            scale = float(np.asarray(op.y.val).reshape(-1)[0])
        elif op.op_type == "add" and op.name == f"{input_name}__biased__":
            bias = [float(b) for b in np.asarray(op.y.val, np.float64).reshape(-1)]
    return ImagePreprocessing(layout, scale, bias)


def read_labels(func) -> Optional[list[str]]:
    for op in func.operations:
        if op.op_type == "classify":
            return [str(c) for c in op.classes.val]
    return None


def _palette_bits(op) -> int:
    idx = op.indices
    name = _dtype(idx)
    if name.startswith("uint") and name != "uint8":  # iOS18: sub-byte index types
        return int(name[4:])
    lut = np.asarray(op.lut.val)
    entries = lut.shape[0] if lut.ndim == 1 else lut.shape[-2]  # iOS16/17: (2^n,), iOS18: (..., 2^n, vector)
    return int(round(math.log2(entries)))


def _storage(op) -> str:
    """How a constexpr op stores its weight, e.g. int8, palette4, sparse-fp16."""
    t = op.op_type
    if t == "constexpr_affine_dequantize":
        return _dtype(op.quantized_data)
    if t == "constexpr_blockwise_shift_scale":
        return _dtype(op.data)
    if t == "constexpr_lut_to_dense":
        return f"palette{_palette_bits(op)}"
    if t == "constexpr_sparse_to_dense":
        return f"sparse-{_dtype(op.nonzero_data)}"
    if t == "constexpr_cast":
        return _dtype(op.source_val)
    return t


def weight_tensors(func, input_name: str = "") -> list[dict]:
    """Every float weight of the program with its storage and decompressed values. A weight is a
    float const, or a constexpr op (whose own const inputs are its compressed storage); the
    ImageType's bias is not a weight. `uses` names the ops and arguments it feeds, which stay the
    same when a weight is compressed."""
    preprocessing_ops = {f"{input_name}__scaled__", f"{input_name}__biased__"}
    rows = []
    for op in func.operations:
        if op.op_type.startswith("constexpr_"):
            dense = np.asarray(op.materialized_val_inference())
            stored = sum(np.asarray(v.val).nbytes for v in op.inputs.values()
                         if v.op is not None and v.op.op_type == "const" and isinstance(v.val, np.ndarray))
            row = {"name": op.name, "storage": _storage(op), "op": op.op_type, "stored_bytes": int(stored)}
        elif op.op_type == "const":
            dense = op.outputs[0].val
            if not isinstance(dense, np.ndarray) or dense.ndim == 0 or dense.dtype.kind != "f":
                continue
            children = op.outputs[0].child_ops
            if children and all(c.op_type.startswith("constexpr_") or c.name in preprocessing_ops for c in children):
                continue  # part of a compressed weight, or the ImageType's bias
            row = {"name": op.name, "storage": _dtype(op.outputs[0]), "op": "const", "stored_bytes": int(dense.nbytes)}
        else:
            continue
        out = op.outputs[0]
        row["uses"] = tuple(sorted((c.name, k) for c in out.child_ops for k, v in c.inputs.items() if v is out))
        row["values"] = dense
        rows.append(row)
    return rows


def weight_statistics(func, input_name: str = "", threshold: int = 2048) -> dict:
    """Storage dtypes, element counts, compression and sparsity (of the decompressed values)."""
    rows = weight_tensors(func, input_name)
    for r in rows:
        r["elements"] = int(r["values"].size)
        r["zeros"] = int(np.count_nonzero(r["values"] == 0))
    total = sum(r["elements"] for r in rows)
    compressed = [r for r in rows if r["op"] != "const"]
    by_storage: dict[str, dict] = {}
    for r in rows:
        s = by_storage.setdefault(r["storage"], {"tensors": 0, "elements": 0})
        s["tensors"] += 1
        s["elements"] += r["elements"]
    uncompressed_large = sorted((r for r in rows if r["op"] == "const" and r["elements"] > threshold),
                                key=lambda r: -r["elements"])
    return {
        "tensors": len(rows),
        "elements": total,
        "dtype_counts": {k: v["tensors"] for k, v in sorted(by_storage.items())},
        "elements_by_dtype": {k: v["elements"] for k, v in sorted(by_storage.items())},
        "constexpr_ops": dict(Counter(r["op"] for r in compressed)),
        "compressed_fraction": (sum(r["elements"] for r in compressed) / total) if total else 0.0,
        "sparsity": (sum(r["zeros"] for r in rows) / total) if total else 0.0,
        "compressed_sparsity": (sum(r["zeros"] for r in compressed) / max(1, sum(r["elements"] for r in compressed))),
        "stored_bytes": sum(r["stored_bytes"] for r in rows),
        "uncompressed_above_threshold": [f"{r['name']} ({r['elements']})" for r in uncompressed_large[:5]],
        "uncompressed_above_threshold_count": len(uncompressed_large),
    }


def compression_error(reference_func, func, input_name: str = "") -> Optional[dict]:
    """How far the compressed weights are from the same weights before compression (matched by the
    ops they feed): signal-to-noise over all compressed weights and the worst tensor's relative
    error. A property of the weights, measured here; not a prediction metric."""
    before = {r["uses"]: r["values"] for r in weight_tensors(reference_func, input_name) if r["uses"]}
    pairs = [(before.get(r["uses"]), r["values"], r["name"]) for r in weight_tensors(func, input_name)
             if r["op"] != "const"]
    pairs = [(a.astype(np.float64), b.astype(np.float64), n) for a, b, n in pairs if a is not None and a.shape == b.shape]
    if not pairs:
        return None
    signal = sum(float(np.sum(a * a)) for a, _, _ in pairs)
    noise = sum(float(np.sum((a - b) ** 2)) for a, b, _ in pairs)
    rel = [(float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-30)), n) for a, b, n in pairs]
    worst = max(rel)
    return {"tensors": len(pairs), "snr_db": float(10 * np.log10(signal / noise)) if noise > 0 else None,  # None: identical
            "max_relative_error": worst[0], "worst_tensor": worst[1]}


def compute_dtypes(func) -> dict:
    """dtype -> number of computing ops producing it (consts, casts and the classifier excluded)."""
    counts: Counter = Counter()
    for op in func.operations:
        if op.op_type in _NOT_COMPUTE or op.op_type.startswith("constexpr_"):
            continue
        for out in op.outputs:
            counts[_dtype(out)] += 1
    return dict(counts)


# ---- checking ----------------------------------------------------------------------------------
def _close(a, b, tol: float = 1e-6) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=tol, atol=tol))


def _check_compression(stats: dict, exp: Expected) -> list[str]:
    problems = []
    comp, ops = exp.compression, stats["constexpr_ops"]
    storages = stats["dtype_counts"]
    if comp == "none":
        if ops:
            problems.append(f"asked for no compression but found {ops}")
        return problems
    if comp == "int8":
        found = [s for s in storages if s in ("int8", "uint8")]
        if not found or not any(o in ops for o in _COMPRESSION_OPS["int8"]):
            problems.append(f"asked for int8 weights but found storage {storages}")
    elif comp.startswith("palettize"):
        want = f"palette{comp[len('palettize'):]}"
        if want not in storages:
            problems.append(f"asked for {comp} but found storage {storages}")
        others = [s for s in storages if s.startswith("palette") and s != want]
        if others:
            problems.append(f"asked for {want} but some weights are {others}")
    elif comp == "prune":
        if "constexpr_sparse_to_dense" not in ops:
            problems.append(f"asked for pruning but found no sparse weights (storage {storages})")
        elif exp.sparsity is not None and stats["compressed_sparsity"] < exp.sparsity - 0.01:
            problems.append(f"asked for sparsity {exp.sparsity:.2f} but the pruned tensors are "
                            f"{stats['compressed_sparsity']:.3f} zeros")
    else:
        problems.append(f"unknown compression {comp!r}")
    if stats["uncompressed_above_threshold_count"]:
        problems.append(f"{stats['uncompressed_above_threshold_count']} weight tensor(s) above "
                        f"{exp.weight_threshold} elements were left uncompressed: {stats['uncompressed_above_threshold']}")
    return problems


def inspect_mlpackage(path: Path, exp: Expected) -> dict:
    """Structural validation of an .mlpackage: what was found, and whether it is what was asked."""
    import coremltools as ct

    problems: list[str] = []
    try:
        mlmodel, spec, func = load_package(path)
    except Exception as e:
        return {"loads": False, "passed": False, "message": f"the package does not load: {type(e).__name__}: {e}"}
    desc = spec.description

    inputs = {f.name: f for f in desc.input}
    image = inputs.get(exp.input_name)
    input_info: dict = {"names": list(inputs)}
    if image is None or image.type.WhichOneof("Type") != "imageType":
        problems.append(f"no image input named {exp.input_name!r} (inputs: {list(inputs)})")
        pre = None
    else:
        it = image.type.imageType
        input_info.update({"type": "image", "height": it.height, "width": it.width})
        if (it.height, it.width) != tuple(exp.input_size):
            problems.append(f"input is {it.height}x{it.width}, the recipe says {exp.input_size[0]}x{exp.input_size[1]}")
        pre = read_preprocessing(spec, func, exp.input_name)
        want = exp.preprocessing
        if pre.color_layout != want.color_layout:
            problems.append(f"input colour layout is {pre.color_layout}, expected {want.color_layout}")
        if not _close(pre.scale, want.scale) or not _close(pre.bias, want.bias):
            problems.append(f"image preprocessing is scale {pre.scale:.8g} bias {pre.bias}, "
                            f"expected scale {want.scale:.8g} bias {list(want.bias)}")

    outputs = [o.name for o in desc.output]
    labels = read_labels(func)
    if exp.labels is not None:
        if tuple(outputs) != CLASSIFIER_OUTPUTS or desc.predictedFeatureName != CLASSIFIER_OUTPUTS[0] \
                or desc.predictedProbabilitiesName != CLASSIFIER_OUTPUTS[1]:
            problems.append(f"classifier outputs are {outputs} (predicted {desc.predictedFeatureName!r}, "
                            f"class scores {desc.predictedProbabilitiesName!r}), expected {list(CLASSIFIER_OUTPUTS)}")
        if labels != list(exp.labels):
            problems.append(f"class labels are {labels}, the model's classes are {list(exp.labels)}")
    else:
        if sorted(outputs) != sorted(exp.outputs):
            problems.append(f"outputs are {outputs}, the task's are {list(exp.outputs)}")
        if labels is not None or desc.predictedFeatureName:
            problems.append(f"the package is a classifier (labels {labels}), the task's outputs are plain arrays")

    target_version = ct.target[exp.deployment_target].value
    if spec.specificationVersion != target_version:
        problems.append(f"specification version {spec.specificationVersion}, expected {target_version} "
                        f"({exp.deployment_target})")

    dtypes = compute_dtypes(func)
    if exp.compute_precision == "fp16" and not dtypes.get("fp16"):
        problems.append(f"asked for fp16 compute precision but the ops compute in {dtypes}")
    if exp.compute_precision == "fp32" and dtypes.get("fp16"):
        problems.append(f"asked for fp32 compute precision but {dtypes['fp16']} op(s) compute in fp16")

    stats = weight_statistics(func, exp.input_name, exp.weight_threshold)
    problems += _check_compression(stats, exp)

    meta = dict(mlmodel.user_defined_metadata)
    missing = [k for k in REQUIRED_METADATA if not meta.get(k)]
    if not missing and exp.outputs:
        listed = [o.get("name") for o in json.loads(meta[OUTPUTS_KEY])]
        if listed != list(exp.outputs):
            problems.append(f"metadata {OUTPUTS_KEY} lists {listed}, the task's outputs are {list(exp.outputs)}")
    if missing:
        problems.append(f"metadata lacks {missing}")

    return {
        "loads": True,
        "model_type": "mlProgram",
        "specification_version": spec.specificationVersion,
        "minimum_deployment_target": exp.deployment_target,
        "input": input_info,
        "image_preprocessing": None if pre is None else {k: v for k, v in pre.to_json().items() if k in ("color_layout", "scale", "bias")},
        "outputs": outputs,
        "labels": labels,
        "compute_dtypes": dtypes,
        "compression": exp.compression,
        "weights": stats,
        "metadata": {"author": mlmodel.author, "license": mlmodel.license, "version": mlmodel.version,
                     "short_description": mlmodel.short_description,
                     **{k: v for k, v in meta.items() if k.startswith("edgecv.") and k not in (PREPROCESSING_KEY, OUTPUTS_KEY)}},
        "passed": not problems,
        "message": "; ".join(problems),
    }


def preprocessing_parity(found: ImagePreprocessing, reference: Callable[[np.ndarray], np.ndarray],
                         samples: np.ndarray, kept_layer: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                         rtol: float = 1e-5) -> dict:
    """The ImageType preprocessing read from the package, applied to sample pixels, against the
    recipe's preprocessing (`reference`: the Keras `normalize` layer, pixels -> network input).

    When the normalization could not be folded the converted network keeps its `normalize` layer
    (`kept_layer`) after the ImageType, and the ImageType must be the identity.
    """
    want = np.asarray(reference(samples), np.float64)
    got = found.apply(samples)
    if kept_layer is not None:
        got = kept_layer(got)
    got = np.asarray(got, np.float64)
    err = float(np.max(np.abs(got - want))) if want.size else 0.0
    tol = rtol * max(1.0, float(np.max(np.abs(want))))
    return {"samples": int(len(samples)), "max_abs_diff": err, "tolerance": tol, "passed": bool(err <= tol),
            "normalize_layer_in_model": kept_layer is not None}
