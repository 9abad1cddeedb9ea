"""The validate stage: run an artifact through its runtime on the validation images, compare every
output with the float reference and the task's metrics with the targets, time it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from typing import Optional

from edgecv.files import tree_sha256
from edgecv.orchestrator.keys import validation_entry_key
from edgecv.results import ArtifactResult
from edgecv.validate.evaluate import EvaluationSet, evaluate_artifact
from edgecv.formats.accuracy_aware import quality_gates


def candidate_evaluator(b, spec, target, images, targets, reference):
    """What an exporter that searches (accuracy-aware int8) calls on each candidate file: the
    build's own evaluation (images, reference, runtime settings), judged on the artifact's quality
    gates only."""
    gates = b.gates_for(target, spec)
    evaluation = EvaluationSet(images, targets, b.info, reference)
    quality = set(quality_gates(b.task))

    def evaluate(path: Path, latency: bool = False) -> dict:
        result = evaluate_artifact(path, b.task, evaluation, gates=gates, only_gates=quality, timing=latency,
                                   entry={"name": spec.name, "format": spec.format, "precision": spec.precision},
                                   threads=target.runtime.threads, runtime_options=target.runtime.options)
        q = b.task.quality_metric
        return {"passed": all(g.passed for g in result.gates), "metrics": result.metrics, "deltas": result.deltas,
                "agreement": result.agreement, "quality": {q: result.metrics.get(q)} if q else {},
                "gates": [g.message for g in result.gates],
                "latency_p50_ms": result.latency["p50_ms"] if latency and result.latency else None}

    return evaluate


def headline(task, metrics: dict, latency) -> str:
    """'98.05% accuracy, p50 0.06 ms': the step's closing words."""
    q = task.quality_metric
    parts = []
    if q and metrics.get(q) is not None:
        spec = task.metric(q)
        parts.append(f"{q} {metrics[q]:{spec.fmt}}{spec.unit}")
    if latency:
        parts.append(f"p50 {latency['p50_ms']:.2f} ms")
    return ", ".join(parts)


def run(b, spec, target, akeys: dict, artifact_path: Path, runtime_format: str, index, input_size=None,
        entry: Optional[dict] = None) -> ArtifactResult:
    """The artifact judged on the build's evaluation set: its measured fields cached as
    validation.json (a rebuild re-judges them at the current gates without running it again)."""
    t0 = time.perf_counter()
    key = validation_entry_key(akeys["validate"], tree_sha256(artifact_path))
    hit = b.hit("validate", key)

    def cached(measure) -> dict:
        if hit is not None:
            return json.loads((hit / "validation.json").read_text())
        with b.steps.step(f"{spec.name}: validating on {len(evaluation.images)} images, timing") as step:
            result = measure(progress=lambda f, what: step.update(f, what))
            step.result = (headline(b.task, result.get("metrics") or {}, result.get("latency"))
                           if result["validation"]["numeric"] else "structural checks only here")
        with b.cache.put("validate", key) as tmp:
            (tmp / "validation.json").write_text(json.dumps(result, default=float))
        return result

    # a cached validation is judged again without decoding an image or running the artifact
    images, targets = b.eval_set(index, input_size) if hit is None else (None, None)
    evaluation = EvaluationSet(images, targets, b.info, None if hit is not None else b.reference(index),
                               b.reference_scores(index))
    result = evaluate_artifact(artifact_path, b.task, evaluation, entry=entry, gates=b.gates_for(target, spec),
                               cached=cached, fmt=runtime_format, threads=target.runtime.threads,
                               runtime_options=target.runtime.options, batches=target.runtime.batches)
    b.record("validate", key, hit is not None, t0, target.name, spec.name)
    return result
