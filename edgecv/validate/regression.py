"""Regression gate for CI: compare a build's report with an accepted baseline report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class Tolerances:
    accuracy_drop_points: float = 0.5
    latency_growth_pct: float = 10.0
    size_growth_pct: float = 5.0
    latency_stat: str = "p50_ms"


@dataclass
class Finding:
    artifact: str
    check: str
    baseline: Optional[float]
    current: Optional[float]
    passed: bool
    message: str


def _rows(report: dict) -> dict[str, dict]:
    return {a["name"]: a for a in report.get("artifacts", [])}


def compare_reports(baseline: dict, current: dict, tol: Tolerances) -> list[Finding]:
    out: list[Finding] = []
    base_rows, cur_rows = _rows(baseline), _rows(current)
    for name, b in base_rows.items():
        c = cur_rows.get(name)
        if c is None or c.get("status") != "ok":
            why = "missing from the report" if c is None else f"status {c.get('status')}"
            out.append(Finding(name, "present", None, None, False, f"{name}: in the baseline but {why}"))
            continue
        b_acc, c_acc = (b.get("metrics") or {}).get("accuracy"), (c.get("metrics") or {}).get("accuracy")
        if b_acc is not None and c_acc is not None:
            drop = b_acc - c_acc
            ok = drop <= tol.accuracy_drop_points
            out.append(Finding(name, "accuracy", b_acc, c_acc, ok,
                               f"{name}: accuracy {b_acc:.2f}% -> {c_acc:.2f}% ({-drop:+.2f} points, "
                               f"allowed drop {tol.accuracy_drop_points:g})"))
        b_lat, c_lat = (b.get("latency") or {}).get(tol.latency_stat), (c.get("latency") or {}).get(tol.latency_stat)
        if b_lat and c_lat is not None:
            growth = (c_lat / b_lat - 1) * 100
            ok = growth <= tol.latency_growth_pct
            out.append(Finding(name, f"latency {tol.latency_stat}", b_lat, c_lat, ok,
                               f"{name}: latency {tol.latency_stat} {b_lat:.3f} -> {c_lat:.3f} ms ({growth:+.1f}%, "
                               f"allowed +{tol.latency_growth_pct:g}%)"))
        b_size, c_size = b.get("size_bytes"), c.get("size_bytes")
        if b_size and c_size is not None:
            growth = (c_size / b_size - 1) * 100
            ok = growth <= tol.size_growth_pct
            out.append(Finding(name, "size", b_size, c_size, ok,
                               f"{name}: size {b_size / 1e6:.3f} -> {c_size / 1e6:.3f} MB ({growth:+.1f}%, "
                               f"allowed +{tol.size_growth_pct:g}%)"))
    return out
