"""Accuracy-aware int8: when full int8 misses the artifact's quality gate, keep the layers that
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
quality under the target's runtime against the artifact's own gate, measured exactly as the build
validates it. So the exporter runs the loop and the build lends it one callback,
`ExportContext.evaluate(path)`, which validates a candidate file on the build's validation images
with the artifact's runtime and checks the artifact's quality gates: the task's gates on its
metrics, their deltas and its agreement (`quality_gates`). Latency and size gates are left to the
final check: keeping layers float can only make those worse.

The loop itself (`search`) knows nothing about formats or tasks: it takes the ranked layer names,
a function that builds a candidate with some layers kept float, and the evaluate callback. TFLite
ranks ops with the QuantizationDebugger (`edgecv.formats.tflite.diagnose`) and re-quantizes with a
denylist without calibrating again. QDQ ONNX (`format: onnx`, precision int8) uses the same
ranking on the same Keras layers and re-runs onnxruntime's quantize_static with those layers in
`exclude_nodes`.

What it reports (artifact metadata `accuracy_aware`): the ranking it used, each step (layers added,
what evaluate measured, whether the gate passed, size), the layers that stayed float, and what that
cost against the all-int8 candidate in size and latency. When the budget runs out, the last
candidate (most layers float) is kept and the build's gate check fails as usual.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from pydantic import Field

from edgecv.config.recipe import Strict
from edgecv.errors import ConversionError
from edgecv.errors import ConfigError
from edgecv.exporters.base import parse_options
from edgecv.formats.tflite.convert import EXPECTED_INPUT_QUANT
from edgecv.formats.tflite.diagnose import diagnose
from edgecv.quantization.qdq import quantize_qdq
from edgecv.tasks import all_task_classes
from edgecv.validate.gates import task_gates

QUALITY_SOURCES = ("metrics", "deltas", "agreement")  # gates a float layer can move (not latency, size)


class AccuracyAwareConfig(Strict):
    max_steps: int = Field(8, ge=1, description="re-conversions allowed after the all-int8 one")
    layers_per_step: int = Field(1, ge=1, description="layers moved to float per step, worst first")
    debug_samples: int = Field(32, ge=1, description="calibration images the per-layer diagnosis runs on")


def quality_gates(tasks: Iterable) -> tuple[str, ...]:
    """Names of the gates the search aims for: the tasks' gates on metrics, deltas and agreement
    (one task, or several when the build's task is not known, e.g. `edgecv targets`)."""
    if not isinstance(tasks, (list, tuple, set)):
        tasks = [tasks]
    return tuple(dict.fromkeys(g.name for t in tasks for g in task_gates(t) if g.source in QUALITY_SOURCES))


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
           label: Callable[[str], str] = str, describe: Optional[Callable[[dict], str]] = None) -> SearchResult:
    """Step 0 converts everything to int8; each later step keeps the next `layers_per_step` worst
    layers in float as well. Stops at the first candidate whose evaluate() says passed, or after
    `max_steps` steps. Layers whose candidate fails to convert are dropped from the ranking and
    recorded; that costs no step (nothing was evaluated). `describe` words a result for the log."""
    describe = describe or step_description()
    steps: list[Step] = []
    first = build([])
    res = evaluate(first)
    steps.append(Step(0, [], [], res.get("passed"), res, len(first)))
    log(f"step 0: all int8: {describe(res)}")
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
        log(f"step {step}: + {', '.join(map(label, added))} float: {describe(res)}")
    return SearchResult(steps, kept, passed, not passed, final, first)


def step_description(quality_metric: Optional[str] = None) -> Callable[[dict], str]:
    """Words for one evaluate() result: the task's quality metric (name and value, and its change
    against the float model), its agreement numbers, and whether the gate passed."""

    def describe(res: dict) -> str:
        metrics, deltas = res.get("metrics") or {}, res.get("deltas") or {}
        parts = []
        if quality_metric:
            value = metrics.get(quality_metric)
            if isinstance(value, (int, float)):
                parts.append(f"{quality_metric} {value:.4g}")
            elif isinstance(res.get("quality"), (int, float)):
                parts.append(f"quality ({quality_metric}) {res['quality']:.4g}")
            if isinstance(deltas.get(quality_metric), (int, float)):
                parts.append(f"Δ {deltas[quality_metric]:+.4g}")
        parts += [f"{k} {v:.4g}" for k, v in (res.get("agreement") or {}).items() if isinstance(v, (int, float))]
        return ", ".join(parts) + (" -> gate passed" if res.get("passed") else " -> gate missed")

    return describe


def _io_problem(model: bytes, io_dtype: str, output_dtype: Optional[str] = None) -> Optional[str]:
    """The candidate must keep the artifact's input/output contract (uint8 pixels in, scale 1)."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter


    interp = Interpreter(model_content=model)
    inp = interp.get_input_details()[0]
    for what, d, want in [("input", inp, io_dtype)] + [(f"output {o['name']}", o, output_dtype or io_dtype)
                                                        for o in interp.get_output_details()]:
        if np.dtype(d["dtype"]).name != want:
            return f"the {what} would become {np.dtype(d['dtype']).name}, not {want}"
    expected = EXPECTED_INPUT_QUANT.get(io_dtype)
    scale, zero = inp["quantization"]
    if expected and not (abs(scale - expected[0]) < 1e-6 and zero == expected[1]):
        return f"input quantization would be ({scale}, {zero}), not {expected}"
    return None


def _run(ranked, labels, build, ctx, candidate: Path, cfg: AccuracyAwareConfig, describe, log) -> tuple:
    """The search with candidates written to `candidate` for ctx.evaluate, plus the cost of the
    layers kept float (size, and latency under the target's runtime settings)."""

    def evaluate(model: bytes, latency: bool = False) -> dict:
        candidate.write_bytes(model)
        return ctx.evaluate(candidate, latency=latency)

    try:
        result = search(ranked, build, evaluate, cfg.max_steps, cfg.layers_per_step, log, labels, describe)
        cost = {"size_bytes_all_int8": len(result.first), "size_bytes_final": len(result.final)}
        if result.float_layers:  # latency of both, side by side
            cost.update({"latency_p50_ms_all_int8": evaluate(result.first, latency=True).get("latency_p50_ms"),
                         "latency_p50_ms_final": evaluate(result.final, latency=True).get("latency_p50_ms")})
    finally:
        candidate.unlink(missing_ok=True)
    return result, cost


def _needs(ctx, what: str) -> None:
    if ctx.evaluate is None:
        raise ConversionError("accuracy_aware needs the build's validation (ExportContext.evaluate); none was given")
    if ctx.calibration is None:
        raise ConversionError(f"{what} needs a calibration set; none was given")


def accuracy_aware_tflite(model, spec, ctx, out_dir: Path, cfg: AccuracyAwareConfig,
                          log: Callable[[str], None] = lambda m: None,
                          output_dtype: Optional[str] = None) -> tuple[bytes, dict]:
    """Run the loop for a TFLite int8 artifact of a task model; returns the chosen model and the
    report section."""
    _needs(ctx, "int8 TFLite")
    t0 = time.perf_counter()
    io_dtype = spec.resolved_io_dtype
    diag = diagnose(model.keras_model, ctx.calibration, cfg.debug_samples, io_dtype, model.output_names,
                    output_dtype)
    by_tensor = {e.tensor: e for e in diag.layers}

    def build(float_tensors: list[str]) -> bytes:
        try:
            candidate = diag.quantized(float_tensors)
        except Exception as e:
            raise ConversionError(f"{type(e).__name__}: {e}") from None
        problem = _io_problem(candidate, io_dtype, output_dtype)
        if problem:  # e.g. the op right after the input kept float: the input would become float
            raise ConversionError(problem)
        return candidate

    result, cost = _run([e.tensor for e in diag.layers],
                        lambda t: f"{'/'.join(by_tensor[t].layers)} ({by_tensor[t].op})", build, ctx,
                        out_dir / f".{spec.name}.candidate.tflite", cfg,
                        step_description(model.make_task().quality_metric), log)
    report = {**result.to_json(), "float_layers_keras": [by_tensor[t].layers for t in result.float_layers],
              "ranking": [e.to_json() for e in diag.layers[: max(10, len(result.float_layers))]],
              "cost": cost, "seconds": time.perf_counter() - t0}
    return result.final, report


def accuracy_aware_onnx(model, fp32: bytes, opts, spec, ctx, out_dir: Path, cfg: AccuracyAwareConfig,
                        log: Callable[[str], None] = lambda m: None) -> tuple[bytes, dict, dict]:
    """The same loop for a QDQ int8 ONNX artifact (`fp32`: the task model's float ONNX):
    candidates keep Keras layers out of quantization (`exclude_nodes`, on top of the artifact's
    own). Layers are ranked by the TFLite debugger's per-op error on the same Keras model: both
    formats quantize the same layers to symmetric per-channel int8 weights, so the layers that
    lose most agree, and the Keras layer names map onto tf2onnx's node names. Returns (model,
    quantization info, report)."""
    import onnx


    _needs(ctx, "int8 QDQ ONNX")
    t0 = time.perf_counter()
    path_parts = {part for n in onnx.load_from_string(fp32).graph.node for part in n.name.split("/")}
    diag = diagnose(model.keras_model, ctx.calibration, cfg.debug_samples, "float32", model.output_names)
    units: dict[str, list[str]] = {}  # candidate label -> Keras layers with ONNX nodes, worst first
    for e in diag.layers:
        names = [n for n in e.layers if n in path_parts]
        label = "/".join(names)
        if names and label not in units:
            units[label] = names
    infos: dict[bytes, dict] = {}

    def build(labels: list[str]) -> bytes:
        exclude = list(opts.exclude_nodes) + [n for label in labels for n in units[label]]
        data, info = quantize_qdq(fp32, ctx.calibration, opts.model_copy(update={"exclude_nodes": exclude}))
        infos[data] = info
        return data

    result, cost = _run(list(units), str, build, ctx, out_dir / f".{spec.name}.candidate.onnx", cfg,
                        step_description(model.make_task().quality_metric), log)
    report = {**result.to_json(), "float_layers_keras": [units[label] for label in result.float_layers],
              "ranked_by": "TFLite QuantizationDebugger rms error / scale of the same Keras layers",
              "ranking": [e.to_json() for e in diag.layers[: max(10, len(result.float_layers))]],
              "cost": cost, "seconds": time.perf_counter() - t0}
    return result.final, infos[result.final], report


def check_accuracy_aware(spec, task=None) -> None:
    """While planning: options.accuracy_aware needs int8, valid settings and a quality gate to aim
    for: one of the task's gates on its metrics, their deltas or its agreement."""
    if "accuracy_aware" not in spec.options:
        return
    if spec.precision != "int8":
        raise ConfigError(f"options.accuracy_aware needs precision int8, not {spec.precision}")
    parse_options(spec.options["accuracy_aware"], AccuracyAwareConfig, "accuracy_aware")
    if task is None:
        aims = quality_gates(all_task_classes())
    else:
        aims = quality_gates(task)
    stated = spec.gates.limits() if spec.gates is not None else {}
    if not any(stated.get(g) is not None for g in aims):
        raise ConfigError("options.accuracy_aware: the artifact has no quality gate to aim for "
                          f"(give one of {', '.join(aims)})")
