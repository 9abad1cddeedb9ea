"""The keypoints task on tiny synthetic dots whose centres are the targets: readers with bad rows,
flip pairs, augmentation that moves points with pixels, metrics on known answers, every exporter,
`edgecv validate --annotations` and an end-to-end build."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from test_bench import no_tf_python  # noqa: F401  (fixture: a virtual environment without TensorFlow)
from synthetic_keypoints import DOT_COLOURS, draw_dots, make_keypoint_data, write_keypoint_recipe

SIZE = 32


@pytest.fixture(scope="module")
def dots(tmp_path_factory):
    """(root, image folder, points [N, 3, 2] in pixels, names)."""
    root = tmp_path_factory.mktemp("dots")
    folder, points, names = make_keypoint_data(root, count=48, size=SIZE)
    return root, folder, points, names


# ---- readers ---------------------------------------------------------------------------------------

def test_csv_reader_skips_and_counts_bad_rows(dots, tmp_path):
    from edgecv.data.keypoints import read_csv

    root, folder, points, names = dots
    (folder / "empty.png").write_bytes(b"")
    lines = (root / "keypoints.csv").read_text().splitlines()
    bad = [
        "missing.png,1,2,3,4,5,6",          # no such image
        f"{names[0]},1,2,3,4",              # 4 values, 6 expected
        f"{names[1]},1,2,3,4,5,abc",        # not a number
        f"{names[2]},1,2,3,4,500,6",        # far outside the 32x32 image
        "empty.png,1,2,3,4,5,6",            # unreadable image
        f"{names[3]},4,5,,,7,8",            # an unlabelled point: usable
    ]
    csv_path = tmp_path / "ann.csv"
    csv_path.write_text("\n".join(lines[:11] + bad) + "\n")
    rows = read_csv(folder, csv_path)
    assert len(rows.samples) == 11
    reasons = " | ".join(s.reason for s in rows.skipped)
    assert len(rows.skipped) == 5, reasons
    assert "image not found" in reasons and "4 values, expected 6" in reasons and "abc" in reasons
    assert "far outside the 32x32 image" in reasons and "empty file" in reasons
    assert rows.samples[-1].target["v"] == [1, 0, 1]
    first = rows.samples[0].target
    np.testing.assert_allclose(first["xy"], points[0]) and first["wh"] == [SIZE, SIZE]


def test_coco_reader_ignores_v0_and_skips_bad_annotations(dots, tmp_path):
    from edgecv.data.keypoints import read_coco

    root, folder, points, names = dots
    coco = json.loads((root / "keypoints.json").read_text())
    coco["annotations"][0]["keypoints"][2] = 0                      # v=0: point 0 not labelled
    coco["annotations"][1]["keypoints"] = coco["annotations"][1]["keypoints"][:6]   # too short
    coco["annotations"].append({"id": 999, "image_id": 12345, "keypoints": [0] * 9})  # unknown image
    second = dict(coco["annotations"][2], id=998, keypoints=[1, 1, 2] + [0, 0, 0] * 2)  # fewer labelled points
    coco["annotations"].append(second)
    coco["images"].append({"id": 777, "file_name": "unannotated.png", "width": SIZE, "height": SIZE})
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(coco))
    rows = read_coco(folder, path)
    assert rows.names == ["red", "green", "blue"]
    by_name = {Path(s.path).name: s for s in rows.samples}
    assert by_name[names[0]].target["v"] == [0, 1, 1]
    np.testing.assert_allclose(by_name[names[2]].target["xy"], points[2])  # the fuller annotation wins
    reasons = [s.reason for s in rows.skipped]
    assert len(rows.samples) == len(names) - 1 and len(reasons) == 3, reasons
    assert any("6 keypoint values, expected 9" in r for r in reasons)
    assert any("unknown image_id" in r for r in reasons) and any("no keypoint annotation" in r for r in reasons)


def test_unlabelled_points_are_left_out_of_metrics(dots):
    from edgecv.data.keypoints import input_targets
    from edgecv.data.index import Sample
    from edgecv.tasks.keypoints import keypoint_metrics

    s = Sample("x.png", None, {"xy": [[8, 8], [24, 8], [0, 0]], "v": [1, 1, 0], "wh": [32, 32]})
    t = input_targets([s], (32, 32), "resize")
    assert t[0, 2, 2] == 0
    pred = t[..., :2].copy()
    pred[0, 2] = [0.99, 0.99]  # far off, but unlabelled
    assert keypoint_metrics(pred, t, (32, 32), (0, 1))["nme"] == 0.0


def test_crop_policies_move_targets_like_pixels():
    from edgecv.data.keypoints import crop_transform

    # 64x32 (wide) file into a 32x32 input: centre crop keeps x in 16..48 of the file
    scale, offset = crop_transform((64, 32), (32, 32), "center_crop")
    np.testing.assert_allclose(np.array([0.25, 0.5]) * scale + offset, [0.0, 0.5])
    np.testing.assert_allclose(np.array([0.75, 0.5]) * scale + offset, [1.0, 0.5])
    # letterbox: the content fills the middle half vertically
    scale, offset = crop_transform((64, 32), (32, 32), "pad")
    np.testing.assert_allclose(np.array([0.5, 0.0]) * scale + offset, [0.5, 0.25])


# ---- flip pairs and augmentation -----------------------------------------------------------------

def test_ibug68_flip_pairs():
    from edgecv.data.keypoints import PRESETS, flip_permutation
    from edgecv.errors import DataError

    scheme = PRESETS["ibug68"]
    perm = flip_permutation(68, scheme.flip_pairs)
    assert (perm[perm] == np.arange(68)).all()  # a flip twice is no flip
    assert perm[36] == 45 and perm[0] == 16 and perm[48] == 54 and perm[8] == 8 and perm[30] == 30
    assert scheme.normalize_by == (36, 45) and len(scheme.names) == 68
    with pytest.raises(DataError, match="outside 0..2"):
        flip_permutation(3, [(0, 5)])


def _colour_centre(img: np.ndarray, colour) -> np.ndarray:
    dist = np.abs(img.astype(np.float64) - np.array(colour)).sum(-1)
    ys, xs = np.nonzero(dist < 60)
    return np.array([xs.mean() + 0.5, ys.mean() + 0.5])  # continuous pixel coordinates


@pytest.mark.parametrize("flip", [False, True])
def test_augmentation_keeps_points_on_the_moved_pixels(flip):
    from edgecv._keras import tf
    from edgecv.data.keypoint_augment import KeypointAugment, augment_batch

    rng = np.random.default_rng(3)
    size = 64
    pts = np.array([[20.0, 24.0], [44.0, 26.0], [32.0, 44.0]])
    img = draw_dots(pts, size, rng)
    img[..., :] = np.where((img == 255).any(-1, keepdims=True) | (img == 40).all(-1, keepdims=True), img, 0)
    for c, p in zip(DOT_COLOURS, pts):  # clean background: only the dots have colour
        cx, cy = int(round(p[0])), int(round(p[1]))
        img[cy - 2:cy + 2, cx - 2:cx + 2] = c
    perm = np.array([1, 0, 2])  # red and green are a left/right pair
    cfg = KeypointAugment(perm, flip=flip, rotation=0.03, zoom=0.1, translate=0.08, color=0.0)
    tf.random.set_seed(1)
    targets = np.concatenate([pts / size, np.ones((3, 1))], 1)[None].astype(np.float32)
    batch = np.repeat(img[None].astype(np.float32), 4, 0)
    out_img, out_pts = augment_batch(tf.constant(batch), tf.constant(np.repeat(targets, 4, 0)), cfg)
    out_img, out_pts = out_img.numpy(), out_pts.numpy()
    moved = 0
    for b in range(4):
        flipped = flip and abs(_colour_centre(out_img[b], DOT_COLOURS[0])[0] - out_pts[b, 1, 0] * size) < 1.5
        for j, colour in enumerate(DOT_COLOURS):
            i = perm[j] if flipped else j  # after a flip, the red dot is point 1 (names swapped)
            np.testing.assert_allclose(_colour_centre(out_img[b], colour), out_pts[b, i, :2] * size, atol=1.0)
        moved += not np.allclose(out_pts[b, :, :2], targets[0, :, :2], atol=1e-3)
    assert moved == 4  # every image got a transform


# ---- metrics ---------------------------------------------------------------------------------------

def test_nme_failure_rate_and_agreement_on_known_answers():
    from edgecv.tasks.keypoints import keypoint_metrics, point_agreement

    # two images, points 0 and 1 are 10 px apart in a 100x100 input (the normalizer)
    t = np.zeros((2, 3, 3))
    t[:, 0, :2], t[:, 1, :2], t[:, 2, :2], t[..., 2] = (0.2, 0.5), (0.3, 0.5), (0.5, 0.8), 1
    pred = t[..., :2].copy()
    pred[0] += [0.005, 0.0]  # every point 0.5 px off: NME 0.05
    pred[1] += [0.0, 0.02]   # 2 px: NME 0.2, a failure at 0.1
    m = keypoint_metrics(pred, t, (100, 100), (0, 1), failure_nme=0.1)
    assert m["nme"] == pytest.approx(0.125) and m["failure_rate"] == pytest.approx(0.5)
    assert m["per_keypoint_nme"] == pytest.approx([0.125] * 3) and m["mean_error_px"] == pytest.approx(1.25)
    # bounding-box diagonal when no pair is named: box 30 x 30 px -> 42.43 px
    m = keypoint_metrics(pred, t, (100, 100), None)
    assert m["nme"] == pytest.approx(1.25 / (30 * np.sqrt(2)))
    a = point_agreement(t[..., :2], pred, (100, 200))  # x in pixels of a 200-wide input
    assert a["point_error_px_max"] == pytest.approx(2.0) and a["point_error_px_mean"] == pytest.approx(1.5)
    assert a["point_error_px_p99"] == pytest.approx(2.0)  # 3 of 6 points are 2 px off


def test_task_declares_keypoint_gates_and_contract():
    from edgecv.tasks import get_task

    task = get_task("keypoints", {"preset": "ibug68"})
    assert {g.name for g in task.gates} == {"nme_max", "nme_increase_max", "point_error_px_max"}
    spec = task.output_spec({"num_keypoints": 68})[0]
    assert spec.name == "keypoints" and spec.shape == ("N", 68, 2) and "[0, 1]" in spec.meaning
    assert task.quality_metric == "nme" and not task.metric("nme").higher_is_better
    info = task.scheme_info(68)
    assert info["normalize_by"] == [36, 45] and [36, 45] in info["flip_pairs"]
    named = get_task("keypoints", {"names": ["a", "b", "c"], "flip_pairs": [["a", "b"]], "normalize_by": ["a", "c"]})
    assert named.scheme_info(3)["flip_pairs"] == [[0, 1]] and named.scheme_info(3)["normalize_by"] == [0, 2]


# ---- model, exporters, CLI -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def recipe_path(dots, tmp_path_factory):
    root, folder, _, _ = dots
    return write_keypoint_recipe(tmp_path_factory.mktemp("recipe") / "edgecv.yaml", folder, root / "keypoints.csv")


@pytest.fixture(scope="module")
def heatmap_model(recipe_path):
    """A TinyCNN keypoint model with the heatmap head (untrained: exporters only compare with it)."""
    from edgecv.config import load_recipe
    from edgecv.models.build import build_task_model

    recipe = load_recipe(recipe_path, overrides=["task_options.head=heatmap"])
    index = recipe.make_task().read_data(recipe)
    return build_task_model(recipe, index.info), index


def _calibration(images):
    return lambda: iter([im[None] for im in images[:16]])


@pytest.mark.parametrize("fmt,precision,atol_px", [
    ("tflite", "fp32", 0.01), ("tflite", "fp16", 0.1), ("tflite", "int8", 2.0), ("onnx", "fp32", 0.01),
    ("onnx", "fp16", 0.1), ("onnx", "int8", 2.0), ("savedmodel", "fp32", 0.01)])
def test_each_exporter_keeps_the_keypoint_contract(heatmap_model, tmp_path, fmt, precision, atol_px):
    from edgecv.config.target import ArtifactSpec
    from edgecv.data.images import load_batch
    from edgecv.exporters import ExportContext, get_exporter
    from edgecv.runtimes import load_runtime

    if fmt == "onnx":
        pytest.importorskip("tf2onnx")
        pytest.importorskip("onnxruntime")
    model, index = heatmap_model
    images = load_batch([s.path for s in index.train[:24]], (SIZE, SIZE), "resize")
    ref = model.predict(images)["keypoints"]
    spec = ArtifactSpec(name=f"{fmt}-{precision}", format=fmt, precision=precision)
    art = get_exporter(fmt)().export(model, spec, tmp_path, ExportContext("dots", _calibration(images)))
    with load_runtime(art.path) as rt:
        out = rt.predict(images)
    assert out["keypoints"].shape == (24, 3, 2)
    assert np.abs(out["keypoints"] - ref).max() * SIZE < atol_px
    if fmt == "savedmodel":  # also in pixels of the image given
        np.testing.assert_allclose(out["keypoints_px"], out["keypoints"] * SIZE, rtol=1e-5)


def test_qdq_int8_keeps_the_soft_argmax_decode_float(heatmap_model, tmp_path):
    """Issue 23: on int8 probabilities (steps of 1/127) a spread-out heatmap lost its small cells'
    mass and a face point moved 16.95 px; the decode's MatMul now reads float probabilities."""
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    import onnx

    from edgecv.config.target import ArtifactSpec
    from edgecv.data.images import load_batch
    from edgecv.exporters import ExportContext, get_exporter
    from edgecv.runtimes import load_runtime

    model, index = heatmap_model  # untrained: its maps are nearly flat, the hard case
    images = load_batch([s.path for s in index.train[:24]], (SIZE, SIZE), "resize")
    ref = model.predict(images)["keypoints"]
    spec = ArtifactSpec(name="qdq", format="onnx", precision="int8")
    art = get_exporter("onnx")().export(model, spec, tmp_path, ExportContext("dots", _calibration(images)))
    graph = onnx.load(str(art.path)).graph
    producers = {o: n for n in graph.node for o in n.output}
    decode = [n for n in graph.node if n.op_type == "MatMul" and "keypoints" in n.name.split("/")]
    assert decode, [n.name for n in graph.node if n.op_type == "MatMul"]
    for n in decode:
        assert not any(i in producers and producers[i].op_type == "DequantizeLinear" for i in n.input), n.name
    assert any("keypoints" in name.split("/") for name in art.metadata["kept_float"])
    with load_runtime(art.path) as rt:
        out = rt.predict(images)["keypoints"]
    assert np.abs(out - ref).max() * SIZE < 1.0


def test_coreml_keeps_a_multiarray_keypoints_output(heatmap_model, tmp_path):
    pytest.importorskip("coremltools")
    from edgecv.config.target import ArtifactSpec
    from edgecv.exporters import ExportContext, get_exporter

    model, _ = heatmap_model
    spec = ArtifactSpec(name="coreml", format="coreml", precision="fp16")
    ctx = ExportContext("dots", metadata={"recipe_sha256": "abc", "edgecv_version": "0.1.0"})
    art = get_exporter("coreml")().export(model, spec, tmp_path, ctx)
    import coremltools as ct

    desc = ct.models.MLModel(str(art.path), skip_model_load=True).get_spec().description
    assert [o.name for o in desc.output] == ["keypoints"] and desc.output[0].type.WhichOneof("Type") == "multiArrayType"
    assert desc.input[0].type.WhichOneof("Type") == "imageType"


def test_heatmap_model_saves_and_loads(heatmap_model, tmp_path):
    from edgecv.models.build import TaskModel

    model, _ = heatmap_model
    model.save(tmp_path / "m")
    x = np.random.default_rng(0).integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)
    np.testing.assert_allclose(TaskModel.load(tmp_path / "m").predict(x)["keypoints"], model.predict(x)["keypoints"])


def test_flip_without_pairs_is_a_clear_error(dots, tmp_path):
    from edgecv.cli.main import app

    root, folder, _, _ = dots
    path = write_keypoint_recipe(tmp_path / "edgecv.yaml", folder, root / "keypoints.csv")
    text = path.read_text().replace("flip_pairs: []", "{}").replace("task_options:\n  {}", "task_options: {}")
    path.write_text(text)
    res = CliRunner().invoke(app, ["build", "-t", "raspberry-pi-4", "-r", str(path), "-o", str(tmp_path / "b")])
    assert res.exit_code == 2, res.output
    assert "flip pairs" in res.output and "Traceback" not in res.output


@pytest.fixture(scope="module")
def built(dots, recipe_path, tmp_path_factory):
    """Train (regression head) and build raspberry-pi-4: (target folder, report)."""
    from edgecv.cli.main import app

    out = tmp_path_factory.mktemp("build")
    res = CliRunner().invoke(app, ["build", "-t", "raspberry-pi-4", "-r", str(recipe_path), "-o", str(out),
                                   "--set", "gates.nme_max=5.0"])
    assert res.exit_code == 0, res.output
    folder = out / "raspberry-pi-4"
    return folder, json.loads((folder / "report.json").read_text())


def test_build_reports_keypoint_metrics_gates_and_panels(built):
    pytest.importorskip("matplotlib")
    folder, report = built
    assert report["task"]["name"] == "keypoints" and report["task_info"]["num_keypoints"] == 3
    int8 = next(a for a in report["artifacts"] if a["name"] == "int8")
    assert int8["status"] == "ok" and {"nme", "failure_rate", "per_keypoint_nme"} <= set(int8["metrics"])
    assert "nme" in int8["deltas"] and {"point_error_px_mean", "point_error_px_max"} <= set(int8["agreement"])
    assert any(g["gate"] == "nme_max" for g in int8["gates"])  # the recipe's gates apply under the target's
    html = (folder / "report.html").read_text()
    assert "validation images: annotation, float model and artifacts" in html and "error per keypoint" in html
    assert json.loads((folder / "keypoints.json").read_text())["num_keypoints"] == 3


@pytest.fixture(scope="module")
def val_folder(built, tmp_path_factory):
    folder = tmp_path_factory.mktemp("val")
    for p in built[1]["task_info"]["preview_images"]:
        shutil.copy(p, folder)
    return folder


def test_validate_with_annotations_matches_the_build_without_tensorflow(built, dots, val_folder, no_tf_python,
                                                                         tmp_path):
    import subprocess

    folder, report = built
    int8 = next(a for a in report["artifacts"] if a["name"] == "int8")
    js = tmp_path / "validate.json"
    r = subprocess.run([no_tf_python, "-m", "edgecv.cli.main", "validate", str(folder / Path(int8["path"]).name),
                        "--data", str(val_folder), "--annotations", str(dots[0] / "keypoints.csv"), "--json", str(js)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(js.read_text())
    assert result["metrics"]["count"] == len(report["task_info"]["preview_images"]) and "NME" in r.stdout
    first = np.asarray(int8["metrics"]["preview_points"])
    np.testing.assert_allclose(np.asarray(result["points"])[:len(first)], first, atol=1e-4)


def test_bench_keypoint_artifact_without_tensorflow(built, dots, val_folder, no_tf_python, tmp_path):
    import subprocess

    folder, report = built
    int8 = next(a for a in report["artifacts"] if a["name"] == "int8")
    js = tmp_path / "bench.json"
    r = subprocess.run([no_tf_python, "-m", "edgecv.cli.main", "bench", str(folder / Path(int8["path"]).name),
                        "--data", str(val_folder), "--annotations", str(dots[0] / "keypoints.csv"), "--runs", "5",
                        "--seconds", "0", "--json", str(js)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(js.read_text())
    assert "tensorflow" not in res["device"]["libraries"] and res["latency"]["p50_ms"] > 0
    assert res["metrics"]["count"] == len(report["task_info"]["preview_images"]) and "nme" in res["metrics"]


def test_soft_argmax_decodes_a_peaked_heatmap_to_its_cell_centre():
    from edgecv.tasks.keypoint_heads import SoftArgmax2D

    logits = np.full((1, 4, 8, 2), -30.0, np.float32)
    logits[0, 1, 6, 0] = 30.0  # point 0: row 1, column 6 of a 4x8 map
    logits[0, :, :, 1] = 0.0   # point 1: flat map, the expectation is the image centre
    out = SoftArgmax2D()(logits).numpy()
    np.testing.assert_allclose(out[0], [[6.5 / 8, 1.5 / 4], [0.5, 0.5]], atol=1e-5)


PASSES_TARGET = """
description: prune, qat and swap on a keypoint model
runtime: {threads: 1, batch: 1}
artifacts:
  - {name: pruned, format: tflite, precision: fp32,
     passes: [{name: prune, sparsity: 0.5, epochs: 1, learning_rate: 0.001}]}
  - {name: qat, format: tflite, precision: int8, io_dtype: uint8,
     passes: [{name: qat, epochs: 1, learning_rate: 0.0001}]}
  - {name: student, format: tflite, precision: fp32,
     passes: [{name: swap, backbone: MobileNet, alpha: 0.25, input_size: 32, weights: none, epochs: 1,
               warmup_epochs: 0}]}
"""


def test_passes_train_a_heatmap_keypoint_model_through_the_task(recipe_path, tmp_path):
    """Pruning, QAT (the soft-argmax output fake-quantized) and distillation to another backbone use
    the task's loss and data, and their artifacts are judged by NME."""
    from edgecv.cli.main import app

    target = tmp_path / "passes.yaml"
    target.write_text(PASSES_TARGET)
    out = tmp_path / "build"
    res = CliRunner().invoke(app, ["build", "-t", str(target), "-r", str(recipe_path), "-o", str(out), "--no-gates",
                                   "--set", "task_options.head=heatmap", "--set", "train.finetune.epochs=1"])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "passes" / "report.json").read_text())
    for a in report["artifacts"]:
        assert a["status"] == "ok" and a["metrics"]["nme"] >= 0 and a["passes"], a.get("error")
