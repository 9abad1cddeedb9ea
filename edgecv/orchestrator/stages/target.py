"""The target step: a target's folder, built in its staging folder from its artifacts' export and
validate steps (one failing artifact is recorded and does not stop the others), with sidecars,
report and manifest, then swapped in whole."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from edgecv.errors import EdgecvError, StageFailed
from edgecv.files import OutputError, explain_write_error, is_write_error
from edgecv.orchestrator import assemble, publish
from edgecv.orchestrator.execute import UndeclaredRead
from edgecv.orchestrator.stages import train as train_stage
from edgecv.orchestrator.stages.validate import artifact_entry
from edgecv.report.merge import carry_device_results
from edgecv.report.outputs import write_reports
from edgecv.results import ArtifactResult, Report
from edgecv.sidecars import write_sidecars


@dataclass
class TargetOutcome:
    target: str
    report_path: Optional[Path]
    status: str  # ok | gates_failed | failed
    messages: list[str] = field(default_factory=list)
    report: Optional[Report] = None
    log: Optional[Path] = None  # native output to look at when something failed


def run(ctx, step, inputs) -> TargetOutcome:
    """Build the target in a staging folder and swap it in whole; on any error the previous target
    folder stays as it was."""
    target = step.target
    final = ctx.out_root / target.name
    staging = publish.start(ctx.out_root, target.name)
    try:
        outcome = build_into(ctx, step, inputs, staging, final)
        publish.commit(staging, final)
    except BaseException:
        publish.discard(staging)
        raise
    return outcome


def build_into(ctx, step, inputs, out_dir: Path, final: Path) -> TargetOutcome:
    target = step.target
    index, calib = inputs["index"], inputs["calibration"]
    write_sidecars(out_dir, ctx.task, index.info, ctx.preprocessing(index), calib, relative_to=ctx.recipe.base_dir)
    entries: list[ArtifactResult] = []
    for spec in target.artifacts:
        t0 = time.perf_counter()
        with ctx.log_scope(target.name):
            entry = _artifact_or_failure(ctx, inputs, spec, out_dir, final)
        entry.seconds = time.perf_counter() - t0
        entries.append(entry)
    other_sizes = {e.name: e.input_size for e in entries
                   if e.input_size and tuple(e.input_size) != tuple(ctx.recipe.input.size)}
    if other_sizes:
        write_sidecars(out_dir, ctx.task, index.info, ctx.preprocessing(index, artifact_sizes=other_sizes))
    reference = inputs["reference"]
    training = train_stage.info(inputs.entry("train"))  # a damaged entry is trained again: reports name their model
    report = assemble.target_report(ctx, target, index, calib, reference, training, entries)
    specs = {spec.name: spec for spec in target.artifacts}
    kept = carry_device_results(final / "report.json", report,
                                lambda e: target.gates_for(specs[e.name], ctx.recipe.gates))
    if kept:
        ctx.console.print(f"  {target.name}: kept the device results of {', '.join(kept)} (the same files) "
                          "from the previous report")
    entries = list(report.artifacts)
    write_reports(out_dir, report)
    assemble.write_manifest(ctx, step.keys, out_dir, target, entries)
    failed = [e for e in entries if e.status == "failed"]
    gate_fail = [g for e in entries for g in e.failed_gates]
    messages = [f"{e.name}: {e.error}" for e in failed] + [g.message for g in gate_fail]
    status = "failed" if failed else "gates_failed" if gate_fail and ctx.gates else "ok"
    log = final / "build.log" if ctx.native and failed else None
    return TargetOutcome(target.name, final / "report.json", status, messages, report, log)


def _artifact(inputs, spec, final: Path) -> ArtifactResult:
    """One artifact's result: its validation, or why this machine could not build it."""
    exported = inputs[f"export {spec.name}"]
    if exported.not_built is None:
        return inputs[f"validate {spec.name}"]
    entry = artifact_entry(inputs.step(f"export {spec.name}"), inputs.entry(f"passes {spec.name}") if spec.passes else None)
    nb = dict(exported.not_built)
    if nb.get("prepared"):  # the exporter named its working folder; point at the published copy
        nb["how_to_finish"] = nb["how_to_finish"].replace(nb.pop("prepared_at", ""), str(final / nb["prepared"]))
    nb.pop("prepared_at", None)
    return ArtifactResult(**{**entry, **nb, "status": "not_built"})


def _artifact_or_failure(ctx, inputs, spec, out_dir: Path, final: Path) -> ArtifactResult:
    base = {"name": spec.name, "format": spec.format, "precision": spec.precision, "status": "failed"}
    try:
        entry = _artifact(inputs, spec, final)
    except (StageFailed, OutputError, UndeclaredRead):  # shared by every artifact, the disk, or a bug: the target stops
        raise
    except EdgecvError as e:
        entry = ArtifactResult(**base, error=str(e))
    except Exception as e:  # a converter or runtime bug: record it, keep building the others
        if is_write_error(e):
            raise explain_write_error(Path(e.filename or out_dir), e) from None
        entry = ArtifactResult(**base, error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=8))
    if entry.status == "failed" and ctx.native:
        entry.notes.append("the converters' and runtimes' own output is in build.log beside this report")
    return entry
