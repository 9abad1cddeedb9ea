"""Check an artifact's measured numbers against a target's gates.

A gate is `{name: limit}`. Its meaning (which number, min or max, unit) comes from a table: the
gates every task has (latency, size, per-output agreement) plus the gates of the build's task.
"""

from __future__ import annotations

from typing import Iterable, Optional

from edgecv.results import ArtifactResult, GateResult
from edgecv.tasks.base import GateSpec

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


def task_gate_table(task) -> dict[str, GateSpec]:
    return {g.name: g for g in (*GENERIC_GATES, *(task.gates if task is not None else ()))}


def known_gate_names() -> set[str]:
    """Every gate a target file may state: generic ones and every known task's."""
    from edgecv.tasks import all_task_classes

    return {g.name for g in GENERIC_GATES} | {g.name for cls in all_task_classes() for g in cls.gates}


def _check(artifact: str, spec: GateSpec, limit: float, value: Optional[float], why: str) -> GateResult:
    if value is None:
        return GateResult(gate=spec.name, limit=float(limit), value=None, passed=None, unit=spec.unit,
                          message=f"{artifact}: {spec.name} not checked: {why}")
    value += 0.0  # a zero drop is 0, not -0
    passed = value >= limit if spec.bound == "min" else value <= limit
    word = "at least" if spec.bound == "min" else "at most"
    msg = (f"{artifact}: {spec.name} {'passed' if passed else 'FAILED'}: measured {value:.4g}{spec.unit}, "
           f"limit {word} {limit:g}{spec.unit}")
    return GateResult(gate=spec.name, limit=float(limit), value=float(value), passed=passed, message=msg, unit=spec.unit)


def check_gates(result: ArtifactResult, limits: dict, task, tolerances: Optional[dict] = None,
                source: str = "build") -> list[GateResult]:
    """`limits` maps gate name -> limit (None = unchecked); `tolerances` maps an output name (or
    '*') to {atol, rtol}. A gate of another task is skipped: it does not apply to this model."""
    table = task_gate_table(task)
    why = (result.validation.reason if result.validation and result.validation.reason else None) or \
        "the value was not measured"
    out = []
    for name, limit in limits.items():
        if limit is None or name not in table:
            continue
        spec = table[name]
        raw = result.value(spec.source, spec.key)
        out.append(_check(result.name, spec, limit, None if raw is None else spec.sign * raw, why))
    for output, tol in (tolerances or {}).items():
        atol, rtol = (tol["atol"], tol["rtol"]) if isinstance(tol, dict) else (tol.atol, tol.rtol)
        names = list(result.outputs) if output == "*" else [output]
        for n in names:
            spec = GateSpec(f"tolerance:{n}", "outputs", "max_tolerance_excess", "max",
                            description=f"|c - r| - {rtol:g}*|r| on output {n}")
            o = result.outputs.get(n)
            value = None if o is None else o.max_tolerance_excess
            out.append(_check(result.name, spec, atol, value,
                              why if o is None and result.outputs == {} else f"no output named {n}"
                              if o is None else why))
    for g in out:
        g.source = source
    return out


def not_applicable(limits: dict, task) -> list[str]:
    """Gates stated in a target that the build's task does not offer (shown as a note)."""
    table = task_gate_table(task)
    return sorted(n for n, v in limits.items() if v is not None and n not in table)


def gate_descriptions(tasks: Iterable) -> list[tuple[str, str, str]]:
    """(gate, applies to, description) for `edgecv gates`."""
    rows = [(g.name, "every task", g.description) for g in GENERIC_GATES]
    rows.append(("tolerances: {OUTPUT: {atol, rtol}}", "every task", "every element |c - r| <= atol + rtol*|r|"))
    for cls in tasks:
        rows += [(g.name, cls.name, g.description) for g in cls.gates]
    return rows
