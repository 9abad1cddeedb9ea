"""Check an artifact's measured numbers against a target's gates."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional


@dataclass
class GateResult:
    gate: str
    limit: float
    value: Optional[float]
    passed: Optional[bool]  # None: not measured here (e.g. numeric validation needs macOS)
    message: str

    def to_json(self) -> dict:
        return asdict(self)


# gate name -> (how to read the value from an artifact result dict, "min" or "max", unit for messages)
GATE_READERS = {
    "accuracy_min": (lambda r: r.get("metrics", {}).get("accuracy"), "min", "%"),
    "accuracy_drop_max": (lambda r: None if r.get("accuracy_delta") is None else -r["accuracy_delta"], "max", " points"),
    "top1_agreement_min": (lambda r: (r.get("agreement") or {}).get("top1_agreement"), "min", ""),
    "latency_p50_ms_max": (lambda r: (r.get("latency") or {}).get("p50_ms"), "max", " ms"),
    "latency_p90_ms_max": (lambda r: (r.get("latency") or {}).get("p90_ms"), "max", " ms"),
    "size_mb_max": (lambda r: None if r.get("size_bytes") is None else r["size_bytes"] / 1e6, "max", " MB"),
}


def check_gates(artifact_name: str, result: dict, gates: dict) -> list[GateResult]:
    """`result` is the artifact's report entry; `gates` maps gate name -> limit (None = unchecked)."""
    out = []
    for gate, limit in gates.items():
        if limit is None:
            continue
        read, kind, unit = GATE_READERS[gate]
        value = read(result)
        if value is None:
            why = (result.get("validation") or {}).get("reason") or "the value was not measured"
            out.append(GateResult(gate, limit, None, None, f"{artifact_name}: {gate} not checked: {why}"))
            continue
        passed = value >= limit if kind == "min" else value <= limit
        word = "at least" if kind == "min" else "at most"
        msg = f"{artifact_name}: {gate} {'passed' if passed else 'FAILED'}: measured {value:.4g}{unit}, limit {word} {limit:g}{unit}"
        out.append(GateResult(gate, float(limit), float(value), passed, msg))
    return out
