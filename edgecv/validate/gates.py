"""Check an artifact's measured numbers against a target's gates.

A gate is `{name: limit}`. Its meaning (which number, min or max, unit) comes from a table: the
gates every task has (latency, size, per-output agreement) plus the gates of the build's task, and
for each task gate on a metric scored per sample its `_significant` and `_confident` forms, judged
on the metric's confidence interval (edgecv.validate.intervals) rather than its value.
"""

from __future__ import annotations

from typing import Iterable, Optional

from edgecv.results import ArtifactResult, GateResult, Interval
from edgecv.tasks.base import GateSpec
from edgecv.tasks.gates import (GENERIC_GATES, JUDGES, interval_gates, known_gate_names,  # noqa: F401
                                task_gate_table, task_gates)


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


def _check_interval(artifact: str, spec: GateSpec, limit: float, value: Optional[float], iv: Optional[Interval],
                    why: str) -> GateResult:
    """A `_significant` gate holds the interval's favourable end against the limit (a one-image
    flip passes, a loss the interval is sure of fails); a `_confident` gate its unfavourable end."""
    if value is None or iv is None:
        g = _check(artifact, spec, limit, value, why)
        if value is not None:
            g.message += f" (no confidence interval for {spec.key} here: judged on the measured value)"
        return g
    low, high = sorted((spec.sign * iv.low + 0.0, spec.sign * iv.high + 0.0))
    at_max = spec.bound == "max"
    use_low = at_max == (spec.judge == "significant")  # the favourable end of a max gate is the low one
    end = low if use_low else high
    passed = end <= limit if at_max else end >= limit
    u = spec.unit
    if spec.judge == "significant":
        rule = f"fails only when the whole interval is {'above' if at_max else 'below'} {limit:g}{u}"
    else:
        rule = f"passes only when the whole interval is {'at most' if at_max else 'at least'} {limit:g}{u}"
    msg = (f"{artifact}: {spec.name} {'passed' if passed else 'FAILED'}: measured {value + 0.0:.4g}{u}, "
           f"{iv.confidence * 100:g}% interval {low:.4g} to {high:.4g}{u} (n={iv.n}); {rule} "
           f"(its {'low' if use_low else 'high'} end {end:.4g}{u})")
    return GateResult(gate=spec.name, limit=float(limit), value=float(value) + 0.0, passed=passed, message=msg, unit=u,
                      judged_on="interval low" if use_low else "interval high", interval=[low, high],
                      confidence=iv.confidence)


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
        value = None if raw is None else spec.sign * raw
        if spec.judge == "value":
            out.append(_check(result.name, spec, limit, value, why))
        else:
            out.append(_check_interval(result.name, spec, limit, value, result.interval(spec.source, spec.key), why))
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
        rows += [(g.name, cls.name, g.description) for g in task_gates(cls)]
    return rows
