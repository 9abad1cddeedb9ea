"""Moved to `edgecv.quantization.accuracy_aware` (the quantization tools' home); kept as a
re-export for callers of the old path."""

from edgecv.quantization.accuracy_aware import AccuracyAwareConfig, quality_gates, search  # noqa: F401
