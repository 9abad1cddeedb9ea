"""Describe the machine and library versions so a number can be reproduced (no TensorFlow import)."""

from __future__ import annotations

import os
import platform
from importlib import metadata

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


def library_versions() -> dict[str, str]:
    import edgecv

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
        "python": platform.python_version(),
        "libraries": library_versions(),
    }
