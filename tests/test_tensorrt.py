"""TensorRT: the device bundle everywhere; engine build and run only where TensorRT has a GPU.

Where TensorRT cannot create a builder (CPU machines, CI) a tensorrt artifact must come out as
`not_built` with the reason, a complete bundle and the command that finishes it: never skipped
silently, never faked. The engine tests skip with TensorRT's own reason.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import yaml

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

from edgecv.formats.tensorrt.export import TensorRTOptions  # noqa: E402
from edgecv.formats.tensorrt.engine import tensorrt_status  # noqa: E402

TARGET = {
    "description": "test Jetson: onnx, int8 QDQ, int8 and fp16 engines",
    "runtime": {"batch": 1},
    "artifacts": [
        {"name": "onnx", "format": "onnx", "precision": "fp32"},
        {"name": "qdq-int8", "format": "onnx", "precision": "int8"},
        {"name": "engine-int8", "format": "tensorrt", "precision": "int8", "options": {"batch": [1, 4]}},
        {"name": "engine-fp16", "format": "tensorrt", "precision": "fp16", "options": {"batch": [1, 2, 4]}},
    ],
    "gates": {"accuracy_drop_max": 10.0},
}


def _can_build() -> tuple[bool, str]:
    trt, reason = tensorrt_status()
    return trt is not None, reason


@pytest.fixture(scope="module")
def jetson_build(tmp_path_factory, tiny_recipe_path):
    """A real `edgecv build` of the tiny recipe for a TensorRT target."""
    from rich.console import Console

    from edgecv.orchestrator.runner import run_build

    root = tmp_path_factory.mktemp("trt")
    target = root / "test-jetson.yaml"
    target.write_text(yaml.safe_dump(TARGET))
    out = root / "build"
    result = run_build(tiny_recipe_path, [str(target)], out, console=Console(quiet=True))
    report = json.loads((out / "test-jetson" / "report.json").read_text())
    return out / "test-jetson", report, result


def _entry(report, name):
    return next(a for a in report["artifacts"] if a["name"] == name)


def test_onnx_artifacts_are_validated_on_the_cpu(jetson_build):
    _, report, _ = jetson_build
    for name in ("onnx", "qdq-int8"):
        a = _entry(report, name)
        assert a["status"] == "ok", a
        assert a["validation"]["numeric"] and a["runtime"]["providers"][-1] == "CPUExecutionProvider"
        assert a["agreement"]["top1_agreement"] >= 0.9 and a["latency"]["p50_ms"] > 0
    assert _entry(report, "qdq-int8")["checks"]["qdq"]["zero_points_all_zero"]


def test_engine_not_built_here_with_bundle_and_command(jetson_build):
    can, reason = _can_build()
    if can:
        pytest.skip("TensorRT can build here: test_engine_build_and_run covers this machine")
    out_dir, report, result = jetson_build
    for name in ("engine-int8", "engine-fp16"):
        bundle = out_dir / f"device-bundle-{name}"
        a = _entry(report, name)
        assert a["status"] == "not_built", a
        assert a["reason"] == reason and a["prepared"] == f"device-bundle-{name}"
        assert a["how_to_finish"] == f"edgecv engine build {bundle}"  # the published bundle, ready to copy
        assert (bundle / "bundle.json").is_file()
        assert not a["gates"] and not a["metrics"] and a["latency"] is None  # nothing measured, nothing faked
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert reason.startswith("no TensorRT")
    assert result.exit_code == 0  # not_built is not a failure: the build did all it can here


def test_bundle_is_self_contained(jetson_build, tiny_val, tiny_model):
    out_dir, report, _ = jetson_build
    bundle = out_dir / "device-bundle-engine-int8"  # one self-contained bundle per engine artifact
    data = json.loads((bundle / "bundle.json").read_text())
    assert data["schema"] == "edgecv.device-bundle/2" and set(data["engines"]) == {"engine-int8"}
    fp16_data = json.loads((out_dir / "device-bundle-engine-fp16" / "bundle.json").read_text())
    assert set(fp16_data["engines"]) == {"engine-fp16"}
    assert data["input"] == {"name": "image", "dtype": "float32", "layout": "NHWC", "height": 32, "width": 32,
                             "pixels": "RGB 0..255, normalization inside the model", "batch": "dynamic"}
    e8, e16 = data["engines"]["engine-int8"], fp16_data["engines"]["engine-fp16"]
    assert e8["batch"] == {"min": 1, "opt": 1, "max": 4} and e16["batch"] == {"min": 1, "opt": 2, "max": 4}
    assert hashlib.sha256((bundle / e8["onnx"]).read_bytes()).hexdigest() == e8["onnx_sha256"]
    e16_onnx = out_dir / "device-bundle-engine-fp16" / e16["onnx"]
    assert hashlib.sha256(e16_onnx.read_bytes()).hexdigest() == e16["onnx_sha256"]
    # the int8 engine is built from exactly the QDQ ONNX validated on the CPU as qdq-int8
    assert e8["onnx_sha256"] == _entry(report, "qdq-int8")["sha256"]
    assert e8["onnx_checks"]["qdq"]["zero_points_all_zero"]
    _check_bundle_files(bundle, data, tiny_model, tiny_val)
    assert e8["gates"] == {"accuracy_drop_max": 10.0}


def _check_bundle_files(bundle, data, model, val):
    """What every bundle holds: the task and its facts, the output spec, sidecars, validation data."""
    assert data["task"] == {"name": "classification", "options": {}} and data["info"] == model.info
    assert [o["name"] for o in data["outputs"]] == model.output_names
    for f in ("labels.txt", "preprocessing.json", "calibration.txt", "README.md"):
        assert (bundle / f).is_file(), f
    assert (bundle / "labels.txt").read_text().splitlines() == model.info["class_names"]
    images, labels = val
    npz = np.load(bundle / "validation.npz")
    assert npz["images"].dtype == np.uint8 and npz["images"].shape == images.shape
    np.testing.assert_array_equal(npz["targets"], labels)
    assert npz["reference.probabilities"].shape == (len(images), 3)
    assert data["validation"]["reference_outputs"] == ["probabilities"] and data["validation"]["targets"]
    name = bundle.name
    readme = (bundle / "README.md").read_text()
    assert f"edgecv engine build {name}" in readme and "`probabilities`" in readme


# ---- the exporter and the device side, without the build ----------------------------------------

@pytest.fixture(scope="module")
def direct_bundle(tiny_model, tiny_val, tiny_calibration, tmp_path_factory):
    """The tensorrt exporter called directly, as the build calls it (validation, sidecars, gates)."""
    from edgecv.config.target import ArtifactSpec, Gates
    from edgecv.exporters import ExportContext, NotBuiltHere, get_exporter
    from edgecv.sidecars import preprocessing

    out = tmp_path_factory.mktemp("trt-direct")
    images, labels = tiny_val
    batches, calib = tiny_calibration
    task = tiny_model.make_task()
    ctx = ExportContext("tiny", batches, calib.sha256,
                        validation={"images": images, "targets": labels, "reference": tiny_model.predict(images)},
                        preprocessing=preprocessing(task, tiny_model.info, tiny_model.input_size, "stretch",
                                                    tiny_model.normalization.to_json()),
                        calibration_set=calib, gates=Gates(accuracy_drop_max=10.0, top1_agreement_min=0.9))
    spec = ArtifactSpec(name="engine-int8", format="tensorrt", precision="int8", options={"batch": [1, 4]})
    try:
        outcome = get_exporter("tensorrt")().export(tiny_model, spec, out, ctx)
    except NotBuiltHere as e:
        outcome = e
    return out / "device-bundle-engine-int8", outcome


def test_exporter_writes_the_bundle_or_says_why_not(direct_bundle, tiny_model, tiny_val):
    from edgecv.exporters import NotBuiltHere

    bundle, outcome = direct_bundle
    can, reason = _can_build()
    if not can:
        assert isinstance(outcome, NotBuiltHere) and outcome.reason == reason and outcome.prepared == bundle
        assert outcome.how_to_finish == f"edgecv engine build {bundle}"
    data = json.loads((bundle / "bundle.json").read_text())
    _check_bundle_files(bundle, data, tiny_model, tiny_val)
    e8 = data["engines"]["engine-int8"]
    assert e8["gates"] == {"accuracy_drop_max": 10.0, "top1_agreement_min": 0.9} and e8["tolerances"] == {}
    assert json.loads((bundle / "preprocessing.json").read_text())["outputs"]["probabilities"]["shape"] == ["N", 3]
    assert e8["onnx_metadata"]["outputs"] == ["probabilities"]


def test_engine_validate_compares_and_gates_with_the_bundle_task(direct_bundle, monkeypatch):
    """`edgecv engine validate` on a device, with onnxruntime standing in for TensorRT (no GPU here):
    the task comes back from bundle.json, every output is compared, gates checked on a typed result."""
    import shutil

    from typer.testing import CliRunner

    import edgecv.formats.tensorrt.bundle as tb
    import edgecv.validate.measure as measure  # where the evaluation kernel loads a runtime
    from edgecv.cli.main import app
    from edgecv.results import ArtifactResult
    from edgecv.formats.onnx.runtime import OnnxRuntime

    bundle, _ = direct_bundle
    data = json.loads((bundle / "bundle.json").read_text())
    e = data["engines"]["engine-int8"]
    if not (bundle / e["engine"]).is_file():
        shutil.copyfile(bundle / e["onnx"], bundle / e["engine"])  # the stand-in "engine" is its source ONNX
    monkeypatch.setattr(tb, "tensorrt_status", lambda: (object(), ""))
    monkeypatch.setattr(measure, "load_runtime", lambda path, fmt=None, **kw: OnnxRuntime(path))
    res = CliRunner().invoke(app, ["engine", "validate", str(bundle)])
    assert res.exit_code == 0, res.output
    assert "top-1 agree" in res.output and "passed" in res.output
    report = json.loads((bundle / "report.json").read_text())
    assert report["schema"] == "edgecv.device-report/2" and report["task"]["name"] == "classification"
    (entry,) = report["engines"]
    result = ArtifactResult.model_validate(entry)
    assert result.status == "ok" and result.validation.numeric
    assert set(result.outputs) == {"probabilities"} and result.agreement["top1_agreement"] >= 0.9
    assert {g.gate for g in result.gates} == {"accuracy_drop_max", "top1_agreement_min"}
    assert all(g.passed and g.source == "device" for g in result.gates)


def test_engine_cli_says_why_it_cannot_build_here(jetson_build):
    can, reason = _can_build()
    if can:
        pytest.skip("TensorRT can build here")
    from typer.testing import CliRunner

    from edgecv.cli.main import app

    bundle = jetson_build[0] / "device-bundle-engine-int8"
    res = CliRunner().invoke(app, ["engine", "build", str(bundle)])
    assert res.exit_code == 4
    assert "not built on this machine" in res.output and reason.split(":")[0] in res.output
    assert not list(bundle.glob("*.engine"))
    res = CliRunner().invoke(app, ["engine", "build", str(bundle.parent)])
    assert res.exit_code == 2 and "not a device bundle" in res.output


def test_engine_runtime_is_unavailable_without_tensorrt(tmp_path):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed here")
    except ImportError:
        pass
    from edgecv.runtimes import RuntimeUnavailable, load_runtime

    fake = tmp_path / "m.engine"
    fake.write_bytes(b"not an engine")
    with pytest.raises(RuntimeUnavailable, match="no TensorRT"):
        load_runtime(fake)


def test_tensorrt_options():
    from edgecv.errors import ConfigError
    from edgecv.exporters.base import parse_options

    o = parse_options({"batch": [1, 8], "exclude_op_types": ["Add"]}, TensorRTOptions, "tensorrt")
    assert o.batch_range == (1, 1, 8) and o.onnx_options().exclude_op_types == ["Add"]
    assert parse_options({"batch": [2, 4, 8]}, TensorRTOptions, "tensorrt").batch_range == (2, 4, 8)
    for bad in ({"batch": [8, 1]}, {"batch": [0, 4]}, {"workspace": 10}):
        with pytest.raises(ConfigError):
            parse_options(bad, TensorRTOptions, "tensorrt")


# ---- only where TensorRT can create a builder on a GPU -------------------------------------------

@pytest.mark.tensorrt
@pytest.mark.gpu
def test_engine_build_and_run(jetson_build, tiny_val):
    pytest.importorskip("tensorrt")
    can, reason = _can_build()
    if not can:
        pytest.skip(reason)
    from edgecv.formats.tensorrt.bundle import build_bundle
    from edgecv.runtimes import load_runtime

    out_dir, report, _ = jetson_build
    for name in ("engine-int8", "engine-fp16"):  # built during the build and validated by the runner
        a = _entry(report, name)
        assert a["status"] == "ok" and a["agreement"]["top1_agreement"] >= 0.9, a
    bundle = out_dir / "device-bundle-engine-int8"
    dev = build_bundle(bundle, log=lambda m: None)  # what `edgecv engine build` runs on the device
    assert [e["status"] for e in dev["engines"]] == ["ok"]
    for e in dev["engines"]:
        side = json.loads((bundle / f"{e['path']}.json").read_text())
        assert {"tensorrt_version", "gpu", "precision", "input_shapes", "source_onnx_sha256"} <= set(side)
        assert side["gpu"]["compute_capability"] and (bundle / side["timing_cache"]).is_file()
        assert e["agreement"]["top1_agreement"] >= 0.9
    images, _ = tiny_val
    onnx_probs = None
    with load_runtime(out_dir / "tiny_onnx.onnx") as rt:
        onnx_probs = rt.predict(images)["probabilities"]
    with load_runtime(bundle / "tiny_engine-fp16.engine") as rt:
        assert rt.max_batch == 4
        probs = rt.predict(images)["probabilities"]  # more images than the max batch: chunked
    assert np.abs(probs - onnx_probs).max() < 2e-2
