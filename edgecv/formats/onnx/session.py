"""Which int8 arithmetic onnxruntime performs on this CPU, chosen and recorded per artifact.

onnxruntime stands in on the build host for runtimes it is not: TensorRT on a Jetson runs a QDQ
graph as signed symmetric int8 with exact int32 accumulation. Left to its defaults on x86,
onnxruntime fuses QuantizeLinear/DequantizeLinear into its own u8s8 int8 kernels (activations
shifted to uint8), and on CPUs with AVX2 or AVX-512 but no VNNI those kernels' 16-bit pair sums
(vpmaddubsw) saturate: its session-options config header says so (`session.x64quantprecision`).
The same file then scores differently on two hosts. So a graph with Q/DQ nodes runs by default
with the `qdq` preset, whose arithmetic does not depend on the CPU's int8 kernels; a graph with
explicit integer ops (QLinearConv ...: onnxruntime's kernels run those whatever the session says)
with `u8u8`, which keeps those kernels exact on x86.

Session config keys (onnxruntime_session_options_config_keys.h, onnxruntime 1.11 and later):
  session.disable_quant_qdq = 1   no Q/DQ fusion: QuantizeLinear rounds and saturates to int8,
                                  DequantizeLinear scales back, Conv/MatMul run in float32
  session.qdqisint8allowed = 1    fuse, keeping activations int8 (s8s8 kernels, as on ARM)
  session.x64quantprecision = 1   fuse into u8u8 kernels where u8s8 could overflow (x86 only)
"""

from __future__ import annotations

import difflib
import mmap
from pathlib import Path
from typing import Dict, Optional, Tuple

# preset -> (session config entries, what it means)
INT8_SEMANTICS: Dict[str, Tuple[Dict[str, str], str]] = {
    "qdq": ({"session.disable_quant_qdq": "1"},
            "Q/DQ run as written (round-half-even, saturate to int8, scale back), ops in float32: the arithmetic "
            "of TensorRT's explicit int8, the same on every CPU"),
    "s8s8": ({"session.qdqisint8allowed": "1"}, "Q/DQ fused into onnxruntime's int8 kernels with signed activations"),
    "u8u8": ({"session.x64quantprecision": "1"},
             "Q/DQ fused into onnxruntime's uint8 kernels; u8u8 where u8s8 could overflow (x86)"),
    "native": ({}, "onnxruntime's defaults: this CPU's fused int8 kernels (u8s8 on x86, which can overflow "
                   "without VNNI): right only when onnxruntime on this kind of CPU is the deployment runtime"),
}
DEFAULT_FOR_QDQ = "qdq"
DEFAULT_FOR_INTEGER_OPS = "u8u8"

# Keys edgecv documents; others pass through (onnxruntime ignores unknown keys silently, so a key
# close to a known one is taken for a typo and refused)
KNOWN_KEYS = sorted({k for entries, _ in INT8_SEMANTICS.values() for k in entries} | {
    "session.disable_prepacking", "session.set_denormal_as_zero", "session.disable_double_qdq_remover",
    "session.enable_quant_qdq_cleanup", "session.intra_op.allow_spinning", "session.inter_op.allow_spinning",
    "session.disable_cpu_ep_fallback", "optimization.disable_specified_optimizers"})

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
# explicit integer ops (QOperator format): onnxruntime's int8 kernels run them whatever the session
# says about Q/DQ fusion; only u8u8 keeps them from saturating on x86 without VNNI
INTEGER_OPS = ("QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger")


def _op_type_bytes(op: str) -> bytes:
    """NodeProto.op_type is field 4 (tag 0x22) then its length: bytes a model file holds only where a
    node has that op type."""
    return b"\x22" + bytes([len(op)]) + op.encode()


def graph_op_types(path: Path, ops) -> set:
    """Which of `ops` are node op types in the ONNX file (read without the onnx package, which
    devices do not install)."""
    with open(path, "rb") as f:
        try:
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # empty file
            return set()
        with data:
            return {op for op in ops if data.find(_op_type_bytes(op)) >= 0}


def has_qdq_nodes(path: Path) -> bool:
    return bool(graph_op_types(path, QDQ_OPS))


def _check_entries(entries) -> Dict[str, str]:
    if not isinstance(entries, dict):
        raise ValueError(f"runtime.options.session_config: give a mapping of onnxruntime session config keys to "
                         f"values, e.g. {{session.disable_quant_qdq: '1'}}; got {entries!r}")
    out = {}
    for key, value in entries.items():
        if not isinstance(key, str) or "." not in key:
            raise ValueError(f"runtime.options.session_config: {key!r} is not an onnxruntime session config key "
                             "(they look like area.name, e.g. session.disable_quant_qdq)")
        close = difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=0.85)
        if key not in KNOWN_KEYS and close:
            raise ValueError(f"runtime.options.session_config: unknown key {key!r}; did you mean {close[0]!r}? "
                             "(onnxruntime would ignore it silently)")
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, (str, int, float)):
            raise ValueError(f"runtime.options.session_config.{key}: give a string or number, not {value!r}")
        out[key] = str(value)
    return out


def resolve_session_config(path: Path, semantics: Optional[str], extra) -> dict:
    """The int8 semantics preset for this artifact (`semantics` if given, else `qdq` for a graph with
    Q/DQ nodes and `native` otherwise, where no preset changes anything) plus the target's own
    `session_config` entries on top. Returns what the report records."""
    if semantics is not None and semantics not in INT8_SEMANTICS:
        close = difflib.get_close_matches(str(semantics), list(INT8_SEMANTICS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"runtime.options.int8_semantics: {semantics!r} is not one of "
                         f"{', '.join(INT8_SEMANTICS)}{hint}")
    found = graph_op_types(path, QDQ_OPS + INTEGER_OPS)
    qdq, integer_ops = bool(found & set(QDQ_OPS)), sorted(found & set(INTEGER_OPS))
    if semantics is not None:
        why = "runtime.options.int8_semantics"
    elif integer_ops:
        semantics = DEFAULT_FOR_INTEGER_OPS
        why = (f"default for a graph with integer ops ({', '.join(integer_ops)}): onnxruntime's int8 kernels run "
               "them in any case; u8u8 keeps them exact on x86 without VNNI")
    elif qdq:
        semantics = DEFAULT_FOR_QDQ
        why = "default for a graph with Q/DQ nodes: the artifact's own arithmetic, not this CPU's int8 kernels"
    else:
        semantics, why = "native", "default: no Q/DQ nodes, so no int8 fusion to choose"
    entries, meaning = INT8_SEMANTICS[semantics]
    own = _check_entries(extra or {})
    return {"int8_semantics": semantics, "meaning": meaning, "why": why, "qdq_nodes": qdq,
            "session_config": {**entries, **own}}
