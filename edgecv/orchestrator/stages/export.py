"""The export stage: an exporter writes the artifact into a cache entry (files plus artifact.json,
or not_built.json when this machine cannot finish it)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import edgecv
from edgecv.orchestrator.stages import passes as passes_stage
from edgecv.orchestrator.stages.validate import candidate_evaluator
from edgecv.exporters import ExportContext, NotBuiltHere, get_exporter


def run(b, spec, target, akeys: dict, index, calib, sidecar_dir: Path = None) -> Path:
    key = akeys["export"]
    t0 = time.perf_counter()
    hit = b.hit("export", key)
    was_hit = hit is not None
    if hit is None:
        model = passes_stage.run(b, spec, akeys, index, calib)
        images, targets = b.eval_set(index, model.input_size)
        reference = b.reference(index)
        ctx = ExportContext(b.recipe.name, b.calibration_batches(calib, model.input_size), calib.sha256,
                            {"recipe_sha256": b.recipe_sha256, "edgecv_version": edgecv.__version__,
                             "task": b.task.name},
                            validation={"images": images, "targets": targets, "reference": reference},
                            sidecar_dir=sidecar_dir or b.out_root / target.name,
                            preprocessing=b.preprocessing(index, model.input_size),
                            calibration_set=calib, gates=b.gates_for(target, spec),
                            evaluate=candidate_evaluator(b, spec, target, images, targets, reference),
                            log=lambda m: b.console.print(f"    {m}"))
        with b.cache.put("export", key) as tmp, \
                b.steps.step(f"{spec.name}: exporting {spec.format} {spec.precision}", indeterminate=True) as step:
            try:
                art = get_exporter(spec.format)().export(model, spec, tmp, ctx)
                step.result = art.path.name
            except NotBuiltHere as e:
                step.result = "not built on this machine (see the report)"
                prepared = None
                if e.prepared is not None and Path(e.prepared).exists():
                    prepared = Path(e.prepared).relative_to(tmp).as_posix()
                (tmp / "not_built.json").write_text(json.dumps(
                    {"reason": e.reason, "how_to_finish": e.how_to_finish, "prepared": prepared,
                     "prepared_at": str(e.prepared) if e.prepared else ""}))
            else:
                meta = {"name": art.name, "format": art.format, "precision": art.precision,
                        "path": art.path.relative_to(tmp).as_posix(), "runtime_format": art.runtime_format,
                        "checks": art.checks, "metadata": art.metadata, "input_size": list(model.input_size)}
                (tmp / "artifact.json").write_text(json.dumps(meta, indent=2, default=float))
        hit = b.cache.get("export", key)
    b.record("export", key, was_hit, t0, target.name, spec.name)
    return hit
