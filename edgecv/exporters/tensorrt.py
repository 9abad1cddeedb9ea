"""TensorRT engines, built where they will run.

An engine runs only on the GPU model and TensorRT version that built it, and TensorRT 10
deprecated (11 removed) implicit int8 calibration and the FP16/INT8 builder flags: networks are
strongly typed and precision comes from the ONNX graph. So the exporter prepares everything that
does not need the device, anywhere:

  <target>/device-bundle-<artifact>/   (one per engine artifact, each self-contained)
    <model>_<artifact>.onnx   the engine's source: int8 QDQ ONNX or fp16 ONNX (fp32 I/O)
    labels.txt, preprocessing.json, calibration.txt   what an app needs beside the model
    validation.npz            validation images (uint8 NHWC), labels, the float model's outputs
    bundle.json               which engines to build from which ONNX (batch range, workspace)
    README.md                 the commands to run on the device

and builds the engines in that folder when TensorRT can create a builder on a GPU here. Where it
cannot (a CI runner, a laptop), the artifact is reported `not_built` with the reason and the
command that finishes it on the device: `edgecv engine build <bundle>`, which builds every
engine with the same code, validates it on validation.npz and writes report.json beside it.

This module imports no TensorFlow at import time: `edgecv engine build` runs on a Jetson.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from pydantic import Field, field_validator

import edgecv
from edgecv.files import atomic_write_bytes, atomic_write_text, ensure_dir
from edgecv.errors import ConversionError, EdgecvError
from edgecv.exporters.base import Artifact, ExportContext, Exporter, NotBuiltHere
from edgecv.exporters.base import parse_options
from edgecv.exporters.onnx import INPUT_NAME, OUTPUT_NAME, OnnxOptions

BUNDLE_SCHEMA = "edgecv.device-bundle/1"
BUNDLE_FILE = "bundle.json"
VALIDATION_FILE = "validation.npz"
SIDECARS = ("preprocessing.json", "calibration.txt", "calibration.json")  # written by the build runner
EVAL_BATCH = 32


class TensorRTUnavailable(EdgecvError):
    """TensorRT, cuda-python or a GPU is missing on this machine."""

    exit_code = 4


class TensorRTOptions(OnnxOptions):
    """`options:` of a tensorrt artifact: the ONNX options plus the engine's."""

    batch: list[int] = Field([1, 8], description="optimization profile: [min, max] or [min, opt, max] batch size")
    workspace_mb: int = Field(1024, ge=16, description="builder workspace memory pool limit")
    builder_optimization_level: Optional[int] = Field(None, ge=0, le=5, description="TensorRT default (3) when unset")
    bundle: Optional[str] = Field(None, pattern=r"^[A-Za-z0-9_.-]+$",
                                  description="bundle folder in the target's build folder (default device-bundle-<artifact>)")
    validation_images: int = Field(256, ge=0, description="validation images copied into the bundle (0: none)")

    @field_validator("batch")
    @classmethod
    def _batch_range(cls, v: list[int]) -> list[int]:
        if len(v) not in (2, 3) or min(v) < 1 or sorted(v) != list(v):
            raise ValueError(f"give [min, max] or [min, opt, max] with 1 <= min <= opt <= max, got {v}")
        return v

    @property
    def batch_range(self) -> tuple[int, int, int]:
        b = self.batch
        return (b[0], b[0], b[1]) if len(b) == 2 else (b[0], b[1], b[2])  # opt = min: edge latency is batch 1

    def onnx_options(self) -> OnnxOptions:
        return OnnxOptions(**self.model_dump(include=set(OnnxOptions.model_fields)))


# ---- can this machine build? ----------------------------------------------------------------------

def tensorrt_status():
    """(tensorrt module, "") when TensorRT can create a builder on a GPU here, else (None, reason)."""
    from edgecv.runtimes.base import RuntimeUnavailable
    from edgecv.runtimes.tensorrt import cuda_device, import_cudart, import_tensorrt

    try:
        trt = import_tensorrt()
    except RuntimeUnavailable as e:
        return None, str(e)
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    except Exception as e:  # pybind raises when CUDA cannot initialize
        return None, f"TensorRT {trt.__version__} cannot create a builder here: {e} (no usable NVIDIA GPU or driver?)"
    if builder is None:
        return None, f"TensorRT {trt.__version__} cannot create a builder here (no usable NVIDIA GPU or driver)"
    try:
        cuda_device(import_cudart())
    except RuntimeUnavailable as e:
        return None, str(e)
    return trt, ""


# ---- engine build (here or on the device) ---------------------------------------------------------

def build_engine(trt, onnx_path: Path, engine_path: Path, precision: str, batch: tuple[int, int, int],
                 workspace_mb: int, optimization_level: Optional[int] = None,
                 log: Callable[[str], None] = print) -> dict:
    """Parse the ONNX, build a strongly typed engine with one optimization profile, save the plan,
    the timing cache (reused by the next build) and the metadata sidecar. Returns the sidecar."""
    from edgecv.runtimes.tensorrt import cuda_device, import_cudart

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags_enum = trt.NetworkDefinitionCreationFlag
    strongly_typed = hasattr(flags_enum, "STRONGLY_TYPED")
    if strongly_typed:  # TensorRT 10: opt in; TensorRT 11: always strongly typed, the flag is accepted
        flags = 1 << int(flags_enum.STRONGLY_TYPED)
    else:  # TensorRT 8.x (JetPack 5): explicit batch, weakly typed
        flags = 1 << int(flags_enum.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ConversionError(f"TensorRT's ONNX parser rejected {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    if not strongly_typed:
        # TensorRT 8.x needs the flags for Q/DQ (INT8) and fp16 tensors (FP16); later versions
        # take precision from the graph alone and removed these flags
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
        if precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
    if optimization_level is not None:
        config.builder_optimization_level = int(optimization_level)
    if network.num_inputs != 1:
        raise ConversionError(f"{onnx_path.name}: expected one input, found {network.num_inputs}")
    inp = network.get_input(0)
    sample = tuple(int(d) for d in inp.shape)[1:]
    if any(d < 0 for d in sample):
        raise ConversionError(f"{onnx_path.name}: only the batch axis may be dynamic, input shape is {tuple(inp.shape)}")
    shapes = {k: (b, *sample) for k, b in zip(("min", "opt", "max"), batch)}
    profile = builder.create_optimization_profile()
    profile.set_shape(inp.name, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(profile)

    cache_path = engine_path.with_name(engine_path.stem + ".timing.cache")
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    if not config.set_timing_cache(cache, ignore_mismatch=False):  # a cache from another GPU/TensorRT
        log(f"  {cache_path.name} does not match this GPU/TensorRT: starting a new timing cache")
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)

    log(f"  building {engine_path.name} ({precision}, batch {batch[0]}-{batch[2]}, TensorRT {trt.__version__})")
    t0 = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - t0
    if plan is None:
        raise ConversionError(f"TensorRT could not build {engine_path.name} from {onnx_path.name} (see the log above)")
    atomic_write_bytes(engine_path, bytes(memoryview(plan)))  # the plain plan: trtexec --loadEngine reads it
    atomic_write_bytes(cache_path, bytes(memoryview(config.get_timing_cache().serialize())))
    sidecar = {
        "engine": engine_path.name,
        "tensorrt_version": trt.__version__,
        "gpu": cuda_device(import_cudart()),
        "precision": precision,
        "strongly_typed": strongly_typed,
        "input_shapes": {inp.name: {k: list(v) for k, v in shapes.items()}},
        "outputs": [network.get_output(i).name for i in range(network.num_outputs)],
        "source_onnx": onnx_path.name,
        "source_onnx_sha256": file_sha256(onnx_path),
        "workspace_mb": workspace_mb,
        "builder_optimization_level": optimization_level,
        "timing_cache": cache_path.name,
        "build_seconds": round(seconds, 2),
        "created": _now(),
        "edgecv_version": edgecv.__version__,
    }
    atomic_write_text(engine_path.with_name(engine_path.name + ".json"), json.dumps(sidecar, indent=2) + "\n")
    return sidecar


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---- the device bundle ----------------------------------------------------------------------------

def read_bundle(bundle: Path) -> dict:
    path = Path(bundle) / BUNDLE_FILE
    if not path.is_file():
        raise EdgecvError(f"{bundle}: not a device bundle (no {BUNDLE_FILE}); `edgecv build` writes one for "
                          "tensorrt artifacts, in <out>/<target>/device-bundle-<artifact>")
    data = json.loads(path.read_text())
    if data.get("schema") != BUNDLE_SCHEMA:
        raise EdgecvError(f"{path}: schema {data.get('schema')!r}, this edgecv reads {BUNDLE_SCHEMA}")
    return data


def _validation_subset(validation: dict, limit: int) -> Optional[dict]:
    images = np.asarray(validation["images"])
    if limit <= 0 or len(images) == 0:
        return None
    idx = np.unique(np.linspace(0, len(images) - 1, min(limit, len(images))).round().astype(int))
    out = {"images": images[idx].astype(np.uint8), "labels": np.asarray(validation["labels"])[idx].astype(np.int64)}
    if validation.get("reference") is not None:
        out["reference"] = np.asarray(validation["reference"], np.float32)[idx]
    return out


def write_bundle(bundle: Path, model, spec, opts: TensorRTOptions, onnx_bytes: bytes, onnx_checks: dict,
                 onnx_meta: dict, ctx: ExportContext, fingerprint: str) -> dict:
    """Add this artifact's engine to the target's bundle (creating or refreshing the shared files)."""
    ensure_dir(bundle)
    try:
        data = read_bundle(bundle)
    except EdgecvError:
        data = {}
    engines = data.get("engines", {})
    if data.get("model_fingerprint") != fingerprint:  # another model: its engines are stale
        for entry in engines.values():
            engine = entry["engine"]
            for f in (entry["onnx"], engine, f"{engine}.json", f"{Path(engine).stem}.timing.cache"):
                (bundle / f).unlink(missing_ok=True)
        engines = {}
        (bundle / "report.json").unlink(missing_ok=True)

    onnx_name = f"{ctx.model_name}_{spec.name}.onnx"
    atomic_write_bytes(bundle / onnx_name, onnx_bytes)
    atomic_write_text(bundle / "labels.txt", "".join(f"{c}\n" for c in model.class_names))
    build_dir = ctx.sidecar_dir or bundle.parent
    sidecars = ["labels.txt"]
    for name in SIDECARS:
        if (build_dir / name).is_file():
            shutil.copyfile(build_dir / name, bundle / name)
            sidecars.append(name)

    validation = None
    if ctx.validation is not None:
        subset = _validation_subset(ctx.validation, opts.validation_images)
        if subset is not None:
            buf = io.BytesIO()
            np.savez_compressed(buf, **subset)
            atomic_write_bytes(bundle / VALIDATION_FILE, buf.getvalue())
            validation = {"file": VALIDATION_FILE, "count": int(len(subset["images"])),
                          "of": int(len(ctx.validation["images"])),
                          "reference": "probabilities of the float Keras model" if "reference" in subset else None}
    elif (bundle / VALIDATION_FILE).is_file():
        (bundle / VALIDATION_FILE).unlink()

    bmin, bopt, bmax = opts.batch_range
    engines[spec.name] = {
        "precision": spec.precision,
        "onnx": onnx_name,
        "onnx_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "engine": f"{ctx.model_name}_{spec.name}.engine",
        "batch": {"min": bmin, "opt": bopt, "max": bmax},
        "workspace_mb": opts.workspace_mb,
        "builder_optimization_level": opts.builder_optimization_level,
        "onnx_checks": {k: v for k, v in onnx_checks.items() if k in ("opset", "qdq", "float_parameters", "message")},
        "onnx_metadata": onnx_meta,
    }
    h, w = model.input_size
    data = {
        "schema": BUNDLE_SCHEMA,
        "model": ctx.model_name,
        "model_fingerprint": fingerprint,
        "created": _now(),
        "edgecv_version": edgecv.__version__,
        "recipe_sha256": ctx.metadata.get("recipe_sha256"),
        "input": {"name": INPUT_NAME, "dtype": "float32", "layout": "NHWC", "height": h, "width": w,
                  "pixels": "RGB 0..255, normalization inside the model", "batch": "dynamic"},
        "output": {"name": OUTPUT_NAME, "classes": len(model.class_names)},
        "labels": "labels.txt",
        "sidecars": sidecars,
        "validation": validation,
        "engines": dict(sorted(engines.items())),
    }
    atomic_write_text(bundle / BUNDLE_FILE, json.dumps(data, indent=2, default=str) + "\n")
    atomic_write_text(bundle / "README.md", bundle_readme(bundle, data))
    return data


def bundle_readme(bundle: Path, data: dict) -> str:
    name = bundle.name
    rows = "\n".join(
        f"| `{e['onnx']}` | {e['precision']} | `{e['engine']}` | {e['batch']['min']}-{e['batch']['max']} "
        f"(opt {e['batch']['opt']}) | {e['workspace_mb']} MB |"
        for e in data["engines"].values())
    files = [("labels.txt", "class names: output index i is line i"),
             ("preprocessing.json", f"input contract: RGB, NHWC, {data['input']['height']}x{data['input']['width']}, "
                                    "float32 pixel values 0..255"),
             ("calibration.txt", "the training images that calibrated the int8 Q/DQ scales")]
    files = [(f, what) for f, what in files if f in data["sidecars"]]
    v = data["validation"]
    if v:
        files.append((v["file"], f"{v['count']} of the {v['of']} validation images (uint8 NHWC) and their labels"
                      + (", with the float model's probabilities" if v.get("reference") else "")))
    files.append((BUNDLE_FILE, "what to build (read by `edgecv engine build`)"))
    file_rows = "\n".join(f"| `{f}` | {what} |" for f, what in files)
    first = next(iter(data["engines"].values()))
    return f"""# edgecv device bundle: {data['model']}

Written by edgecv {data['edgecv_version']} on {data['created']}. A TensorRT engine runs only on the
GPU model and TensorRT version that built it, so the engines are built on the device from the
ONNX files here. Precision is in the ONNX graph (Q/DQ nodes for int8, float16 tensors for fp16):
the network is strongly typed, no calibration happens on the device.

| source ONNX | precision | engine | batch | workspace |
| --- | --- | --- | --- | --- |
{rows}

| file | what |
| --- | --- |
{file_rows}

## On the device

Needs TensorRT with its Python module (`python3-libnvinfer` on JetPack): 10.x on JetPack 6, 11.x
on newer JetPack (strongly typed builds); 8.5 on JetPack 5 also works (explicit batch with the
INT8/FP16 builder flag TensorRT 8 needs for Q/DQ and fp16 graphs). Also cuda-python for the
device's CUDA major version, and edgecv {data['edgecv_version']} without its TensorFlow dependencies:

    pip install --no-deps ./edgecv        # this edgecv's source tree or wheel
    pip install numpy pydantic typer rich pyyaml pillow 'cuda-python>=12,<13'   # <12 on JetPack 5

Copy this folder to the device, then, in the folder that holds it:

    edgecv engine build {name}

builds every engine above, each with `<engine>.json` beside it (TensorRT version, GPU name and
compute capability, precision, input shapes, source ONNX sha256) and `<engine stem>.timing.cache`
(reused by the next build), then validates every engine on `validation.npz` against the labels and
the float model (accuracy, top-1 agreement, latency p50/p90) and writes `report.json` here.

    edgecv engine build {name} --only {next(iter(data['engines']))}   # one engine
    edgecv engine validate {name}                       # measure again without rebuilding
    edgecv validate {name}/{first['engine']} --data IMAGES   # any image folder (class sub-folders)

The same ONNX files were validated with ONNX Runtime on the CPU when the bundle was written: the
target's report.json has those accuracies, the device's report.json shows what TensorRT reaches.
"""


# ---- build and validate every engine of a bundle (`edgecv engine build`) ----------------------

def build_bundle(bundle: Path, only: list[str] = (), build: bool = True, validate: bool = True,
                 latency_batch: int = 1, log: Callable[[str], None] = print) -> dict:
    """Build (optionally) and validate the engines of a bundle; writes and returns report.json."""
    bundle = Path(bundle)
    data = read_bundle(bundle)
    names = list(only) or list(data["engines"])
    unknown = [n for n in names if n not in data["engines"]]
    if unknown:
        raise EdgecvError(f"{bundle}: no engine named {unknown}; the bundle has {', '.join(data['engines'])}")
    trt, reason = tensorrt_status()
    if trt is None:
        raise TensorRTUnavailable(f"not built on this machine: {reason}. Run `edgecv engine build {bundle}` on the "
                                  "device (a Jetson with JetPack 6+, or a GPU with TensorRT 10/11)")
    results = []
    for name in names:
        e = data["engines"][name]
        engine_path = bundle / e["engine"]
        entry = {"name": name, "format": "tensorrt", "precision": e["precision"], "status": "ok",
                 "path": e["engine"], "source_onnx": e["onnx"]}
        t0 = time.perf_counter()
        try:
            if build:
                if file_sha256(bundle / e["onnx"]) != e["onnx_sha256"]:
                    raise EdgecvError(f"{e['onnx']} does not match the sha256 in {BUNDLE_FILE}: the bundle was modified")
                b = e["batch"]
                build_engine(trt, bundle / e["onnx"], engine_path, e["precision"], (b["min"], b["opt"], b["max"]),
                             e["workspace_mb"], e.get("builder_optimization_level"), log)
            elif not engine_path.is_file():
                raise EdgecvError(f"{e['engine']} is not built yet: run `edgecv engine build {bundle}`")
            entry["size_bytes"] = engine_path.stat().st_size
            entry["sha256"] = file_sha256(engine_path)
            side = engine_path.with_name(engine_path.name + ".json")
            entry["engine_metadata"] = json.loads(side.read_text()) if side.is_file() else None
            if validate:
                entry.update(validate_engine(engine_path, bundle, data, latency_batch))
        except EdgecvError as err:
            entry.update({"status": "failed", "error": str(err)})
        except Exception as err:  # a TensorRT or CUDA error: record it, go on with the next engine
            entry.update({"status": "failed", "error": f"{type(err).__name__}: {err}"})
        entry["seconds"] = round(time.perf_counter() - t0, 2)
        results.append(entry)
    report = {"schema": "edgecv.device-report/1", "created": _now(), "edgecv_version": edgecv.__version__,
              "bundle": data["model"], "model_fingerprint": data["model_fingerprint"], "engines": results}
    previous = {}
    if (bundle / "report.json").is_file():  # keep results of engines not rebuilt this time
        old = json.loads((bundle / "report.json").read_text())
        if old.get("model_fingerprint") == data["model_fingerprint"]:
            previous = {e["name"]: e for e in old.get("engines", []) if e["name"] not in names}
    report["engines"] = sorted(results + list(previous.values()), key=lambda e: e["name"])
    atomic_write_text(bundle / "report.json", json.dumps(report, indent=2, default=float) + "\n")
    return report


def validate_engine(engine_path: Path, bundle: Path, data: dict, latency_batch: int = 1) -> dict:
    """Accuracy against the labels, agreement with the float model, latency: the build report's metrics."""
    from edgecv.runtimes import load_runtime
    from edgecv.validate.comparator import compare_classification
    from edgecv.validate.latency import measure_latency

    if not data.get("validation"):
        return {"validation": {"numeric": False, "reason": "the bundle holds no validation images"}}
    npz = np.load(bundle / data["validation"]["file"])
    images, labels = npz["images"], npz["labels"]
    reference = npz["reference"] if "reference" in npz.files else None
    with load_runtime(engine_path, "tensorrt") as rt:
        probs = np.concatenate([rt.predict(images[i:i + EVAL_BATCH])["probabilities"]
                                for i in range(0, len(images), EVAL_BATCH)])
        cmp = compare_classification(probs, labels, reference).to_json()
        latency = measure_latency(rt.predict, images[:16], batch=latency_batch).to_json()
        runtime = rt.describe()
    return {"validation": {"numeric": True, "images": int(len(images))}, "metrics": cmp["metrics"],
            "reference_accuracy": cmp["reference_accuracy"], "accuracy_delta": cmp["accuracy_delta"],
            "agreement": cmp["agreement"], "nonfinite_outputs": cmp["nonfinite_outputs"], "latency": latency,
            "runtime": runtime}


# ---- the exporter ------------------------------------------------------------------------------------

class TensorRTExporter(Exporter):
    format = "tensorrt"
    precisions = ("fp32", "fp16", "int8")
    needs_calibration = ("int8",)

    @classmethod
    def check_spec(cls, spec) -> None:
        parse_options(spec.options, TensorRTOptions, "tensorrt artifact")

    def export(self, model, spec, out_dir: Path, ctx: ExportContext) -> Artifact:
        from edgecv.exporters.onnx import _ensure_onnx, export_onnx_bytes, inspect_onnx, model_fingerprint

        _ensure_onnx()
        opts = parse_options(spec.options, TensorRTOptions, "tensorrt artifact")
        onnx_bytes, meta = export_onnx_bytes(model, spec.precision, opts.onnx_options(), ctx)
        checks = inspect_onnx(onnx_bytes, spec.precision)
        if not checks["passed"]:
            raise ConversionError(f"{spec.name}: source ONNX checks failed: {checks['message']}")
        # one self-contained bundle per engine artifact: each export is its own cached stage
        bundle = Path(out_dir) / (opts.bundle or f"device-bundle-{spec.name}")
        data = write_bundle(bundle, model, spec, opts, onnx_bytes, checks, meta, ctx,
                            model_fingerprint(model.keras_model))
        entry = data["engines"][spec.name]
        trt, reason = tensorrt_status()
        if trt is None:
            raise NotBuiltHere(reason, prepared=bundle, how_to_finish=f"edgecv engine build {bundle}")
        engine_path = bundle / entry["engine"]
        b = entry["batch"]
        sidecar = build_engine(trt, bundle / entry["onnx"], engine_path, spec.precision, (b["min"], b["opt"], b["max"]),
                               opts.workspace_mb, opts.builder_optimization_level, log=lambda m: None)
        checks = {"source_onnx": {k: v for k, v in checks.items() if k != "passed"}, "engine": sidecar, "passed": True}
        return Artifact(spec.name, self.format, spec.precision, engine_path, "tensorrt", checks=checks,
                        metadata={"bundle": str(bundle.relative_to(out_dir)), **meta})
