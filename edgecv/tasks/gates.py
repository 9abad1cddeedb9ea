"""The gates a target may state: their names and meaning (which number, min or max, unit). Every task
has the generic ones (latency, size, per-output agreement); a task adds its own, and for each of its
gates on a metric scored per sample the `_significant` and `_confident` forms judged on the metric's
confidence interval. Data only: config checks gate names with it, edgecv.validate.gates judges them.
"""

from __future__ import annotations

from dataclasses import replace

from edgecv.tasks.base import GateSpec
from edgecv.tasks import all_task_classes

GENERIC_GATES: tuple[GateSpec, ...] = (
    GateSpec("latency_p50_ms_max", "latency", "p50_ms", "max", unit=" ms", description="median latency at the first batch size"),
    GateSpec("latency_p90_ms_max", "latency", "p90_ms", "max", unit=" ms", description="90th percentile latency"),
    GateSpec("size_mb_max", "size", "size_mb", "max", unit=" MB", description="artifact file size"),
    GateSpec("output_max_abs_error_max", "outputs", "max_abs_error", "max",
             description="largest absolute difference from the float outputs (worst output)"),
    GateSpec("output_mean_abs_error_max", "outputs", "mean_abs_error", "max",
             description="mean absolute difference from the float outputs (worst output)"),
    GateSpec("output_cosine_min", "outputs", "cosine_similarity", "min",
             description="mean cosine similarity with the float outputs (worst output)"),
    GateSpec("output_snr_db_min", "outputs", "snr_db", "min", unit=" dB",
             description="signal-to-noise ratio against the float outputs (worst output)"),
)


JUDGES = {  # suffix -> what the gate holds against its limit, for `edgecv tasks` and the docs
    "significant": "fails only when the whole confidence interval is past the limit (a significant miss)",
    "confident": "passes only when the whole confidence interval is within the limit",
}


def interval_gates(task) -> tuple[GateSpec, ...]:
    """`<gate>_significant` and `<gate>_confident` for each of a task's (class or instance) gates
    on a metric it scores per sample: judged on the confidence interval instead of the value."""
    per_sample = {m.name for m in task.metrics if m.per_sample}
    return tuple(replace(g, name=f"{g.name}_{judge}", judge=judge, description=f"{g.description}: {words}")
                 for g in task.gates if g.source in ("metrics", "deltas") and g.key in per_sample
                 for judge, words in JUDGES.items())


def task_gates(task) -> tuple[GateSpec, ...]:
    """A task's gates with their interval forms."""
    return (*task.gates, *interval_gates(task))


def task_gate_table(task) -> dict[str, GateSpec]:
    return {g.name: g for g in (*GENERIC_GATES, *(task_gates(task) if task is not None else ()))}


def known_gate_names() -> set[str]:
    """Every gate a target file may state: generic ones and every known task's."""
    return {g.name for g in GENERIC_GATES} | {g.name for cls in all_task_classes() for g in task_gates(cls)}
