"""The one way edgecv judges an artifact: run it on an evaluation set, compare it with the targets
and the float reference, time it, and hold the result against its gates.

`evaluate_artifact` is called by the build's validate stage, the accuracy-aware int8 search (on
each candidate file), `edgecv engine validate`, `edgecv validate` and `edgecv bench --data`, so a
number means the same wherever it was measured. Numpy and the artifact's runtime only: no
TensorFlow for TFLite or ONNX.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Optional, Sequence, Union

import numpy as np

from edgecv.results import ArtifactResult
from edgecv.validate.comparator import compare
from edgecv.validate.gates import check_gates, not_applicable
from edgecv.validate.intervals import attach_intervals
from edgecv.validate.measure import measure_artifact, sizes
from edgecv.runtimes import RuntimeUnavailable


@dataclass
class EvaluationSet:
    """The images an artifact is judged on (uint8 N x H x W x 3 at its input size) and what they are
    judged against: the task's targets (None: unlabelled) and the float model's outputs on the same
    images (None on a device, where there is no reference)."""

    # or a function of the loaded runtime (a device reads images at the artifact's input size)
    images: Union[np.ndarray, Callable[[Any], np.ndarray]]
    # or a function (outputs, input size) -> targets, for targets that depend on the artifact (a
    # labels file mapped onto its output count, points in its input's coordinates)
    targets: Any = None
    info: dict = field(default_factory=dict)
    reference: Optional[dict] = None
    # the float model's per-sample scores (paired delta intervals); None: computed from `reference`
    reference_scores: Optional[dict] = None
    paths: list = field(default_factory=list)  # one per image, for a device command's report
    skipped: list = field(default_factory=list)  # (path, why) of samples that could not be read
    outputs: Optional[dict] = None  # the artifact's outputs by name, once evaluated (a device report's predictions)


@dataclass
class StoredGates:
    """Gates kept as plain data (a device bundle's): what `judge` reads of a Gates."""

    values: dict = field(default_factory=dict)
    tolerances: dict = field(default_factory=dict)  # output -> {atol, rtol}
    confidence: Optional[float] = None

    def limits(self) -> dict:
        return dict(self.values)


def _rtol(tolerance) -> float:
    return tolerance.get("rtol", 0.0) if isinstance(tolerance, dict) else tolerance.rtol


def measure_fields(path: Path, task, evaluation: EvaluationSet, *, fmt: Optional[str] = None,
                   threads: Optional[int] = None, runtime_options: Optional[dict] = None,
                   batches: Sequence[int] = (1,), timing: bool = True, rtols: Optional[dict] = None,
                   latency_images: Union[None, np.ndarray, Callable] = None, min_runs: int = 30,
                   min_seconds: float = 1.0, progress: Optional[Callable[[float, str], None]] = None) -> dict:
    """What running the artifact gives, as JSON-able ArtifactResult fields: the comparison
    (metrics, deltas, intervals, agreement, per-output errors) and, with `timing`, latency per batch
    size, load time, first inference, memory and size. A runtime that cannot run here (Core ML off
    macOS) gives `validation.numeric: false` and why."""
    try:
        m = measure_artifact(path, fmt, evaluation.images, threads, batches if timing else (), runtime_options,
                             latency_images=latency_images, min_runs=min_runs, min_seconds=min_seconds,
                             progress=progress, timing=timing)
    except RuntimeUnavailable as e:
        return {"validation": {"numeric": False, "reason": str(e)}}
    outputs = evaluation.outputs = m.pop("_outputs")
    fields: dict = {}
    if outputs is not None:
        targets = evaluation.targets
        if callable(targets):
            targets = targets(outputs, tuple(m["input_size"]))
        cmp = compare(task, evaluation.info, outputs, targets, evaluation.reference, rtols)
        fields = cmp.to_result_fields()
        fields = ArtifactResult(name="-", format="-", precision="-", status="ok", **fields).model_dump(
            mode="json", include=set(fields))
        if evaluation.reference_scores is None and cmp.reference_scores:
            fields["_reference_scores"] = cmp.reference_scores
    return {"validation": {"numeric": True, "runtime_settings": m.get("runtime")}, **fields, **m}


def judge(result: ArtifactResult, task, gates=None, reference_scores: Optional[dict] = None,
          only: Optional[Collection[str]] = None, source: str = "build", intervals: bool = True) -> ArtifactResult:
    """Intervals at the gates' confidence (unless `intervals` is False: a device merge keeps the
    ones it chose), then every gate judged once. `gates` is the artifact's effective Gates
    (edgecv.config.target.effective_gates); `only` keeps those gate names (a search judges quality
    gates only, without output tolerances)."""
    if intervals:
        attach_intervals(result, task, reference_scores, getattr(gates, "confidence", None))
    if gates is None:
        return result
    limits = gates.limits()
    if only is not None:
        limits = {k: v for k, v in limits.items() if k in only}
    tolerances = None if only is not None else gates.tolerances
    result.gates = check_gates(result, limits, task, tolerances, source=source)
    skipped = not_applicable(limits, task)
    if skipped and only is None:
        result.notes.append(f"gates not applicable to task {task.name}: {', '.join(skipped)}")
    return result


def evaluate_artifact(path: Path, task, evaluation: EvaluationSet, *, entry: Optional[dict] = None, gates=None,
                      only_gates: Optional[Collection[str]] = None, gate_source: str = "build",
                      cached: Optional[Callable[[Callable[[], dict]], dict]] = None, **measure) -> ArtifactResult:
    """Judge one artifact on one evaluation set against the reference: the typed result with its
    metrics, deltas, intervals, agreement, per-output comparison, latency and gates (judged once).

    `entry`: the result's other fields (name, format, precision, path, sha256 ...); `measure`: the
    keywords of `measure_fields` (runtime settings, batch sizes, timing); `cached(run)`: returns
    the measured fields, from a cache or by calling `run(progress=...)` (the build keeps them as validation.json,
    and a rebuild re-judges them at new gates without running the artifact)."""
    entry = {"name": Path(path).name, "format": "", "precision": "", "status": "ok", **(entry or {})}
    rtols = {name: _rtol(t) for name, t in (getattr(gates, "tolerances", None) or {}).items()}

    def run(progress: Optional[Callable[[float, str], None]] = None) -> dict:
        return measure_fields(path, task, evaluation, rtols=rtols, **{**measure, **({"progress": progress}
                                                                                   if progress else {})})

    fields = cached(run) if cached is not None else run()
    fields = dict(fields)
    reference_scores = fields.pop("_reference_scores", None)
    if reference_scores is None:
        reference_scores = evaluation.reference_scores
    merged = {**entry, **fields}
    if "size_bytes" not in merged and measure.get("timing", True) and Path(path).exists():
        merged.update(sizes(path))
    result = ArtifactResult.model_validate(merged)
    return judge(result, task, gates, reference_scores, only_gates, gate_source)
