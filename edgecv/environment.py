"""Describe the machine and library versions so a number can be reproduced (no TensorFlow import)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Dict, List
import edgecv

LIBRARIES = ("edgecv", "tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert",
             "numpy", "onnx", "onnxruntime", "tf2onnx", "coremltools", "tensorrt")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# The kernel's flag names (x86 `flags`, ARM `Features`) worth recording: the ones that decide which
# int8/fp16 kernels a runtime picks, as edgecv names them
ISA_FLAGS: Dict[str, str] = {
    "avx2": "avx2", "fma": "fma", "f16c": "f16c", "avx512f": "avx512f", "avx512bw": "avx512bw",
    "avx512vl": "avx512vl", "avx512_vnni": "avx512_vnni", "avx_vnni": "avx_vnni", "avx512_bf16": "avx512_bf16",
    "amx_tile": "amx_tile", "amx_int8": "amx_int8", "amx_bf16": "amx_bf16",
    "asimd": "neon", "neon": "neon", "asimdhp": "fp16", "asimddp": "dotprod", "i8mm": "i8mm", "bf16": "bf16",
    "sve": "sve", "sve2": "sve2",
}
# macOS: sysctl hw.optional keys (Apple silicon and Intel Macs) -> the same names
SYSCTL_FLAGS: Dict[str, str] = {
    "hw.optional.avx2_0": "avx2", "hw.optional.avx512f": "avx512f", "hw.optional.avx512bw": "avx512bw",
    "hw.optional.avx512vl": "avx512vl", "hw.optional.avx512vnni": "avx512_vnni",
    "hw.optional.neon": "neon", "hw.optional.AdvSIMD": "neon", "hw.optional.arm.FEAT_FP16": "fp16",
    "hw.optional.arm.FEAT_DotProd": "dotprod", "hw.optional.arm.FEAT_I8MM": "i8mm", "hw.optional.arm.FEAT_BF16": "bf16",
    "hw.optional.arm.FEAT_SME": "sme",
}
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "dotprod", "i8mm")


def parse_cpuinfo_flags(text: str) -> List[str]:
    """The recorded ISA flags in a /proc/cpuinfo text (x86 `flags`, ARM `Features`), first CPU."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return sorted({ISA_FLAGS[f] for f in value.split() if f in ISA_FLAGS})
    return []


def parse_sysctl_flags(text: str) -> List[str]:
    """The same names from `sysctl hw.optional` output (`key: 1` lines)."""
    found = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if value.strip() == "1" and key.strip() in SYSCTL_FLAGS:
            found.add(SYSCTL_FLAGS[key.strip()])
    return sorted(found)


def cpu_isa_flags() -> dict:
    """{"flags": [...], "source": where they were read, "int8_dot_product": whether the CPU has an
    int8 dot-product instruction (VNNI, AMX, dotprod, i8mm)}. Without one, x86 int8 kernels that
    multiply u8 x s8 pairs into 16 bits (onnxruntime's u8s8) can saturate."""
    flags, source = [], "unknown"
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/cpuinfo") as f:
                flags, source = parse_cpuinfo_flags(f.read()), "/proc/cpuinfo"
        except OSError:
            pass
    elif sys.platform == "darwin":
        try:
            out = subprocess.run(["sysctl", "hw.optional"], capture_output=True, text=True, timeout=5).stdout
            flags, source = parse_sysctl_flags(out), "sysctl hw.optional"
        except (OSError, subprocess.SubprocessError):
            pass
    return {"flags": flags, "source": source, "int8_dot_product": any(f in flags for f in INT8_DOT_FLAGS)}


def library_versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        if name == "edgecv":  # the code running, not an editable install's metadata (stale until reinstalled)
            out[name] = edgecv.__version__
            continue
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def describe_environment() -> dict:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_isa": cpu_isa_flags(),
        "python": platform.python_version(),
        "libraries": library_versions(),
    }
