"""Fold on-device benchmark results into a build's report, and re-check the gates with them.

An artifact is matched by its sha256 (so a result from a different file is never merged into the
wrong row). Latency gates are then checked against the device's numbers, and the task's gates
against the device's metrics where it measured them: the device is where the numbers matter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from edgecv.config.target import Gates, effective_gates
from edgecv.data.image_set import same_image_set
from edgecv.errors import InputError
from edgecv.files import read_json
from edgecv.report.outputs import report_task
from edgecv.results import Report
from edgecv.validate.evaluate import judge
from edgecv.validate.gates import task_gate_table
from edgecv.errors import EdgecvError
from edgecv.report.bench_result import check_bench_result
from edgecv.report.outputs import write_reports
from edgecv.report.regression import read_report

DEVICE_FIELDS = ("created", "device", "threads", "runtime", "load_seconds", "first_inference_ms", "memory", "latency",
                 "latency_by_batch", "accuracy", "metrics", "remote", "eval_set")


def device_metrics(res: dict) -> dict:
    """The task metrics a bench result measured (`metrics`, or the classification `accuracy` block)."""
    if res.get("metrics_judged") is False:  # measured on other images than the build's split
        return {}
    if res.get("metrics"):
        return dict(res["metrics"])
    acc = res.get("accuracy") or {}
    return {k: v for k, v in {"accuracy": acc.get("top1"), "top5_accuracy": acc.get("top5")}.items() if v is not None}


def merge_device_results(report: Report, results: list[dict]) -> list[str]:
    """Mutates `report`; returns gate failure messages after the merge."""
    by_sha = {a.sha256: a for a in report.artifacts if a.sha256}
    for res in results:
        if res.get("schema") != "edgecv.bench/1":
            raise InputError(f"not an `edgecv bench --json` result (schema {res.get('schema')!r})")
        entry = by_sha.get(res["artifact"]["sha256"])
        if entry is None:
            names = ", ".join(a.name for a in report.artifacts)
            raise InputError(f"{res['artifact']['name']} (sha256 {res['artifact']['sha256'][:12]}) is not an artifact "
                              f"of this build ({names}): benchmark the files of this build")
        entry.device_results.append(_judge_metrics({k: res.get(k) for k in DEVICE_FIELDS}, report))
    return recheck_device_gates(report)


def _judge_metrics(kept: dict, report: Report) -> dict:
    """Mark whether the device's metrics were measured on the report's own validation images."""
    kept.pop("metrics_not_judged", None)
    if kept.get("metrics") or kept.get("accuracy"):
        same, why = same_image_set(kept.get("eval_set"), report.data.get("eval_set"))
        kept["metrics_judged"] = same
        if not same:
            kept["metrics_not_judged"] = f"latency merged; metrics not judged: {why}"
    return kept


def carry_device_results(previous: Path, report: Report, gates_for: Optional[Callable] = None) -> list[str]:
    """A rebuild keeps the device results merged into the target's previous report for every
    artifact whose file is the same (sha256), re-judged against the new report; returns the names."""
    if not Path(previous).is_file():
        return []
    try:
        old = read_report(Path(previous), "previous report")
    except EdgecvError:  # unreadable: nothing to keep (the build replaces it)
        return []
    by_sha = {a.sha256: a.device_results for a in old.artifacts if a.sha256 and a.device_results}
    kept = []
    for entry in report.artifacts:
        if entry.sha256 in by_sha and not entry.device_results:
            entry.device_results = [_judge_metrics(dict(d), report) for d in by_sha[entry.sha256]]
            kept.append(entry.name)
    if kept:
        recheck_device_gates(report, gates_for)
    return kept


def recheck_device_gates(report: Report, gates_for: Optional[Callable] = None) -> list[str]:
    """Each artifact's gates with its latest device result (`gates_for(entry)`: its Gates; default
    the report's target gates with the artifact's own); returns the failures."""
    failures = []
    task = report_task(report)
    target_gates = report.target.get("gates") or {}
    overrides = {a["name"]: a.get("gates") or {} for a in report.target["artifacts"]}
    for entry in report.artifacts:
        if not entry.device_results:
            continue
        dev = entry.device_results[-1]
        view = entry.model_copy(deep=True)
        view.latency = dev["latency"]
        measured = device_metrics(dev)
        if measured:
            view.metrics = {**entry.metrics, **measured}
            view.deltas = {k: v - report.reference.metrics[k] for k, v in measured.items()
                           if isinstance(report.reference.metrics.get(k), (int, float))}
            # the build host's intervals do not describe the device's numbers (no per-sample scores
            # come back from a device): interval gates judge those by the device's value
            view.intervals = {k: v for k, v in entry.intervals.items() if k not in measured}
            view.delta_intervals = {k: v for k, v in entry.delta_intervals.items() if k not in measured}
        gates = gates_for(entry) if gates_for else \
            effective_gates(None, Gates(**target_gates), Gates(**{k: v for k, v in overrides.get(entry.name, {}).items()
                                                                 if v is not None}))
        entry.gates = judge(view, task, gates, source="device", intervals=False).gates
        table = task_gate_table(task)
        for g in entry.gates:  # only numbers the device measured are the device's; the rest stay the build's
            spec = table.get(g.gate)
            from_device = spec is not None and (spec.source == "latency" or (
                spec.source in ("metrics", "deltas") and spec.key in measured))
            g.source = "device" if from_device else "build"
        failures += [g.message for g in entry.gates if g.passed is False]
    return failures


def merge_files(report_path: Path, result_paths: list[Path]) -> list[str]:
    results = [check_bench_result(read_json(Path(p), "--merge"), Path(p)) for p in result_paths]
    return merge_results(report_path, results)


def merge_results(report_path: Path, results: list[dict]) -> list[str]:
    """Merge bench results into a report file and rewrite its reports; returns gate failures."""
    report = read_report(Path(report_path), "report")
    failures = merge_device_results(report, results)
    write_reports(Path(report_path).parent, report)
    return failures
