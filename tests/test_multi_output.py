"""A task with two outputs, defined only here: every exporter keeps both outputs under the task's
names and every runtime returns both by name, close to Keras'."""

from __future__ import annotations

from typing import List

import numpy as np
import pytest

from edgecv.config.target import ArtifactSpec
from edgecv.exporters import ExportContext, get_exporter
from edgecv.runtimes import load_runtime
from edgecv.tasks.base import OutputSpec, Task

SIZE = 16


class TwoOutputs(Task):
    """Regression-like outputs `a [N, 4]` and `b [N, 2]` (no data reading: exporters only)."""

    name = "test_two_outputs"
    needs_targets = False

    def read_data(self, recipe):
        raise NotImplementedError

    def targets(self, samples, info):
        return None

    def output_spec(self, info: dict) -> List[OutputSpec]:
        return [OutputSpec("a", ("N", 4), "float32", "four numbers"), OutputSpec("b", ("N", 2), "float32", "two")]

    def sidecars(self, info: dict) -> dict:
        return {"outputs.txt": "a\nb\n"}


@pytest.fixture(scope="module")
def two_output_model():
    from edgecv._keras import keras
    from edgecv.models.backbones import normalization
    from edgecv.models.build import TaskModel, normalization_layer

    keras.utils.set_random_seed(0)
    norm = normalization("tf")
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = normalization_layer(norm)(inp)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    # Keras output order (b first) differs from the task's names' alphabetical order on purpose
    b = keras.layers.Dense(2, activation="sigmoid", name="head_b")(x)
    a = keras.layers.Dense(4, name="head_a")(x)
    model = keras.Model(inp, [a, b], name="two")
    return TaskModel(model, TwoOutputs.name, {}, (SIZE, SIZE), norm, "toy", [])


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).integers(0, 256, (12, SIZE, SIZE, 3), dtype=np.uint8)


def _calibration():
    rng = np.random.default_rng(2)
    batches = [rng.integers(0, 256, (1, SIZE, SIZE, 3), dtype=np.uint8) for _ in range(16)]
    return lambda: iter(batches)


@pytest.mark.parametrize("fmt,precision,atol", [
    ("tflite", "fp32", 1e-4), ("tflite", "int8", None), ("onnx", "fp32", 1e-4), ("savedmodel", "fp32", 1e-5)])
def test_every_output_by_name(two_output_model, images, tmp_path, fmt, precision, atol):
    if fmt == "onnx":
        pytest.importorskip("tf2onnx")
        pytest.importorskip("onnxruntime")
    ref = two_output_model.predict(images)
    assert set(ref) == {"a", "b"} and ref["a"].shape == (12, 4) and ref["b"].shape == (12, 2)
    spec = ArtifactSpec(name=f"{fmt}-{precision}", format=fmt, precision=precision)
    art = get_exporter(fmt)().export(two_output_model, spec, tmp_path, ExportContext("two", _calibration()))
    with load_runtime(art.path) as rt:
        out = rt.predict(images)
    assert {"a", "b"} <= set(out), sorted(out)
    for name in ("a", "b"):
        assert out[name].shape == ref[name].shape, name
        # int8 (calibrated on 16 random images): within 10% of the output's largest value
        tol = atol if atol is not None else 0.1 * float(np.abs(ref[name]).max() + 1e-3)
        np.testing.assert_allclose(out[name], ref[name], atol=tol, err_msg=name)
    if fmt == "savedmodel":
        assert (art.path / "1" / "assets" / "outputs.txt").read_text() == "a\nb\n"
        assert set(art.checks["outputs"]) == {"a", "b"}
    if fmt == "onnx":
        assert sorted(art.checks["outputs"]) == ["a", "b"]


def test_comparator_reads_both_outputs(two_output_model, images, tmp_path):
    from edgecv.validate.comparator import compare

    art = get_exporter("tflite")().export(two_output_model, ArtifactSpec(name="f", format="tflite"), tmp_path,
                                          ExportContext("two"))
    with load_runtime(art.path) as rt:
        out = rt.predict(images)
    ref = two_output_model.predict(images)
    cmp = compare(two_output_model.make_task(), {}, out, None, ref)
    assert set(cmp.outputs) == {"a", "b"} and all(o.max_abs_error < 1e-4 for o in cmp.outputs.values())


def test_coreml_outputs_are_the_task_outputs_not_a_classifier(two_output_model, tmp_path):
    """A task without classifier labels gets one multi-array output per task output, by name."""
    pytest.importorskip("coremltools")
    from edgecv.formats.coreml.checks import load_package

    spec = ArtifactSpec(name="ml", format="coreml", precision="fp32", options={"minimum_deployment_target": "iOS16"})
    art = get_exporter("coreml")().export(two_output_model, spec, tmp_path,
                                          ExportContext("two", _calibration(), None, {"recipe_sha256": "x", "edgecv_version": "0"}))
    assert art.checks["passed"], art.checks["message"]
    mlmodel, pkg, func = load_package(art.path)
    assert sorted(o.name for o in pkg.description.output) == ["a", "b"] and not pkg.description.predictedFeatureName
    assert art.checks["labels"] is None and sorted(art.metadata["outputs"]) == ["a", "b"]
    assert "com.apple.coreml.model.preview.type" not in mlmodel.user_defined_metadata
