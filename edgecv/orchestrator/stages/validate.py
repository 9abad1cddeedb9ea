"""The validate stage: run an artifact through its runtime on the validation images, compare every
output with the float reference and the task's metrics with the targets, time it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from edgecv.results import ArtifactResult
from edgecv.validate.comparator import compare
from edgecv.validate.gates import check_gates


def quality_limits(task, gates) -> dict:
    """The artifact's gates on the task's metrics, deltas and agreement (what a search tries to meet)."""
    from edgecv.quantization.accuracy_aware import quality_gates

    quality = set(quality_gates(task))
    return {k: v for k, v in gates.limits().items() if k in quality}


def candidate_evaluator(b, spec, target, images, targets, reference):
    """What an exporter that searches (accuracy-aware int8) calls on each candidate file: the
    build's own validation (images, runtime settings, comparator), checked against the artifact's
    quality gates only."""
    gates = target.gates_for(spec, b.recipe.gates)
    limits = quality_limits(b.task, gates)

    def evaluate(path: Path, latency: bool = False) -> dict:
        from edgecv.runtimes import load_runtime
        from edgecv.validate.latency import measure_latency
        from edgecv.validate.measure import predict_all

        with load_runtime(path, None, threads=target.runtime.threads, **target.runtime.options) as rt:
            cmp = compare(b.task, b.info, predict_all(rt, images), targets, reference,
                          **({"confidence": gates.confidence} if gates.confidence else {}))
            lat = measure_latency(rt.predict, images[:16], batch=1) if latency else None
        result = ArtifactResult(name=spec.name, format=spec.format, precision=spec.precision, status="ok",
                                **cmp.to_result_fields())
        checked = check_gates(result, limits, b.task)
        q = b.task.quality_metric
        return {"passed": all(g.passed for g in checked), "metrics": cmp.metrics, "deltas": cmp.deltas,
                "agreement": cmp.agreement, "quality": {q: cmp.metrics.get(q)} if q else {},
                "gates": [g.message for g in checked], "latency_p50_ms": lat.p50_ms if lat else None}

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


def run(b, spec, target, akeys: dict, artifact_path: Path, runtime_format: str, index, input_size=None) -> dict:
    """The validation fields of the artifact's result (cached as validation.json)."""
    from edgecv.runtimes import RuntimeUnavailable
    from edgecv.validate.measure import measure_artifact

    key = akeys["validate"]
    t0 = time.perf_counter()
    hit = b.hit("validate", key)
    if hit is not None:
        result = json.loads((hit / "validation.json").read_text())
    else:
        images, targets = b.eval_set(index, input_size)
        reference = b.reference(index)
        gates = target.gates_for(spec, b.recipe.gates)
        with b.steps.step(f"{spec.name}: validating on {len(images)} images, timing") as step:
            try:
                m = measure_artifact(artifact_path, runtime_format, images, target.runtime.threads,
                                     target.runtime.batches, target.runtime.options,
                                     progress=lambda f, what: step.update(f, what))
            except RuntimeUnavailable as e:  # e.g. Core ML predicts on macOS only: structural checks only
                result = {"validation": {"numeric": False, "reason": str(e)}}
                step.result = "structural checks only here"
            else:
                outputs = m.pop("_outputs")
                rtols = {name: t.rtol for name, t in gates.tolerances.items()}
                cmp = compare(b.task, b.info, outputs, targets, reference, rtols)
                fields = ArtifactResult(name=spec.name, format=spec.format, precision=spec.precision, status="ok",
                                        **cmp.to_result_fields()).model_dump(mode="json", include=set(
                                            cmp.to_result_fields()))
                result = {"validation": {"numeric": True, "runtime_settings": m.get("runtime")}, **fields, **m}
                step.result = headline(b.task, cmp.metrics, m.get("latency"))
        with b.cache.put("validate", key) as tmp:
            (tmp / "validation.json").write_text(json.dumps(result, default=float))
    b.record("validate", key, hit is not None, t0, target.name, spec.name)
    return result
