"""A target file (`targets/NAME.yaml`): which artifacts a device gets, how they are measured, gates."""

from __future__ import annotations

from typing import Dict, List, Literal, Optional, Union

from pydantic import ConfigDict, Field, field_validator, model_validator

from edgecv.config.recipe import SafeName, Strict
from edgecv.errors import did_you_mean
from edgecv.tasks.gates import known_gate_names

Precision = Literal["fp32", "fp16", "int8"]


class Tolerance(Strict):
    """Polygraphy-style closeness of one output to the float model's: |c - r| <= atol + rtol * |r|."""

    atol: float = Field(0.0, ge=0)
    rtol: float = Field(0.0, ge=0)


class Gates(Strict):
    """Limits an artifact must meet, `{gate: limit}`; a missing limit is not checked.

    Latency, size and per-output gates apply to every task; the rest come from the tasks' gate
    tables (`edgecv gates` lists them). A target file serves builds of any task: a gate of another
    task is reported as not applicable, a name no task knows is an error.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    latency_p50_ms_max: Optional[float] = Field(None, gt=0)
    latency_p90_ms_max: Optional[float] = Field(None, gt=0)
    size_mb_max: Optional[float] = Field(None, gt=0)
    confidence: Optional[float] = Field(None, gt=0.5, lt=1, description="level of the reported confidence intervals "
                                        "and of the `_significant` / `_confident` gates (default 0.95)")
    tolerances: Dict[str, Tolerance] = Field(default_factory=dict,
                                             description="per output name (or '*'): {atol, rtol}")

    @model_validator(mode="after")
    def _known_gates(self) -> "Gates":
        known = known_gate_names()
        for name, value in (self.model_extra or {}).items():
            if name not in known:
                close = did_you_mean(name, known)
                raise ValueError(f"unknown gate `{name}`{close}" + ("; `edgecv tasks` lists every gate" if close else
                                 f"; known gates: {', '.join(sorted(known))} (`edgecv tasks` says what each means)"))
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"gate `{name}` needs a number, not {value!r}")
        return self

    def limits(self) -> dict[str, float]:
        """Every stated numeric limit by gate name."""
        fields = {k: getattr(self, k) for k in ("latency_p50_ms_max", "latency_p90_ms_max", "size_mb_max")}
        return {k: float(v) for k, v in {**fields, **(self.model_extra or {})}.items() if v is not None}

    def __getattr__(self, name: str):  # `gates.accuracy_drop_max` reads an unset task gate as None
        if name.startswith("_"):
            raise AttributeError(name)
        extra = self.__pydantic_extra__ or {}

        if name in extra or name in known_gate_names():
            return extra.get(name)
        raise AttributeError(name)


class RuntimeSettings(Strict):
    @property
    def batches(self) -> list[int]:
        return [self.batch] if isinstance(self.batch, int) else list(self.batch)

    @model_validator(mode="after")
    def _positive_batches(self) -> "RuntimeSettings":
        if not self.batches or min(self.batches) < 1:
            raise ValueError(f"batch must be a positive size or a list of them, not {self.batch}")
        return self

    threads: Optional[int] = Field(None, ge=1, description="CPU threads the runtime may use")
    batch: Union[int, List[int]] = Field(1, description="batch size(s) for latency: 1 or [1, 8]")
    options: dict = Field(default_factory=dict, description="runtime-specific settings, e.g. ONNX Runtime providers")


FORMAT_ALIASES: Dict[str, str] = {"saved_model": "savedmodel", "engine": "tensorrt"}  # other names a target may use


class ArtifactSpec(Strict):
    name: SafeName
    format: str = Field(..., description="exporter name: see `edgecv formats`")
    precision: Precision = "fp32"
    io_dtype: Optional[Literal["uint8", "int8", "float32"]] = Field(
        None, description="input/output type (int8 TFLite); default uint8 for int8, float32 otherwise"
    )
    allow_float_ops: bool = Field(False, description="int8: accept float ops the converter could not quantize")
    options: dict = Field(default_factory=dict, description="exporter-specific settings")
    passes: List[dict] = Field(default_factory=list, description="model passes before export: [{name: prune, ...}]")
    gates: Optional[Gates] = Field(None, description="overrides the target's gates for this artifact")

    @field_validator("format", mode="before")
    @classmethod
    def _known_alias(cls, value):
        return FORMAT_ALIASES.get(value, value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _io_dtype_fits(self) -> "ArtifactSpec":
        if self.io_dtype in ("uint8", "int8") and self.precision != "int8":
            raise ValueError(f"io_dtype {self.io_dtype} needs precision int8, not {self.precision}")
        return self

    @property
    def resolved_io_dtype(self) -> str:
        return self.io_dtype or ("uint8" if self.precision == "int8" else "float32")


class Target(Strict):
    name: SafeName = Field(..., description="the target folder's name (default: the file's name)")
    description: str
    artifacts: List[ArtifactSpec] = Field(..., min_length=1)
    runtime: RuntimeSettings = RuntimeSettings()
    gates: Gates = Gates()

    @model_validator(mode="after")
    def _unique_names(self) -> "Target":
        names = [a.name for a in self.artifacts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"artifact names must be unique; repeated: {dupes}")
        return self

    def gates_for(self, artifact: ArtifactSpec, defaults: Optional[Gates] = None) -> Gates:
        return effective_gates(defaults, self, artifact)


def effective_gates(defaults: Optional[Gates], target: Union["Target", Gates, None],
                    artifact: Union[ArtifactSpec, Gates, None] = None) -> Gates:
    """The gates an artifact is judged by (edgecv's one place that resolves them): the recipe's
    `defaults` (a task's own limits), then the target's, then the artifact's own; a later one wins
    per gate, tolerances per output. `target` and `artifact` may be given as their Gates (a
    report's stored target)."""
    layers = [defaults, target.gates if isinstance(target, Target) else target,
              artifact.gates if isinstance(artifact, ArtifactSpec) else artifact]
    merged: dict = {}
    tolerances: dict = {}
    for g in layers:
        if g is not None:
            merged.update(g.model_dump(exclude_none=True, exclude={"tolerances"}))
            tolerances.update(g.tolerances)
    return Gates(**merged, tolerances=tolerances)
