"""Which int8 arithmetic onnxruntime performs on this CPU, chosen and recorded per artifact.

onnxruntime stands in on the build host for runtimes it is not: TensorRT on a Jetson runs a QDQ
graph as signed symmetric int8 with exact int32 accumulation. Left to its defaults on x86,
onnxruntime fuses QuantizeLinear/DequantizeLinear into its own u8s8 int8 kernels (activations
shifted to uint8), and on CPUs with AVX2 or AVX-512 but no VNNI those kernels' 16-bit pair sums
(vpmaddubsw) saturate: its session-options config header says so (`session.x64quantprecision`).
The same file then scores differently on two hosts. So a graph with Q/DQ nodes runs by default
with the `qdq` preset, whose arithmetic does not depend on the CPU's int8 kernels.

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

# Keys edgecv documents; others pass through (onnxruntime ignores unknown keys silently, so a key
# close to a known one is taken for a typo and refused)
KNOWN_KEYS = sorted({k for entries, _ in INT8_SEMANTICS.values() for k in entries} | {
    "session.disable_prepacking", "session.set_denormal_as_zero", "session.disable_double_qdq_remover",
    "session.enable_quant_qdq_cleanup", "session.intra_op.allow_spinning", "session.inter_op.allow_spinning",
    "session.disable_cpu_ep_fallback", "optimization.disable_specified_optimizers"})

# NodeProto.op_type is field 4 (tag 0x22) followed by its length: these bytes appear in a model
# file only where a node is a QuantizeLinear or DequantizeLinear
_QDQ_OP_BYTES = (b"\x22\x0eQuantizeLinear", b"\x22\x10DequantizeLinear")


def has_qdq_nodes(path: Path) -> bool:
    """Whether the ONNX file holds QuantizeLinear/DequantizeLinear nodes (read without the onnx
    package, which devices do not install)."""
    with open(path, "rb") as f:
        try:
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # empty file
            return False
        with data:
            return any(data.find(op) >= 0 for op in _QDQ_OP_BYTES)


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
    qdq = has_qdq_nodes(path)
    if semantics is None:
        semantics = DEFAULT_FOR_QDQ if qdq else "native"
        why = ("default for a graph with Q/DQ nodes: the artifact's own arithmetic, not this CPU's int8 kernels"
               if qdq else "default: no Q/DQ nodes, so no int8 fusion to choose")
    else:
        why = "runtime.options.int8_semantics"
    entries, meaning = INT8_SEMANTICS[semantics]
    own = _check_entries(extra or {})
    return {"int8_semantics": semantics, "meaning": meaning, "why": why, "qdq_nodes": qdq,
            "session_config": {**entries, **own}}
