"""edgecv's Python API: what `edgecv build`, `export`, `validate` and `bench` do, callable from a
notebook or a training script.

    import edgecv
    result = edgecv.build("examples/quickstart/edgecv.yaml", targets=["raspberry-pi-4"], out="build")
    result.report().artifact("int8").metrics["accuracy"]        # percent, as the table shows it

    edgecv.export("model.keras", format="tflite", precision="int8", data="images/", labels="labels.txt")
    edgecv.validate("build/raspberry-pi-4/digits_int8.tflite", data="images/").accuracy
    edgecv.bench("build/raspberry-pi-4/digits_int8.tflite", random=True).latency["p50_ms"]

Results are the typed models the reports are made of (`edgecv.results`); errors are the typed
exceptions of `edgecv.errors`, each carrying the exit code the command line would give
(`e.exit_code`: 1 a gate failed, 2 bad input, 3 an artifact failed to build). A build whose gates
fail raises `GateFailure` (and one with a failed artifact `BuildFailed`) with the full result in
`e.result`; pass `check=False` to get the result back instead, as the command line does.

Progress is one line per step (and per epoch) where output is not a terminal (a notebook, a log), a
live bar on a terminal. TensorFlow's and the converters' own output goes to `<out>/build.log`.
Nothing here imports TensorFlow until a function is called.
"""
# lazy imports: `import edgecv` stays light; each call loads the stages it runs

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence, Tuple, Union

from edgecv.errors import BuildFailed, EdgecvError, GateFailure, InputError
from edgecv.terminal import native_output

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from edgecv.orchestrator.runner import Build, BuildResult
    from edgecv.results import BenchResult
    from edgecv.terminal import NativeOutput
    from edgecv.validate.device import FolderEval

PathLike = Union[str, Path]
FORMATS = ("tflite", "onnx", "coreml", "savedmodel", "tensorrt")

__all__ = ["build", "export", "validate", "bench", "prepare_build", "prepare_export", "run", "format_target",
           "targets_for_format", "FORMATS"]


def _console(console: Optional["Console"]) -> "Console":
    from rich.console import Console

    return console if console is not None else Console(stderr=True)


def _list(names) -> list:
    return [names] if isinstance(names, (str, Path)) else list(names or [])


# ---- build -------------------------------------------------------------------------------------
def prepare_build(recipe: PathLike = "edgecv.yaml", targets: Sequence[str] = (), *, out: PathLike = "build",
                  overrides: Sequence[str] = (), all_targets: bool = False, gates: bool = True,
                  force: Sequence[str] = (), regen_reference: bool = False, console: Optional["Console"] = None,
                  native: Optional["NativeOutput"] = None) -> "Build":
    """The build `build()` runs, checked and planned but not started (`.plan()` lists its stages' steps,
    `.plan(every_step=True)` the whole graph `--dry-run` prints)."""
    from edgecv.config import list_targets
    from edgecv.orchestrator.runner import load_build

    recipe = Path(recipe)
    names = [n for n, _ in list_targets(recipe.parent)] if all_targets else _list(targets)
    if not names:
        raise InputError("name at least one target (see `edgecv targets`), or all_targets=True (--all)")
    return load_build(recipe, names, Path(out), list(overrides), _console(console), gates=gates,
                      force=frozenset(force), regen_reference=regen_reference, native=native)


def run(b: "Build", wait: float = 0.0, check: bool = True, held=None) -> "BuildResult":
    """Run a prepared build; with `check`, a failed gate or artifact raises (the result in `e.result`).
    `held`: the build folder's lock when the caller took it (before opening build.log)."""
    result = b.run(wait, held=held)
    if check:
        raise_for(result)
    return result


def raise_for(result: "BuildResult") -> None:
    """`GateFailure` (exit 1) or `BuildFailed` (exit 3) for a build that did not pass, with the result."""
    code = result.exit_code
    if code == 0:
        return
    bad = [o for o in result.outcomes if o.status != "ok"]
    lines = "; ".join(f"{o.target}: {m}" for o in bad for m in (o.messages or [o.status]))
    error = GateFailure if code == 1 else BuildFailed
    raise error(lines or f"build finished with exit code {code}", result=result)


def build(recipe: PathLike = "edgecv.yaml", targets: Sequence[str] = (), *, out: PathLike = "build",
          overrides: Sequence[str] = (), all_targets: bool = False, gates: bool = True, force: Sequence[str] = (),
          regen_reference: bool = False, wait: float = 0.0, check: bool = True, verbose: bool = False,
          console: Optional["Console"] = None) -> "BuildResult":
    """Train the recipe's model (or reuse the cached training) and build, validate and gate every
    artifact of `targets` into `out/<target>/`: `edgecv build -t TARGET -r RECIPE -o OUT`.

    `overrides` are `--set` items (`["train.finetune.epochs=1"]`); `gates=False` reports gates
    without failing (`--no-gates`). Returns a `BuildResult`: `.report(target)` is the target's typed
    `Report`, `.exit_code` what the command line would exit with."""
    from edgecv.extras import require_extra

    from edgecv.orchestrator.lock import BuildLock

    require_extra("build", "edgecv.build (training and conversion)")
    console = _console(console)
    # the lock before the log: a build refused by it must not truncate the running build's build.log
    with BuildLock(Path(out), wait) as lock, native_output(Path(out) / "build.log", console, verbose=verbose) as native:
        b = prepare_build(recipe, targets, out=out, overrides=overrides, all_targets=all_targets, gates=gates,
                          force=force, regen_reference=regen_reference, console=console, native=native)
        return run(b, wait, check, held=lock)


# ---- export ------------------------------------------------------------------------------------
def targets_for_format(fmt: str, recipe_dir: Optional[Path] = None) -> list:
    """The known targets with an artifact of format `fmt` (aliases accepted)."""
    from edgecv.config.loader import targets_building

    return targets_building(fmt, recipe_dir)


def format_target(fmt: str, precision: str = "fp32"):
    """A one-artifact target built in memory: what `edgecv export MODEL --format FMT --int8` builds
    (folder `<out>/<fmt>-<precision>/`), with no gates of its own beyond the task's defaults."""
    from pydantic import ValidationError

    from edgecv.config.target import ArtifactSpec, Target
    from edgecv.errors import did_you_mean
    from edgecv.exporters.base import FORMAT_ALIASES

    fmt = FORMAT_ALIASES.get(fmt, fmt)
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt}{did_you_mean(fmt, FORMATS)}: formats are {', '.join(FORMATS)}")
    try:
        spec = ArtifactSpec(name=precision, format=fmt, precision=precision)
    except ValidationError:
        raise InputError(f"precision {precision!r}: one of fp32, fp16, int8") from None
    try:
        from edgecv.exporters import get_exporter

        supported = get_exporter(fmt).precisions
    except ImportError:
        supported = None  # the exporter's extra is missing: the build says so for the artifact
    if supported is not None and precision not in supported:
        raise InputError(f"{fmt} builds {', '.join(supported)}, not {precision}")
    return Target(name=f"{fmt}-{precision}", description=f"{fmt} {precision} (edgecv export --format {fmt})",
                  artifacts=[spec])


def prepare_export(model: PathLike, targets: Sequence[str] = (), *, data: PathLike, format: Optional[str] = None,
                   precision: str = "fp32", task: str = "classification", preprocess: Optional[str] = None,
                   architecture: Optional[str] = None, labels: Optional[PathLike] = None,
                   label_offset: Optional[int] = None, calibration_data: Optional[PathLike] = None,
                   input_size: Optional[Tuple[int, int]] = None, resize: str = "center_crop",
                   name: Optional[str] = None, custom_objects: Optional[str] = None,
                   unsafe_deserialization: bool = False, annotations: Optional[PathLike] = None,
                   anchors: Optional[PathLike] = None, box_scales: Optional[str] = None,
                   out: PathLike = "build", overrides: Sequence[str] = (),
                   gates: bool = True, force: Sequence[str] = (), console: Optional["Console"] = None,
                   native: Optional["NativeOutput"] = None) -> "Build":
    """The build `export()` runs, checked but not started."""
    from edgecv.config.export_recipe import export_recipe, recipe_of
    from edgecv.config import load_target
    from edgecv.models.check import check_model_config
    from edgecv.orchestrator.plan import check_plan
    from edgecv.orchestrator.runner import Build

    names = _list(targets)
    if bool(names) == bool(format):
        raise InputError("name the target(s) (-t TARGET) or one --format (tflite, onnx, coreml, savedmodel, "
                         "tensorrt), not both" if names else
                         "name a target (-t TARGET, see `edgecv targets`) or a --format (tflite, onnx, coreml, "
                         "savedmodel, tensorrt)")
    if format is None and precision != "fp32":
        raise InputError("--int8/--fp16 go with --format; a target file states each artifact's precision")
    target_list = [format_target(format, precision)] if format else [load_target(t) for t in names]
    console = _console(console)
    if preprocess is None and architecture is None and not any(o.startswith("model.preprocess") for o in overrides):
        preprocess = _preprocess_of(Path(model), console)
    p = lambda v: None if v is None else Path(v)  # noqa: E731
    raw = export_recipe(Path(model), Path(data), task, preprocess, architecture, p(labels), label_offset,
                        p(calibration_data), input_size, resize, name, custom_objects, unsafe_deserialization,
                        p(annotations), p(anchors), box_scales)
    recipe, sha = recipe_of(raw, list(overrides))
    check_plan(target_list, recipe.make_task(), recipe.gates)
    check_model_config(recipe)
    return Build(recipe, target_list, Path(out), console, gates=gates, recipe_sha256=sha,
                 force=frozenset(force), native=native)


def _preprocess_of(model: Path, console: "Console") -> str:
    """`none` for a model whose first layer normalizes (Rescaling, Normalization), said on the
    console; otherwise an error asking for --preprocess (a guessed normalization would build
    artifacts that score wrongly without any sign of why)."""
    from edgecv.models.user_model import NORMALIZING_LAYERS, first_layer, read_config

    if not Path(model).exists():
        raise InputError(f"{model}: no such file or folder (a .keras file, a Keras .h5 or a SavedModel folder)")
    try:
        first = first_layer(read_config(Path(model)))
    except (OSError, ValueError, KeyError, EdgecvError):
        first = None
    if first in NORMALIZING_LAYERS:
        console.print(f"preprocess: none (the model's first layer, {first}, normalizes its input; "
                      "--preprocess overrides)", highlight=False)
        return "none"
    found = f" (its first layer is {first}, which does not normalize)" if first else ""
    raise InputError(f"{model}: say how the model expects its input normalized{found}: --preprocess NAME, "
                     "a keras-applications family (mobilenet_v2, resnet50, efficientnet, ...), tf (-1..1), "
                     "torch (ImageNet mean/std), caffe, or none (0..255 pixels as they are); explicit values: "
                     "--set model.preprocess.mean=[...] --set model.preprocess.std=[...]")


def export(model: PathLike, targets: Sequence[str] = (), *, data: PathLike, format: Optional[str] = None,
           precision: str = "fp32", out: PathLike = "build", check: bool = True, verbose: bool = False,
           console: Optional["Console"] = None, **options) -> "BuildResult":
    """Export, validate and gate a model trained elsewhere (a .keras/.h5 file or a SavedModel
    folder), no training: `edgecv export MODEL -t TARGET --data DIR`, or with no target file
    `format="tflite", precision="int8"` (`--format tflite --int8`), built into `out/tflite-int8/`.

    `data`: images to calibrate and validate on (class sub-folders named after the labels give
    accuracy). `options`: the command's other options by name (`preprocess="mobilenet_v2"`,
    `task`, `labels`, `label_offset`, `calibration_data`, `input_size`, `resize`, `name`,
    `custom_objects`, `unsafe_deserialization`, `annotations`, `anchors`, `box_scales`, `overrides`,
    `gates`, `force`)."""
    from edgecv.extras import require_extra

    from edgecv.orchestrator.lock import BuildLock

    require_extra("build", "edgecv.export (conversion)")
    console = _console(console)
    with BuildLock(Path(out)) as lock, native_output(Path(out) / "build.log", console, verbose=verbose) as native:
        b = prepare_export(model, targets, data=data, format=format, precision=precision, out=out, console=console,
                           native=native, **options)
        return run(b, 0.0, check, held=lock)


# ---- validate and bench ------------------------------------------------------------------------
def _input_size(size) -> Optional[Tuple[int, int]]:
    if size is None or isinstance(size, (tuple, list)):
        return None if size is None else (int(size[0]), int(size[-1]))
    try:
        parts = [int(v) for v in str(size).lower().replace(",", "x").split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise InputError(f"--input-size {size!r}: give HEIGHTxWIDTH (e.g. 224x224) or one number for a square")
    return (parts[0], parts[-1])


def _warn_to_stderr(message: str) -> None:
    import sys

    print(f"warning: {message}", file=sys.stderr)


def validate(artifact: PathLike, data: PathLike, *, labels: Optional[PathLike] = None,
             label_offset: Optional[int] = None, resize: Optional[str] = None, threads: Optional[int] = None,
             top_k: int = 3, input_size=None, annotations: Optional[PathLike] = None,
             warn=None, native: Optional["NativeOutput"] = None, task: Optional[str] = None,
             input_range: Optional[str] = None) -> "FolderEval":
    """Evaluate an artifact (edgecv's or a third party's .tflite, .onnx, SavedModel) on an image folder
    with its task's metrics: `edgecv validate ARTIFACT --data DIR`. The task is the one
    preprocessing.json beside it names (a third party's file: `task`, e.g. "generic" for its outputs
    only, else a classifier, or a detector / keypoints with `annotations`; `input_range` "LO,HI":
    the values its float input takes for pixels 0..255). Returns a `FolderEval` whose attributes are what `--json` writes: a classifier's
    `.accuracy` (percent, with class sub-folders), `.images`, `.truths` (each image's class folder),
    `.correct`, `.predictions` (top-k `(label, score)`); a keypoint artifact's `.metrics` (NME ...),
    `.points`."""
    from edgecv.validate.device import validate_folder

    return validate_folder(artifact, data, labels=labels, label_offset=label_offset, resize=resize, threads=threads,
                           top_k=top_k, input_size=_input_size(input_size), annotations=annotations,
                           warn=warn or _warn_to_stderr, native=native, task=task, input_range=input_range)


def bench(artifact: PathLike, data: Optional[PathLike] = None, *, random: bool = False,
          threads: Optional[int] = None, batch: Sequence[int] = (1,), labels: Optional[PathLike] = None,
          resize: Optional[str] = None, annotations: Optional[PathLike] = None, int8_semantics: Optional[str] = None,
          runs: int = 50, seconds: float = 2.0, input_size=None, host: Optional[str] = None,
          remote_python: str = "python3", identity: Optional[PathLike] = None, known_hosts: Optional[PathLike] = None,
          warn=None, log=None, native: Optional["NativeOutput"] = None,
          remote_timeout: float = 600.0, task: Optional[str] = None, input_range: Optional[str] = None) -> "BenchResult":
    """Measure an artifact here (or on `host` over SSH): `edgecv bench ARTIFACT`. Returns a
    `BenchResult`: `.latency` (`p50_ms`, ..., `throughput_ips` of the first batch size),
    `.latency_by_batch`, `.memory`, `.load_seconds`, `.accuracy` with labelled `data`, `.outputs`
    (each output's shape on `data`). `task`, `input_range`: as for `validate`. `remote_timeout`:
    seconds one command on `host` may take before it counts as hung (RemoteError, exit 5)."""
    from edgecv.build_folder import check_before_use
    from edgecv.results import BenchResult
    from edgecv.terminal import private_log
    from edgecv.validate.bench import check_bench_options

    check_bench_options(threads, list(batch), runs, seconds)

    artifact, warn = Path(artifact), warn or _warn_to_stderr
    p = lambda v: None if v is None else Path(v)  # noqa: E731
    if not artifact.exists():
        raise InputError(f"{artifact}: no such file or folder")
    check_before_use(artifact, warn)
    if int8_semantics and artifact.suffix != ".onnx":
        raise InputError(f"--int8-semantics chooses onnxruntime's int8 arithmetic: {artifact.name} is not an ONNX file")
    try:
        if host:
            from edgecv.remote.bench import bench_on_host

            options = {"threads": threads, "batch": list(batch), "resize": resize, "runs": runs, "seconds": seconds,
                       "int8_semantics": int8_semantics, "task": task, "input_range": input_range}
            raw = bench_on_host(artifact, host, p(data), random, options, p(labels), remote_python, p(identity),
                                p(known_hosts), log=log or _warn_to_stderr, timeout=remote_timeout)
        else:
            from rich.console import Console

            from edgecv.validate.bench import bench as run_bench

            with private_log("bench") as native_file, native_output(native_file, Console(stderr=True), native):
                raw = run_bench(artifact, p(data), random, threads, list(batch), p(labels), resize, runs, seconds,
                                annotations=p(annotations), input_size=_input_size(input_size), warn=warn,
                                task_name=task, input_range=input_range,
                                runtime_options={"int8_semantics": int8_semantics} if int8_semantics else None)
    except ValueError as e:
        raise InputError(str(e)) from None
    return BenchResult.model_validate(raw)

