"""A target's report and manifest, put together from the stages' results."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import edgecv
from edgecv.build_folder import MANIFEST, folder_files
from edgecv.files import atomic_write_text
from edgecv.data.image_set import image_set_id
from edgecv.results import ArtifactResult, Reference, Report
from edgecv.validate.intervals import DEFAULT_CONFIDENCE, intervals_for


def target_report(ctx, target, index, calib, reference, training: dict, entries: list[ArtifactResult]) -> Report:
    """`reference`: the reference step's output; `training`: the train entry's record."""
    task, info = ctx.task, index.info
    _, targets = ctx.eval_set(index)
    selected = task.select_outputs(reference.outputs, info)
    ref_metrics = task.evaluate(selected, targets, info) if targets is not None else {}
    ref_scores = reference.scores(task, index)
    confidence = ctx.gates_for(target).confidence or DEFAULT_CONFIDENCE
    ref_intervals, _ = intervals_for(task, ref_scores, None, confidence)
    if targets is not None:  # metrics that are not means of per-image scores (mIoU, mAP): the task's bootstrap
        ref_intervals.update(task.metric_intervals(selected, None, targets, info, confidence)[0])
    return Report(
        edgecv_version=edgecv.__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        target=target.model_dump(mode="json"),
        recipe={"name": ctx.recipe.name, "sha256": ctx.recipe_sha256, "task": ctx.recipe.task},
        task=task.to_json(),
        task_info=info,
        data={"classes": index.classes, "train_count": len(index.train), "val_count": len(index.val),
              "skipped": [{"path": s.path, "reason": s.reason} for s in index.skipped],
              "eval_images": [s.path for s in task.eval_samples(index)],  # output row i is image i
              "eval_set": image_set_id(s.path for s in task.eval_samples(index))},  # device results match it
        calibration={"size": len(calib.samples), "seed": calib.seed, "source": calib.source,
                     "sha256": calib.sha256, "file_list": "calibration.txt"},
        training=training,
        reference=Reference(format="keras", file="../reference.npz", sha256=reference.sha256, metrics=ref_metrics,
                            sample_scores=ref_scores, intervals=ref_intervals,
                            outputs=[o.to_json() for o in task.output_spec(info)]),
        environment=ctx.environment(),
        gates_enforced=ctx.gates,
        artifacts=entries,
        stages=[asdict(s) for s in ctx.stages if s.target in (None, target.name)],
    )


def write_manifest(ctx, keys: dict, out_dir: Path, target, entries: list[ArtifactResult]) -> None:
    """Written last: every file of the folder with its sha256 (`files`), what made each artifact.
    `keys`: the build's index, train, reference and calibration keys."""
    arts = [{"name": e.name, "path": e.path, "sha256": e.sha256, "size_bytes": e.size_bytes, "stage": "export",
             "key": e.keys.get("export"), "made_from": e.keys.get("passes", keys["train"])}
            for e in entries if e.path]
    manifest = {"schema_version": 1, "target": target.name, "recipe_sha256": ctx.recipe_sha256,
                "recipe_dir": str(ctx.recipe.base_dir), "model_name": ctx.recipe.name, "task": ctx.task.to_json(),
                "input": {"size": list(ctx.recipe.input.size), "resize": ctx.recipe.input.resize},
                "stage_keys": {name: keys[name] for name in ("index", "train", "reference", "calibration")},
                "artifacts": arts, "files": folder_files(out_dir), "libraries": ctx.environment()["libraries"],
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    atomic_write_text(out_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")
