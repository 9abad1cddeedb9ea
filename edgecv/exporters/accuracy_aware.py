"""Accuracy-aware int8: when full int8 misses the artifact's accuracy gate, keep the layers that
lose most to quantization in float, one step at a time, until the gate passes or the step budget
is spent.

Chosen in a target file as an exporter option of an int8 TFLite or ONNX artifact, not as a pass:

    - name: int8
      format: tflite
      precision: int8
      options: {accuracy_aware: {max_steps: 8, layers_per_step: 1}}
      gates: {accuracy_drop_max: 0.5}

Why an exporter option: a pass maps a Keras model to a Keras model before export, but this loop's
unit is the converted artifact. Which layers stay float is a converter setting (TFLite's
`denylisted_nodes`, ONNX Runtime's `nodes_to_exclude`), and the decision needs that artifact's
accuracy under the target's runtime against the artifact's own gate, measured exactly as the build
validates it. So the exporter runs the loop and the build lends it one callback,
`ExportContext.evaluate(path)`, which validates a candidate file on the build's validation images
with the artifact's runtime and checks the artifact's accuracy gates (latency and size gates are
left to the final check: keeping layers float can only make those worse).

The loop itself (`search`) knows nothing about formats: it takes the ranked layer names, a
function that builds a candidate with some layers kept float, and the evaluate callback. TFLite
ranks ops with the QuantizationDebugger (`edgecv.validate.diagnose`) and re-quantizes with a
denylist without calibrating again. QDQ ONNX (`format: onnx`, precision int8) uses the same
ranking on the same Keras layers and re-runs onnxruntime's quantize_static with those layers in
`exclude_nodes`.

What it reports (artifact metadata `accuracy_aware`): the ranking it used, each step (layers added,
accuracy, agreement, whether the gate passed, size), the layers that stayed float, and what that
cost against the all-int8 candidate in size and latency. When the budget runs out, the last
candidate (most layers float) is kept and the build's gate check fails as usual.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from pydantic import Field

from edgecv.config.recipe import Strict
from edgecv.errors import ConversionError

ACCURACY_GATES = ("accuracy_min", "accuracy_drop_max", "top1_agreement_min")


class AccuracyAwareConfig(Strict):
    max_steps: int = Field(8, ge=1, description="re-conversions allowed after the all-int8 one")
    layers_per_step: int = Field(1, ge=1, description="layers moved to float per step, worst first")
    debug_samples: int = Field(32, ge=1, description="calibration images the per-layer diagnosis runs on")


def check_options(spec) -> None:
    """While planning: accuracy_aware needs int8, valid settings and an accuracy gate to aim for
    (`spec.gates` holds the effective gates when the build checks the plan)."""
    from edgecv.errors import ConfigError
    from edgecv.exporters.base import parse_options

    if "accuracy_aware" not in spec.options:
        return
    if spec.precision != "int8":
        raise ConfigError(f"options.accuracy_aware needs precision int8, not {spec.precision}")
    parse_options(spec.options["accuracy_aware"], AccuracyAwareConfig, "accuracy_aware")
    if spec.gates is None or not any(getattr(spec.gates, g) is not None for g in ACCURACY_GATES):
        raise ConfigError("options.accuracy_aware: the artifact has no accuracy gate to aim for "
                          f"(give one of {', '.join(ACCURACY_GATES)})")


@dataclass
class Step:
    step: Optional[int]  # None: the candidate failed to convert and was not evaluated
    added: list[str]  # layers moved to float in this step
    float_layers: list[str]  # all layers in float after it
    passed: Optional[bool]
    result: dict = field(default_factory=dict)  # what evaluate() measured
    size_bytes: Optional[int] = None
    error: Optional[str] = None  # conversion failed with these layers: they were not kept


@dataclass
class SearchResult:
    steps: list[Step]
    float_layers: list[str]
    passed: bool
    gave_up: bool  # budget spent (or no layers left) without passing
    final: Optional[bytes] = field(default=None, repr=False)  # the chosen candidate
    first: Optional[bytes] = field(default=None, repr=False)  # the all-int8 candidate

    def to_json(self) -> dict:
        return {"passed": self.passed, "gave_up": self.gave_up, "float_layers": self.float_layers,
                "steps_used": max(s.step or 0 for s in self.steps), "steps": [asdict(s) for s in self.steps]}


def search(ranked: Sequence[str], build: Callable[[list[str]], bytes], evaluate: Callable[[bytes], dict],
           max_steps: int, layers_per_step: int = 1, log: Callable[[str], None] = lambda m: None,
           label: Callable[[str], str] = str) -> SearchResult:
    """Step 0 converts everything to int8; each later step keeps the next `layers_per_step` worst
    layers in float as well. Stops at the first candidate whose evaluate() says passed, or after
    `max_steps` steps. Layers whose candidate fails to convert are dropped from the ranking and
    recorded; that costs no step (nothing was evaluated)."""
    steps: list[Step] = []
    first = build([])
    res = evaluate(first)
    steps.append(Step(0, [], [], res.get("passed"), res, len(first)))
    log(f"step 0: all int8: {_describe(res)}")
    kept: list[str] = []
    final = first
    passed = bool(res.get("passed"))
    queue = list(ranked)
    step = 0
    while not passed and step < max_steps and queue:
        step += 1
        added, queue = queue[:layers_per_step], queue[layers_per_step:]
        try:
            candidate = build(kept + added)
        except ConversionError as e:
            step -= 1
            steps.append(Step(None, added, list(kept), None, {}, None, str(e)[:300]))
            log(f"keeping {', '.join(map(label, added))} float does not convert ({str(e)[:120]}); skipped")
            continue
        kept = kept + added
        res = evaluate(candidate)
        passed = bool(res.get("passed"))
        final = candidate
        steps.append(Step(step, added, list(kept), res.get("passed"), res, len(candidate)))
        log(f"step {step}: + {', '.join(map(label, added))} float: {_describe(res)}")
    return SearchResult(steps, kept, passed, not passed, final, first)


def _io_problem(model: bytes, io_dtype: str) -> Optional[str]:
    """The candidate must keep the artifact's input/output contract (uint8 pixels in, scale 1)."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from edgecv.validate.tflite_checks import EXPECTED_INPUT_QUANT

    interp = Interpreter(model_content=model)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    for what, d in (("input", inp), ("output", out)):
        if np.dtype(d["dtype"]).name != io_dtype:
            return f"the {what} would become {np.dtype(d['dtype']).name}, not {io_dtype}"
    expected = EXPECTED_INPUT_QUANT.get(io_dtype)
    scale, zero = inp["quantization"]
    if expected and not (abs(scale - expected[0]) < 1e-6 and zero == expected[1]):
        return f"input quantization would be ({scale}, {zero}), not {expected}"
    return None


def _describe(res: dict) -> str:
    parts = [f"{k} {res[k]:.4g}" for k in ("accuracy", "accuracy_delta", "top1_agreement") if res.get(k) is not None]
    return ", ".join(parts) + (" -> gate passed" if res.get("passed") else " -> gate missed")


def accuracy_aware_tflite(keras_model, spec, ctx, out_dir: Path, cfg: AccuracyAwareConfig,
                          log: Callable[[str], None] = lambda m: None) -> tuple[bytes, dict]:
    """Run the loop for a TFLite int8 artifact; returns the chosen model and the report section."""
    from edgecv.validate.diagnose import diagnose

    if ctx.evaluate is None:
        raise ConversionError("accuracy_aware needs the build's validation (ExportContext.evaluate); none was given")
    if ctx.calibration is None:
        raise ConversionError("int8 TFLite needs a calibration set; none was given")
    t0 = time.perf_counter()
    diag = diagnose(keras_model, ctx.calibration, cfg.debug_samples, spec.resolved_io_dtype)
    ranked = [e.tensor for e in diag.layers]
    by_tensor = {e.tensor: e for e in diag.layers}
    candidate = out_dir / f".{spec.name}.candidate.tflite"

    def build(float_tensors: list[str]) -> bytes:
        try:
            model = diag.quantized(float_tensors)
        except Exception as e:
            raise ConversionError(f"{type(e).__name__}: {e}") from None
        problem = _io_problem(model, spec.resolved_io_dtype)
        if problem:  # e.g. the op right after the input kept float: the input would become float
            raise ConversionError(problem)
        return model

    def evaluate(model: bytes, latency: bool = False) -> dict:
        candidate.write_bytes(model)
        return ctx.evaluate(candidate, latency=latency)

    try:
        result = search(ranked, build, evaluate, cfg.max_steps, cfg.layers_per_step, log,
                        label=lambda t: f"{'/'.join(by_tensor[t].layers)} ({by_tensor[t].op})")
        cost = {"size_bytes_all_int8": len(result.first), "size_bytes_final": len(result.final)}
        if result.float_layers:  # latency of both, side by side under the target's runtime settings
            lat_first = evaluate(result.first, latency=True).get("latency_p50_ms")
            lat_final = evaluate(result.final, latency=True).get("latency_p50_ms")
            cost.update({"latency_p50_ms_all_int8": lat_first, "latency_p50_ms_final": lat_final})
    finally:
        candidate.unlink(missing_ok=True)
    report = {
        **result.to_json(),
        "float_layers_keras": [by_tensor[t].layers for t in result.float_layers],
        "ranking": [e.to_json() for e in diag.layers[: max(10, len(result.float_layers))]],
        "cost": cost,
        "seconds": time.perf_counter() - t0,
    }
    return result.final, report


def accuracy_aware_onnx(keras_model, spec, opts, ctx, out_dir: Path, cfg: AccuracyAwareConfig,
                        log: Callable[[str], None] = lambda m: None) -> tuple[bytes, dict, dict]:
    """The same loop for a QDQ int8 ONNX artifact: candidates keep Keras layers out of
    quantization (`exclude_nodes`, on top of the artifact's own). Layers are ranked by the TFLite
    debugger's per-op error on the same Keras model: both formats quantize the same layers to
    symmetric per-channel int8 weights, so the layers that lose most agree, and the Keras layer names
    map onto tf2onnx's node names. Returns (model, quantization info, report)."""
    import onnx

    from edgecv.exporters.onnx import keras_to_onnx, quantize_qdq
    from edgecv.validate.diagnose import diagnose

    if ctx.evaluate is None:
        raise ConversionError("accuracy_aware needs the build's validation (ExportContext.evaluate); none was given")
    if ctx.calibration is None:
        raise ConversionError("int8 QDQ ONNX needs a calibration set; none was given")
    t0 = time.perf_counter()
    fp32 = keras_to_onnx(keras_model, opts.opset)
    path_parts = {part for n in onnx.load_from_string(fp32).graph.node for part in n.name.split("/")}
    diag = diagnose(keras_model, ctx.calibration, cfg.debug_samples, "float32")
    units: dict[str, list[str]] = {}  # candidate label -> Keras layers with ONNX nodes, worst first
    for e in diag.layers:
        names = [n for n in e.layers if n in path_parts]
        label = "/".join(names)
        if names and label not in units:
            units[label] = names
    infos: dict[bytes, dict] = {}
    candidate = out_dir / f".{spec.name}.candidate.onnx"

    def build(labels: list[str]) -> bytes:
        exclude = list(opts.exclude_nodes) + [n for label in labels for n in units[label]]
        data, info = quantize_qdq(fp32, ctx.calibration, opts.model_copy(update={"exclude_nodes": exclude}))
        infos[data] = info
        return data

    def evaluate(model: bytes, latency: bool = False) -> dict:
        candidate.write_bytes(model)
        return ctx.evaluate(candidate, latency=latency)

    try:
        result = search(list(units), build, evaluate, cfg.max_steps, cfg.layers_per_step, log)
        cost = {"size_bytes_all_int8": len(result.first), "size_bytes_final": len(result.final)}
        if result.float_layers:
            cost.update({"latency_p50_ms_all_int8": evaluate(result.first, latency=True).get("latency_p50_ms"),
                         "latency_p50_ms_final": evaluate(result.final, latency=True).get("latency_p50_ms")})
    finally:
        candidate.unlink(missing_ok=True)
    report = {**result.to_json(), "float_layers_keras": [units[label] for label in result.float_layers],
              "ranked_by": "TFLite QuantizationDebugger rms error / scale of the same Keras layers",
              "ranking": [e.to_json() for e in diag.layers[: max(10, len(result.float_layers))]],
              "cost": cost, "seconds": time.perf_counter() - t0}
    return result.final, infos[result.final], report
