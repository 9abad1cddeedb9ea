"""Typed results: one artifact's outcome and a target's report.

Gates, reports (JSON, HTML, Markdown, JUnit), `report --merge`, `edgecv gate` and
`engine validate` all read these models; `report.schema.json` is generated from them
(`python -m edgecv.results > edgecv/report/report.schema.json`). Pydantic only, no TensorFlow,
so devices read and write them too. Task-specific numbers live in the `metrics`, `deltas` and
`agreement` maps, keyed by the task's metric names.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from pydantic import BaseModel, ConfigDict, Field
from edgecv.errors import InputError, did_you_mean

SCHEMA_VERSION = 2
SCHEMA1_OUTPUT = "probabilities"  # schema 1 knew one task (classification) and its one output


class Model(BaseModel):
    # SNR of identical outputs is +inf: keep it as JSON's Infinity (as json.dumps does), not null
    model_config = ConfigDict(ser_json_inf_nan="constants")


class Open(Model):
    """Known fields typed; extra keys kept (exporter metadata, future fields)."""

    model_config = ConfigDict(extra="allow", ser_json_inf_nan="constants")


class Interval(Model):
    """A confidence interval of a metric, or of its change against the float model (paired)."""

    low: float
    high: float
    confidence: float = Field(..., description="e.g. 0.95")
    method: str = Field(..., description="wilson | newcombe paired (method 10) | (paired) bootstrap percentile ...")
    n: int = Field(..., description="samples it rests on")
    p_value: Optional[float] = Field(None, description="paired change of a share: exact McNemar p-value (1: no "
                                                       "evidence of any difference)")
    discordant: Optional[Dict[str, int]] = Field(
        None, description="paired change of a share: samples the artifact gets right and the reference wrong "
                          "(gained), and the reverse (lost)")


class GateResult(Model):
    gate: str
    limit: float
    value: Optional[float] = None
    passed: Optional[bool] = Field(None, description="None: not measured here (e.g. numeric validation needs macOS)")
    message: str
    unit: str = ""
    source: str = Field("build", description="build: measured by the build host; device: merged from `edgecv bench`")
    judged_on: str = Field("value", description="value | interval low | interval high: what was held against the "
                                                "limit (`_significant` / `_confident` gates judge an interval end)")
    interval: Optional[List[float]] = Field(None, description="[low, high] of the gate's value (a drop, not a delta)")
    confidence: Optional[float] = None


class OutputAgreement(Model):
    """One named output of the artifact against the float model's (Polygraphy's comparator)."""

    shape: List[int]
    max_abs_error: float
    mean_abs_error: float
    cosine_similarity: float = Field(..., description="mean over samples")
    snr_db: float = Field(..., description="signal: reference; noise: candidate - reference")
    max_tolerance_excess: Optional[float] = Field(
        None, description="max(|c - r| - rtol*|r|) for the artifact's `tolerances` gate (pass if <= atol)")


class Validation(Model):
    numeric: bool
    reason: Optional[str] = None
    runtime_settings: Optional[Dict[str, Any]] = None


class SessionOptions(Model):
    """onnxruntime: the int8 arithmetic an ONNX artifact ran with (edgecv/formats/onnx/session.py).
    The same file can score differently under onnxruntime's fused int8 kernels on two CPUs, so the
    report says which arithmetic produced its numbers."""

    int8_semantics: str = Field(..., description="qdq (Q/DQ as written, TensorRT's arithmetic) | s8s8 | u8u8 | "
                                                 "native (onnxruntime's fused kernels for this CPU)")
    session_config: Dict[str, str] = Field(default_factory=dict,
                                           description="session config entries the session held ({}: its defaults)")
    meaning: str = ""
    why: str = Field("", description="the default for this artifact, or the target's runtime.options")
    qdq_nodes: Optional[bool] = Field(None, description="the graph holds QuantizeLinear/DequantizeLinear nodes")


class ArtifactResult(Open):
    name: str
    format: str
    precision: str
    status: str = Field(..., description="ok | failed | not_built")
    error: Optional[str] = None
    traceback: Optional[str] = None
    reason: Optional[str] = Field(None, description="not_built: why this machine cannot build it")
    how_to_finish: Optional[str] = Field(None, description="not_built: the command that finishes it on the device")
    prepared: Optional[str] = None
    path: Optional[str] = None
    sha256: Optional[str] = None
    size_bytes: Optional[int] = None
    gzip_bytes: Optional[int] = None
    input_size: Optional[List[int]] = None
    checks: Dict[str, Any] = Field(default_factory=dict)
    artifact_metadata: Dict[str, Any] = Field(default_factory=dict)
    quantization: List[str] = Field(
        default_factory=list, description="post-training int8 techniques applied (bias_correction, float_output ...)")
    validation: Optional[Validation] = None
    metrics: Dict[str, Any] = Field(default_factory=dict, description="the task's metrics against the targets")
    deltas: Dict[str, float] = Field(default_factory=dict, description="metric - the float reference's metric")
    sample_scores: Dict[str, List[Optional[float]]] = Field(
        default_factory=dict, description="per metric the task scores per sample: one value per `data.eval_images` "
                                          "entry (a share: 0 or 1; a mean: the sample's value; null: left out)")
    intervals: Dict[str, Interval] = Field(default_factory=dict, description="confidence interval of each metric")
    delta_intervals: Dict[str, Interval] = Field(
        default_factory=dict, description="confidence interval of each delta, paired over the same samples")
    agreement: Dict[str, Any] = Field(default_factory=dict, description="the task's agreement with the float outputs")
    outputs: Dict[str, OutputAgreement] = Field(default_factory=dict, description="per named output")
    nonfinite_outputs: int = 0
    notes: List[str] = Field(default_factory=list)
    latency: Optional[Dict[str, Any]] = None
    latency_by_batch: List[Dict[str, Any]] = Field(default_factory=list)
    load_seconds: Optional[float] = None
    memory: Optional[Dict[str, Any]] = None
    runtime: Optional[Dict[str, Any]] = None
    session_options: Optional[SessionOptions] = Field(None, description="onnxruntime artifacts: how int8 ran")
    gates: List[GateResult] = Field(default_factory=list)
    passes: List[Dict[str, Any]] = Field(default_factory=list)
    device_results: List[Dict[str, Any]] = Field(default_factory=list)
    keys: Dict[str, str] = Field(default_factory=dict)
    seconds: Optional[float] = None

    @property
    def failed_gates(self) -> List[GateResult]:
        return [g for g in self.gates if g.passed is False]

    def value(self, source: str, key: str) -> Optional[float]:
        """A number by (source, key), as gates and report columns address them."""
        if source in ("metrics", "deltas", "agreement"):
            v = getattr(self, source).get(key)
        elif source == "latency":
            v = (self.latency or {}).get(key)
        elif source == "size":
            v = None if self.size_bytes is None else self.size_bytes / 1e6
        elif source == "outputs":  # worst over outputs: key is an OutputAgreement field
            vals = [getattr(o, key) for o in self.outputs.values() if getattr(o, key) is not None]
            worse_is_high = key in ("max_abs_error", "mean_abs_error", "max_tolerance_excess")
            v = (max(vals) if worse_is_high else min(vals)) if vals else None
        else:
            raise KeyError(f"unknown result source {source!r}")
        return None if v is None else float(v)

    def interval(self, source: str, key: str) -> Optional[Interval]:
        """The confidence interval of a metric or a delta (None: the task gives none for it)."""
        return {"metrics": self.intervals, "deltas": self.delta_intervals}.get(source, {}).get(key)


class Reference(Open):
    format: str = "keras"
    file: str = "../reference.npz"
    sha256: Optional[str] = None
    metrics: Dict[str, Any] = Field(default_factory=dict)
    sample_scores: Dict[str, List[Optional[float]]] = Field(default_factory=dict, description="as an artifact's")
    intervals: Dict[str, Interval] = Field(default_factory=dict, description="confidence interval of each metric")
    outputs: List[Dict[str, Any]] = Field(default_factory=list, description="output spec: name, shape, dtype, meaning")


class Report(Open):
    schema_version: int = SCHEMA_VERSION
    edgecv_version: str
    created: str
    target: Dict[str, Any]
    recipe: Dict[str, Any]
    task: Dict[str, Any] = Field(default_factory=dict, description="name and options")
    task_info: Dict[str, Any] = Field(default_factory=dict, description="class names, keypoint names ...")
    data: Dict[str, Any] = Field(default_factory=dict)
    calibration: Optional[Dict[str, Any]] = None
    training: Dict[str, Any] = Field(default_factory=dict)
    reference: Reference = Field(default_factory=Reference)
    environment: Dict[str, Any] = Field(default_factory=dict)
    gates_enforced: bool = True
    artifacts: List[ArtifactResult]
    stages: List[Dict[str, Any]] = Field(default_factory=list)

    def to_json(self) -> dict:
        return json.loads(self.model_dump_json())

    def artifact(self, name: str) -> ArtifactResult:
        """The artifact named `name` in the target file (`int8`, `fp32` ...)."""
        for a in self.artifacts:
            if a.name == name:
                return a

        known = [a.name for a in self.artifacts]
        raise InputError(f"no artifact {name!r}{did_you_mean(name, known)}; this report has {', '.join(known)}")


class BenchResult(Open):
    """What `edgecv bench` measured (its `--json` file; `edgecv report --merge` reads it)."""

    artifact: Dict[str, Any] = Field(..., description="path, name, format, sha256, size_bytes, gzip_bytes")
    device: Dict[str, Any] = Field(default_factory=dict, description="cpu, cpu_count ... of the machine it ran on")
    runtime: Dict[str, Any] = Field(default_factory=dict)
    threads: Optional[int] = None
    load_seconds: float
    first_inference_ms: Optional[float] = None
    memory: Dict[str, Any] = Field(default_factory=dict)
    latency: Dict[str, Any] = Field(default_factory=dict, description="the first batch size's latency")
    latency_by_batch: List[Dict[str, Any]] = Field(default_factory=list)
    accuracy: Optional[Dict[str, Any]] = Field(None, description="top1, top5 (percent), images, skipped")
    metrics: Dict[str, Any] = Field(default_factory=dict)
    outputs: Dict[str, List[int]] = Field(default_factory=dict, description="each output's shape on --data "
                                          "(images first)")

    def to_json(self) -> dict:
        return json.loads(self.model_dump_json())


def upgrade_report(raw: dict) -> dict:
    """A schema-1 report (edgecv 0.1, classification only) in schema-2 terms, so that old
    baselines still work with `edgecv gate`."""
    if raw.get("schema_version", 1) >= 2:
        return raw
    out = dict(raw, schema_version=SCHEMA_VERSION, task={"name": raw.get("recipe", {}).get("task", "classification")})
    out["task_info"] = {"class_names": raw.get("data", {}).get("classes", [])}
    ref = dict(raw.get("reference") or {})
    ref["metrics"] = {k: ref.pop(k) for k in ("accuracy", "top5_accuracy", "per_class_recall") if k in ref}
    out["reference"] = ref
    arts = []
    for a in raw.get("artifacts", []):
        a = dict(a)
        if a.get("accuracy_delta") is not None:
            a["deltas"] = {"accuracy": a.pop("accuracy_delta")}
        else:
            a.pop("accuracy_delta", None)
        agr = a.pop("agreement", None) or {}
        if agr:
            a["agreement"] = {"top1_agreement": agr.get("top1_agreement")}
            a["outputs"] = {SCHEMA1_OUTPUT: {"shape": [], **{k: agr[k] for k in ("max_abs_error", "mean_abs_error",
                                                                         "cosine_similarity", "snr_db")}}}
        arts.append(a)
    out["artifacts"] = arts
    return out


def load_report(raw: dict) -> Report:
    return Report.model_validate(upgrade_report(raw))


def report_schema() -> dict:
    schema = Report.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "edgecv target report"
    return schema


if __name__ == "__main__":
    print(json.dumps(report_schema(), indent=2))
