"""Moved to `edgecv.quantization.diagnose` (the quantization tools' home); kept as a re-export for
callers of the old path."""

from edgecv.quantization.diagnose import Diagnosis, LayerError, diagnose, keras_layers_of  # noqa: F401
