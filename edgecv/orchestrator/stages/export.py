"""The export stage: an exporter writes the artifact into a cache entry (files plus artifact.json,
or not_built.json when this machine cannot finish it), which is then copied into the target's
staging folder (one export step per artifact of a target: two targets with the same artifact
share its entry, each gets its own copy)."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import edgecv
from edgecv.exporters import ExportContext, NotBuiltHere, get_exporter
from edgecv.files import explain_write_error, is_write_error
from edgecv.orchestrator import publish
from edgecv.orchestrator.stages.validate import candidate_evaluator

ENTRY_RECORDS = (".complete", "artifact.json", "not_built.json")  # the entry's own files, not published


@dataclass
class Exported:
    entry: Path  # the cache entry
    folder: Path  # the target's staging folder it was copied into
    meta: Optional[dict]  # artifact.json: path, runtime_format, checks, metadata, input_size
    not_built: Optional[dict]  # not_built.json: reason, how_to_finish, prepared, prepared_at


def run(ctx, step, inputs) -> Exported:
    spec, target, key = step.spec, step.target, step.key
    staging = publish.staging_path(ctx.out_root, target.name)
    t0 = time.perf_counter()
    hit = ctx.hit("export", key)
    was_hit = hit is not None
    if hit is None:
        _export(ctx, step, inputs, staging)
        hit = ctx.cache.get("export", key)
    ctx.record("export", key, was_hit, t0, target.name, spec.name)
    publish_entry(hit, staging)
    read = lambda name: json.loads((hit / name).read_text()) if (hit / name).is_file() else None  # noqa: E731
    return Exported(hit, staging, read("artifact.json"), read("not_built.json"))


def _export(ctx, step, inputs, sidecar_dir: Path) -> None:
    spec, target, key = step.spec, step.target, step.key
    index, calib = inputs["index"], inputs["calibration"]
    model = inputs["model"]
    images, targets = ctx.eval_set(index, model.input_size)
    reference = inputs["reference"].outputs
    export_ctx = ExportContext(ctx.recipe.name, ctx.calibration_batches(calib, model.input_size), calib.sha256,
                               {"recipe_sha256": ctx.recipe_sha256, "edgecv_version": edgecv.__version__,
                                "task": ctx.task.name},
                               validation={"images": images, "targets": targets, "reference": reference},
                               sidecar_dir=sidecar_dir, preprocessing=ctx.preprocessing(index, model.input_size),
                               calibration_set=calib, gates=ctx.gates_for(target, spec),
                               evaluate=candidate_evaluator(ctx.task, index.info, ctx.gates_for(target, spec), spec,
                                                            target, images, targets, reference),
                               log=lambda m: ctx.console.print(f"    {m}"))
    with ctx.cache.put("export", key) as tmp, \
            ctx.steps.step(f"{spec.name}: exporting {spec.format} {spec.precision}", indeterminate=True) as progress:
        try:
            art = get_exporter(spec.format)().export(model, spec, tmp, export_ctx)
            progress.result = art.path.name
        except NotBuiltHere as e:
            progress.result = "not built on this machine (see the report)"
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


def publish_entry(entry_dir: Path, out_dir: Path) -> None:
    """Copy an export entry's files (verified by the cache) into the staging folder."""
    for item in entry_dir.iterdir():
        if item.name in ENTRY_RECORDS:
            continue
        dest = out_dir / item.name
        try:
            shutil.copytree(item, dest) if item.is_dir() else shutil.copyfile(item, dest)
        except OSError as e:
            raise explain_write_error(dest, e) if is_write_error(e) else e
