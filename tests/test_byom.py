"""Bring your own model: a model trained elsewhere is loaded safely (not trained), wrapped with its
declared normalization so artifacts take pixels, exported and judged against itself in float."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from edgecv.cli.main import app
from edgecv.errors import ConfigError

SIZE = 24


def keras():
    from edgecv._keras import keras as k

    return k


def conv_features(inp):
    k = keras()
    x = k.layers.Conv2D(6, 3, activation="relu", name="conv")(inp)
    return k.layers.GlobalAveragePooling2D(name="pool")(x)


def save_classifier(path, classes=3, size=(SIZE, SIZE)):
    k = keras()
    k.utils.set_random_seed(0)
    inp = k.Input((*size, 3))
    out = k.layers.Dense(classes, activation="softmax", name="scores")(conv_features(inp))
    k.Model(inp, out).save(path)
    return path


def save_two_outputs(path):
    k = keras()
    k.utils.set_random_seed(1)
    inp = k.Input((SIZE, SIZE, 3))
    x = conv_features(inp)
    k.Model(inp, [k.layers.Dense(4, name="embedding")(x), k.layers.Dense(1, name="score")(x)]).save(path)
    return path


def save_with_lambda(path):
    k = keras()
    inp = k.Input((SIZE, SIZE, 3))
    x = k.layers.Lambda(lambda t: t * 2.0, name="double_it")(inp)
    k.Model(inp, k.layers.Dense(2, name="out")(conv_features(x))).save(path)
    return path


def images(folder, count=16, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        # smooth blobs rather than noise: int8 keeps the top class on most of them
        base = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(base).resize((32, 32), Image.BILINEAR).save(folder / f"{i:02d}.png")
    return folder


def export(*args):
    return CliRunner().invoke(app, ["export", *map(str, args)])


def report(out, target) -> dict:
    return json.loads((out / target / "report.json").read_text())


TARGETS = {
    "t-int8": "description: int8 TFLite\nruntime: {threads: 1}\nartifacts:\n"
              "  - {name: int8, format: tflite, precision: int8, io_dtype: uint8}\n"
              "gates: {top1_agreement_min: 0.5, output_cosine_min: 0.9, accuracy_drop_max: 50}\n",
    "t-onnx": "description: ONNX fp32\nartifacts:\n  - {name: fp32, format: onnx}\n"
              "gates: {tolerances: {'*': {atol: 0.0001, rtol: 0.0}}}\n",
    "t-serving": "description: SavedModel\nartifacts:\n  - {name: serving, format: savedmodel}\n",
}


@pytest.fixture(scope="module")
def target_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("targets")
    for name, text in TARGETS.items():
        (root / f"{name}.yaml").write_text(text)
    return {name: root / f"{name}.yaml" for name in TARGETS}


# ---- safe loading ------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".keras", ".h5", ""])  # "": a SavedModel folder
def test_lambda_layer_is_refused_naming_it_and_loads_with_the_flag(tmp_path, suffix):
    from edgecv.models.user_model import UnsafeModelError, load_user_model

    model = save_with_lambda(tmp_path / f"lam{suffix}")
    with pytest.raises(UnsafeModelError) as e:
        load_user_model(model)
    msg = str(e.value)
    assert "double_it" in msg and "--unsafe-deserialization" in msg and "--custom-objects" in msg
    loaded = load_user_model(model, unsafe=True)
    assert [l.name for l in loaded.layers if l.name == "double_it"]


def test_a_keras_savedmodel_folder_loads_with_its_size_and_outputs(tmp_path):
    from edgecv.models.user_model import model_facts, with_input_size

    folder = save_two_outputs(tmp_path / "two_sm")
    recipe = with_input_size(byom_recipe(tmp_path, folder))
    assert recipe.input.size == (SIZE, SIZE)
    assert [o["name"] for o in model_facts(recipe)["outputs"]] == ["embedding", "score"]


def test_export_refuses_a_lambda_model_without_a_traceback(tmp_path):
    model = save_with_lambda(tmp_path / "lam.keras")
    r = export(model, "-t", "raspberry-pi-4", "--data", images(tmp_path / "imgs", 4), "--task", "generic",
               "--preprocess", "none", "-o", tmp_path / "out")
    assert r.exit_code == 2 and "Lambda layer(s) double_it" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "out" / "raspberry-pi-4").exists()


def test_custom_layer_needs_its_module(tmp_path, monkeypatch):
    from edgecv.models.user_model import load_user_model

    (tmp_path / "my_layers.py").write_text(
        "from edgecv._keras import keras\n\n"
        "class Scale(keras.layers.Layer):\n"
        "    def call(self, x):\n        return x * 0.5\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_layers

    k = keras()
    inp = k.Input((SIZE, SIZE, 3))
    k.Model(inp, k.layers.Dense(2)(conv_features(my_layers.Scale(name="half")(inp)))).save(tmp_path / "c.keras")
    with pytest.raises(ConfigError, match=r"does not know: half \(Scale\).*--custom-objects"):
        load_user_model(tmp_path / "c.keras")
    assert load_user_model(tmp_path / "c.keras", "my_layers").get_layer("half")
    sys.modules.pop("my_layers", None)


# ---- input checks ------------------------------------------------------------------------------
def byom_recipe(tmp_path, model, preprocess="none", **extra):
    from edgecv.config.recipe import Recipe

    data = {"name": "m", "task": "generic", "data": {"root": str(images(tmp_path / "imgs", 4))},
            "model": {"path": str(model), "preprocess": preprocess}, **extra}
    return Recipe.model_validate({**data, "base_dir": tmp_path})


def test_dynamic_input_size_needs_input_size(tmp_path):
    from edgecv.models.user_model import with_input_size

    model = save_classifier(tmp_path / "dyn.keras", size=(None, None))
    with pytest.raises(ConfigError, match=r"any size .*input\.size"):
        with_input_size(byom_recipe(tmp_path, model))
    assert with_input_size(byom_recipe(tmp_path, model, input={"size": [20, 28]})).input.size == (20, 28)
    fixed = save_classifier(tmp_path / "fixed.keras")
    assert with_input_size(byom_recipe(tmp_path, fixed)).input.size == (SIZE, SIZE)  # read from the model
    with pytest.raises(ConfigError, match="differs from the model's fixed input"):
        with_input_size(byom_recipe(tmp_path, fixed, input={"size": [32, 32]}))


def test_export_of_a_dynamic_size_model_asks_for_the_size(tmp_path):
    model = save_classifier(tmp_path / "dyn.keras", size=(None, None))
    args = [model, "-t", "raspberry-pi-4", "--data", images(tmp_path / "imgs", 4), "--task", "generic",
            "--preprocess", "none", "-o", tmp_path / "out", "--dry-run"]
    r = export(*args)
    assert r.exit_code == 2 and "--input-size H W" in r.output and "Traceback" not in r.output
    r = export(*args, "--input-size", 20, 28)
    assert r.exit_code == 0 and "train" in r.output, r.output


def test_non_image_input_is_refused(tmp_path):
    from edgecv.models.user_model import with_input_size

    k = keras()
    inp = k.Input((10,))
    k.Model(inp, k.layers.Dense(2)(inp)).save(tmp_path / "tab.keras")
    with pytest.raises(ConfigError, match=r"not an RGB image batch"):
        with_input_size(byom_recipe(tmp_path, tmp_path / "tab.keras"))


def test_recipe_rules_for_a_user_model(tmp_path):
    model = save_classifier(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="remove the `train` section"):
        byom_recipe(tmp_path, model, train={"batch_size": 8})
    with pytest.raises(ValueError, match="needs `model.preprocess`"):
        from edgecv.config.recipe import Recipe

        Recipe.model_validate({"name": "m", "data": {"root": "x"}, "model": {"path": str(model)}})


def test_training_passes_are_rejected_for_generic(tmp_path):
    from edgecv.config import load_target
    from edgecv.orchestrator.plan import check_plan
    from edgecv.tasks import get_task

    with pytest.raises(ConfigError, match="pass prune trains"):
        check_plan([load_target("raspberry-pi-4-pruned")], get_task("generic"))


# ---- preprocessing -----------------------------------------------------------------------------
def test_preprocessing_names_and_explicit_values():
    from edgecv.config.recipe import PreprocessConfig
    from edgecv.models.preprocess import user_normalization

    assert user_normalization("mobilenet_v2").mode == "tf"
    assert user_normalization("MobileNetV2").mode == "tf"
    assert user_normalization("resnet50").mode == "caffe"
    assert user_normalization("efficientnet").mode == "none"
    with pytest.raises(ConfigError, match="unknown family 'mobilenet_v9'"):
        user_normalization("mobilenet_v9")
    pixel = np.array([[10.0, 100.0, 200.0]])
    bgr = user_normalization(PreprocessConfig(mean=[1.0, 2.0, 3.0], std=[2.0, 4.0, 8.0], channel_order="bgr"))
    np.testing.assert_allclose(bgr.apply(pixel), [[(200 - 1) / 2, (100 - 2) / 4, (10 - 3) / 8]], rtol=1e-6)
    affine = user_normalization(PreprocessConfig(scale=1 / 255))
    np.testing.assert_allclose(affine.apply(pixel), pixel / 255, rtol=1e-6)
    with pytest.raises(ValueError, match="either `scale`"):
        PreprocessConfig(scale=1.0, mean=0.0, std=1.0)


@pytest.mark.parametrize("preprocess", ["caffe", {"mean": [120, 110, 100], "std": 60, "channel_order": "bgr"}])
def test_the_wrapped_model_takes_pixels(tmp_path, preprocess):
    """The pixel contract: the wrapped model on pixels equals the user's model on normalized input."""
    from edgecv.models.preprocess import user_normalization
    from edgecv.models.user_model import build_user_task_model, load_user_model

    model = save_two_outputs(tmp_path / "two.keras")
    recipe = byom_recipe(tmp_path, model, preprocess)
    info = {"outputs": [{"name": "embedding", "shape": ["N", 4]}, {"name": "score", "shape": ["N", 1]}]}
    wrapped = build_user_task_model(recipe.model_copy(update={"input": recipe.input.model_copy(
        update={"size": (SIZE, SIZE)})}), info)
    pixels = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3)).astype(np.uint8)
    got = wrapped.predict(pixels)
    norm = user_normalization(recipe.model.preprocess)
    want = load_user_model(model).predict(norm.apply(pixels.astype(np.float32)), verbose=0)
    np.testing.assert_allclose(got["embedding"], want[0], atol=1e-5)
    np.testing.assert_allclose(got["score"], want[1], atol=1e-5)


# ---- end to end --------------------------------------------------------------------------------
def test_generic_two_output_model_builds_every_format(tmp_path, target_files):
    pytest.importorskip("onnxruntime")
    model = save_two_outputs(tmp_path / "two.keras")
    out = tmp_path / "out"
    r = export(model, *[a for t in target_files.values() for a in ("-t", t)], "--data",
               images(tmp_path / "imgs", 16), "--task", "generic", "--preprocess", "mobilenet_v2", "-o", out)
    assert r.exit_code == 0, r.output
    for target in TARGETS:
        rep = report(out, target)
        a = rep["artifacts"][0]
        assert rep["task"]["name"] == "generic" and a["status"] == "ok", a.get("error")
        assert set(a["outputs"]) == {"embedding", "score"}  # each named output compared with the float model
        assert a["metrics"] == {} and rep["data"]["train_count"] + rep["data"]["val_count"] == 16
    int8 = report(out, "t-int8")["artifacts"][0]
    assert {g["gate"] for g in int8["gates"]} == {"output_cosine_min"}
    assert any("not applicable to task generic" in n for n in int8["notes"])
    onnx = report(out, "t-onnx")["artifacts"][0]
    assert {g["gate"] for g in onnx["gates"]} == {"tolerance:embedding", "tolerance:score"}
    assert all(g["passed"] for g in onnx["gates"])
    pre = json.loads((out / "t-int8" / "preprocessing.json").read_text())
    assert set(pre["outputs"]) == {"embedding", "score"} and pre["normalization_inside_model"]["mode"] == "tf"
    # the prune pass trains: refused for a model judged by agreement only
    r = export(model, "-t", "raspberry-pi-4-pruned", "--data", tmp_path / "imgs", "--task", "generic",
               "--preprocess", "none", "-o", out)
    assert r.exit_code == 2 and "pass prune trains" in r.output


def test_export_a_classifier_with_labels_end_to_end(tmp_path, target_files):
    model = save_classifier(tmp_path / "clf.h5")
    labels = tmp_path / "labels.txt"
    labels.write_text("background\ncat\ndog\nbird\n")  # line 0 is not an output: offset 1, found automatically
    data = tmp_path / "data"
    for i, name in enumerate(["cat", "dog", "bird"]):
        images(data / name, 6, seed=i)
    out = tmp_path / "out"
    args = [model, "-t", target_files["t-int8"], "--data", data, "--labels", labels, "--preprocess", "tf", "-o", out]
    r = export(*args)
    assert r.exit_code in (0, 1), r.output  # 1: a gate may fail on a random model; the build itself worked
    rep = report(out, "t-int8")
    assert rep["task_info"]["class_names"] == ["cat", "dog", "bird"] and rep["task_info"]["label_offset"] == 1
    assert rep["task_info"]["labelled"] is True and "accuracy" in rep["reference"]["metrics"]
    assert rep["training"]["trained"] is False and rep["training"]["loaded_from"].endswith("clf.h5")
    assert (out / "t-int8" / "labels.txt").read_text().split() == ["cat", "dog", "bird"]
    a = rep["artifacts"][0]
    assert "accuracy" in a["metrics"] and "top1_agreement" in a["agreement"]
    # the same command again: everything cached, nothing loaded or converted
    r = export(*args)
    assert "none (everything cached)" in r.output, r.output

    # folders that are not the model's classes: unlabelled, judged by agreement only
    other = tmp_path / "other"
    images(other / "tulip", 8)
    r = export(model, "-t", target_files["t-int8"], "--data", other, "--labels", labels, "--preprocess", "tf",
               "-o", tmp_path / "out2")
    assert r.exit_code in (0, 1), r.output
    rep = report(tmp_path / "out2", "t-int8")
    assert rep["task_info"]["labelled"] is False and "tulip" in rep["task_info"]["unlabelled_reason"]
    assert rep["artifacts"][0]["metrics"] == {} and rep["artifacts"][0]["agreement"]["top1_agreement"] >= 0
    # a labels file that fits no way is an error naming both counts
    labels.write_text("a\nb\n")
    r = export(model, "-t", target_files["t-int8"], "--data", other, "--labels", labels, "--preprocess", "tf",
               "-o", tmp_path / "out3")
    assert r.exit_code == 2 and "has 2 lines, the model scores 3 classes" in r.output


def test_classification_of_a_user_model_needs_labels(tmp_path):
    model = save_classifier(tmp_path / "clf.keras")
    r = export(model, "-t", "raspberry-pi-4", "--data", images(tmp_path / "imgs", 4), "--preprocess", "tf",
               "-o", tmp_path / "out")
    assert r.exit_code == 2 and "--labels FILE" in r.output


def test_calibration_images_must_not_be_validation_images(tmp_path):
    from edgecv.config.recipe import DataConfig
    from edgecv.data.unlabelled import unlabelled_index
    from edgecv.errors import DataError

    folder = images(tmp_path / "imgs", 6)
    index = unlabelled_index(DataConfig(root=folder, val_fraction=0.5), lambda p: p, {})
    assert len(index.train) == len(index.val) == 3 and not {s.path for s in index.train} & {s.path for s in index.val}
    with pytest.raises(DataError, match="both calibration and validation"):
        unlabelled_index(DataConfig(train=folder, val=folder), lambda p: p, {})
