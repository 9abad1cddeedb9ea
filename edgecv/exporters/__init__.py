"""Exporters: model in, artifact out. Imported lazily per format (see base.EXPORTER_MODULES)."""

from edgecv.exporters.base import EXPORTER_MODULES, Artifact, ExportContext, Exporter, NotBuiltHere, get_exporter

__all__ = ["Artifact", "ExportContext", "Exporter", "get_exporter", "EXPORTER_MODULES", "NotBuiltHere"]
