"""Bring your own detector: a Keras model with the task's raw outputs and its anchors file, exported
with each format's decode + NMS; `edgecv validate` of the artifact gives mAP and the boxes of the
numpy reference decode of the Keras model's own outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edgecv.cli.main import app
from synthetic_detection import make_detection_data
from tiny_detector import save_raw_detector, tiny_anchors

SIZE = 32


@pytest.fixture(scope="module")
def brought(tmp_path_factory):
    root = tmp_path_factory.mktemp("byo")
    images, annotations, _ = make_detection_data(root, count=12)
    # scores listed first: the outputs are taken by their names
    model = save_raw_detector(root / "detector.keras", SIZE, swap_outputs=True)
    anchors = root / "anchors.npy"
    np.save(anchors, tiny_anchors())
    labels = root / "labels.txt"
    labels.write_text("blue\nred\n")
    return root, images, annotations, model, anchors, labels


def export(*args):
    return CliRunner().invoke(app, ["export", *map(str, args)])


def keras_reference(model: Path, info: dict, paths: list) -> list:
    """The numpy reference decode + NMS of the Keras model's raw outputs, boxes in photo pixels."""
    from edgecv._keras import keras
    from edgecv.data.images import load_image
    from edgecv.tasks.detection import image_detections

    m = keras.models.load_model(model, compile=False)
    x = np.stack([load_image(p, (SIZE, SIZE), "resize") for p in paths]).astype(np.float32) / 127.5 - 1.0  # tf
    raw = dict(zip(m.output_names, m.predict(x, verbose=0)))
    frames = [Image.open(p).size for p in paths]
    return image_detections({"box_encodings": raw["box_encodings"], "scores": raw["scores"]}, info, frames)


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_a_brought_detector_exports_with_nms_and_validates_as_its_numpy_reference(brought, tmp_path, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("tf2onnx")
    root, images, annotations, model, anchors, labels = brought
    out = tmp_path / "out"
    r = export(model, "--task", "detection", "--format", fmt, "--data", images, "--annotations", annotations,
               "--anchors", anchors, "--labels", labels, "--preprocess", "tf", "--resize", "resize",
               "--box-scales", "10,10,5,5", "-o", out)
    assert r.exit_code in (0, 1), r.output  # 1: a gate may fail on a random detector; the build itself worked
    folder = out / f"{fmt}-fp32"
    rep = json.loads((folder / "report.json").read_text())
    a = rep["artifacts"][0]
    assert a["status"] == "ok", a.get("error")
    assert rep["training"]["trained"] is False and "map" in a["metrics"] and a["agreement"]["box_f1"] == 1.0
    facts = json.loads((folder / "detection.json").read_text())
    assert facts["class_names"] == ["blue", "red"]
    assert np.array_equal(np.asarray(facts["detection"]["anchors"]["boxes"], np.float32), tiny_anchors())
    pre = json.loads((folder / "preprocessing.json").read_text())
    assert list(pre["outputs"]) == ["detection_boxes", "detection_classes", "detection_scores", "num_detections"]

    js = tmp_path / "validate.json"
    r = CliRunner().invoke(app, ["validate", str(folder / Path(a["path"]).name), "--data", str(images),
                                 "--annotations", str(annotations), "--json", str(js)])
    assert r.exit_code == 0, r.output
    got = json.loads(js.read_text())
    assert got["metrics"]["count"] == 12 and 0 <= got["metrics"]["map"] <= 1 and "mAP@[.5:.95]" in r.output
    want = keras_reference(model, facts, got["images"])
    for image, ref in zip(got["detections"], want):
        assert len(image["boxes"]) == len(ref.boxes) > 0, image["path"]
        np.testing.assert_allclose(image["boxes"], ref.boxes, atol=0.02)  # pixels; the JSON keeps 2 decimals
        np.testing.assert_allclose(image["scores"], ref.scores, atol=1e-3)
        assert image["classes"] == ref.classes.tolist()


def test_wrong_anchors_and_options_are_refused_naming_what(brought, tmp_path):
    root, images, annotations, model, anchors, labels = brought
    short = root / "short.npy"
    np.save(short, tiny_anchors()[:30])
    common = ["--task", "detection", "--format", "tflite", "--data", images, "--annotations", annotations,
              "--labels", labels, "--preprocess", "tf", "-o", tmp_path / "out"]
    r = export(model, "--anchors", short, *common)
    assert r.exit_code == 2 and "has 30 anchors, the model's box encodings have 32" in r.output, r.output
    r = export(model, *common)
    assert r.exit_code == 2 and "--anchors FILE.npy" in r.output, r.output
    pixels = root / "pixels.npy"
    np.save(pixels, tiny_anchors() * SIZE)
    r = export(model, "--anchors", pixels, *common)
    assert r.exit_code == 2 and "normalised to [0, 1]" in r.output, r.output
    three = root / "three.txt"
    three.write_text("blue\nred\ngreen\n")
    r = export(model, "--anchors", anchors, *[three if v == labels else v for v in common])
    assert r.exit_code == 2 and "scores 2 classes, the class names are 3" in r.output, r.output
    r = export(model, "--anchors", anchors, "--box-scales", "10,10,5", *common)
    assert r.exit_code == 2 and "four positive numbers" in r.output
    r = export(model, "--anchors", anchors, "--task", "generic", "--format", "tflite", "--data", images,
               "--preprocess", "tf", "-o", tmp_path / "g")
    assert r.exit_code == 2 and "--anchors is not an option of task generic" in r.output, r.output


def test_anchors_and_box_scales_are_refused_for_a_detector_edgecv_trains(brought, tmp_path):
    from edgecv.config.loader import load_recipe
    from edgecv.errors import ConfigError
    from synthetic_detection import write_detection_recipe

    root, images, annotations, model, anchors, labels = brought
    path = write_detection_recipe(tmp_path / "edgecv.yaml", images, annotations, anchors=str(anchors))
    recipe = load_recipe(path)
    with pytest.raises(ConfigError, match="for a detector you bring"):
        recipe.make_task().read_data(recipe)
