"""Exporter interface: a task model plus an artifact spec in, an artifact file out.

A format lives in one folder, `edgecv/formats/<name>/` (its exporter, runtime, checks), and one row
of FORMAT_PACKAGES.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Optional

import numpy as np

from edgecv.registry import FORMAT_PACKAGES, LazyRegistry
from edgecv.errors import ConfigError
from edgecv.files import tree_sha256

EXPORTER_MODULES: dict[str, str] = {fmt: f"{package}.export" for fmt, package in FORMAT_PACKAGES.items()}
EXPORTERS: LazyRegistry["Exporter"] = LazyRegistry("artifact format", EXPORTER_MODULES)
# names users know from other exporters (Ultralytics, TensorFlow), accepted in target files
from edgecv.config.target import FORMAT_ALIASES  # noqa: F401  (where formats are named)
from edgecv.metrics.nms import DETECTION_OUTPUTS


@dataclass
class ExportContext:
    """What an exporter may need beyond the model: calibration images, names, provenance."""

    model_name: str
    calibration: Optional[Callable[[], Iterator[np.ndarray]]] = None  # yields 1xHxWx3 uint8 batches
    calibration_sha256: Optional[str] = None
    metadata: dict = field(default_factory=dict)  # recipe hash, edgecv version ...
    # validation split: {"images": uint8 NHWC, "targets": the task's targets (None if unlabelled),
    # "reference": {output name: float outputs of the reference model}}
    validation: Optional[dict] = None
    sidecar_dir: Optional[Path] = None  # where the build wrote the task's files, preprocessing.json, calibration.txt
    preprocessing: Optional[dict] = None  # preprocessing.json's content (edgecv.sidecars.preprocessing)
    calibration_set: Any = None  # the CalibrationSet (file list and hash), for bundles that carry it
    # the artifact's effective gates (edgecv.config.target.Gates: the target's merged with the
    # artifact's own), for bundles that are validated elsewhere (the TensorRT device bundle)
    gates: Any = None
    # Validate a candidate artifact file as the build validates the final one (same images,
    # runtime and comparator) against the artifact's quality gates (the task's gates on metrics,
    # deltas and agreement): (path, latency=False) -> {"passed", "metrics", "deltas", "agreement",
    # "quality" (the task's quality metric value), "gates" (messages), "latency_p50_ms"}.
    # Given by the build; exporters that search (accuracy-aware int8) use it.
    evaluate: Optional[Callable[..., dict]] = None
    log: Callable[[str], None] = lambda message: None


@dataclass
class Artifact:
    name: str
    format: str
    precision: str
    path: Path
    runtime_format: str  # which runtime loads it
    checks: dict = field(default_factory=dict)  # e.g. integer-only check results
    metadata: dict = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        p = self.path
        return p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.rglob("*") if f.is_file())

    def sha256(self) -> str:
        return tree_sha256(self.path)


class NotBuiltHere(Exception):
    """This machine cannot finish the artifact (e.g. no TensorRT/GPU). Everything that could be
    prepared is at `prepared`; `how_to_finish` is the exact command to run on the device."""

    def __init__(self, reason: str, prepared: Optional[Path] = None, how_to_finish: str = ""):
        super().__init__(reason)
        self.reason, self.prepared, self.how_to_finish = reason, prepared, how_to_finish


class Exporter(ABC):
    format: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    needs_calibration: ClassVar[tuple[str, ...]] = ()  # precisions that need the calibration set

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if getattr(cls, "format", None):
            EXPORTERS.register(cls.format, cls)

    @classmethod
    def check_spec(cls, spec, task=None) -> None:
        """Reject bad `options` while planning (raise ConfigError), before any training. The build
        passes the spec with its effective gates (the target's merged with the artifact's) and the
        recipe's task (None: any known task's gates count)."""

    @classmethod
    def export_key_fields(cls, spec, options: dict) -> tuple[dict, dict]:
        """(the artifact's options as they enter its export key, extra key fields). A format whose
        int8 preparation has defaults declares them resolved here, so a changed default rebuilds."""
        return options, {}

    @classmethod
    def int8_passes(cls, spec) -> list:
        """The int8 weight-preparation passes this format runs for `spec` right before converting,
        as (Pass, config) in order (edgecv.passes.int8_weights): the format's defaults, switched by
        the artifact's options. Empty for formats and precisions without them."""
        return []

    @abstractmethod
    def export(self, model, spec, out_dir: Path, ctx: ExportContext) -> Artifact:
        """Write the artifact for `spec` into out_dir (atomically) and describe it."""


def task_postprocess(model):
    """The decode + NMS the model's task wants appended to every artifact
    (edgecv.metrics.nms.DetectionPostProcess), or None. Each format adds it in its own form and its
    artifact's outputs are then `artifact_output_names`."""
    return model.make_task().postprocess(model.info)


def artifact_output_names(model, postprocess) -> list[str]:
    """An artifact's outputs: the four detection outputs after a post-process, else the task's."""
    if postprocess is None:
        return list(model.output_names)

    return list(DETECTION_OUTPUTS)


def parse_options(raw: Optional[dict], model: type, what: str):
    """An artifact's `options:` parsed into the exporter's pydantic model; a bad one is a ConfigError
    naming each wrong key and the allowed keys (raised while planning, through `check_spec`)."""
    from pydantic import ValidationError


    try:
        return model.model_validate(raw or {})
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"{what} options: {problems} (allowed keys: {', '.join(model.model_fields)})") from None


def get_exporter(fmt: str) -> type[Exporter]:
    return EXPORTERS.get(fmt)
