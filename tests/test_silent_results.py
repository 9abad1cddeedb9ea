"""Results that were silently wrong (issue 23): each test here failed on f0987d1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from edgecv.orchestrator.runner import load_build, run_build
from synthetic import make_image_folder, write_recipe

QUIET = Console(file=open("/dev/null", "w"))


def tflite_target(tmp_path: Path, name: str = "t", int8: bool = False) -> str:
    p = tmp_path / f"{name}.yaml"
    extra = "  - {name: int8, format: tflite, precision: int8}\n" if int8 else ""
    p.write_text("description: d\nruntime: {threads: 1}\nartifacts:\n  - {name: fp32, format: tflite}\n" + extra
                 + "gates: {accuracy_drop_max: 100.0}\n")
    return str(p)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    data = make_image_folder(root / "images", classes=3, per_class=12)
    return root, write_recipe(root / "edgecv.yaml", data, train__finetune__epochs=1)


@pytest.fixture(scope="module")
def built(project, tmp_path_factory):
    """A build folder with target `t`: an fp32 and an int8 TFLite of the tiny model."""
    root, recipe = project
    out = tmp_path_factory.mktemp("built")
    assert run_build(recipe, [tflite_target(root, int8=True)], out, console=QUIET).exit_code == 0
    return out


def test_diagnose_reads_the_named_artifact_and_checks_it_against_the_manifest(built, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from edgecv.cli.main import app

    copy = tmp_path / "b"
    shutil.copytree(built, copy, symlinks=True)
    artifact = next((copy / "t").glob("*int8.tflite"))
    good = artifact.read_bytes()
    artifact.write_bytes(bytes(range(256)) * 64)  # other bytes in its place
    r = CliRunner().invoke(app, ["diagnose", str(artifact)])
    out = " ".join(r.output.split())
    assert r.exit_code == 2 and "does not match manifest.json" in out and "Traceback" not in r.output, out
    artifact.write_bytes(good)
    r = CliRunner().invoke(app, ["diagnose", str(artifact), "--samples", "4", "--top", "3"])
    assert r.exit_code == 0, r.output
    assert "matches the build's manifest" in " ".join(r.output.split())


def test_force_train_retrains_and_remakes_what_is_made_from_the_model(project, tmp_path):
    _, recipe = project
    t, out = tflite_target(tmp_path), tmp_path / "out"
    assert run_build(recipe, [t], out, console=QUIET).exit_code == 0
    plan = {r.stage: r.hit for r in load_build(recipe, [t], out, console=QUIET, force=frozenset({"train"})).plan()}
    assert plan == {"index": True, "train": False, "reference": False, "export": False, "validate": False}
    forced = run_build(recipe, [t], out, console=QUIET, force={"train"})
    assert forced.exit_code == 0
    assert {s.stage for s in forced.stages if not s.hit} == {"train", "reference", "export", "validate"}


def test_two_targets_of_one_name_are_refused_before_building(project, tmp_path):
    from typer.testing import CliRunner

    from edgecv.cli.main import app

    _, recipe = project
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = tflite_target(tmp_path / "a", "pi"), tflite_target(tmp_path / "b", "pi")
    r = CliRunner().invoke(app, ["build", "-t", first, "-t", second, "-r", str(recipe), "-o", str(tmp_path / "out"),
                                 "--dry-run"])
    out = " ".join(r.output.split())
    assert r.exit_code == 2, out
    assert "overwrite each other" in out and "pi from" in out and "Traceback" not in r.output
    assert not (tmp_path / "out" / "pi").exists()


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_export_of_a_brought_model_applies_int8_techniques_inside_it(tmp_path, fmt):
    """The user's model is one layer of its pixel wrapper: its Conv2D and Dense are found inside."""
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    from test_byom import images, report, save_classifier, export

    target = tmp_path / "t8.yaml"
    options = "{ptq: {adaround_iterations: 20}}" if fmt == "tflite" else "{adaround: true, adaround_iterations: 20}"
    target.write_text(f"description: int8\nruntime: {{threads: 1}}\nartifacts:\n"
                      f"  - {{name: int8, format: {fmt}, precision: int8, options: {options}}}\n")
    out = tmp_path / "out"
    r = export(save_classifier(tmp_path / "clf.h5"), "-t", target, "--data", images(tmp_path / "imgs", 16),
               "--task", "generic", "--preprocess", "tf", "-o", out)
    assert r.exit_code in (0, 1), r.output
    a = report(out, "t8")["artifacts"][0]
    assert a["status"] == "ok", a.get("error")
    assert {"adaround", "bias_correction"} <= set(a["quantization"]), (a["quantization"], a["notes"])
    ptq = a["artifact_metadata"]["ptq"]
    assert ptq["inlined_nested_models"] and ptq["bias_correction"]["layers"] == 2  # conv and scores
    assert not any("not applied" in n for n in a["notes"])


def test_int8_techniques_that_cannot_apply_are_said_in_the_report():
    from edgecv._keras import keras
    from edgecv.quantization.ptq import PTQConfig, prepare

    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, keras.layers.GlobalAveragePooling2D()(inp))  # nothing to round or correct
    _, info = prepare(model, lambda: iter([]), PTQConfig(adaround_iterations=5))
    assert info["applied"] == []
    assert set(info["not_applied"]) == {"adaround", "bias_correction"}
    assert "no Conv2D, DepthwiseConv2D or Dense layer" in info["not_applied"]["bias_correction"]


def test_embed_of_a_classifier_uses_its_pooled_features_not_its_softmax(tmp_path, built):
    import h5py
    from typer.testing import CliRunner

    from edgecv.cli.main import app
    from test_byom import images, save_classifier

    model = save_classifier(tmp_path / "clf.h5")  # conv (6 channels) -> pool -> Dense(3, softmax)
    data = images(tmp_path / "imgs", 8)
    r = CliRunner().invoke(app, ["embed", str(model), "--data", str(data), "-o", str(tmp_path / "f.h5")])
    assert r.exit_code == 0, r.output
    assert "embedding with layer pool" in " ".join(r.output.split())
    with h5py.File(tmp_path / "f.h5") as f:
        emb = f["embeddings"][:]
    assert emb.shape == (8, 6)  # the pooled features, not the 3 class probabilities
    r = CliRunner().invoke(app, ["embed", str(model), "--data", str(data), "-o", str(tmp_path / "g.h5"),
                                 "--layer", "nope"])
    assert r.exit_code == 2 and "no layer of that name" in " ".join(r.output.split()) and "pool" in r.output
    # an artifact whose one output is class probabilities cannot be cut: refused, with what to do instead
    artifact = next((built / "t").glob("*fp32.tflite"))
    r = CliRunner().invoke(app, ["embed", str(artifact), "--data", str(data), "-o", str(tmp_path / "h.h5")])
    out = " ".join(r.output.split())
    assert r.exit_code == 2 and "class probabilities" in out and "--layer" in out, out


# ---- device results: tied to the images they measured, kept across rebuilds --------------------------------
def _bench(artifact: Path, data: Path, out: Path) -> Path:
    from typer.testing import CliRunner

    from edgecv.cli.main import app

    r = CliRunner().invoke(app, ["bench", str(artifact), "--data", str(data), "--json", str(out), "--threads", "1"])
    assert r.exit_code == 0, r.output
    return out


def test_device_metrics_are_judged_only_on_the_builds_own_images_and_survive_a_rebuild(project, built, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from edgecv.cli.main import app

    root, recipe = project
    folder = tmp_path / "b"
    shutil.copytree(built, folder, symlinks=True)
    report_path = folder / "t" / "report.json"
    artifact = next((folder / "t").glob("*fp32.tflite"))

    # other images (the whole data folder, 36 images, not the 9 of the validation split): latency only, said
    other = _bench(artifact, root / "images", tmp_path / "other.json")
    assert json.loads(other.read_text())["eval_set"]["count"] == 36
    r = CliRunner().invoke(app, ["report", str(report_path), "--merge", str(other)])
    out = " ".join(r.output.split())
    assert r.exit_code in (0, 1), out
    assert "metrics not judged" in out and "not the build's 9 validation images" in out
    fp32 = next(a for a in json.loads(report_path.read_text())["artifacts"] if a["name"] == "fp32")
    dev = fp32["device_results"][-1]
    assert dev["metrics_judged"] is False and dev["latency"]["p50_ms"] > 0
    assert all(g["source"] == "build" for g in fp32["gates"] if g["gate"].startswith("accuracy"))

    # exactly the build's validation images, as `edgecv eval-images` copies them: judged
    r = CliRunner().invoke(app, ["eval-images", str(folder / "t"), "-o", str(tmp_path / "val")])
    assert r.exit_code == 0, r.output
    same = _bench(artifact, tmp_path / "val", tmp_path / "same.json")
    r = CliRunner().invoke(app, ["report", str(report_path), "--merge", str(same)])
    assert r.exit_code in (0, 1), r.output
    fp32 = next(a for a in json.loads(report_path.read_text())["artifacts"] if a["name"] == "fp32")
    assert fp32["device_results"][-1]["metrics_judged"] is True
    assert any(g["source"] == "device" for g in fp32["gates"] if g["gate"] == "accuracy_drop_max")

    # a plain rebuild (everything cached, the same files) keeps what was merged
    assert run_build(recipe, [str(root / "t.yaml")], folder, console=QUIET).exit_code in (0, 1)
    again = next(a for a in json.loads(report_path.read_text())["artifacts"] if a["name"] == "fp32")
    assert len(again["device_results"]) == 2 and again["device_results"][-1]["metrics_judged"] is True
    assert any(g["source"] == "device" for g in again["gates"] if g["gate"] == "accuracy_drop_max")


def test_the_plot_draws_no_device_point_at_the_hosts_accuracy():
    from edgecv.report.plots import quality_vs_latency
    from edgecv.results import load_report

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    raw = json.loads((Path(__file__).parent / "data" / "report_v2_flowers_raspberry-pi-4.json").read_text())
    raw["data"]["eval_set"] = {"count": 144, "sha256": "a" * 64}
    device = {"latency": {"p50_ms": 5.0}, "metrics": {"accuracy": 50.0}, "eval_set": {"count": 1797, "sha256": "b" * 64},
              "metrics_judged": False, "device": {"hostname": "pi"}}
    raw["artifacts"][0]["device_results"] = [device]
    svg = quality_vs_latency(load_report(raw), plt)
    assert svg is not None and "device" not in svg  # no device marker, no legend entry at the host's accuracy
