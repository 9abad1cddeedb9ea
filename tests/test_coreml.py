"""Core ML: conversion of the tiny model, labels, preprocessing parity, compression, build report.

Everything but prediction runs on Linux: packages are read back with coremltools (spec + ML
Program) without compiling them. Prediction through Core ML is marked `macos`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("coremltools", reason="Core ML export needs coremltools: pip install 'edgecv[coreml]'")

from edgecv.config.target import ArtifactSpec  # noqa: E402
from edgecv.errors import ConfigError  # noqa: E402
from edgecv.exporters import ExportContext, get_exporter  # noqa: E402
from edgecv.models.backbones import CAFFE_MEAN_BGR, normalization  # noqa: E402
from edgecv.formats.coreml.checks import (  # noqa: E402
    Expected,
    ImagePreprocessing,
    inspect_mlpackage,
    load_package,
    read_preprocessing,
)

on_macos = pytest.mark.skipif(sys.platform != "darwin", reason="Core ML predicts on macOS only")


def export(model, tmp: Path, name: str, precision: str = "fp16", calibration=None, **options):
    spec = ArtifactSpec(name=name, format="coreml", precision=precision, options=options)
    ctx = ExportContext("tiny", calibration, None, {"recipe_sha256": "abc123", "edgecv_version": "0.1.0"})
    return get_exporter("coreml")().export(model, spec, tmp, ctx)


@pytest.fixture(scope="module")
def variants(tiny_model, tiny_calibration, tmp_path_factory):
    """The tiny model as fp16 and each compressed variant (iOS17), fp32 and iOS15."""
    out = tmp_path_factory.mktemp("coreml")
    calib = tiny_calibration[0]
    arts = {c: export(tiny_model, out, c, calibration=calib, minimum_deployment_target="iOS17", compression=c)
            for c in ("none", "int8", "palettize6", "palettize4")}
    arts["prune"] = export(tiny_model, out, "prune", calibration=calib, minimum_deployment_target="iOS17",
                           compression="prune", sparsity=0.6)
    arts["fp32"] = export(tiny_model, out, "fp32", precision="fp32", minimum_deployment_target="iOS17")
    arts["ios15"] = export(tiny_model, out, "ios15", minimum_deployment_target="iOS15")
    return arts


# ---- conversion, labels, metadata --------------------------------------------------------------
def test_tiny_model_converts_to_an_ml_program_with_an_image_input_and_labels(variants, tiny_model):
    art = variants["none"]
    assert art.path.name == "tiny_none.mlpackage" and art.path.is_dir()
    assert art.format == "coreml" and art.runtime_format == "coreml" and art.precision == "fp16"
    assert art.checks["passed"], art.checks["message"]
    mlmodel, spec, func = load_package(art.path)
    assert spec.WhichOneof("Type") == "mlProgram"
    assert spec.specificationVersion == 8  # iOS17
    (inp,) = spec.description.input
    assert inp.name == "image" and inp.type.WhichOneof("Type") == "imageType"
    assert (inp.type.imageType.height, inp.type.imageType.width) == (32, 32)
    assert [o.name for o in spec.description.output] == ["classLabel", "classLabel_probs"]
    assert spec.description.predictedProbabilitiesName == "classLabel_probs"
    assert art.checks["labels"] == tiny_model.info["class_names"] == ["class_0", "class_1", "class_2"]
    assert art.checks["compute_dtypes"].get("fp16") and not art.checks["weights"]["constexpr_ops"]


def test_metadata_says_who_what_and_from_which_recipe(variants):
    mlmodel, _, _ = load_package(variants["none"].path)
    meta = mlmodel.user_defined_metadata
    assert meta["edgecv.version"] == "0.1.0" and meta["edgecv.recipe_sha256"] == "abc123"
    assert json.loads(meta["edgecv.preprocessing"])["folded"] is True
    assert meta["com.apple.coreml.model.preview.type"] == "imageClassifier"
    assert meta["edgecv.task"] == "classification"
    assert [o["name"] for o in json.loads(meta["edgecv.outputs"])] == ["probabilities"]
    assert mlmodel.author == "edgecv" and "TinyCNN" in mlmodel.short_description and mlmodel.version == "0.1.0"


def test_metadata_options_reach_the_package(tiny_model, tmp_path):
    art = export(tiny_model, tmp_path, "meta", minimum_deployment_target="iOS16", author="ACME Vision",
                 license="CC-BY-4.0", description="flowers on a phone", version="2.1")
    mlmodel, spec, _ = load_package(art.path)
    assert (mlmodel.author, mlmodel.license, mlmodel.short_description, mlmodel.version) == (
        "ACME Vision", "CC-BY-4.0", "flowers on a phone", "2.1")
    assert spec.specificationVersion == 7


def test_fp32_compute_precision_on_request(variants):
    checks = variants["fp32"].checks
    assert checks["passed"] and not checks["compute_dtypes"].get("fp16")
    assert checks["weights"]["dtype_counts"] == {"fp32": checks["weights"]["tensors"]}
    assert variants["fp32"].size_bytes > variants["none"].size_bytes


def test_ios15_deployment_target(variants):
    _, spec, _ = load_package(variants["ios15"].path)
    assert spec.specificationVersion == 6 and variants["ios15"].checks["passed"]


# ---- preprocessing: folding and parity ---------------------------------------------------------
def test_tf_normalization_is_folded_into_the_image_type(variants, tiny_model):
    pre = variants["none"].checks["image_preprocessing"]
    assert pre["color_layout"] == "RGB"
    assert pre["scale"] == pytest.approx(1 / 127.5, rel=1e-6) and pre["bias"] == [-1.0, -1.0, -1.0]
    assert variants["none"].metadata["preprocessing"]["folded"] is True
    parity = variants["none"].checks["preprocessing_parity"]
    assert parity["passed"] and parity["samples"] > 1 and parity["max_abs_diff"] < 1e-6
    # and the network itself no longer holds the normalize layer (no second scale after the input)
    _, spec, func = load_package(variants["none"].path)
    assert not [op for op in func.operations if "normalize" in op.name]


def test_folded_preprocessing_equals_the_keras_normalize_layer_on_sample_images(variants, tiny_model, tiny_val):
    _, spec, func = load_package(variants["none"].path)
    found = read_preprocessing(spec, func, "image")
    images = tiny_val[0]
    keras_out = tiny_model.keras_model.get_layer("normalize")(images.astype(np.float32)).numpy()
    np.testing.assert_allclose(found.apply(images), keras_out, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(found.apply(images), tiny_model.normalization.apply(images), rtol=1e-6, atol=1e-6)


def _toy_task_model(mode: str):
    """A small classifier with the given backbone normalization as its first layer."""
    from edgecv._keras import keras
    from edgecv.models.build import TaskModel, normalization_layer

    norm = normalization(mode)
    inp = keras.Input((16, 16, 3), name="image")
    layer = normalization_layer(norm)
    x = layer(inp) if layer is not None else inp
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(2, name="logits")(x)
    y = keras.layers.Activation("softmax", name="probabilities")(x)
    return TaskModel(keras.Model(inp, y), "classification", {"class_names": ["cat", "dog"]}, (16, 16), norm, "toy", [])


@pytest.mark.parametrize("mode, layout, scale, bias, folded", [
    ("tf", "RGB", 1 / 127.5, [-1.0, -1.0, -1.0], True),
    ("caffe", "BGR", 1.0, list(-CAFFE_MEAN_BGR), True),  # RGB->BGR flip and mean: exact as a BGR ImageType
    ("torch", "RGB", 1.0, [0.0, 0.0, 0.0], False),  # one std per channel: the layer stays in the model
    ("none", "RGB", 1.0, [0.0, 0.0, 0.0], False),  # nothing to fold
])
def test_each_normalization_is_folded_only_when_exact(tmp_path, mode, layout, scale, bias, folded):
    model = _toy_task_model(mode)
    art = export(model, tmp_path, mode, minimum_deployment_target="iOS16")
    assert art.checks["passed"], art.checks["message"]
    found = art.checks["image_preprocessing"]
    assert found["color_layout"] == layout
    assert found["scale"] == pytest.approx(scale, rel=1e-6) and found["bias"] == pytest.approx(bias, rel=1e-6)
    assert art.metadata["preprocessing"]["folded"] is folded
    parity = art.checks["preprocessing_parity"]
    assert parity["passed"] and parity["normalize_layer_in_model"] is (mode == "torch")
    # independent of the exporter: the package's preprocessing (plus the layer where kept) is the recipe's
    _, spec, func = load_package(art.path)
    pixels = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    got = read_preprocessing(spec, func, "image").apply(pixels)
    if mode == "torch":
        got = model.keras_model.get_layer("normalize")(got).numpy()
        assert [op for op in func.operations if "normalize" in op.name]  # the layer is in the program
    want = model.normalization.apply(pixels)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_inspection_reports_a_package_that_is_not_what_was_asked(variants, tiny_model):
    wrong = Expected("image", (32, 32), ["a", "b", "c"], ImagePreprocessing("BGR", 1.0, [0.0, 0.0, 0.0]),
                     "fp32", "iOS16", "int8")
    checks = inspect_mlpackage(variants["none"].path, wrong)
    assert not checks["passed"]
    for words in ("class labels", "colour layout", "image preprocessing", "specification version",
                  "fp32 compute precision", "int8"):
        assert words in checks["message"], words


# ---- compression -------------------------------------------------------------------------------
def test_int8_weights_are_linear_quantized_per_channel(variants):
    w = variants["int8"].checks["weights"]
    assert w["constexpr_ops"] == {"constexpr_affine_dequantize": 2}  # the two conv kernels above 2048 elements
    assert w["dtype_counts"]["int8"] == 2 and w["uncompressed_above_threshold_count"] == 0
    assert w["compressed_fraction"] > 0.9
    assert w["stored_bytes"] < variants["none"].checks["weights"]["stored_bytes"] * 0.6
    assert variants["int8"].size_bytes < variants["none"].size_bytes


@pytest.mark.parametrize("bits", [6, 4])
def test_palettized_weights_use_the_asked_bits(variants, bits):
    art = variants[f"palettize{bits}"]
    w = art.checks["weights"]
    assert w["constexpr_ops"] == {"constexpr_lut_to_dense": 2} and w["dtype_counts"][f"palette{bits}"] == 2
    assert art.size_bytes < variants["int8"].size_bytes < variants["none"].size_bytes


def test_palette4_is_smaller_than_palette6(variants):
    assert variants["palettize4"].size_bytes < variants["palettize6"].size_bytes


def test_weight_error_of_each_compression_against_the_uncompressed_weights(variants):
    err = {c: variants[c].checks["weights"]["error_vs_uncompressed"] for c in ("int8", "palettize6", "palettize4")}
    assert all(e["tensors"] == 2 for e in err.values())
    assert err["int8"]["snr_db"] > err["palettize6"]["snr_db"] > err["palettize4"]["snr_db"] > 10
    assert err["int8"]["max_relative_error"] < 0.02
    assert "error_vs_uncompressed" not in variants["none"].checks["weights"]


def test_pruned_weights_have_the_asked_sparsity(variants):
    w = variants["prune"].checks["weights"]
    assert w["constexpr_ops"] == {"constexpr_sparse_to_dense": 2}
    assert w["compressed_sparsity"] == pytest.approx(0.6, abs=0.01)
    assert w["sparsity"] > 0.5 > variants["none"].checks["weights"]["sparsity"]
    assert variants["prune"].metadata["sparsity"] == 0.6


def test_uncompressed_variant_reports_its_weight_statistics(variants):
    w = variants["none"].checks["weights"]
    # TinyCNN: 3 conv kernels, 3 folded batch-norm biases ... all stored as fp16
    assert set(w["dtype_counts"]) == {"fp16"} and w["compressed_fraction"] == 0.0
    assert w["elements"] >= 432 + 4608 + 18432 + 64 * 3


def test_compression_needs_ios16(tiny_model, tmp_path):
    with pytest.raises(ConfigError, match="iOS16"):
        export(tiny_model, tmp_path, "bad", minimum_deployment_target="iOS15", compression="int8")


def test_bad_options_are_config_errors(tiny_model, tmp_path):
    with pytest.raises(ConfigError, match="compression"):
        export(tiny_model, tmp_path, "bad", compression="int4")
    with pytest.raises(ConfigError, match="minimum_deployment_target"):
        export(tiny_model, tmp_path, "bad", minimum_deployment_target="iOS99")
    with pytest.raises(ConfigError, match="colour"):
        export(tiny_model, tmp_path, "bad", colour="red")


def test_plan_rejects_int8_precision_for_coreml():
    """int8 weights are `compression: int8`: the compute precision stays fp16, so no artifact claims int8."""
    from edgecv.orchestrator.runner import check_plan
    from edgecv.config.target import Target

    bad = Target(name="t", description="d", artifacts=[ArtifactSpec(name="a", format="coreml", precision="int8")])
    with pytest.raises(ConfigError, match="fp16, fp32"):
        check_plan([bad])


@pytest.mark.parametrize("name", ["iphone-15-pro", "ios-legacy"])
def test_shipped_targets_are_valid_coreml_plans(name):
    from edgecv.orchestrator.runner import check_plan
    from edgecv.config import load_target
    from edgecv.formats.coreml.export import coreml_options

    target = load_target(name)
    check_plan([target])
    opts = [coreml_options(a.options) for a in target.artifacts if a.format == "coreml"]
    want = "iOS17" if name == "iphone-15-pro" else "iOS15"
    assert opts and all(o.minimum_deployment_target == want for o in opts)
    if name == "iphone-15-pro":
        assert {o.compression for o in opts} >= {"none", "int8"}
        assert {a.precision for a in target.artifacts} == {"fp16"}


# ---- runtime and build -------------------------------------------------------------------------
@pytest.mark.skipif(sys.platform == "darwin", reason="checks the non-macOS behaviour")
def test_runtime_says_numeric_validation_needs_macos(variants):
    from edgecv.runtimes import RuntimeUnavailable, detect_format, load_runtime

    assert detect_format(variants["none"].path) == "coreml"
    with pytest.raises(RuntimeUnavailable, match="macOS"):
        load_runtime(variants["none"].path)


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the non-macOS behaviour")
def test_cli_validate_explains_instead_of_a_traceback(variants, tmp_path):
    from typer.testing import CliRunner

    from edgecv.cli.main import app

    r = CliRunner().invoke(app, ["validate", str(variants["none"].path), "--data", str(tmp_path)])
    assert r.exit_code == 2 and "macOS" in r.output and "Traceback" not in r.output


def test_build_records_structural_validation_and_no_numbers(tiny_recipe_path, tmp_path):
    from edgecv.orchestrator.runner import run_build

    target = tmp_path / "phone.yaml"
    target.write_text(
        "description: test phone\n"
        "artifacts:\n"
        "  - {name: fp16, format: coreml, precision: fp16, options: {minimum_deployment_target: iOS17}}\n"
        "  - {name: int8w, format: coreml, precision: fp16, options: {minimum_deployment_target: iOS17, compression: int8}}\n"
        "gates: {accuracy_drop_max: 1.0, top1_agreement_min: 0.97, size_mb_max: 5}\n")
    result = run_build(tiny_recipe_path, [str(target)], tmp_path / "out")
    assert result.exit_code == 0, result.outcomes[0].messages
    report = json.loads((tmp_path / "out" / "phone" / "report.json").read_text())
    arts = {a["name"]: a for a in report["artifacts"]}
    for a in arts.values():
        assert a["status"] == "ok" and a["checks"]["passed"] and a["size_bytes"] > 0
        assert (tmp_path / "out" / "phone" / a["path"]).is_dir()
        if sys.platform != "darwin":
            assert a["validation"]["numeric"] is False and "macOS" in a["validation"]["reason"]
            assert not a["metrics"] and a["latency"] is None and not a["deltas"] and not a["outputs"]
            gates = {g["gate"]: g for g in a["gates"]}
            assert gates["accuracy_drop_max"]["passed"] is None and gates["accuracy_drop_max"]["value"] is None
            assert "macOS" in gates["top1_agreement_min"]["message"]
            assert gates["size_mb_max"]["passed"] is True  # size is measured here
    assert arts["int8w"]["size_bytes"] < arts["fp16"]["size_bytes"]
    assert arts["int8w"]["checks"]["weights"]["dtype_counts"].get("int8")


# ---- numeric: macOS only -----------------------------------------------------------------------
@pytest.mark.macos
@on_macos
@pytest.mark.parametrize("name", ["none", "int8", "palettize6", "fp32"])
def test_core_ml_predictions_match_the_keras_reference(variants, tiny_model, tiny_val, name):
    from edgecv.runtimes import load_runtime
    from edgecv.validate.comparator import compare

    images, labels = tiny_val
    reference = tiny_model.predict(images)
    with load_runtime(variants[name].path, compute_units="cpu_only") as rt:
        assert rt.input_size == (32, 32) and rt.labels == tiny_model.info["class_names"]
        out = rt.predict(images)
    assert set(out) == set(tiny_model.output_names)  # the classifier's scores under the task's output name
    cmp = compare(tiny_model.make_task(), tiny_model.info, out, labels, reference)
    assert cmp.agreement["top1_agreement"] >= 0.95
    for k in out:
        assert out[k].shape == reference[k].shape
        if name in ("none", "fp32"):
            np.testing.assert_allclose(out[k], reference[k], atol=0.02 if name == "none" else 1e-3)


@pytest.mark.macos
@on_macos
def test_core_ml_latency_per_compute_unit(variants, tiny_val):
    from edgecv.runtimes import load_runtime

    with load_runtime(variants["none"].path, latency_compute_units=["cpu_only", "cpu_and_gpu", "all"]) as rt:
        rt.predict(tiny_val[0][:8])
        lat = rt.describe()["latency_by_compute_units"]
    assert set(lat) == {"cpu_only", "cpu_and_gpu", "all"} and all(v["p50_ms"] > 0 for v in lat.values())
