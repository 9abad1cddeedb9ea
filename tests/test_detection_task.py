"""The detection task: registered, readers to targets, anchors, augmentation that moves boxes, a tiny
detector that trains and follows the output contract, evaluation equal to metrics/detection,
gates, and passes refused while planning. Synthetic rectangles (tests/synthetic_detection.py);
the raccoon test skips without ../shared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synthetic_detection import COLOURS, make_detection_data, write_detection_recipe
from test_bench import no_tf_python  # noqa: F401  (fixture: a virtual environment without TensorFlow)

RACCOON = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "raccoon"


@pytest.fixture(scope="module")
def boxes_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("boxes")
    images, annotations, truth = make_detection_data(root)
    recipe_path = write_detection_recipe(root / "edgecv.yaml", images, annotations)
    return root, images, annotations, truth, recipe_path


@pytest.fixture(scope="module")
def recipe_index(boxes_data):
    from edgecv.config.loader import load_recipe

    recipe = load_recipe(boxes_data[4])
    task = recipe.make_task()
    return recipe, task, task.read_data(recipe)


def test_detection_task_is_registered_and_listed():
    from typer.testing import CliRunner

    from edgecv.cli.main import app
    from edgecv.tasks import get_task, known_tasks
    from edgecv.tasks.gates import known_gate_names

    assert "detection" in known_tasks()
    assert get_task("detection").name == "detection"
    names = known_gate_names()
    for g in ("map_min", "map_drop_max", "ap50_min", "box_f1_min", "map_min_significant", "map_drop_max_confident",
              "ap50_min_confident"):
        assert g in names, g
    res = CliRunner().invoke(app, ["tasks"])
    assert res.exit_code == 0 and "detection" in res.output


def test_anchor_encode_decode_round_trip_and_contract_decode():
    from edgecv.metrics.nms import decode_boxes
    from edgecv.tasks.detection_anchors import anchor_params, decode, encode, generate_anchors

    params = anchor_params((96, 128), [16, 32], 4.0, 2, (0.5, 1.0, 2.0))
    anchors = generate_anchors(params)
    assert anchors.shape == ((6 * 8 + 3 * 4) * 6, 4)  # rows x cols x 6 anchors per level
    assert np.allclose(anchors[0, :2], [0.5 / 6, 0.5 / 8]) and np.allclose(anchors[5, :2], [0.5 / 6, 0.5 / 8])
    rng = np.random.default_rng(0)
    y1, x1 = rng.uniform(0, 0.6, (2, len(anchors)))
    boxes = np.stack([y1, x1, y1 + rng.uniform(0.05, 0.4, len(anchors)), x1 + rng.uniform(0.05, 0.4, len(anchors))], 1)
    enc = encode(boxes, anchors)
    np.testing.assert_allclose(decode(enc, anchors), boxes, atol=1e-6)
    np.testing.assert_allclose(decode_boxes(enc, anchors, (10, 10, 5, 5)), boxes, atol=1e-5)  # the NMS reference's


def test_target_assignment_gives_every_box_a_positive_anchor():
    from edgecv.tasks.detection_anchors import anchor_params, assign_targets, decode, generate_anchors

    anchors = generate_anchors(anchor_params((64, 64), [8, 16], 4.0, 1, (1.0,)))
    boxes = np.array([[0.1, 0.1, 0.3, 0.2], [0.5, 0.4, 0.95, 0.9]])  # a thin one no anchor fits at IoU 0.5
    cls_t, box_t = assign_targets(boxes, np.array([1, 0]), anchors, 2)
    pos = cls_t[:, -1] == 1
    assert pos.sum() >= 2 and (box_t[:, 4] == pos).all()
    decoded = decode(box_t[pos, :4], anchors[pos])
    hits = {int(np.argmin(np.abs(boxes - d).sum(1))) for d in decoded}
    assert hits == {0, 1}
    np.testing.assert_allclose(np.abs(decoded[:, None] - boxes[None]).sum(-1).min(1), 0, atol=1e-5)
    assert set(cls_t[pos, :2].argmax(1)) == {0, 1}
    assert ((cls_t[:, -1] == -1) | (cls_t[:, -1] == 0) | pos).all()


def test_readers_give_targets_in_photo_pixels(recipe_index, boxes_data):
    recipe, task, index = recipe_index
    truth = boxes_data[3]
    assert index.info["class_names"] == ["blue", "red"]
    assert len(index.train) == 30 and len(index.val) == 10
    targets = task.targets(index.val, index.info)
    for sample, t in zip(index.val, targets):
        i = int(Path(sample.path).stem[2:])
        want = sorted((index.info["class_names"].index(n), *b) for n, b in truth[i])
        got = sorted((int(c), *np.round(b).astype(int)) for c, b in zip(t.classes, t.boxes))
        assert got == want
    det = index.info["detection"]
    assert det["anchors"]["input_size"] == [64, 64] and det["scales"] == [10.0, 10.0, 5.0, 5.0]
    assert det["nms"]["iou_threshold"] == 0.5 and index.info["resize"] == "resize"


@pytest.mark.parametrize("policy", ["resize", "pad", "center_crop"])
def test_augmentation_moves_boxes_with_pixels(policy):
    """A red rectangle on grey: wherever zoom, translate and flip put it, the returned box is where its
    pixels are (to a pixel); a box pushed mostly out of the window is dropped."""
    from edgecv.data.detection_augment import BoxAugment, augment_image

    rng = np.random.default_rng(1)
    photo = np.full((90, 140, 3), 128, np.uint8)
    photo[20:60, 50:110] = COLOURS["red"]
    box = np.array([[50, 20, 110, 60]], np.float64)
    cfg = BoxAugment(flip=True, zoom=0.3, translate=0.2, color=0.0)
    for _ in range(12):
        img, out, classes, _ = augment_image(photo, box, np.array([0]), (48, 64), policy, cfg, rng)
        assert img.shape == (48, 64, 3)
        red = (img[..., 0] > 170) & (img[..., 2] < 90)
        if len(out) == 0:
            continue
        ys, xs = np.nonzero(red)
        seen = np.array([ys.min() / 48, xs.min() / 64, (ys.max() + 1) / 48, (xs.max() + 1) / 64])
        np.testing.assert_allclose(out[0], seen, atol=1.6 / 48)
        assert classes.tolist() == [0]
    from edgecv.data.detection_augment import boxes_in_window

    _, keep = boxes_in_window(box, np.array([100.0, 0.0, 240.0, 90.0]), (48, 64))  # a sixth of it left
    assert not keep.any()


def test_tiny_detector_trains_and_follows_the_contract(recipe_index):
    from edgecv.train.trainer import train

    recipe, task, index = recipe_index
    result = train(recipe, index)
    model = result.model
    assert model.output_names == ["box_encodings", "scores"]
    from edgecv.data.images import load_batch

    images = load_batch([s.path for s in index.val], (64, 64), "resize")
    out = model.predict(images)
    n_anchors = (8 * 8 + 4 * 4) * 6
    assert out["box_encodings"].shape == (10, n_anchors, 4) and out["scores"].shape == (10, n_anchors, 2)
    assert (out["scores"] >= 0).all() and (out["scores"] <= 1).all()
    assert np.isfinite(result.history[-1]["loss"])
    post = task.postprocess(model.info)
    assert post is not None and post.num_anchors == n_anchors
    det = post.from_raw(out)
    assert det["detection_boxes"].shape == (10, 100, 4) and det["num_detections"].shape == (10,)
    metrics = task.evaluate(out, task.targets(index.val, index.info), model.info)
    assert 0.0 <= metrics["map"] <= 1.0 and metrics["count"] == 10


def _perfect_raw(targets, info, jitter=0.0, seed=0):
    """Raw outputs a detector would give for the targets: one confident anchor per box."""
    from edgecv.data.detection import boxes_to_input
    from edgecv.tasks.detection_anchors import corners, encode, generate_anchors, iou_matrix

    a = info["detection"]["anchors"]
    anchors = generate_anchors(a)
    rng = np.random.default_rng(seed)
    enc = np.zeros((len(targets), len(anchors), 4), np.float32)
    scores = np.zeros((len(targets), len(anchors), len(info["class_names"])), np.float32)
    for i, t in enumerate(targets):
        b = boxes_to_input(t.boxes, (t.width, t.height), tuple(a["input_size"]), "resize")[:, [1, 0, 3, 2]]
        b = b + rng.normal(0, jitter, b.shape)
        best = iou_matrix(corners(anchors), b).argmax(0)
        enc[i, best] = encode(b, anchors[best])
        scores[i, best, t.classes] = rng.uniform(0.6, 0.99, len(best))
    return {"box_encodings": enc, "scores": scores}


def test_evaluate_equals_metrics_detection_for_raw_and_postprocessed_outputs(recipe_index):
    from edgecv.metrics.detection import DetectionEvaluation, from_postprocess

    recipe, task, index = recipe_index
    info = index.info
    targets = task.targets(index.val, info)
    raw = _perfect_raw(targets, info, jitter=0.02)
    m_raw = task.evaluate(raw, targets, info)
    post = task.postprocess(info).from_raw(raw)
    m_post = task.evaluate(post, targets, info)
    dets = [from_postprocess(post["detection_boxes"][i], post["detection_classes"][i], post["detection_scores"][i],
                             post["num_detections"][i], (t.width, t.height), (64, 64), "resize")
            for i, t in enumerate(targets)]
    want = DetectionEvaluation(targets, dets, info["class_names"]).metrics(0.5)
    for key in ("map", "ap50", "ap75", "precision", "recall"):
        assert m_raw[key] == pytest.approx(getattr(want, key), abs=1e-12)
        assert m_post[key] == pytest.approx(getattr(want, key), abs=1e-12)
    assert 0.3 < m_raw["map"] < 1.0
    exact = task.evaluate(_perfect_raw(targets, info), targets, info)
    assert exact["map"] == pytest.approx(1.0) and exact["ap50"] == pytest.approx(1.0)
    assert task.agreement(raw, raw, info)["box_f1"] == 1.0


def test_gates_are_judged_with_intervals(recipe_index):
    from edgecv.results import ArtifactResult
    from edgecv.validate.comparator import compare
    from edgecv.validate.gates import check_gates

    recipe, task, index = recipe_index
    info = index.info
    targets = task.targets(index.val, info)
    reference = _perfect_raw(targets, info, jitter=0.0)
    worse = _perfect_raw(targets, info, jitter=0.04, seed=1)
    cmp = compare(task, info, worse, targets, reference)
    assert cmp.deltas["map"] < 0 and "map" in cmp.intervals and "map" in cmp.delta_intervals
    assert cmp.delta_intervals["map"].high <= 0.0 + 1e-9
    result = ArtifactResult(name="int8", format="tflite", precision="int8", status="ok", **cmp.to_result_fields())
    gates = {g.gate: g for g in check_gates(result, {"map_min": 0.99, "ap50_min": 0.1, "map_drop_max": 0.001,
                                                     "map_drop_max_significant": 0.001, "box_f1_min": 0.2,
                                                     "accuracy_drop_max": 1.0}, task)}
    assert not gates["map_min"].passed and gates["ap50_min"].passed
    assert not gates["map_drop_max"].passed and not gates["map_drop_max_significant"].passed
    assert gates["box_f1_min"].value == cmp.agreement["box_f1"]
    assert "accuracy_drop_max" not in gates  # a classification gate does not apply


def test_plan_refuses_passes_the_detector_cannot_take(boxes_data, tmp_path):
    from typer.testing import CliRunner

    from edgecv.cli.main import app

    target = tmp_path / "t.yaml"
    target.write_text("description: qat on a detector\nruntime: {threads: 1, batch: 1}\nartifacts:\n"
                      "  - {name: q, format: tflite, precision: int8, passes: [{name: qat, epochs: 1}]}\n")
    res = CliRunner().invoke(app, ["build", "-t", str(target), "-r", str(boxes_data[4]), "-o", str(tmp_path / "b"),
                                   "--dry-run"])
    assert res.exit_code == 2, res.output
    assert "pass qat is refused for task detection" in res.output and "quantization-aware" in res.output


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_plan_refuses_accuracy_aware_int8_for_a_detector(boxes_data, tmp_path, fmt):
    """Refused while planning (before training), not by the exporter after it."""
    from typer.testing import CliRunner

    from edgecv.cli.main import app

    target = tmp_path / "t.yaml"
    target.write_text("description: accuracy-aware int8 detector\nruntime: {threads: 1, batch: 1}\nartifacts:\n"
                      f"  - {{name: q, format: {fmt}, precision: int8, options: {{accuracy_aware: {{}}}}, "
                      "gates: {map_drop_max: 0.02}}\n")
    res = CliRunner().invoke(app, ["build", "-t", str(target), "-r", str(boxes_data[4]), "-o", str(tmp_path / "b"),
                                   "--dry-run"])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "options.accuracy_aware is refused for task detection" in text and "decode + NMS" in text


def test_select_refuses_a_detector_with_the_reason(boxes_data, tmp_path):
    from typer.testing import CliRunner

    from edgecv.cli.main import app

    res = CliRunner().invoke(app, ["select", "-t", "raspberry-pi-4", "-r", str(boxes_data[4]), "--budget-ms", "10",
                                   "-o", str(tmp_path / "s")])
    assert res.exit_code == 2, res.output
    assert "needs task classification, not detection" in res.output


def test_raccoon_reads_and_splits_by_seed():
    if not RACCOON.is_dir():
        pytest.skip(f"the raccoon set is not at {RACCOON} (../shared beside the repository)")
    from edgecv.config.loader import load_recipe

    recipe = load_recipe(Path(__file__).resolve().parents[1] / "examples" / "raccoon" / "edgecv.yaml")
    index = recipe.make_task().read_data(recipe)
    assert len(index.train) == 128 and len(index.val) == 32 and index.info["class_names"] == ["raccoon"]
    other = load_recipe(Path(__file__).resolve().parents[1] / "examples" / "raccoon" / "edgecv.yaml",
                        ["data.seed=1"])
    assert {s.path for s in other.make_task().read_data(other).val} != {s.path for s in index.val}


# ---- end to end: build raspberry-pi-4, then validate and bench the artifact on a "device" -------------

@pytest.fixture(scope="module")
def built(boxes_data, tmp_path_factory):
    """The tiny detector built for raspberry-pi-4 (int8 with TFLite's detection post-process, fp32)."""
    import json

    from typer.testing import CliRunner

    from edgecv.cli.main import app

    out = tmp_path_factory.mktemp("build")
    res = CliRunner().invoke(app, ["build", "-t", "raspberry-pi-4", "-r", str(boxes_data[4]), "-o", str(out),
                                   "--set", "train.finetune.epochs=4", "--set", "gates.map_drop_max=0.5"])
    assert res.exit_code in (0, 1), res.output  # the target's classification gates do not apply; ours may fail
    folder = out / "raspberry-pi-4"
    return folder, json.loads((folder / "report.json").read_text())


def test_build_reports_map_gates_sidecars_and_panels(built):
    import json

    folder, report = built
    assert report["task"]["name"] == "detection"
    int8 = next(a for a in report["artifacts"] if a["name"] == "int8")
    assert int8["status"] == "ok", int8.get("error")
    assert {"map", "ap50", "ap75", "precision", "recall"} <= set(int8["metrics"]) and "map" in int8["deltas"]
    assert {"box_f1", "box_iou_mean"} <= set(int8["agreement"]) and "map" in int8["intervals"]
    assert any(g["gate"] == "map_drop_max" for g in int8["gates"])
    ref = report["reference"]["intervals"]["map"]  # the float model's own mAP interval, beside the artifacts'
    assert ref["low"] <= report["reference"]["metrics"]["map"] <= ref["high"]
    pre = json.loads((folder / "preprocessing.json").read_text())
    assert pre["resize"] == "resize" and pre["detection"]["anchors"]["strides"] == [8, 16]
    assert list(pre["outputs"]) == ["detection_boxes", "detection_classes", "detection_scores", "num_detections"]
    assert list(pre["raw_outputs"]) == ["box_encodings", "scores"]
    assert json.loads((folder / "detection.json").read_text())["class_names"] == ["blue", "red"]
    assert (folder / "labels.txt").read_text() == "blue\nred\n"
    if report["reference"]["metrics"].get("preview_detections") is not None:
        pytest.importorskip("matplotlib")
        html = (folder / "report.html").read_text()
        assert "precision-recall at IoU 0.5" in html and "best and worst agreement" in html


def test_validate_annotations_gives_the_builds_map_without_tensorflow(built, boxes_data, no_tf_python, tmp_path):
    """`edgecv validate ARTIFACT --data DIR --annotations DIR` on a machine without TensorFlow: the
    build's mAP on the same images; a copy without edgecv's sidecars (a third party's detector) is
    taken for a detector by its VOC annotations and gives the same numbers."""
    import json
    import shutil
    import subprocess

    folder, report = built
    int8 = next(a for a in report["artifacts"] if a["name"] == "int8")
    val = tmp_path / "val"
    val.mkdir()
    ann = tmp_path / "ann"
    ann.mkdir()
    for p in report["task_info"]["preview_images"]:
        shutil.copy(p, val / Path(p).name)
        shutil.copy(boxes_data[2] / (Path(p).stem + ".xml"), ann / (Path(p).stem + ".xml"))
    lone = tmp_path / "third_party"
    lone.mkdir()
    shutil.copy(folder / Path(int8["path"]).name, lone / "detector.tflite")
    for artifact in (folder / Path(int8["path"]).name, lone / "detector.tflite"):
        js = tmp_path / f"{artifact.stem}.json"
        r = subprocess.run([no_tf_python, "-m", "edgecv.cli.main", "validate", str(artifact), "--data", str(val),
                            "--annotations", str(ann), "--json", str(js)], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        result = json.loads(js.read_text())
        assert "mAP@[.5:.95]" in r.stdout and result["metrics"]["count"] == 10
        assert result["metrics"]["map"] == pytest.approx(int8["metrics"]["map"], abs=1e-9)
        assert result["metrics"]["ap50"] == pytest.approx(int8["metrics"]["ap50"], abs=1e-9)
    js = tmp_path / "bench.json"
    r = subprocess.run([no_tf_python, "-m", "edgecv.cli.main", "bench", str(folder / Path(int8["path"]).name),
                        "--data", str(val), "--annotations", str(ann), "--runs", "3", "--seconds", "0",
                        "--json", str(js)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(js.read_text())["metrics"]["map"] == pytest.approx(int8["metrics"]["map"], abs=1e-9)
