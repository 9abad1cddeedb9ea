"""Regression gate for CI: compare a build's report with an accepted baseline report.

Each artifact of the baseline is checked on the task's metrics (each in its own direction and
tolerance: accuracy may drop 0.5 points by default), latency and size. Where both reports scored
the same images one by one (`sample_scores` over equal `eval_images`), a metric's change also gets
an interval paired image by image, which `--judge significant|confident` holds against the
tolerance. Baselines written by edgecv 0.1 (report schema 1) are read through `results.upgrade_report`;
a schema version this edgecv does not know is refused.

A check the gate claims but cannot make (a metric, latency or size missing or not a finite number
in either report) is a finding that fails the gate with its reason, unless `allow_missing` lists
it as not compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from pathlib import Path

from edgecv.errors import InputError
from edgecv.files import read_json
from edgecv.results import SCHEMA_VERSION, Report
from edgecv.report.outputs import report_task
from edgecv.results import load_report
from edgecv.validate.intervals import delta_interval


def check_schema_version(raw: dict, where: str) -> None:
    """InputError unless `raw`'s schema_version is one this edgecv reads (absent: 1, edgecv 0.1)."""
    version = raw.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        raise InputError(f"{where}: report schema_version {version!r} is not one this edgecv reads (1 to "
                         f"{SCHEMA_VERSION}): a newer edgecv may have written it; gate with that version, or rebuild "
                         "the report with this one")


def read_report(path: Path, option: str, like: Optional[Report] = None) -> Report:
    """A report.json to gate on, or an InputError saying why it cannot be one: malformed, a bench
    result, no artifacts (a gate that checks nothing must not pass), another target or task than `like`."""
    from pydantic import ValidationError


    raw = read_json(path, option)
    if isinstance(raw, dict) and str(raw.get("schema", "")).startswith("edgecv.bench"):
        raise InputError(f"{option} {path} is an `edgecv bench --json` result, not a report.json: fold it into the "
                         "build's report with `edgecv report REPORT --merge RESULT`, then gate on that report")
    if not isinstance(raw, dict) or "artifacts" not in raw or "target" not in raw:
        raise InputError(f"{option} {path} is not an edgecv report.json (no target and artifacts)")
    check_schema_version(raw, f"{option} {path}")
    try:
        report = load_report(raw)
    except (ValidationError, ValueError, KeyError, TypeError, AttributeError) as e:  # a field of another type
        first = str(e).splitlines()[:3]
        raise InputError(f"{option} {path} is not a valid edgecv report.json: {' '.join(first)}") from None
    if not report.artifacts:
        raise InputError(f"{option} {path} lists no artifacts: a gate against it would check nothing")
    if like is not None:
        name, other = report.target.get("name"), like.target.get("name")
        if name != other:
            raise InputError(f"{option} {path} is a report of target {name!r}, the new report is of target {other!r}: "
                             "gate each target against its own baseline")
        task, other_task = report.task.get("name"), like.task.get("name")
        if task and other_task and task != other_task:
            raise InputError(f"{option} {path} is a {task} report, the new report is {other_task}")
    return report


@dataclass
class Tolerances:
    accuracy_drop_points: Optional[float] = None  # classification's shorthand for metric_tolerances["accuracy"]
    latency_growth_pct: float = 10.0
    size_growth_pct: float = 5.0
    latency_stat: str = "p50_ms"
    metric_tolerances: dict = field(default_factory=dict)  # metric -> allowed worsening, in its units
    # value: the measured worsening; significant / confident: the paired interval's favourable /
    # unfavourable end (as the `_significant` / `_confident` gates), where both reports scored the
    # same images one by one
    judge: str = "value"
    confidence: float = 0.95
    allow_missing: bool = False  # a check that cannot be made is listed as not compared instead of failing

    def for_metric(self, spec) -> Optional[float]:
        if spec.name in self.metric_tolerances:
            return self.metric_tolerances[spec.name]
        if spec.name == "accuracy" and self.accuracy_drop_points is not None:
            return self.accuracy_drop_points
        return spec.regression_tolerance


@dataclass
class Finding:
    artifact: str
    check: str
    baseline: Optional[float]
    current: Optional[float]
    passed: bool
    message: str
    compared: bool = True  # False: a value was missing; `passed` says whether that was allowed


def number(value) -> Optional[float]:
    """A finite number, or None (missing, a string, a bool, NaN or infinite)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def positive(value) -> Optional[float]:
    """A finite number above 0 (a latency or size to grow from), or None."""
    v = number(value)
    return v if v is not None and v > 0 else None


def _not_compared(name: str, check: str, bv, cv, tol: Tolerances, usable=number) -> Finding:
    bad = [(side, v) for side, v in (("baseline", bv), ("report", cv)) if usable(v) is None]
    why = (f"{name}: {check} not compared: missing or not a usable number in the "
           f"{' and the '.join(side for side, _ in bad)} ({', '.join(f'{side} {v!r}' for side, v in bad)})")
    how = "allowed by --allow-missing" if tol.allow_missing else "pass --allow-missing to accept this"
    return Finding(name, check, number(bv), number(cv), tol.allow_missing, f"{why}; {how}", compared=False)


def compare_reports(baseline: Report, current: Report, tol: Tolerances) -> list[Finding]:
    task = report_task(current)
    metric_specs = [m for m in (task.metrics if task is not None else ()) if tol.for_metric(m) is not None]
    out: list[Finding] = []
    cur_rows = {a.name: a for a in current.artifacts}
    for b in baseline.artifacts:
        name = b.name
        c = cur_rows.get(name)
        if c is None or c.status != "ok":
            why = "missing from the report" if c is None else f"status {c.status}"
            out.append(Finding(name, "present", None, None, False, f"{name}: in the baseline but {why}"))
            continue
        for spec in metric_specs:
            bv, cv = b.metrics.get(spec.name), c.metrics.get(spec.name)
            if number(bv) is None or number(cv) is None:
                out.append(_not_compared(name, spec.name, bv, cv, tol))
                continue
            out.append(_metric_finding(name, spec, number(bv), number(cv), tol,
                                       paired_change(spec, baseline, b, current, c, tol.confidence)))
        check = f"latency {tol.latency_stat}"
        b_lat, c_lat = (b.latency or {}).get(tol.latency_stat), (c.latency or {}).get(tol.latency_stat)
        if positive(b_lat) is None or positive(c_lat) is None:
            out.append(_not_compared(name, check, b_lat, c_lat, tol, positive))
        else:
            growth = (c_lat / b_lat - 1) * 100
            out.append(Finding(name, check, b_lat, c_lat, growth <= tol.latency_growth_pct,
                               f"{name}: latency {tol.latency_stat} {b_lat:.3f} -> {c_lat:.3f} ms ({growth:+.1f}%, "
                               f"allowed +{tol.latency_growth_pct:g}%)"))
        if positive(b.size_bytes) is None or positive(c.size_bytes) is None:
            out.append(_not_compared(name, "size", b.size_bytes, c.size_bytes, tol, positive))
        else:
            growth = (c.size_bytes / b.size_bytes - 1) * 100
            out.append(Finding(name, "size", b.size_bytes, c.size_bytes, growth <= tol.size_growth_pct,
                               f"{name}: size {b.size_bytes / 1e6:.3f} -> {c.size_bytes / 1e6:.3f} MB ({growth:+.1f}%, "
                               f"allowed +{tol.size_growth_pct:g}%)"))
    return out


def paired_change(spec, baseline: Report, b, current: Report, c, confidence: float):
    """(interval of current - baseline paired image by image, None) or (None, why not paired)."""
    if not spec.per_sample:
        return None, f"the task scores no {spec.name} per image"
    if spec.name not in b.sample_scores or spec.name not in c.sample_scores:
        return None, "a report has no per-image scores (made before edgecv 0.2 or on a device)"
    images_b, images_c = baseline.data.get("eval_images"), current.data.get("eval_images")
    if not images_b or images_b != images_c:
        return None, "the reports were validated on different images"
    return delta_interval(spec, c.sample_scores[spec.name], b.sample_scores[spec.name], confidence), None


def _metric_finding(name: str, spec, bv: float, cv: float, tol: Tolerances, paired) -> Finding:
    allowed = tol.for_metric(spec)
    sign = -1.0 if spec.higher_is_better else 1.0  # worsening = sign * (current - baseline)
    worse = sign * (cv - bv)
    word = "drop" if spec.higher_is_better else "increase"
    iv, why_not = paired
    head = (f"{name}: {spec.name} {bv:{spec.fmt}}{spec.unit} -> {cv:{spec.fmt}}{spec.unit} "
            f"({cv - bv:+{spec.fmt}}")
    if iv is None:
        tail = "" if tol.judge == "value" else f"; not paired ({why_not}): judged on the value"
        return Finding(name, spec.name, bv, cv, worse <= allowed, f"{head}, allowed {word} {allowed:g}{tail})")
    low, high = sorted((sign * iv.low, sign * iv.high))
    judged = {"value": worse, "significant": low, "confident": high}[tol.judge]
    rule = {"value": "judged on the value", "significant": "fails only when the whole interval is above it",
            "confident": "passes only when the whole interval is within it"}[tol.judge]
    where = "" if iv.discordant is None else f", {iv.discordant['gained']} images gained, {iv.discordant['lost']} lost"
    return Finding(name, spec.name, bv, cv, judged <= allowed,
                   f"{head}; {word} {worse:{spec.fmt}}, paired {iv.confidence * 100:g}% interval "
                   f"{low:{spec.fmt}} to {high:{spec.fmt}} over {iv.n} images{where}; allowed {word} {allowed:g}, "
                   f"{rule})")
