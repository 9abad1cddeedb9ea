"""The shape of an `edgecv bench --json` result as `report --merge` reads it: every field the merge,
the gates and the reports use has its type checked first, so a hand-edited or foreign file is bad
input (exit 2, the field named), never a crash half-way through rewriting the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from edgecv.errors import InputError

BENCH_SCHEMA = "edgecv.bench/1"


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class ArtifactRef(_Open):
    name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Latency(_Open):
    p50_ms: float = Field(ge=0, allow_inf_nan=False)
    p90_ms: Optional[float] = Field(None, ge=0, allow_inf_nan=False)
    p99_ms: Optional[float] = Field(None, ge=0, allow_inf_nan=False)
    mean_ms: Optional[float] = Field(None, ge=0, allow_inf_nan=False)
    std_ms: Optional[float] = Field(None, ge=0, allow_inf_nan=False)
    first_ms: Optional[float] = Field(None, ge=0, allow_inf_nan=False)
    throughput_ips: Optional[float] = Field(None, ge=0, allow_inf_nan=False)
    batch: Optional[StrictInt] = Field(None, ge=1)
    runs: Optional[StrictInt] = Field(None, ge=0)
    warmup: Optional[StrictInt] = Field(None, ge=0)


class Device(_Open):
    board: Optional[str] = None
    cpu: Optional[str] = None
    hostname: Optional[str] = None
    cpu_count: Optional[StrictInt] = None


class Runtime(_Open):
    library: Optional[str] = None
    session_options: Optional[dict] = None


class Accuracy(_Open):
    top1: Optional[float] = Field(None, allow_inf_nan=False)
    top5: Optional[float] = Field(None, allow_inf_nan=False)
    images: Optional[StrictInt] = Field(None, ge=0)
    skipped: Optional[StrictInt] = Field(None, ge=0)


class Remote(_Open):
    host: Optional[str] = None
    python: Optional[str] = None
    workdir: Optional[str] = None


class BenchResult(_Open):
    schema_: Literal["edgecv.bench/1"] = Field(alias="schema")
    created: Optional[str] = None
    artifact: ArtifactRef
    device: Optional[Device] = None
    threads: Optional[StrictInt] = None
    runtime: Optional[Runtime] = None
    load_seconds: Optional[float] = Field(None, ge=0, allow_inf_nan=False)
    first_inference_ms: Optional[float] = Field(None, ge=0, allow_inf_nan=False)
    memory: Optional[Dict[str, Any]] = None
    latency: Latency
    latency_by_batch: List[Latency] = []
    accuracy: Optional[Accuracy] = None
    metrics: Optional[Dict[str, Optional[float]]] = None
    remote: Optional[Remote] = None


def check_bench_result(raw: Any, where: Path) -> dict:
    """`raw` when it is a well-formed bench result, else an InputError naming the first fields wrong."""
    if not isinstance(raw, dict):
        raise InputError(f"--merge {where} is not an `edgecv bench --json` result (a {type(raw).__name__}, not a "
                         "JSON object)")
    if raw.get("schema") != BENCH_SCHEMA:
        raise InputError(f"--merge {where} is not an `edgecv bench --json` result (schema {str(raw.get('schema'))[:60]!r}, "
                         f"expected {BENCH_SCHEMA!r})")
    try:
        BenchResult.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or '(top level)'}: {err['msg']}"
                             for err in e.errors()[:4])
        more = f" (and {e.error_count() - 4} more)" if e.error_count() > 4 else ""
        raise InputError(f"--merge {where} is not a valid `edgecv bench --json` result: {problems}{more}") from None
    return raw
