"""TF Serving's REST tensor encoding: a request's `instances` (row form) or `inputs` (columnar
form) into named numpy arrays checked against a signature, outputs back into `predictions` or
`outputs`; binary values as {"b64": "..."}.
https://www.tensorflow.org/tfx/serving/api_rest#request_format_2
"""

from __future__ import annotations

import base64
import binascii

import numpy as np

from edgecv.serving.model import RequestError, Signature, TensorInfo

TF_DTYPES = {"uint8": "DT_UINT8", "int8": "DT_INT8", "int16": "DT_INT16", "int32": "DT_INT32", "int64": "DT_INT64",
             "float16": "DT_HALF", "float32": "DT_FLOAT", "float64": "DT_DOUBLE", "bool": "DT_BOOL",
             "string": "DT_STRING"}


def shape_text(shape) -> str:
    return "[" + ",".join("-1" if d is None else str(d) for d in shape) + "]"


def _b64(value, where: str) -> bytes:
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise RequestError(f"{where}: a binary value is {{\"b64\": \"<base64 text>\"}}, got keys {sorted(value)}")
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError) as e:
            raise RequestError(f"{where}: invalid base64 ({e})") from None
    if isinstance(value, str):
        return value.encode()
    raise RequestError(f"{where}: expected {{\"b64\": ...}} (encoded image bytes), got {type(value).__name__}")


def to_array(value, info: TensorInfo, where: str, batched: bool = True) -> np.ndarray:
    """A JSON value into an array of the signature input's dtype and shape (batch first)."""
    if info.dtype == "string":
        items = value if isinstance(value, list) else [value]
        out = np.empty(len(items), dtype=object)
        for i, v in enumerate(items):
            out[i] = _b64(v, f"{where}[{i}]")
        return out
    try:
        arr = np.asarray(value)
    except ValueError as e:  # ragged lists
        raise RequestError(f"{where}: not a rectangular array ({e})") from None
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise RequestError(f"{where}: expected numbers of dtype {info.dtype} in nested lists of shape "
                           f"{shape_text(info.shape)}, got non-numeric or ragged values")
    want = np.dtype(info.dtype)
    if arr.size and arr.dtype.kind == "b":
        raise RequestError(f"{where}: expected {info.dtype} numbers, got booleans")
    if want.kind in "iu":
        if arr.size and arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise RequestError(f"{where}: expected integers ({info.dtype}), got fractional values")
        lo, hi = np.iinfo(want).min, np.iinfo(want).max
        if arr.size and (arr.min() < lo or arr.max() > hi):
            raise RequestError(f"{where}: values from {arr.min()} to {arr.max()} do not fit {info.dtype} ({lo}..{hi})")
    expected = info.shape if batched else info.shape[1:]
    if arr.ndim != len(expected) or any(d is not None and d != a for d, a in zip(expected, arr.shape)):
        raise RequestError(f"{where}: expected shape {shape_text(expected)} ({info.dtype}), got "
                           f"{shape_text(arr.shape)}")
    return arr.astype(want)


def decode_request(body, sig: Signature) -> tuple[dict, str]:
    """(named input arrays, "row" or "columnar")."""
    if not isinstance(body, dict):
        raise RequestError("the request body is a JSON object: {\"instances\": [...]} or {\"inputs\": ...}")
    if ("instances" in body) == ("inputs" in body):
        raise RequestError("give exactly one of \"instances\" (row form) or \"inputs\" (columnar form)")
    names = list(sig.inputs)
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise RequestError("\"instances\" is a non-empty list, one entry per example")
        named = all(isinstance(r, dict) and "b64" not in r for r in rows)
        if named:
            for i, r in enumerate(rows):
                if set(r) != set(names):
                    raise RequestError(f"instances[{i}]: inputs {sorted(r)}, signature {sig.name} takes {names}")
            columns = {n: [r[n] for r in rows] for n in names}
        elif len(names) == 1:
            columns = {names[0]: rows}
        else:
            raise RequestError(f"signature {sig.name} takes {len(names)} inputs {names}: give each instance as an object")
        arrays = {n: to_array(v, sig.inputs[n], f"instances: input {n}") for n, v in columns.items()}
        form = "row"
    else:
        inputs = body["inputs"]
        if isinstance(inputs, dict) and "b64" not in inputs:
            if set(inputs) != set(names):
                raise RequestError(f"inputs {sorted(inputs)}: signature {sig.name} takes {names}")
        elif len(names) == 1:
            inputs = {names[0]: inputs}
        else:
            raise RequestError(f"signature {sig.name} takes {len(names)} inputs {names}: give \"inputs\" as an object")
        arrays = {n: to_array(v, sig.inputs[n], f"inputs: {n}") for n, v in inputs.items()}
        form = "columnar"
    counts = {len(a) for a in arrays.values()}
    if len(counts) != 1 or 0 in counts:
        raise RequestError("every input needs the same number of examples, at least one")
    return arrays, form


def _json_value(a: np.ndarray, name: str):
    if a.dtype == object or a.dtype.kind == "S":
        return [{"b64": base64.b64encode(bytes(v)).decode()} if name.endswith("_bytes") else bytes(v).decode("utf-8", "replace")
                for v in a.reshape(-1)]
    return a.tolist()


def encode_response(outputs: dict, form: str) -> dict:
    """TF Serving's shapes: a lone output is the value itself; several are keyed by name."""
    if form == "row":
        if len(outputs) == 1:
            (name, a), = outputs.items()
            return {"predictions": _json_value(a, name)}
        n = len(next(iter(outputs.values())))
        cols = {k: _json_value(v, k) for k, v in outputs.items()}
        return {"predictions": [{k: cols[k][i] for k in outputs} for i in range(n)]}
    if len(outputs) == 1:
        (name, a), = outputs.items()
        return {"outputs": _json_value(a, name)}
    return {"outputs": {k: _json_value(v, k) for k, v in outputs.items()}}


def tensor_info_json(name: str, info: TensorInfo, key: str) -> dict:
    return {"dtype": TF_DTYPES.get(info.dtype, info.dtype),
            "tensor_shape": {"dim": [{"size": str(-1 if d is None else d), "name": ""} for d in info.shape],
                             "unknown_rank": False},
            "name": f"{key}_{name}:0"}


def metadata_json(model) -> dict:
    """GET .../metadata as TF Serving answers it (the SignatureDefMap as JSON)."""
    defs = {}
    for sig in model.signatures.values():
        defs[sig.name] = {"inputs": {n: tensor_info_json(n, i, sig.name) for n, i in sig.inputs.items()},
                          "outputs": {n: tensor_info_json(n, i, "StatefulPartitionedCall") for n, i in sig.outputs.items()},
                          "method_name": "tensorflow/serving/predict", "defaults": {}}
    return {"model_spec": {"name": model.name, "signature_name": "", "version": str(model.version)},
            "metadata": {"signature_def": {"signature_def": defs}}}
