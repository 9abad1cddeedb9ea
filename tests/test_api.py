"""The Python API (`edgecv.build/export/validate/bench`) and the target-free export shortcut: a
notebook or a training script gets the typed results and typed errors the command line is made of."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import edgecv
from edgecv.cli.main import app
from edgecv.errors import ConfigError, GateFailure, InputError

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart"
# The smallest quickstart the recipe allows: one epoch, a small calibration set (the data are fixed)
FAST = ["train.finetune.epochs=1", "calibration.size=16"]


def test_import_is_light_and_lists_the_api():
    code = ("import sys, edgecv; names = dir(edgecv); "
            "assert {'build', 'export', 'validate', 'bench', 'Report', 'GateFailure'} <= set(names), names; "
            "edgecv.build, edgecv.export, edgecv.validate, edgecv.bench, edgecv.Report, edgecv.BenchResult; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_validate_stays_callable_once_its_package_is_imported():
    import edgecv.validate.device  # noqa: F401  (binds the package edgecv.validate)

    assert callable(edgecv.validate)
    with pytest.raises(InputError, match="no such file"):
        edgecv.validate("missing.tflite", data=".")


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory) -> Path:
    """The bundled quickstart (recipe and digits) in a folder of its own."""
    pytest.importorskip("sklearn", reason="the quickstart's digits ship inside scikit-learn")
    sys.path.insert(0, str(QUICKSTART))
    try:
        import make_data
    finally:
        sys.path.remove(str(QUICKSTART))
    root = tmp_path_factory.mktemp("quickstart")
    shutil.copy(QUICKSTART / "edgecv.yaml", root / "edgecv.yaml")
    make_data.main(root / "data")
    return root


def test_notebook_builds_the_quickstart_and_reads_accuracy(quickstart, capsys):
    # what a notebook cell does: no terminal, so no live bars, one line per step
    result = edgecv.build(quickstart / "edgecv.yaml", targets=["raspberry-pi-4"], out=quickstart / "build",
                          overrides=FAST, gates=False)
    report = result.report()
    assert isinstance(report, edgecv.Report) and result.exit_code == 0
    int8 = report.artifact("int8")
    assert int8.status == "ok" and int8.format == "tflite" and int8.precision == "int8"
    accuracy = int8.metrics["accuracy"]
    assert 10.0 < accuracy <= 100.0  # percent, as the table shows it; 10 classes, one epoch is above chance
    assert report.reference.metrics["accuracy"] > 10.0
    assert Path(int8.path).is_absolute() or (quickstart / "build" / "raspberry-pi-4" / int8.path).exists()
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b[?25l" not in err  # no redrawn bar, no hidden cursor outside a terminal
    assert "training" in err.lower() or "train" in err.lower()

    with pytest.raises(InputError, match="did you mean `int8`"):
        report.artifact("in8")

    # the artifact it built, validated and benchmarked through the same API
    artifact = quickstart / "build" / "raspberry-pi-4" / "digits_int8.tflite"
    ev = edgecv.validate(artifact, data=quickstart / "data", top_k=2)
    assert ev.accuracy is not None and len(ev.truths) == len(ev.images) == len(ev.correct)
    assert sum(ev.correct) / len(ev.correct) * 100 == pytest.approx(ev.accuracy, abs=0.01)
    # `validate --per-image`: each image's true label, prediction and a right/wrong mark
    few = quickstart / "few"
    for digit in ("3", "8"):
        (few / digit).mkdir(parents=True)
        for png in sorted((quickstart / "data" / digit).glob("*.png"))[:4]:
            shutil.copy(png, few / digit / png.name)
    r = CliRunner().invoke(app, ["validate", str(artifact), "--data", str(few), "--per-image"])
    assert r.exit_code == 0, r.output
    rows = [line.split() for line in r.output.splitlines() if line.strip().startswith(("3/", "8/"))]
    assert len(rows) == 8
    for row in rows:
        truth, predicted, mark = row[1], row[2], row[3]
        assert truth == row[0].split("/")[0] and mark == ("✓" if predicted == truth else "✗")
    # `--json -`: stdout holds the JSON alone (the table goes to stderr), as in every command
    r = CliRunner().invoke(app, ["bench", str(artifact), "--random", "--runs", "5", "--seconds", "0", "--json", "-"])
    assert r.exit_code == 0, r.output
    measured = json.loads(r.stdout)
    assert measured["latency"]["p50_ms"] > 0 and measured["artifact"]["format"] == "tflite"
    b = edgecv.bench(artifact, random=True, runs=5, seconds=0.1)
    assert isinstance(b, edgecv.BenchResult) and b.latency["p50_ms"] > 0 and b.artifact["format"] == "tflite"


def test_a_failed_gate_raises_with_the_result_and_exit_code_1(quickstart):
    target = quickstart / "impossible.yaml"
    target.write_text("description: a gate no model meets\nartifacts:\n  - {name: fp32, format: tflite}\n"
                      "gates: {accuracy_min: 100.1}\n")
    with pytest.raises(GateFailure) as caught:
        edgecv.build(quickstart / "edgecv.yaml", targets=[str(target)], out=quickstart / "build", overrides=FAST)
    e = caught.value
    assert e.exit_code == 1 and "accuracy" in str(e)
    assert e.result.report("impossible").artifact("fp32").failed_gates
    # check=False returns the result instead, as the command line uses it
    result = edgecv.build(quickstart / "edgecv.yaml", targets=[str(target)], out=quickstart / "build",
                          overrides=FAST, check=False)
    assert result.exit_code == 1

    # the command line: each failed gate said once, then what to do next; `report FILE` shows the table
    r = CliRunner().invoke(app, ["build", "-t", str(target), "-r", str(quickstart / "edgecv.yaml"), "-o",
                                 str(quickstart / "build"), *[a for o in FAST for a in ("--set", o)]])
    assert r.exit_code == 1, r.output
    assert r.output.count("accuracy_min FAILED") == 1, r.output
    assert "next steps" in r.output and "--no-gates" in r.output
    r = CliRunner().invoke(app, ["report", str(quickstart / "build" / "impossible")])
    assert r.exit_code == 0 and "fp32" in r.output and "p50 ms" in r.output, r.output


def test_bad_input_raises_a_typed_error_with_exit_code_2(tmp_path):
    with pytest.raises(ConfigError) as caught:
        edgecv.build(REPO / "examples" / "quickstart" / "edgecv.yaml", targets=["tflite"], out=tmp_path)
    assert caught.value.exit_code == 2
    assert "artifact format, not a target" in str(caught.value) and "raspberry-pi-4" in str(caught.value)


def test_dash_t_format_suggests_the_targets_that_build_it(tmp_path):
    r = CliRunner().invoke(app, ["build", "-t", "onnx", "-r", str(QUICKSTART / "edgecv.yaml"), "-o", str(tmp_path),
                                 "--dry-run"])
    assert r.exit_code == 2
    text = " ".join(r.output.split())
    assert "targets that build onnx:" in text and "jetson-orin-nano" in text and "--format onnx" in text


# ---- export shortcut: a Keras model made here, no target file ---------------------------------
def save_rescaling_classifier(path: Path, classes: int = 3) -> Path:
    from edgecv._keras import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((24, 24, 3))
    x = keras.layers.Rescaling(1 / 255.0, name="to_unit")(inp)  # the model normalizes its own input
    x = keras.layers.Conv2D(6, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inp, keras.layers.Dense(classes, activation="softmax")(x)).save(path)
    return path


def image_folders(root: Path, classes=("cat", "dog", "bird"), per_class: int = 8) -> Path:
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)).resize((32, 32)).save(root / c / f"{i}.png")
    return root


def test_export_format_int8_without_a_target_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_rescaling_classifier(tmp_path / "model.keras")
    image_folders(tmp_path / "images")
    (tmp_path / "labels.txt").write_text("cat\ndog\nbird\n")
    args = ["export", "model.keras", "--format", "tflite", "--int8", "--data", "images", "--labels", "labels.txt"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code in (0, 1), r.output  # 1: a gate of the task's defaults may fail on an untrained model
    assert "preprocess: none" in r.output and "Rescaling" in r.output
    folder = tmp_path / "build" / "tflite-int8"
    rep = json.loads((folder / "report.json").read_text())
    (art,) = rep["artifacts"]
    assert (art["format"], art["precision"], art["status"]) == ("tflite", "int8", "ok")
    assert (folder / art["path"]).is_file() and "accuracy" in art["metrics"]
    assert rep["target"]["name"] == "tflite-int8"
    # the same stages and cache: again, nothing runs
    r = CliRunner().invoke(app, args)
    assert "none (everything cached)" in r.output, r.output

    # the API: the same build, typed
    result = edgecv.export("model.keras", format="tflite", precision="int8", data="images", labels="labels.txt",
                           check=False)
    assert result.report().artifact("int8").sha256 == art["sha256"]


def test_export_without_preprocess_says_what_to_give(tmp_path):
    from edgecv._keras import keras

    inp = keras.Input((24, 24, 3))
    keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(inp))).save(tmp_path / "m.keras")
    r = CliRunner().invoke(app, ["export", str(tmp_path / "m.keras"), "--format", "onnx",
                                 "--data", str(image_folders(tmp_path / "images")), "-o", str(tmp_path / "out")])
    assert r.exit_code == 2
    text = " ".join(r.output.split())
    assert "--preprocess NAME" in text and "GlobalAveragePooling2D" in text and "(top level)" not in text
    assert not (tmp_path / "out").exists()  # refused: no folder of a lock and an empty log left behind


def test_a_refused_build_leaves_no_new_folder_and_keeps_an_existing_one(tmp_path):
    args = ["build", "-t", "raspbery-pi-4", "-r", str(QUICKSTART / "edgecv.yaml")]
    r = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "new")])
    assert r.exit_code == 2 and "did you mean `raspberry-pi-4`" in r.output, r.output
    assert not (tmp_path / "new").exists()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("mine")
    r = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "kept")])
    assert r.exit_code == 2 and (tmp_path / "kept" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("args, message", [
    (["--format", "tflit"], "did you mean `tflite`"),
    (["--format", "savedmodel", "--int8"], "savedmodel builds fp32, not int8"),
    (["--format", "tflite", "-t", "raspberry-pi-4"], "not both"),
    ([], "name a target"),
])
def test_export_format_bad_input(tmp_path, args, message):
    r = CliRunner().invoke(app, ["export", "m.keras", "--data", str(tmp_path), *args])
    assert r.exit_code == 2 and message in " ".join(r.output.split()), r.output
