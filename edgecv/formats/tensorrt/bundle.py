"""The TensorRT device bundle: everything an engine build needs that does not need the device.

  <target>/device-bundle-<artifact>/   (one per engine artifact, each self-contained)
    <model>_<artifact>.onnx   the engine's source: int8 QDQ ONNX or fp16 ONNX (fp32 I/O)
    the task's files (labels.txt ...), preprocessing.json, calibration.txt/.json
                              what an app needs beside the model (edgecv.sidecars.write_sidecars)
    validation.npz            validation images (uint8 NHWC), the task's targets, the float
                              model's outputs by output name
    bundle.json               the task (name, options, info), the output spec, which engines to
                              build from which ONNX (batch range, workspace) and their gates
    README.md                 the commands to run on the device

`write_bundle` runs in the build; `build_bundle` and `validate_engine` run on the device
(`edgecv engine build|validate`): they rebuild the task from bundle.json and judge each engine with
the same comparator and gates as the build. No TensorFlow is imported here.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

import edgecv
from edgecv.errors import EdgecvError, InputError
from edgecv.files import atomic_write_bytes, atomic_write_text, ensure_dir
from edgecv.formats.tensorrt.engine import TensorRTUnavailable, build_engine, file_sha256, now, tensorrt_status
from edgecv.results import ArtifactResult, Validation
from edgecv.sidecars import preprocessing, write_sidecars
from edgecv.tasks import get_task
from edgecv.validate.evaluate import EvaluationSet, StoredGates, evaluate_artifact
from edgecv.formats.tensorrt import versions as trt_versions  # trt_versions.jetpack_version: probed at call time

BUNDLE_SCHEMA = "edgecv.device-bundle/2"
REPORT_SCHEMA = "edgecv.device-report/2"
BUNDLE_FILE = "bundle.json"
VALIDATION_FILE = "validation.npz"
REFERENCE_PREFIX = "reference."  # validation.npz: reference.<output name>
TARGETS_KEY = "targets"  # validation.npz: targets, or targets.<key> for a task whose targets are a dict


def read_bundle(bundle: Path) -> dict:
    path = Path(bundle) / BUNDLE_FILE
    if not path.is_file():
        raise InputError(f"{bundle}: not a device bundle (no {BUNDLE_FILE}); `edgecv build` writes one for "
                         "tensorrt artifacts, in <out>/<target>/device-bundle-<artifact>")
    data = json.loads(path.read_text())
    if data.get("schema") != BUNDLE_SCHEMA:
        raise InputError(f"{path}: schema {data.get('schema')!r}, this edgecv reads {BUNDLE_SCHEMA}: rebuild the "
                         "target with this edgecv to write the bundle again")
    return data


# ---- writing (the build) ------------------------------------------------------------------------

def _take(value, idx):
    if isinstance(value, dict):
        return {k: np.asarray(v)[idx] for k, v in value.items()}
    return np.asarray(value)[idx]


def validation_arrays(validation: dict, limit: int) -> Optional[dict]:
    """Up to `limit` validation images spread over the split, with their targets and the float
    model's outputs, as the arrays validation.npz holds."""
    images = np.asarray(validation["images"])
    if limit <= 0 or len(images) == 0:
        return None
    idx = np.unique(np.linspace(0, len(images) - 1, min(limit, len(images))).round().astype(int))
    out = {"images": images[idx].astype(np.uint8)}
    targets = validation.get("targets")
    if isinstance(targets, dict):
        out.update({f"{TARGETS_KEY}.{k}": v for k, v in _take(targets, idx).items()})
    elif targets is not None:
        out[TARGETS_KEY] = _take(targets, idx)
    for name, value in (validation.get("reference") or {}).items():
        out[REFERENCE_PREFIX + name] = np.asarray(value)[idx]
    return out


def load_validation(bundle: Path, data: dict) -> tuple[np.ndarray, object, Optional[dict]]:
    """(images, targets or None, reference outputs by name or None) from validation.npz."""
    npz = np.load(Path(bundle) / data["validation"]["file"])
    targets = npz[TARGETS_KEY] if TARGETS_KEY in npz.files else (
        {k[len(TARGETS_KEY) + 1:]: npz[k] for k in npz.files if k.startswith(TARGETS_KEY + ".")} or None)
    reference = {k[len(REFERENCE_PREFIX):]: npz[k] for k in npz.files if k.startswith(REFERENCE_PREFIX)} or None
    return npz["images"], targets, reference


def _stale(bundle: Path, engines: dict) -> None:
    for entry in engines.values():
        engine = entry["engine"]
        for f in (entry["onnx"], engine, f"{engine}.json", f"{Path(engine).stem}.timing.cache"):
            (bundle / f).unlink(missing_ok=True)
    (bundle / "report.json").unlink(missing_ok=True)


def _gates(gates) -> tuple[dict, dict]:
    """(limits, tolerances) of an edgecv.config.target.Gates (or None)."""
    if gates is None:
        return {}, {}
    tolerances = {k: (t.model_dump() if hasattr(t, "model_dump") else dict(t)) for k, t in gates.tolerances.items()}
    return gates.limits(), tolerances


def write_bundle(bundle: Path, model, spec, opts, onnx_bytes: bytes, onnx_checks: dict, onnx_meta: dict, ctx,
                 fingerprint: str, input_name: str, expects: Optional[dict] = None, postprocess=None) -> dict:
    """Add this artifact's engine to its bundle (creating or refreshing the shared files). `opts` is
    the artifact's TensorRTOptions, `ctx` its ExportContext; `expects`: the TensorRT/JetPack
    versions the engine needs (edgecv.formats.tensorrt.versions), checked on the device;
    `postprocess`: the detection post-process in the graph (its four outputs are the engine's)."""
    ensure_dir(bundle)
    try:
        data = read_bundle(bundle)
    except EdgecvError:
        data = {}
    engines = data.get("engines", {})
    if data.get("model_fingerprint") != fingerprint:  # another model: its engines are stale
        _stale(bundle, engines)
        engines = {}

    task = model.make_task()
    onnx_name = f"{ctx.model_name}_{spec.name}.onnx"
    atomic_write_bytes(bundle / onnx_name, onnx_bytes)
    pre = ctx.preprocessing or preprocessing(task, model.info, model.input_size, "unknown (not given to the exporter)",
                                             model.normalization.to_json())
    sidecars = write_sidecars(bundle, task, model.info, pre, ctx.calibration_set)

    validation = None
    subset = validation_arrays(ctx.validation, opts.validation_images) if ctx.validation is not None else None
    if subset is not None:
        buf = io.BytesIO()
        np.savez_compressed(buf, **subset)
        atomic_write_bytes(bundle / VALIDATION_FILE, buf.getvalue())
        validation = {"file": VALIDATION_FILE, "count": int(len(subset["images"])),
                      "of": int(len(ctx.validation["images"])),
                      "targets": any(k.split(".")[0] == TARGETS_KEY for k in subset),
                      "reference_outputs": [k[len(REFERENCE_PREFIX):] for k in subset if k.startswith(REFERENCE_PREFIX)]}
    else:
        (bundle / VALIDATION_FILE).unlink(missing_ok=True)

    gates = ctx.gates if ctx.gates is not None else spec.gates
    limits, tolerances = _gates(gates)
    bmin, bopt, bmax = opts.batch_range
    engines[spec.name] = {
        "precision": spec.precision,
        "onnx": onnx_name,
        "onnx_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "engine": f"{ctx.model_name}_{spec.name}.engine",
        "batch": {"min": bmin, "opt": bopt, "max": bmax},
        "workspace_mb": opts.workspace_mb,
        "builder_optimization_level": opts.builder_optimization_level,
        "gates": limits,
        "tolerances": tolerances,
        "confidence": getattr(gates, "confidence", None),  # of the intervals its interval gates judge
        "onnx_checks": {k: v for k, v in onnx_checks.items() if k in ("opset", "qdq", "float_parameters", "message")},
        "onnx_metadata": onnx_meta,
    }
    if expects:
        engines[spec.name]["expects"] = expects
    h, w = model.input_size
    data = {
        "schema": BUNDLE_SCHEMA,
        "model": ctx.model_name,
        "model_fingerprint": fingerprint,
        "created": now(),
        "edgecv_version": edgecv.__version__,
        "recipe_sha256": ctx.metadata.get("recipe_sha256"),
        "task": task.to_json(),
        "info": model.info,
        "input": {"name": input_name, "dtype": "float32", "layout": "NHWC", "height": h, "width": w,
                  "pixels": "RGB 0..255, normalization inside the model", "batch": "dynamic"},
        "outputs": _output_spec(task, model.info, postprocess),
        "sidecars": sidecars,
        "validation": validation,
        "engines": dict(sorted(engines.items())),
    }
    atomic_write_text(bundle / BUNDLE_FILE, json.dumps(data, indent=2, default=str) + "\n")
    atomic_write_text(bundle / "README.md", bundle_readme(bundle, data))
    return data


def _output_spec(task, info: dict, postprocess) -> list:
    if postprocess is None:
        return [o.to_json() for o in task.output_spec(info)]
    k = postprocess.nms.max_detections
    shapes = {"detection_boxes": ["N", k, 4], "detection_classes": ["N", k], "detection_scores": ["N", k],
              "num_detections": ["N"]}
    return [{"name": n, "shape": s, "dtype": "float32", "meaning": "after decode + EfficientNMS_TRT"}
            for n, s in shapes.items()]


def bundle_readme(bundle: Path, data: dict) -> str:
    name = bundle.name
    rows = "\n".join(
        f"| `{e['onnx']}` | {e['precision']} | `{e['engine']}` | {e['batch']['min']}-{e['batch']['max']} "
        f"(opt {e['batch']['opt']}) | {e['workspace_mb']} MB |"
        for e in data["engines"].values())
    outputs = ", ".join(f"`{o['name']}` {o['dtype']}[{', '.join(map(str, o['shape']))}]" for o in data["outputs"])
    known = {"preprocessing.json": f"input contract: RGB, NHWC, {data['input']['height']}x{data['input']['width']}, "
                                   "float32 pixel values 0..255; the named outputs",
             "calibration.txt": "the training images that calibrated the int8 Q/DQ scales",
             "calibration.json": "size, seed and hash of the calibration set"}
    files = [(f, known.get(f, f"a file of the {data['task']['name']} task (also written beside every artifact)"))
             for f in data["sidecars"]]
    v = data["validation"]
    if v:
        files.append((v["file"], f"{v['count']} of the {v['of']} validation images (uint8 NHWC)"
                      + (", their targets" if v.get("targets") else "")
                      + (", the float model's outputs by name" if v.get("reference_outputs") else "")))
    files.append((BUNDLE_FILE, "what to build and how to judge it (read by `edgecv engine build`)"))
    file_rows = "\n".join(f"| `{f}` | {what} |" for f, what in files)
    first = next(iter(data["engines"].values()))
    expects = "\n".join(f"- `{n}` expects " + ", ".join(f"{k} {v}" for k, v in (("TensorRT", e["expects"].get("tensorrt")),
                                                                          ("JetPack", e["expects"].get("jetpack"))) if v)
                         + (f" ({'; '.join(e['expects']['reasons'])})" if e["expects"].get("reasons") else "")
                         for n, e in data["engines"].items() if e.get("expects"))
    if expects:
        expects = ("\n\nVersions (`edgecv engine build` and `validate` refuse a device with others, naming both):\n"
                   + expects)
    return f"""# edgecv device bundle: {data['model']}

Written by edgecv {data['edgecv_version']} on {data['created']}. Task: {data['task']['name']}; outputs:
{outputs}. A TensorRT engine runs only on the GPU model and TensorRT version that built it, so the
engines are built on the device from the ONNX files here. Precision is in the ONNX graph (Q/DQ nodes
for int8, float16 tensors for fp16): the network is strongly typed, no calibration happens on the
device.{expects}

| source ONNX | precision | engine | batch | workspace |
| --- | --- | --- | --- | --- |
{rows}

| file | what |
| --- | --- |
{file_rows}

## On the device

Needs TensorRT with its Python module (`python3-libnvinfer` on JetPack): 10.x on JetPack 6, 11.x
on newer JetPack (strongly typed builds); 8.5 on JetPack 5 (Python 3.8) also works (explicit batch
with the INT8/FP16 builder flag TensorRT 8 needs for Q/DQ and fp16 graphs). CUDA is reached through
cuda-python when installed, else through JetPack's libcudart. Then edgecv {data['edgecv_version']}
itself, whose plain install is the device path (no TensorFlow):

    pip install ./edgecv        # this edgecv's source tree or wheel; no extras on a Jetson

Copy this folder to the device, then, in the folder that holds it:

    edgecv engine build {name}

builds every engine above, each with `<engine>.json` beside it (TensorRT version, GPU name and
compute capability, precision, input shapes, source ONNX sha256) and `<engine stem>.timing.cache`
(reused by the next build), then validates every engine on `validation.npz` against the targets and
the float model's outputs (the task's metrics and agreement, every output's error, latency p50/p90),
checks the artifact's gates and writes `report.json` here.

    edgecv engine build {name} --only {next(iter(data['engines']))}   # one engine
    edgecv engine validate {name}                       # measure again without rebuilding
    edgecv validate {name}/{first['engine']} --data IMAGES   # any image folder the task can read

The same ONNX files were validated with ONNX Runtime on the CPU when the bundle was written: the
target's report.json has those numbers, the device's report.json shows what TensorRT reaches.
"""


# ---- building and validating (the device) -------------------------------------------------------

def bundle_task(data: dict):
    return get_task(data["task"]["name"], data["task"].get("options"))


def build_bundle(bundle: Path, only: list[str] = (), build: bool = True, validate: bool = True,
                 latency_batch: int = 1, log: Callable[[str], None] = print) -> dict:
    """Build (optionally) and validate the engines of a bundle; writes and returns report.json
    (`engines`: one edgecv.results.ArtifactResult each, as JSON)."""
    bundle = Path(bundle)
    data = read_bundle(bundle)
    names = list(only) or list(data["engines"])
    unknown = [n for n in names if n not in data["engines"]]
    if unknown:
        raise InputError(f"{bundle}: no engine named {unknown}; the bundle has {', '.join(data['engines'])}")
    trt, reason = tensorrt_status()
    if trt is None:
        raise TensorRTUnavailable(f"not built on this machine: {reason}. Run `edgecv engine build {bundle}` on the "
                                  "device (a Jetson with JetPack 5 or 6, or a GPU with TensorRT 10/11)")

    expects = {name: data["engines"][name].get("expects") for name in names}
    jetpack = trt_versions.jetpack_version() if any(expects.values()) else None
    for name in names:  # before any build: a device with other versions is refused, with both named
        trt_versions.check_device(expects[name], getattr(trt, "__version__", "unknown"), jetpack, f"{bundle} ({name})")
    task = bundle_task(data)
    results = []
    for name in names:
        e = data["engines"][name]
        engine_path = bundle / e["engine"]
        result = ArtifactResult(name=name, format="tensorrt", precision=e["precision"], status="ok",
                                path=e["engine"], source_onnx=e["onnx"])
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
            result.size_bytes = engine_path.stat().st_size
            result.sha256 = file_sha256(engine_path)
            side = engine_path.with_name(engine_path.name + ".json")
            result.artifact_metadata = json.loads(side.read_text()) if side.is_file() else {}
            if validate:
                result = validate_engine(result, engine_path, bundle, data, task, latency_batch)
        except EdgecvError as err:
            result.status, result.error = "failed", str(err)
        except Exception as err:  # a TensorRT or CUDA error: record it, go on with the next engine
            result.status, result.error = "failed", f"{type(err).__name__}: {err}"
        result.seconds = round(time.perf_counter() - t0, 2)
        results.append(json.loads(result.model_dump_json(exclude_none=True)))
    report = {"schema": REPORT_SCHEMA, "created": now(), "edgecv_version": edgecv.__version__,
              "bundle": data["model"], "model_fingerprint": data["model_fingerprint"], "task": data["task"],
              "task_info": data["info"], "engines": results}
    previous = {}
    if (bundle / "report.json").is_file():  # keep results of engines not rebuilt this time
        old = json.loads((bundle / "report.json").read_text())
        if old.get("model_fingerprint") == data["model_fingerprint"] and old.get("schema") == REPORT_SCHEMA:
            previous = {e["name"]: e for e in old.get("engines", []) if e["name"] not in names}
    report["engines"] = sorted(results + list(previous.values()), key=lambda e: e["name"])
    atomic_write_text(bundle / "report.json", json.dumps(report, indent=2, default=float) + "\n")
    return report


def validate_engine(result, engine_path: Path, bundle: Path, data: dict, task, latency_batch: int = 1):
    """`result` (an ArtifactResult) filled as the build does for its artifacts (the one evaluation
    kernel): the task's metrics against the targets, deltas and agreement with the float model,
    every output's error, latency, then the engine's gates."""
    if not data.get("validation"):
        result.validation = Validation(numeric=False, reason="the bundle holds no validation images")
        return result
    e = data["engines"][result.name]
    images, targets, reference = load_validation(bundle, data)
    gates = StoredGates(e.get("gates") or {}, e.get("tolerances") or {}, e.get("confidence"))
    judged = evaluate_artifact(engine_path, task, EvaluationSet(images, targets, data["info"], reference),
                               entry=result.model_dump(exclude_none=True), gates=gates, gate_source="device",
                               fmt="tensorrt", batches=(latency_batch,))
    judged.validation_images = int(len(images))
    return judged
