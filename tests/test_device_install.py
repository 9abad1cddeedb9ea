"""The device path (`pip install edgecv` without extras) imports no TensorFlow, onnx or coremltools.

Each check runs in a fresh interpreter whose imports of the build stack fail, as they would on a
Jetson or a Raspberry Pi where it is not installed.
"""

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

BUILD_STACK = ("tensorflow", "tf_keras", "tensorflow_model_optimization", "tf2onnx", "onnx", "coremltools")
DEVICE_MODULES = ("edgecv.cli.main", "edgecv.cli.engine", "edgecv.validate.bench", "edgecv.validate.device",
                  "edgecv.validate.comparator", "edgecv.validate.gates", "edgecv.formats.tensorrt.bundle",
                  "edgecv.formats.tflite.runtime", "edgecv.formats.onnx.runtime", "edgecv.formats.tensorrt.runtime",
                  "edgecv.formats.tensorrt.engine", "edgecv.report.merge", "edgecv.report.outputs",
                  "edgecv.report.html", "edgecv.results", "edgecv.tasks", "edgecv.config")

BLOCKER = textwrap.dedent(f"""
    import runpy, sys
    BLOCKED = {BUILD_STACK!r}

    class BuildStackAbsent:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}} (not on the device path)")

    sys.meta_path.insert(0, BuildStackAbsent())
""")


def run_without_build_stack(code: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The CLI; stdout ends with the build-stack modules it loaded (none, where it works)."""
    return run_without_build_stack(f"""
        sys.argv = ["edgecv", *{list(args)!r}]
        try:
            runpy.run_module("edgecv.cli.main", run_name="__main__")
        finally:
            print("LOADED", sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
    """)


def test_device_modules_import_no_build_stack():
    r = run_without_build_stack(f"""
        import importlib
        for name in {DEVICE_MODULES!r}:
            importlib.import_module(name)
        from edgecv.tasks import all_task_classes
        all_task_classes()
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        print("LOADED", loaded)
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "LOADED []" in r.stdout


def test_bench_a_tflite_artifact_without_build_stack(tmp_path, tiny_model, tiny_calibration, tiny_data):
    from edgecv.config.target import ArtifactSpec
    from edgecv.exporters import ExportContext, get_exporter

    batches, calib = tiny_calibration
    art = get_exporter("tflite")().export(tiny_model, ArtifactSpec(name="q", format="tflite", precision="int8"),
                                          tmp_path, ExportContext("tiny", batches, calib.sha256))
    (tmp_path / "labels.txt").write_text("".join(f"{c}\n" for c in tiny_model.info["class_names"]))
    out = tmp_path / "r.json"
    r = run_cli("bench", str(art.path), "--data", str(tiny_data), "--resize", "resize", "--runs", "3",
                "--seconds", "0", "--json", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["accuracy"]["images"] == 60 and res["latency"]["runs"] >= 3
    assert r.stdout.rstrip().endswith("LOADED []")


def test_engine_build_without_tensorrt_exits_4_naming_it(tmp_path):
    bundle = tmp_path / "device-bundle-engine-fp16"
    bundle.mkdir()
    (bundle / "bundle.json").write_text(json.dumps({
        "schema": "edgecv.device-bundle/2", "model": "tiny", "engines": {"engine-fp16": {"onnx": "tiny.onnx"}}}))
    r = run_cli("engine", "build", str(bundle))
    if r.returncode == 0:
        pytest.skip("this machine has TensorRT and a GPU")
    assert r.returncode == 4, r.stderr[-3000:]
    assert "no TensorRT" in r.stderr or "no CUDA" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout.rstrip().endswith("LOADED []")


@pytest.mark.parametrize("command", [["build", "-t", "raspberry-pi-4"], ["diagnose", "x.tflite"]])
def test_build_commands_name_the_build_extra(command):
    r = run_cli(*command)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "pip install 'edgecv[build]'" in r.stderr and "tensorflow" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout.rstrip().endswith("LOADED []")
