"""TFLite exporter and runtime on the tiny model: each precision round-trips; int8 is really integer."""

import numpy as np
import pytest

from edgecv.config.target import ArtifactSpec
from edgecv.errors import ConversionError
from edgecv.exporters import ExportContext, get_exporter
from edgecv.runtimes import load_runtime
from edgecv.runtimes.base import pixels_to_input
from edgecv.validate.comparator import compare
from edgecv.formats.tflite.checks import inspect_tflite


def export(tiny_model, tiny_calibration, tmp_path, **spec):
    batches, calib = tiny_calibration
    ctx = ExportContext("tiny", batches, calib.sha256)
    return get_exporter("tflite")().export(tiny_model, ArtifactSpec(format="tflite", **spec), tmp_path, ctx)


@pytest.mark.parametrize("precision,io_dtype,min_agree", [
    ("fp32", None, 1.0), ("fp16", None, 0.99), ("int8", "uint8", 0.9), ("int8", "int8", 0.9)])
def test_round_trip_agrees_with_keras(tiny_model, tiny_calibration, tiny_val, tmp_path, precision, io_dtype, min_agree):
    art = export(tiny_model, tiny_calibration, tmp_path, name=precision, precision=precision, io_dtype=io_dtype)
    images, _ = tiny_val
    ref = tiny_model.predict(images)
    with load_runtime(art.path) as rt:
        assert rt.input_size == (32, 32)
        out = rt.predict(images)
    assert set(out) == set(tiny_model.output_names) == {"probabilities"}  # the signature's name, not a guess
    cmp = compare(tiny_model.make_task(), tiny_model.info, out, None, ref)
    assert cmp.agreement["top1_agreement"] >= min_agree
    if precision == "fp32":
        assert cmp.outputs["probabilities"].max_abs_error < 1e-4
    assert art.checks["passed"]


def test_int8_is_integer_only_and_takes_pixels(tiny_model, tiny_calibration, tmp_path):
    art = export(tiny_model, tiny_calibration, tmp_path, name="q", precision="int8")
    c = art.checks
    assert c["integer_only"] and c["float_ops"] == {}
    assert c["input_dtype"] == "uint8" and c["input_quantization"] == [1.0, 0]  # uint8 input = the pixel
    assert art.metadata["calibration_sha256"] == tiny_calibration[1].sha256


def test_int8_sizes_smaller_than_fp32(tiny_model, tiny_calibration, tmp_path):
    fp32 = export(tiny_model, tiny_calibration, tmp_path, name="f", precision="fp32")
    int8 = export(tiny_model, tiny_calibration, tmp_path, name="q", precision="int8")
    assert int8.size_bytes < 0.5 * fp32.size_bytes


def test_dynamic_range_model_is_not_reported_as_int8(tiny_model, tmp_path):
    """A model with int8 weights but float compute must fail the int8 check (the Ultralytics trap)."""
    from edgecv._keras import tf

    converter = tf.lite.TFLiteConverter.from_keras_model(tiny_model.keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative data: dynamic range
    path = tmp_path / "dynamic.tflite"
    path.write_bytes(converter.convert())
    result = inspect_tflite(path, "int8", "uint8")
    assert not result["passed"] and not result["integer_only"]
    assert "compute in float" in result["message"]


def test_int8_without_calibration_is_a_clear_error(tiny_model, tmp_path):
    with pytest.raises(ConversionError, match="calibration"):
        get_exporter("tflite")().export(tiny_model, ArtifactSpec(name="q", format="tflite", precision="int8"),
                                        tmp_path, ExportContext("tiny"))


def test_pixel_contract():
    px = np.array([[0, 128, 255]], np.uint8)
    assert (pixels_to_input(px, np.uint8) == px).all()
    assert pixels_to_input(px, np.int8).tolist() == [[-128, 0, 127]]
    assert pixels_to_input(px, np.float32).tolist() == [[0.0, 128.0, 255.0]]
    assert np.allclose(pixels_to_input(px, np.float32, (-1.0, 1.0)), [[-1.0, 128 / 127.5 - 1, 1.0]], atol=1e-6)


def test_runtime_names_outputs_without_a_signature(tiny_model, tmp_path):
    """A third-party model (converted from Keras, no edgecv signature names) still returns its
    lone output, which the task takes as its only output."""
    from edgecv._keras import tf

    path = tmp_path / "plain.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(tiny_model.keras_model).convert())
    images = np.zeros((2, 32, 32, 3), np.uint8)
    with load_runtime(path) as rt:
        out = rt.predict(images)
    assert len(out) == 1
    task = tiny_model.make_task()
    assert list(task.select_outputs(out, tiny_model.info)) == ["probabilities"]


def test_runtime_handles_any_batch_size(tiny_model, tiny_calibration, tiny_val, tmp_path):
    art = export(tiny_model, tiny_calibration, tmp_path, name="f", precision="fp32")
    images, _ = tiny_val
    with load_runtime(art.path, threads=1) as rt:
        one = rt.predict(images[:1])["probabilities"]
        many = rt.predict(images[:7])["probabilities"]
    assert many.shape == (7, 3) and np.allclose(one[0], many[0], atol=1e-6)
