"""The embedding task and the feature tools: retrieval metrics on known answers, CosFace training
whose margin head never reaches an artifact, every exporter, a SIGKILL-resumable `embed`,
same-class `search`, `outliers` finding planted images, and the `heads` table."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from rich.console import Console

from synthetic import make_image_folder, write_recipe

from edgecv.tasks.embedding import Embedding, retrieval_metrics

QUIET = Console(file=open("/dev/null", "w"))
REPO = Path(__file__).resolve().parents[1]
GATES = {"recall_at_1_drop_max": 1.0, "cross_recall_at_1_drop_max": 1.0, "cosine_min": 0.98}
TARGETS = {
    "emb-tflite": "description: TFLite int8 and fp32\nruntime: {threads: 1}\nartifacts:\n"
                  "  - {name: int8, format: tflite, precision: int8, io_dtype: uint8}\n"
                  "  - {name: fp32, format: tflite, precision: fp32}\n"
                  "gates: {accuracy_drop_max: 1.0}\n",
    "emb-onnx": "description: ONNX fp32\nartifacts:\n  - {name: fp32, format: onnx}\n",
    "emb-serving": "description: SavedModel\nartifacts:\n  - {name: serving, format: savedmodel}\n",
}


# ---- metrics on known answers -----------------------------------------------------------------
def test_recall_and_map_at_r_on_a_hand_made_gallery():
    gallery = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], float)
    g_labels = np.array([0, 0, 1, 1])
    queries = np.array([[1, 0.05], [0.8, 0.2]], float)  # both nearest to class 0
    q_labels = np.array([0, 1])
    m = retrieval_metrics(queries, q_labels, gallery, g_labels)
    assert m["recall_at_1"] == pytest.approx(50.0)  # query 2 (class 1) finds class 0 first
    assert m["recall_at_5"] == pytest.approx(100.0)
    # query 1: top-2 are both class 0 -> AP@R 1; query 2: top-2 are class 0 -> AP@R 0
    assert m["map_at_r"] == pytest.approx(50.0)
    assert m["count"] == 2 and m["gallery_size"] == 4


def test_map_at_r_counts_precision_at_each_hit():
    gallery = np.array([[1, 0], [0, 1], [0.7, 0.7]], float)  # class 0, 1, 0
    m = retrieval_metrics(np.array([[1, 0.1]]), np.array([0]), gallery, np.array([0, 1, 0]))
    # R = 2: ranked [0 (hit), 2 (hit)] -> AP@R = (1 + 1) / 2
    assert m["map_at_r"] == pytest.approx(100.0)
    m = retrieval_metrics(np.array([[0.6, 0.8]]), np.array([0]), gallery, np.array([0, 1, 0]))
    # ranked [2 (hit), 1 (miss)] -> AP@R = (1 + 0) / 2
    assert m["map_at_r"] == pytest.approx(50.0)


def test_agreement_cosine_and_cross_compatibility():
    task = Embedding({"dim": 2})
    targets = np.array([[0, 1], [1, 1], [0, 0], [1, 0]])  # two queries, then a two-image gallery
    ref = {"embedding": np.array([[1, 0], [0, 1], [1, 0], [0, 1]], float)}
    same = task.agreement(ref, ref, {}) | task.agreement_with_targets(ref, ref, targets, {})
    assert same["mean_cosine"] == pytest.approx(1.0)
    assert same["cross_recall_at_1"] == 100.0 and same["cross_recall_at_1_drop"] == 0.0
    # the candidate's second query drifts towards class 0: it finds the float gallery's class 0 image
    cand = {"embedding": np.array([[1, 0], [0.9, 0.3], [1, 0], [0, 1]], float)}
    got = task.agreement_with_targets(ref, cand, targets, {})
    assert got["cross_recall_at_1"] == 50.0 and got["cross_recall_at_1_drop"] == 50.0
    assert task.agreement(ref, cand, {})["mean_cosine"] < 0.95


# ---- training and every exporter --------------------------------------------------------------
@pytest.fixture(scope="module")
def emb_build(tmp_path_factory):
    from edgecv.orchestrator.runner import run_build

    root = tmp_path_factory.mktemp("emb")
    data = make_image_folder(root / "images", classes=3, per_class=20)
    recipe = write_recipe(root / "edgecv.yaml", data, task="embedding", task_options={"dim": 16}, gates=GATES)
    targets = []
    for name, text in TARGETS.items():
        if name == "emb-onnx" and not _has("onnxruntime"):
            continue
        (root / f"{name}.yaml").write_text(text)
        targets.append(str(root / f"{name}.yaml"))
    out = root / "out"
    return root, data, out, run_build(recipe, targets, out, console=QUIET)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_training_drops_the_margin_head(emb_build):
    from edgecv.models.build import TaskModel

    _, _, out, result = emb_build
    model_dir = next((out / ".cache" / "train").glob("*/model"))
    model = TaskModel.load(model_dir)
    layers = [l.name for l in model.keras_model.layers]
    assert "cosface_logits" not in layers and layers[-1] == "embedding"
    emb = model.predict(np.zeros((2, 32, 32, 3), np.uint8) + 100)["embedding"]
    assert emb.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_every_exporter_builds_a_retrieval_validated_artifact(emb_build):
    _, _, out, result = emb_build
    assert result.exit_code == 0, [o.messages for o in result.outcomes]
    for outcome in result.outcomes:
        report = json.loads(outcome.report_path.read_text())
        for a in report["artifacts"]:
            assert a["status"] == "ok", a.get("error")
            assert list(a["outputs"]) == ["embedding"]  # the margin head is in no artifact
            assert a["outputs"]["embedding"]["shape"] == [60, 16]  # 15 queries + 45 gallery images
            assert a["metrics"]["recall_at_1"] >= 90 and a["metrics"]["gallery_size"] == 45
            assert a["agreement"]["mean_cosine"] > 0.98 and "cross_recall_at_1" in a["agreement"]
            gates = {g["gate"]: g["passed"] for g in a["gates"]}
            assert gates == {"recall_at_1_drop_max": True, "cross_recall_at_1_drop_max": True, "cosine_min": True}
        assert report["reference"]["metrics"]["recall_at_1"] >= 90
        html = (outcome.report_path.parent / "report.html").read_text()
        assert "cross R@1" in html and "nearest training images" in html
        assert html.count("<img src='data:image/jpeg") == 3 * 6  # one query per class and its 5 neighbours
        assert len(report["data"]["eval_images"]) == 60


# ---- embed, index, search, heads, outliers ---------------------------------------------------
def cli(*args, env=None, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "edgecv.cli.main", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300, **kw)


@pytest.fixture(scope="module")
def int8_artifact(emb_build):
    _, _, out, _ = emb_build
    return next((out / "emb-tflite").glob("*_int8.tflite"))


@pytest.fixture(scope="module")
def features(emb_build, int8_artifact):
    root, data, _, _ = emb_build
    path = root / "features.h5"
    run = cli("embed", int8_artifact, "--data", data, "--out", path, "--chunk", 8)
    assert run.returncode == 0, run.stderr
    assert_no_native_lines(run)
    return path


def assert_no_native_lines(run) -> None:
    """TensorFlow's, abseil's and XNNPACK's own lines go to a log, not to the person at the terminal."""
    from test_terminal import NATIVE_LINE

    shown = [line for line in (run.stdout + run.stderr).splitlines() if NATIVE_LINE.match(line)]
    assert not shown, shown


def test_embed_resumes_after_sigkill_without_recomputing(tmp_path, emb_build, int8_artifact, features):
    import h5py

    per_class, chunk = 150, 4
    data = make_image_folder(tmp_path / "many", classes=3, per_class=per_class, seed=1)
    images = 3 * per_class + 1  # and one unreadable file
    chunks = -(-images // chunk)
    (data / "class_0" / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "features.h5"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HDF5_USE_FILE_LOCKING": "FALSE"}
    proc = subprocess.Popen([sys.executable, "-m", "edgecv.cli.main", "embed", str(int8_artifact), "--data", str(data),
                             "--out", str(out), "--chunk", str(chunk)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    done, deadline = 0, time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            with h5py.File(out, "r", locking=False) as f:
                done = int(f.attrs["chunks_done"])
        except (OSError, KeyError):
            pass
        if done >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "embed finished before it could be killed: make the folder larger"
    with h5py.File(out, "r") as f:
        killed_at = int(f.attrs["chunks_done"])
    assert 3 <= killed_at < chunks
    run = cli("embed", int8_artifact, "--data", data, "--out", out, "--chunk", chunk)
    assert run.returncode == 0, run.stderr
    assert f"resumed at chunk {killed_at + 1} of {chunks}" in run.stderr
    assert f"{images - killed_at * chunk} embedded now" in run.stderr
    assert "1 skipped" in run.stderr and "broken.png" in run.stderr
    fresh = tmp_path / "fresh.h5"
    assert cli("embed", int8_artifact, "--data", data, "--out", fresh, "--chunk", chunk).returncode == 0
    with h5py.File(out, "r") as a, h5py.File(fresh, "r") as b:
        np.testing.assert_array_equal(a["embeddings"][:], b["embeddings"][:])
        assert a.attrs["model_sha256"] == b.attrs["model_sha256"] and len(a.attrs["model_sha256"]) == 64
        assert list(a["labels"][:4]) == [0, 0, 0, 0]


def test_embed_refuses_a_file_made_by_another_model(emb_build, features):
    _, data, out, _ = emb_build
    fp32 = next((out / "emb-tflite").glob("*_fp32.tflite"))
    run = cli("embed", fp32, "--data", data, "--out", features)
    assert run.returncode == 2 and "another model" in run.stderr and "Traceback" not in run.stderr


def test_search_returns_same_class_neighbours(tmp_path, emb_build, features):
    root, data, _, _ = emb_build
    gallery = tmp_path / "gallery"
    assert cli("index", features, "--out", gallery).returncode == 0
    held_out = make_image_folder(tmp_path / "queries", classes=3, per_class=1, seed=7)
    queries = [held_out / f"class_{c}" / "000.png" for c in range(3)]
    run = cli("search", gallery, *queries, "-k", 5, "--json", "-")
    assert run.returncode == 0, run.stderr
    assert_no_native_lines(run)
    results = json.loads(run.stdout)
    for c, r in enumerate(results):
        assert [n["label"] for n in r["neighbours"]] == [f"class_{c}"] * 5
        assert all(n["cosine"] > 0.5 for n in r["neighbours"])


def test_outliers_ranks_planted_foreign_images_first(tmp_path, emb_build, int8_artifact):
    _, data, _, _ = emb_build
    mixed = tmp_path / "mixed"
    shutil.copytree(data, mixed)
    for i in range(3):  # class 2 images planted in class 0
        shutil.copy(data / "class_2" / f"{i:03d}.png", mixed / "class_0" / f"planted_{i}.png")
    feats = tmp_path / "mixed.h5"
    assert cli("embed", int8_artifact, "--data", mixed, "--out", feats).returncode == 0
    run = cli("outliers", feats, "--top", 4, "--json", "-")
    assert run.returncode == 0, run.stderr
    ranked = json.loads(run.stdout)["class_0"]
    assert {Path(c["path"]).name for c in ranked[:3]} == {f"planted_{i}.png" for i in range(3)}
    assert all(mixed.joinpath("class_0", f"planted_{i}.png").exists() for i in range(3))  # never deletes
    filtered = json.loads(cli("outliers", feats, "--json", "-", "--fraction", 0.05).stdout)["class_0"]
    assert {Path(c["path"]).name for c in filtered} == {f"planted_{i}.png" for i in range(3)}


def test_heads_table(features):
    run = cli("heads", features, "--folds", 3)
    assert run.returncode == 0, run.stderr
    for head in ("linear SVM", "logistic regression", "k-NN", "streaming SGD"):
        line = next(l for l in run.stdout.splitlines() if head in l)
        assert float(line.split("│")[2].split()[0]) >= 90.0, line


def test_feature_commands_explain_bad_input(tmp_path):
    run = cli("heads", tmp_path / "missing.h5")
    assert run.returncode == 2 and "edgecv embed" in run.stderr and "Traceback" not in run.stderr
    run = cli("search", tmp_path, tmp_path / "q.png")
    assert run.returncode == 2 and "edgecv index" in run.stderr
    (tmp_path / "torn.h5").write_bytes(b"\x89HDF\r\n half a file")
    run = cli("outliers", tmp_path / "torn.h5")
    assert run.returncode == 2 and "--restart" in run.stderr and "Traceback" not in run.stderr


def test_passes_that_train_are_refused_at_planning(tmp_path):
    from edgecv.config import load_target
    from edgecv.errors import ConfigError
    from edgecv.orchestrator.plan import check_plan

    (tmp_path / "pruned.yaml").write_text("description: pruned int8\nartifacts:\n"
                                          "  - {name: int8, format: tflite, precision: int8, passes: [{name: prune}]}\n")
    with pytest.raises(ConfigError, match="no training head"):
        check_plan([load_target(str(tmp_path / "pruned.yaml"), tmp_path)], Embedding())
