"""The validate stage: run an artifact through its runtime on the validation images, compare every
output with the float reference and the task's metrics with the targets, time it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from typing import Optional

from edgecv.files import tree_sha256
from edgecv.orchestrator.keys import validation_entry_key
from edgecv.orchestrator.stages import passes as passes_stage
from edgecv.results import ArtifactResult
from edgecv.validate.evaluate import EvaluationSet, evaluate_artifact
from edgecv.formats.accuracy_aware import quality_gates


def candidate_evaluator(task, info: dict, gates, spec, target, images, targets, reference):
    """What an exporter that searches (accuracy-aware int8) calls on each candidate file: the
    build's own evaluation (images, reference, runtime settings), judged on the artifact's quality
    gates (`gates`: the artifact's effective gates) only."""
    evaluation = EvaluationSet(images, targets, info, reference)
    quality = set(quality_gates(task))

    def evaluate(path: Path, latency: bool = False) -> dict:
        result = evaluate_artifact(path, task, evaluation, gates=gates, only_gates=quality, timing=latency,
                                   entry={"name": spec.name, "format": spec.format, "precision": spec.precision},
                                   threads=target.runtime.threads, runtime_options=target.runtime.options)
        q = task.quality_metric
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


def artifact_entry(step, passes_entry: Optional[Path]) -> dict:
    """The fields of an artifact's result known before it is judged: what it is, its keys, and what
    its passes did (from their entry)."""
    spec = step.spec
    entry = {"name": spec.name, "format": spec.format, "precision": spec.precision, "status": "ok", "keys": step.keys}
    if spec.passes:
        entry["passes"] = passes_stage.reports(passes_entry)
    return entry


def run(ctx, step, inputs) -> ArtifactResult:
    """The artifact (as copied into its target's folder) judged on the build's evaluation set: its
    measured fields cached as validation.json (a rebuild re-judges them at the current gates without
    running it again), keyed by the planned key and the artifact's bytes."""
    spec = step.spec
    exported = inputs["export"]
    entry = artifact_entry(step, inputs.entry("passes") if spec.passes else None)
    meta = exported.meta
    path = exported.folder / meta["path"]
    # a pass may have changed the input size (backbone swap): validate at the model's own size
    input_size = meta.get("input_size") or list(ctx.recipe.input.size)
    sha256 = tree_sha256(path)  # the report's and the validation key's: hashed once (a SavedModel is a tree)
    entry.update({"path": meta["path"], "sha256": sha256, "checks": meta["checks"],
                  "artifact_metadata": meta["metadata"], "input_size": list(input_size),
                  "quantization": (meta["metadata"].get("ptq") or {}).get("applied", [])})
    result = _judge(ctx, step, inputs, path, sha256, meta["runtime_format"], input_size, entry)
    for name, why in ((meta["metadata"].get("ptq") or {}).get("not_applied") or {}).items():
        result.notes.append(f"int8 {name} not applied: {why}")
    postprocess = meta["metadata"].get("postprocess") or {}
    if postprocess.get("note"):  # what the format appended after the model (a detector's decode + NMS)
        result.notes.append(postprocess["note"])
    return result


def _judge(ctx, step, inputs, artifact_path: Path, artifact_sha256: str, runtime_format: str, input_size,
           entry: dict) -> ArtifactResult:
    spec, target = step.spec, step.target
    t0 = time.perf_counter()
    key = validation_entry_key(step.key, artifact_sha256)
    hit = ctx.hit("validate", key)
    index = inputs["index"]

    def cached(measure) -> dict:
        if hit is not None:
            return json.loads((hit / "validation.json").read_text())
        with ctx.steps.step(f"{spec.name}: validating on {len(evaluation.images)} images, timing") as progress:
            result = measure(progress=lambda f, what: progress.update(f, what))
            progress.result = (headline(ctx.task, result.get("metrics") or {}, result.get("latency"))
                               if result["validation"]["numeric"] else "structural checks only here")
        with ctx.cache.put("validate", key) as tmp:
            (tmp / "validation.json").write_text(json.dumps(result, default=float))
        return result

    # a cached validation is judged again without decoding an image or running the artifact
    images, targets = ctx.eval_set(index, input_size) if hit is None else (None, None)
    reference = inputs["reference"]
    evaluation = EvaluationSet(images, targets, index.info, None if hit is not None else reference.outputs,
                               reference.scores(ctx.task, index))
    result = evaluate_artifact(artifact_path, ctx.task, evaluation, entry=entry, gates=ctx.gates_for(target, spec),
                               cached=cached, fmt=runtime_format, threads=target.runtime.threads,
                               runtime_options=target.runtime.options, batches=target.runtime.batches)
    ctx.record("validate", key, hit is not None, t0, target.name, spec.name)
    return result
