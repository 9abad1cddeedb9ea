"""`edgecv select` on tiny synthetic data and TinyCNN candidates: Pareto front, budget pick, cached
features and artifacts, skipped candidates, CLI exit codes, and a build that uses the pick."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from edgecv.cli.main import app
from edgecv.errors import ConfigError
from edgecv.selection.pareto import pareto_front, pick_under_budget

runner = CliRunner()


# ---- Pareto front and the pick ------------------------------------------------------------------

def test_pareto_front_keeps_only_undominated_points_fastest_first():
    acc = [90.0, 95.0, 80.0, 95.0, 85.0, 97.0]
    lat = [10.0, 20.0, 5.0, 25.0, 12.0, 40.0]
    # 3 (95 %, 25 ms) is beaten by 1 (95 %, 20 ms); 4 (85 %, 12 ms) by 0 (90 %, 10 ms)
    assert pareto_front(acc, lat) == [2, 0, 1, 5]


def test_pareto_front_keeps_exact_ties_and_a_single_point():
    assert pareto_front([90.0, 90.0], [10.0, 10.0]) == [0, 1]
    assert pareto_front([50.0], [3.0]) == [0]


def test_pick_is_the_most_accurate_within_the_budget_faster_on_a_tie():
    acc = [90.0, 95.0, 80.0, 95.0]
    lat = [10.0, 20.0, 5.0, 18.0]
    assert pick_under_budget(acc, lat, 19.0) == 3
    assert pick_under_budget(acc, lat, 20.0) == 3  # 1 and 3 tie on accuracy: the faster
    assert pick_under_budget(acc, lat, 10.0) == 0
    assert pick_under_budget(acc, lat, 4.9) is None


@pytest.mark.parametrize("classes", [2, 4])
def test_probe_folds_standardization_into_one_linear_layer(classes):
    import numpy as np

    from edgecv.selection.probe import _logistic, cross_validated, fit_probe

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (classes, 6))
    y = np.repeat(np.arange(classes), 30)
    x = centres[y] + rng.normal(0, 1, (len(y), 6)) * rng.uniform(0.1, 10, 6) + 50  # scaled, off-centre
    probe = fit_probe(x[::2], y[::2], x[1::2], y[1::2], classes)
    logits = probe.logits(x[1::2])
    p = np.exp(logits - logits.max(1, keepdims=True))
    expected = _logistic(1.0, 0).fit(x[::2], y[::2]).predict_proba(x[1::2])
    np.testing.assert_allclose(p / p.sum(1, keepdims=True), expected, atol=1e-4)  # the same classifier
    assert probe.accuracy == pytest.approx(100 * np.mean(expected.argmax(1) == y[1::2]))
    mean, std = cross_validated(x, y)
    assert 0 <= mean <= 100 and std >= 0


# ---- candidates and their weights ---------------------------------------------------------------

def _recipe(tmp_path, tiny_data, select=None, **model):
    from edgecv.config import load_recipe
    from synthetic import write_recipe

    path = write_recipe(tmp_path / "edgecv.yaml", tiny_data)
    r = yaml.safe_load(path.read_text())
    r["model"].update(model)
    if select is not None:
        r["select"] = select
    path.write_text(yaml.safe_dump(r))
    return path, load_recipe(path)


def test_catalogue_weights_come_from_the_weights_dir_at_any_size(tmp_path, tiny_data):
    from edgecv.selection.candidates import candidate_list

    wdir = tmp_path / "weights"
    wdir.mkdir()
    for name in ("mobilenet_5_0_160_tf_no_top.h5", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"):
        (wdir / name).write_bytes(b"x")
    _, recipe = _recipe(tmp_path, tiny_data, select={"weights_dir": "weights"}, backbone="MobileNetV2", alpha=1.0)
    recipe = recipe.model_copy(update={"input": recipe.input.model_copy(update={"size": (224, 224)})})
    cands = {c.name: c for c in candidate_list(recipe)}
    assert cands["MobileNet 0.5/128"].weights == str(wdir / "mobilenet_5_0_160_tf_no_top.h5")
    assert cands["MobileNetV2 1.0/160"].weights.endswith("kernels_1.0_224_no_top.h5")
    assert cands["MobileNet 0.25/128"].weights == "imagenet"  # no local file: Keras' cache or a download
    assert cands["ResNet50/224"].alpha is None
    ref = next(iter(cands.values()))
    assert ref.reference and ref.name == "MobileNetV2 1.0/224" and ref.weights == "none"
    assert sum(c.name == "MobileNetV2 1.0/224" for c in cands.values()) == 1  # the catalogue's copy is the reference


def test_candidate_sizes_keep_the_recipe_aspect_and_bad_candidates_are_named(tmp_path, tiny_data):
    from edgecv.selection.candidates import candidate_list

    _, recipe = _recipe(tmp_path, tiny_data, select={"catalogue": False, "candidates": [
        {"backbone": "TinyCNN", "alpha": 0.5, "input_size": 16, "weights": "none"}]})
    recipe = recipe.model_copy(update={"input": recipe.input.model_copy(update={"size": (32, 48)})})
    assert [c.size for c in candidate_list(recipe)] == [(32, 48), (16, 24)]
    for bad, words in [({"backbone": "ResNet50", "alpha": 0.5, "input_size": 224}, "no width multiplier"),
                       ({"backbone": "MobileNetV9", "input_size": 224}, "MobileNetV2")]:
        _, r = _recipe(tmp_path, tiny_data, select={"catalogue": False, "candidates": [bad]})
        with pytest.raises(ConfigError, match=words):
            candidate_list(r)


def test_offline_guard_stops_downloads_but_lets_cached_files_through(tmp_path, monkeypatch):
    from tf_keras.src.utils import data_utils

    from edgecv.selection.offline import NeedsDownload, downloads

    monkeypatch.setenv("HOME", str(tmp_path))
    with downloads(False):
        with pytest.raises(NeedsDownload, match="weights_x.h5.*no network"):
            data_utils.get_file("weights_x.h5", "https://example.invalid/weights_x.h5", cache_subdir="models")
        cached = tmp_path / ".keras" / "models" / "weights_y.h5"
        cached.parent.mkdir(parents=True)
        cached.write_bytes(b"h5")
        assert Path(data_utils.get_file("weights_y.h5", "https://example.invalid/weights_y.h5",
                                        cache_subdir="models")) == cached
    assert data_utils.get_file.__name__ == "get_file"  # restored


# ---- a whole selection on tiny data -------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_select(tmp_path_factory, tiny_data):
    """A recipe whose reference is TinyCNN 1.0/32 (random weights) with three more candidates: TinyCNN
    0.5/16 from a tiny h5, an ImageNet MobileNet (not cached, offline) and a missing file."""
    from edgecv._keras import keras  # noqa: F401  (TF_USE_LEGACY_KERAS before tf_keras)
    from edgecv.models.backbones import get_backbone
    from synthetic import write_recipe

    root = tmp_path_factory.mktemp("select")
    weights = root / "tiny_0.5.h5"
    get_backbone("TinyCNN").build(weights=None, alpha=0.5, input_shape=(16, 16, 3)).save_weights(str(weights))
    path = write_recipe(root / "edgecv.yaml", tiny_data)
    r = yaml.safe_load(path.read_text())
    r["select"] = {"catalogue": False, "repeats": 1, "swap": {"warmup_epochs": 0, "epochs": 1},
                   "candidates": [{"backbone": "TinyCNN", "alpha": 0.5, "input_size": 16, "weights": "tiny_0.5.h5"},
                                  {"backbone": "MobileNet", "alpha": 0.25, "input_size": 32, "weights": "imagenet"},
                                  {"backbone": "TinyCNN", "input_size": 24, "weights": "absent.h5"}]}
    path.write_text(yaml.safe_dump(r))
    return path, root / "out"


def _run(path, out, budget=1000.0, **kw):
    from edgecv.config import load_recipe, load_target
    from edgecv.selection.run import run_select

    recipe = load_recipe(path)
    return run_select(recipe, load_target("raspberry-pi-4", recipe.base_dir), out, budget, offline=True,
                      min_runs=5, min_seconds=0.02, **kw)


@pytest.fixture(scope="module")
def first_run(tiny_select, monkeypatch_module):
    monkeypatch_module.setenv("HOME", str(tiny_select[1].parent))  # an empty Keras cache
    return _run(*tiny_select)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_selection_measures_each_candidate_beside_the_reference(first_run):
    sel = first_run
    assert [r["name"] for r in sel.rows] == ["TinyCNN 1.0/32", "TinyCNN 0.5/16"]
    ref, small = sel.rows
    assert ref["reference"] and ref["speedup_vs_reference"] == pytest.approx(1.0)
    assert small["speedup_vs_reference"] == pytest.approx(ref["latency_ms"] / small["latency_ms"])
    for r in sel.rows:
        assert 0 <= r["probe_accuracy"] <= 100 and 0 <= r["int8_accuracy"] <= 100 and 0 <= r["cv_accuracy"] <= 100
        assert r["size_bytes"] > 0 and Path(r["path"]).suffix == ".tflite" and r["latency_ms"] > 0
        assert not r["features_cached"] and not r["artifact_cached"]
    assert sel.runtime == {"threads": 4, "batch": 1, "format": "tflite", "precision": "int8", "io_dtype": "uint8",
                           "repeats": 1}
    assert sel.pick in sel.front and sel.data["val"] > 0


def test_int8_artifact_is_full_integer_with_the_probe_head(first_run):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=first_run.rows[1]["path"])
    assert it.get_input_details()[0]["dtype"].__name__ == "uint8"
    assert list(it.get_input_details()[0]["shape"][1:3]) == [16, 16]


def test_candidates_that_cannot_be_built_are_skipped_with_the_reason(first_run):
    reasons = {s["name"]: s["reason"] for s in first_run.skipped}
    assert "mobilenet_2_5_224_tf_no_top.h5" in reasons["MobileNet 0.25/32"]
    assert "no network" in reasons["MobileNet 0.25/32"]
    assert reasons["TinyCNN 1.0/24"].startswith("weights file") and "absent.h5 not found" in reasons["TinyCNN 1.0/24"]


def test_second_run_reuses_cached_features_and_artifacts(tiny_select, first_run):
    cache = tiny_select[1] / ".cache"
    entries = sorted(p.name for p in cache.rglob("*") if p.parent.parent == cache)
    again = _run(*tiny_select, budget=0.5)
    assert all(r["features_cached"] and r["artifact_cached"] for r in again.rows)
    assert [r["probe_accuracy"] for r in again.rows] == [r["probe_accuracy"] for r in first_run.rows]
    assert sorted(p.name for p in cache.rglob("*") if p.parent.parent == cache) == entries


# ---- the command line and the build that uses the pick ------------------------------------------

def test_cli_writes_the_table_files_and_a_student_target(tiny_select, first_run):
    path, out = tiny_select
    r = runner.invoke(app, ["select", "-t", "raspberry-pi-4", "-r", str(path), "-o", str(out), "--budget-ms", "1000",
                            "--offline", "--repeats", "1"])
    assert r.exit_code == 0, r.output
    assert "TinyCNN 0.5/16" in r.stdout and "pick:" in r.stdout and "edgecv build -t" in r.stdout
    data = json.loads((out / "select.json").read_text())
    assert data["schema"] == "edgecv-select/1" and data["pick"] in data["front"]
    assert {s["name"] for s in data["skipped"]} == {"MobileNet 0.25/32", "TinyCNN 1.0/24"}
    assert (out / "select.png").read_bytes()[:4] == b"\x89PNG" and "<table>" in (out / "select.html").read_text()
    if data["pick"] != "TinyCNN 1.0/32":  # the reference itself needs no student target
        assert data["student_target"] == str(out / "raspberry-pi-4-select.yaml")


def test_student_target_distils_into_the_pick_through_the_build(tiny_select, first_run, tmp_path):
    from rich.console import Console

    from edgecv.config import load_recipe, load_target
    from edgecv.orchestrator.runner import run_build
    from edgecv.selection.output import student_target, write_student_target

    path, _ = tiny_select
    sel = first_run
    sel.pick = "TinyCNN 0.5/16"  # the student whatever the tiny timings said
    recipe = load_recipe(path)
    content = student_target(sel, load_target("raspberry-pi-4", recipe.base_dir), recipe, drop_max=100.0)
    swap = content["artifacts"][0]["passes"][0]
    assert swap == {"name": "swap", "backbone": "TinyCNN", "alpha": 0.5, "input_size": 16, "weights": "tiny_0.5.h5",
                    "warmup_epochs": 0, "epochs": 1}
    assert content["gates"]["accuracy_drop_max"] == 100.0 and "top1_agreement_min" not in content["gates"]
    tpath = tmp_path / "raspberry-pi-4-select.yaml"
    write_student_target(tpath, content, path)
    result = run_build(path, [str(tpath)], tmp_path / "build", console=Console(quiet=True))
    report = json.loads((tmp_path / "build" / "raspberry-pi-4-select" / "report.json").read_text())
    art = report["artifacts"][0]
    assert art["status"] == "ok", art.get("error")
    assert art["input_size"] == [16, 16] and art["passes"][0]["pass"] == "swap"
    assert result.exit_code == 0


def test_cli_exits_1_naming_the_fastest_when_nothing_fits(tiny_select, first_run):
    path, out = tiny_select
    r = runner.invoke(app, ["select", "-t", "raspberry-pi-4", "-r", str(path), "-o", str(out), "--budget-ms",
                            "0.000001", "--offline", "--repeats", "1", "--only", "0.5/16"])
    assert r.exit_code == 1, r.output
    data = json.loads((out / "select.json").read_text())
    assert "no candidate meets --budget-ms" in r.output and f"the fastest is {data['fastest']}" in r.output
    assert data["pick"] is None and data["student_target"] is None
    assert [row["name"] for row in data["rows"]] == ["TinyCNN 1.0/32", "TinyCNN 0.5/16"] and not data["skipped"]


@pytest.mark.parametrize("args, words", [
    (["--budget-ms", "-1"], "positive latency"),
    (["--budget-ms", "5", "--rank-by", "fastest"], "--rank-by fastest"),
    (["--budget-ms", "5", "-t", "no-such-target"], "no-such-target"),
])
def test_cli_bad_input_exits_2(tiny_select, args, words):
    path, out = tiny_select
    base = ["select", "-t", "raspberry-pi-4", "-r", str(path), "-o", str(out)]
    r = runner.invoke(app, base + args)
    assert r.exit_code == 2, r.output
    assert words in r.output


def test_cli_refuses_a_task_that_is_not_classification(tmp_path, tiny_data):
    path, _ = _recipe(tmp_path, tiny_data)
    r = yaml.safe_load(path.read_text())
    r.update(task="embedding", task_options={"dim": 8})
    path.write_text(yaml.safe_dump(r))
    res = runner.invoke(app, ["select", "-t", "raspberry-pi-4", "-r", str(path), "--budget-ms", "5",
                              "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "needs task classification" in res.output


def test_candidates_are_quantized_without_learned_rounding():
    """Learned rounding changes no latency and costs minutes per large backbone: select leaves it
    to the build of the pick, for the target's format and for the TFLite fallback."""
    from edgecv.config.target import ArtifactSpec
    from edgecv.formats.onnx.export import OnnxOptions
    from edgecv.formats.tflite.export import ptq_options
    from edgecv.selection.measure import timing_spec

    class Target:
        name = "t"
        artifacts = [ArtifactSpec(name="q", format="tflite", precision="int8", options={"ptq": {"adaround": True}})]

    spec, note = timing_spec(Target)
    assert ptq_options(spec).adaround is False and ptq_options(spec).bias_correction is True and note is None
    Target.artifacts = [ArtifactSpec(name="q", format="onnx", precision="int8", options={"adaround": True})]
    assert OnnxOptions(**timing_spec(Target)[0].options).adaround is False
    Target.artifacts = []
    spec, note = timing_spec(Target)
    assert spec.format == "tflite" and ptq_options(spec).adaround is False and "no int8 artifact" in note
