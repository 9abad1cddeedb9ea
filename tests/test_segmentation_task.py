"""The segmentation task on the seam: labels to targets, augmentation that moves label maps with the
pixels, a tiny segmenter's contract outputs, mIoU and its intervals through the task, gates, and its
artifacts (TFLite int8 class map, SavedModel signature, Core ML structure) validated as users run them."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, shared_path
from synthetic_segmentation import CLASSES, COLOURS, make_segmentation_data, write_segmentation_recipe

H, W = 48, 64


@pytest.fixture(scope="module")
def boxes(tmp_path_factory):
    return make_segmentation_data(tmp_path_factory.mktemp("boxes"), count=24, size=(H, W))


@pytest.fixture(scope="module")
def recipe_path(boxes, tmp_path_factory):
    return write_segmentation_recipe(tmp_path_factory.mktemp("recipe") / "edgecv.yaml", boxes)


@pytest.fixture(scope="module")
def trained(recipe_path):
    """(recipe, task, index, TaskModel): TinyCNN + LR-ASPP trained two short epochs."""
    from edgecv.config import load_recipe
    from edgecv.train.trainer import train

    recipe = load_recipe(recipe_path)
    task = recipe.make_task()
    index = task.read_data(recipe)
    return recipe, task, index, train(recipe, index).model


def _calibration(images):
    return lambda: iter([im[None] for im in images[:8]])


def test_task_is_registered_with_its_gates():
    from edgecv.tasks import get_task, known_tasks
    from edgecv.tasks.gates import known_gate_names, task_gates

    assert "segmentation" in known_tasks()
    task = get_task("segmentation")
    names = {g.name for g in task_gates(task)}
    for gate in ("miou_min", "miou_drop_max", "pixel_agreement_min", "miou_drop_max_significant",
                 "miou_drop_max_confident", "miou_min_significant"):
        assert gate in names and gate in known_gate_names()


def test_label_maps_become_targets_and_class_weights(boxes, trained):
    _, task, index, _ = trained
    assert index.info["class_names"] == CLASSES and len(index.train) + len(index.val) == 24
    targets = task.targets(index.val, index.info)
    for s, t in zip(index.val, targets):
        np.testing.assert_array_equal(t, np.asarray(Image.open(s.target["label"])))
        assert t.shape == (H, W) and (t[:, :2] == 255).all()
    w = index.info["class_weights"]
    assert w[0] < w[1] and w[0] < w[2]  # the ground covers most pixels: the boxes weigh more


def test_augmentation_moves_labels_with_the_pixels():
    """Left half red (class 1), right half blue (class 2): after scale, crop and flip each pixel's
    colour still names its label; padding is the ignore index and no label value is blended."""
    from edgecv._keras import tf
    from edgecv.tasks.segmentation_heads import augment_pair

    img = np.zeros((H, W, 3), np.float32)
    lab = np.zeros((H, W), np.int32)
    img[:, :W // 2], lab[:, :W // 2] = COLOURS[1], 1
    img[:, W // 2:], lab[:, W // 2:] = COLOURS[2], 2
    lab[:4] = 255  # an unlabelled band
    tf.random.set_seed(3)
    flipped = 0
    for _ in range(12):
        x, y = augment_pair(tf.constant(img), tf.constant(lab), (H, W), (0.6, 1.6), True, 0.0)
        x, y = x.numpy(), y.numpy()
        assert x.shape == (H, W, 3) and y.shape == (H, W)
        assert set(np.unique(y)) <= {1, 2, 255}  # nearest neighbour: no 1.5s, no 0s
        red = (np.abs(x - COLOURS[1]).max(-1) < 1) & (y != 255)
        blue = (np.abs(x - COLOURS[2]).max(-1) < 1) & (y != 255)
        assert (y[red] == 1).mean() > 0.97 and (y[blue] == 2).mean() > 0.97
        padded = x.max(-1) == 0  # pixels outside a shrunken image
        assert (y[padded] == 255).all()
        if red.any() and blue.any():
            flipped += int(np.where(red)[1].mean() > np.where(blue)[1].mean())
    assert 0 < flipped < 12  # some crops were mirrored, not all


def test_tiny_segmenter_trains_with_the_contract_outputs(trained):
    from edgecv.data.images import load_batch
    from edgecv.metrics.segmentation import predicted_classes

    recipe, task, index, model = trained
    assert model.output_names == ["scores", "classes"]
    assert [o.name for o in task.output_spec(model.info)] == ["scores", "classes"]
    images = load_batch([s.path for s in index.val], (H, W), "resize")
    out = model.predict(images)
    assert out["scores"].shape == (len(images), H // 4, W // 4, 3) and out["scores"].dtype == np.float32
    assert out["classes"].shape == (len(images), H, W) and out["classes"].dtype == np.uint8
    # the in-model class map is the argmax of the scores resized to the input
    same = (predicted_classes(out["scores"], (H, W)) == out["classes"]).mean()
    assert same > 0.99
    metrics = task.evaluate(out, task.targets(index.val, index.info), index.info)
    assert metrics["miou"] > 40  # two epochs on coloured boxes: far above the ~25 % of all-ground
    assert metrics["evaluated_from"] == "scores" and abs(metrics["miou_class_map"] - metrics["miou"]) < 2


def test_evaluate_and_intervals_equal_the_metrics_module():
    from edgecv.metrics.segmentation import ConfusionAccumulator, miou_delta_interval, miou_interval, predicted_classes
    from edgecv.tasks import get_task

    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 4, (30, 40)).astype(np.uint8) for _ in range(12)]
    for lab in labels[:3]:
        lab[:5] = 255
    scores = rng.normal(size=(12, 8, 10, 4)).astype(np.float32)
    better = scores.copy()
    better[..., 1] += 1.0  # a candidate biased towards class b: a different mIoU on the same images
    task = get_task("segmentation")
    info = {"class_names": ["a", "b", "c", "d"], "ignore_index": 255}
    got = task.evaluate({"scores": scores}, labels, info)
    acc = ConfusionAccumulator(info["class_names"])
    for i, lab in enumerate(labels):
        acc.add(lab, predicted_classes(scores[i], lab.shape))
    m = acc.metrics()
    assert got["miou"] == pytest.approx(100 * m.miou) and got["pixel_accuracy"] == pytest.approx(100 * m.pixel_accuracy)
    assert got["per_class_iou"] == pytest.approx(m.per_class_iou)

    acc2 = ConfusionAccumulator(info["class_names"])
    for i, lab in enumerate(labels):
        acc2.add(lab, predicted_classes(better[i], lab.shape))
    ivs, deltas = task.metric_intervals({"scores": better}, {"scores": scores}, labels, info, 0.95)
    expected, expected_delta = miou_interval(acc2), miou_delta_interval(acc, acc2)
    assert ivs["miou"].low == pytest.approx(100 * expected.low) and ivs["miou"].high == pytest.approx(100 * expected.high)
    assert deltas["miou"].low == pytest.approx(100 * expected_delta.low)
    assert deltas["miou"].high == pytest.approx(100 * expected_delta.high)
    measured = 100 * (acc2.metrics().miou - m.miou)
    assert deltas["miou"].low <= measured <= deltas["miou"].high and deltas["miou"].high < 0  # a sure change
    # the comparator (what the build runs) carries them
    from edgecv.validate.comparator import compare

    cmp = compare(task, info, {"scores": better}, labels, {"scores": scores})
    assert cmp.delta_intervals["miou"].low == pytest.approx(deltas["miou"].low)
    assert len(cmp.sample_scores["image_miou"]) == 12


def test_gates_are_judged_on_miou_drop_and_agreement():
    from edgecv.results import ArtifactResult, Interval
    from edgecv.tasks import get_task
    from edgecv.validate.gates import check_gates

    task = get_task("segmentation")
    r = ArtifactResult(name="int8", format="tflite", precision="int8", status="ok",
                       metrics={"miou": 61.0}, deltas={"miou": -1.5}, agreement={"pixel_agreement": 0.96},
                       delta_intervals={"miou": Interval(low=-2.5, high=-0.4, confidence=0.95, method="m", n=101)})
    gates = {g.gate: g.passed for g in check_gates(r, {"miou_min": 55.0, "miou_drop_max": 1.0,
                                                      "miou_drop_max_significant": 1.0, "pixel_agreement_min": 0.97,
                                                      "accuracy_drop_max": 0.5}, task)}
    # a drop of 1.5 fails the value gate; its interval (0.4 to 2.5) reaches below 1, so not significant
    assert gates == {"miou_min": True, "miou_drop_max": False, "miou_drop_max_significant": True,
                     "pixel_agreement_min": False}


def test_tflite_int8_class_map_artifact_is_integer_only_and_validates(trained, boxes, tmp_path):
    from edgecv.config.target import ArtifactSpec
    from edgecv.data.images import load_batch
    from edgecv.exporters import ExportContext, get_exporter
    from edgecv.runtimes import load_runtime

    recipe, task, index, model = trained
    images = load_batch([s.path for s in index.train], (H, W), "resize")
    spec = ArtifactSpec(name="int8", format="tflite", precision="int8", io_dtype="uint8")
    art = get_exporter("tflite")().export(model, spec, tmp_path, ExportContext("boxes", _calibration(images)))
    assert art.checks.get("integer_only") is True, art.checks
    for name, text in task.sidecars(model.info).items():
        (tmp_path / name).write_text(text)
    with load_runtime(art.path) as rt:
        out = task.select_outputs(rt.predict(images), model.info)
    assert out["classes"].dtype == np.uint8 and out["classes"].shape == (len(images), H, W)
    ref = model.predict(images)
    assert task.agreement(ref, out, model.info)["pixel_agreement"] > 0.95

    # `edgecv validate` on the labelled folder: the device path (sidecar names the classes)
    r = subprocess.run([sys.executable, "-m", "edgecv.cli.main", "validate", str(art.path), "--data", str(boxes),
                        "--json", str(tmp_path / "v.json")], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "mIoU" in r.stdout
    report = json.loads((tmp_path / "v.json").read_text())
    labels = task.targets([s for s in index.train + index.val], model.info)
    full = load_batch([s.path for s in index.train + index.val], (H, W), "resize")
    with load_runtime(art.path) as rt:
        expected = task.evaluate(task.select_outputs(rt.predict(full), model.info), labels, model.info)["miou"]
    assert report["metrics"]["miou"] == pytest.approx(expected, abs=1e-6)


def test_savedmodel_signature_gives_scores_and_class_map(trained, tmp_path):
    from edgecv._keras import tf
    from edgecv.config.target import ArtifactSpec
    from edgecv.data.images import load_batch
    from edgecv.exporters import ExportContext, get_exporter

    recipe, task, index, model = trained
    images = load_batch([s.path for s in index.val], (H, W), "resize")
    spec = ArtifactSpec(name="serving", format="savedmodel", precision="fp32")
    art = get_exporter("savedmodel")().export(model, spec, tmp_path, ExportContext("boxes", _calibration(images)))
    version = next(p for p in art.path.iterdir() if (p / "saved_model.pb").is_file())  # <name>/<version>/
    sig = tf.saved_model.load(str(version)).signatures["serving_default"]
    assert set(sig.structured_outputs) >= {"scores", "classes"}
    assert sig.structured_outputs["classes"].dtype == tf.uint8
    (name, spec_in), = sig.structured_input_signature[1].items()
    assert spec_in.dtype == tf.uint8 and list(spec_in.shape) == [None, H, W, 3]  # camera pixels, any batch
    out = sig(**{name: tf.constant(images)})
    np.testing.assert_array_equal(out["classes"].numpy(), model.predict(images)["classes"])
    np.testing.assert_allclose(out["scores"].numpy(), model.predict(images)["scores"], atol=1e-4)


def test_coreml_package_has_scores_and_an_int32_class_map(trained, tmp_path):
    pytest.importorskip("coremltools")
    from edgecv.config.target import ArtifactSpec
    from edgecv.data.images import load_batch
    from edgecv.exporters import ExportContext, get_exporter

    recipe, task, index, model = trained
    images = load_batch([s.path for s in index.train], (H, W), "resize")
    spec = ArtifactSpec(name="fp16", format="coreml", precision="fp16")
    ctx = ExportContext("boxes", _calibration(images), None, {"recipe_sha256": "abc", "edgecv_version": "0"})
    art = get_exporter("coreml")().export(model, spec, tmp_path, ctx)
    assert art.checks["passed"], art.checks
    assert art.metadata["outputs"]["classes"].startswith("multi-array int32")
    import coremltools as ct

    spec_pb = ct.models.MLModel(str(art.path), skip_model_load=True).get_spec()
    outputs = {o.name: o for o in spec_pb.description.output}
    assert set(outputs) == {"scores", "classes"}
    assert spec_pb.description.input[0].type.WhichOneof("Type") == "imageType"
    int32 = outputs["classes"].type.multiArrayType.dataType
    assert int32 == outputs["classes"].type.multiArrayType.INT32


def test_unknown_predicted_class_is_a_clear_error():
    from edgecv.errors import DataError
    from edgecv.tasks import get_task

    task = get_task("segmentation")
    with pytest.raises(DataError, match="predicts class 7"):
        task.evaluate({"classes": np.full((1, 4, 4), 7, np.uint8)}, [np.zeros((4, 4), np.uint8)],
                      {"class_names": ["a", "b"], "ignore_index": 255})


def _pascal_fixture(folder, count=3):
    """CamVid photos whose label maps are rewritten in PASCAL VOC's indices: car -> car (7),
    pedestrian -> person (15), bicyclist (a person on a bicycle) not labelled, the rest background."""
    from edgecv.data.segmentation import read_segmentation

    ds = read_segmentation(shared_path("datasets", "camvid", "val", "images"),
                           shared_path("datasets", "camvid", "val", "labels"),
                           shared_path("datasets", "camvid", "classes.txt"))
    lut = np.zeros(256, np.uint8)
    lut[8], lut[9], lut[[10, 255]] = 7, 15, 255
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    busiest = sorted(ds.samples, key=lambda s: -(ds.load_label(s) == 8).sum())[:count]
    for s in busiest:
        Image.open(s.path).save(folder / "images" / (s.path.rsplit("/", 1)[-1]))
        Image.fromarray(lut[ds.load_label(s)]).save(folder / "labels" / (s.path.rsplit("/", 1)[-1][:-4] + ".png"))
    pascal = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
              "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
              "tvmonitor"]
    (folder / "classes.txt").write_text("\n".join(pascal) + "\n")
    return folder


def test_third_party_deeplab_validates_on_a_pascal_style_folder(tmp_path):
    """Google's PASCAL DeepLab (class map output, no sidecar) is taken as a segmenter because the
    folder has images/ and labels/; scored in its own classes on CamVid photos relabelled to them."""
    model = shared_path("models", "deeplabv3_mnv2_pascal_quant.tflite")
    data = _pascal_fixture(tmp_path / "pascal")
    r = subprocess.run([sys.executable, "-m", "edgecv.cli.main", "validate", str(model), "--data", str(data),
                        "--json", str(tmp_path / "v.json")], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((tmp_path / "v.json").read_text())["metrics"]
    assert m["evaluated_from"] == "classes" and m["count"] == 3
    assert m["per_class_iou"]["car"] > 0.7 and m["per_class_iou"]["background"] > 0.8  # measured 0.90, 0.95

    # the same model on CamVid's own labels: its PASCAL indices are not CamVid's classes, said plainly
    camvid = tmp_path / "camvid"
    (camvid / "images").mkdir(parents=True)
    (camvid / "labels").mkdir()
    for f in sorted((data / "images").iterdir())[:1]:
        (camvid / "images" / f.name).write_bytes(f.read_bytes())
        label = shared_path("datasets", "camvid", "val", "labels", f.stem + ".png")
        (camvid / "labels" / label.name).write_bytes(label.read_bytes())
    (camvid / "classes.txt").write_text(shared_path("datasets", "camvid", "classes.txt").read_text())
    r = subprocess.run([sys.executable, "-m", "edgecv.cli.main", "validate", str(model), "--data", str(camvid)],
                       capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.returncode == 2 and "predicts class" in r.stderr and "Traceback" not in r.stderr


def test_third_party_deeplab_benches_with_data(tmp_path):
    model = shared_path("models", "deeplabv3_mnv2_pascal_quant.tflite")
    data = _pascal_fixture(tmp_path / "pascal", count=2)
    r = subprocess.run([sys.executable, "-m", "edgecv.cli.main", "bench", str(model), "--data", str(data), "--runs", "3",
                        "--seconds", "0", "--json", str(tmp_path / "b.json")], capture_output=True, text=True, cwd=REPO,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "b.json").read_text())
    assert res["latency"]["runs"] >= 3 and res["metrics"]["miou"] > 30


def test_report_shows_masks_side_by_side_and_per_class_iou_change(trained):
    from edgecv.data.images import load_batch
    from edgecv.tasks.segmentation import decode_mask

    recipe, task, index, model = trained
    images = load_batch([s.path for s in index.val], (H, W), "resize")
    targets = task.targets(index.val, index.info)
    ref = task.evaluate(model.predict(images), targets, index.info)
    worse = model.predict(images)
    worse["scores"] = worse["scores"] + np.random.default_rng(0).normal(0, 2, worse["scores"].shape).astype(np.float32)
    cand = task.evaluate({"scores": worse["scores"]}, targets, index.info)
    assert len(ref["preview_masks"]) == 4 and decode_mask(ref["preview_masks"][0]).shape == targets[0].shape
    report = {"task_info": index.info, "reference": {"metrics": ref},
              "artifacts": [{"name": "int8", "metrics": cand}]}
    plots = task.report_plots(report)
    assert set(plots) == {"segmentation_masks", "per_class_iou_change"}
    assert all("<svg" in v for v in plots.values())
    assert "ground truth" in plots["segmentation_masks"] and "int8" in plots["segmentation_masks"]


def test_camvid_example_recipe_indexes_the_shared_data():
    from edgecv.config import load_recipe

    shared_path("datasets", "camvid", "classes.txt")
    recipe = load_recipe(REPO / "examples" / "camvid" / "edgecv.yaml")
    task = recipe.make_task()
    index = task.read_data(recipe)
    assert len(index.train) == 367 and len(index.val) == 101 and not index.skipped
    assert index.info["class_names"][:4] == ["sky", "building", "pole", "road"]
    w = dict(zip(index.info["class_names"], index.info["class_weights"]))
    assert w["bicyclist"] > w["road"] and w["pole"] > w["sky"]  # rare classes weigh more


def test_mIoU_intervals_survive_re_judging_from_stored_scores():
    """A cached validation is re-judged from its stored per-image scores (attach_intervals); mIoU's
    interval comes from the whole matrix at validation and cannot be re-derived: it is kept."""
    from edgecv.results import ArtifactResult, Interval
    from edgecv.tasks import get_task
    from edgecv.validate.intervals import attach_intervals

    task = get_task("segmentation")
    iv = Interval(low=60.0, high=62.0, confidence=0.95, method="bootstrap", n=3)
    dv = Interval(low=-0.3, high=0.1, confidence=0.95, method="paired bootstrap", n=3)
    r = ArtifactResult(name="int8", format="tflite", precision="int8", status="ok", metrics={"miou": 61.0},
                       sample_scores={"image_miou": [60.0, 61.0, 62.0]}, intervals={"miou": iv},
                       delta_intervals={"miou": dv})
    attach_intervals(r, task, {"image_miou": [60.0, 61.0, 62.0]})
    assert r.intervals["miou"] == iv and r.delta_intervals["miou"] == dv


def test_preview_masks_are_of_the_images_the_report_draws():
    """A mask is drawn beside its own photo: the masks follow info's preview indices (spread over the
    split); a model trained before they were recorded previews the first images, as its photo list."""
    from edgecv.tasks.segmentation import decode_mask, preview_indices, preview_masks

    n, h, w = 9, 4, 6
    classes = np.arange(n, dtype=np.uint8)[:, None, None] * np.ones((1, h, w), np.uint8)  # image i: class i
    targets = [np.zeros((h, w), np.uint8)] * n
    spread = preview_indices(n)
    assert spread == [0, 3, 5, 8]  # over the split, not the first four
    drawn = [int(decode_mask(m)[0, 0]) for m in preview_masks({"classes": classes}, targets, {"preview_indices": spread})]
    assert drawn == spread
    old = [int(decode_mask(m)[0, 0]) for m in preview_masks({"classes": classes}, targets, {})]
    assert old == [0, 1, 2, 3]
