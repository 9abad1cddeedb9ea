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


def target_report(b, target, index, calib, entries: list[ArtifactResult]) -> Report:
    task = b.task
    ref_outputs = b.reference(index)
    _, targets = b.eval_set(index)
    selected = task.select_outputs(ref_outputs, b.info)
    ref_metrics = task.evaluate(selected, targets, b.info) if targets is not None else {}
    ref_scores = b.reference_scores(index)
    confidence = b.gates_for(target).confidence or DEFAULT_CONFIDENCE
    ref_intervals, _ = intervals_for(task, ref_scores, None, confidence)
    if targets is not None:  # metrics that are not means of per-image scores (mIoU, mAP): the task's bootstrap
        ref_intervals.update(task.metric_intervals(selected, None, targets, b.info, confidence)[0])
    return Report(
        edgecv_version=edgecv.__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        target=target.model_dump(mode="json"),
        recipe={"name": b.recipe.name, "sha256": b.recipe_sha256, "task": b.recipe.task},
        task=task.to_json(),
        task_info=b.info,
        data={"classes": index.classes, "train_count": len(index.train), "val_count": len(index.val),
              "skipped": [{"path": s.path, "reason": s.reason} for s in index.skipped],
              "eval_images": [s.path for s in task.eval_samples(index)],  # output row i is image i
              "eval_set": image_set_id(s.path for s in task.eval_samples(index))},  # device results match it
        calibration={"size": len(calib.samples), "seed": calib.seed, "source": calib.source,
                     "sha256": calib.sha256, "file_list": "calibration.txt"},
        training=b.train_info(),
        reference=Reference(format="keras", file="../reference.npz", sha256=b.reference_sha256, metrics=ref_metrics,
                            sample_scores=ref_scores, intervals=ref_intervals,
                            outputs=[o.to_json() for o in task.output_spec(b.info)]),
        environment=b.environment(),
        gates_enforced=b.gates,
        artifacts=entries,
        stages=[asdict(s) for s in b.stages if s.target in (None, target.name)],
    )


def write_manifest(b, out_dir: Path, target, entries: list[ArtifactResult]) -> None:
    """Written last: every file of the folder with its sha256 (`files`), what made each artifact."""
    arts = [{"name": e.name, "path": e.path, "sha256": e.sha256, "size_bytes": e.size_bytes, "stage": "export",
             "key": e.keys.get("export"), "made_from": e.keys.get("passes", b.keys.train)}
            for e in entries if e.path]
    manifest = {"schema_version": 1, "target": target.name, "recipe_sha256": b.recipe_sha256,
                "recipe_dir": str(b.recipe.base_dir), "model_name": b.recipe.name, "task": b.task.to_json(),
                "input": {"size": list(b.recipe.input.size), "resize": b.recipe.input.resize},
                "stage_keys": {"index": b.keys.index, "train": b.keys.train, "reference": b.keys.reference,
                               "calibration": b.keys.calibration},
                "artifacts": arts, "files": folder_files(out_dir), "libraries": b.environment()["libraries"],
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    atomic_write_text(out_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")
