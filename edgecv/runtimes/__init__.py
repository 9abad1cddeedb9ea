"""Runtimes: load an artifact and predict. Imported lazily per format (see base.RUNTIME_MODULES)."""

from edgecv.runtimes.base import Runtime, RuntimeUnavailable, detect_format, get_runtime, load_runtime

__all__ = ["Runtime", "RuntimeUnavailable", "detect_format", "get_runtime", "load_runtime"]
