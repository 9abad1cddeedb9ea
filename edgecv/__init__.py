"""edgecv: fine-tune a vision model and build validated, optimized artifacts for edge targets.

The Python API (`edgecv.build`, `export`, `validate`, `bench`; see edgecv/api.py) is loaded on first
use, so `import edgecv` stays light: no TensorFlow until a function runs.
"""

__version__ = "0.4.0"

_API = ("build", "export", "validate", "bench")
_RESULTS = ("Report", "ArtifactResult", "BenchResult")
_ERRORS = ("EdgecvError", "InputError", "ConfigError", "DataError", "ConversionError", "GateFailure", "BuildFailed")
__all__ = [*_API, *_RESULTS, *_ERRORS, "BuildResult", "FolderEval"]


def __getattr__(name: str):
    import importlib

    if name == "validate":  # the package edgecv.validate, callable as edgecv.api.validate (see there)
        return importlib.import_module("edgecv.validate")
    where = {**dict.fromkeys(_API, "edgecv.api"), **dict.fromkeys(_RESULTS, "edgecv.results"),
             **dict.fromkeys(_ERRORS, "edgecv.errors"), "BuildResult": "edgecv.orchestrator.runner",
             "FolderEval": "edgecv.validate.device"}.get(name)
    if where is None:
        raise AttributeError(f"module 'edgecv' has no attribute {name!r}")
    return getattr(importlib.import_module(where), name)


def __dir__():
    return sorted([*globals(), *__all__])
