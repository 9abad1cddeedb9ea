"""Name -> class registries whose classes live in modules imported on first use.

Exporters, runtimes and passes each keep a table of name -> module; a class registers itself when
its module is imported (`__init_subclass__`). Importing lazily is what lets `edgecv bench` run a
TFLite model on a device without TensorFlow, and the CLI start without loading every converter.
"""

from __future__ import annotations

import importlib
from typing import Dict, Generic, TypeVar
from edgecv.errors import did_you_mean

T = TypeVar("T")


class UnknownName(KeyError, ValueError):
    """An unknown format or pass name (a KeyError for lookups, a ValueError for arguments)."""

    def __str__(self) -> str:
        return str(self.args[0])


class LazyRegistry(Generic[T]):
    def __init__(self, kind: str, modules: dict[str, str]):
        self.kind = kind
        self.modules = modules  # name -> module defining the class; the public list of names
        self.classes: dict[str, type[T]] = {}

    def register(self, name: str, cls: type[T]) -> None:
        self.classes[name] = cls

    def get(self, name: str) -> type[T]:
        if name not in self.classes:
            module = self.modules.get(name)
            if module is None:
                known = ", ".join(sorted(self.modules)) or "none"
                raise UnknownName(f"unknown {self.kind} {name!r}{did_you_mean(name, self.modules)}; known: {known}")
            importlib.import_module(module)
            if name not in self.classes:
                raise ImportError(f"{module} defines no {self.kind} named {name!r}")
        return self.classes[name]


# One row per artifact format: its folder, edgecv/formats/<name>/, holds `export` (the Exporter:
# options, export-key fields, runtime settings) and `runtime` (the Runtime: file suffixes, loading,
# predicting), and what else the format needs (convert, checks, diagnose ...).
FORMAT_PACKAGES: Dict[str, str] = {
    "tflite": "edgecv.formats.tflite",
    "savedmodel": "edgecv.formats.savedmodel",
    "coreml": "edgecv.formats.coreml",
    "onnx": "edgecv.formats.onnx",
    "tensorrt": "edgecv.formats.tensorrt",
}
