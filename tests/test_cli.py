"""The command line: exit codes and messages a user sees."""

from typer.testing import CliRunner

from edgecv.cli.main import app

runner = CliRunner()


def test_targets_lists_descriptions():
    r = runner.invoke(app, ["targets"])
    assert r.exit_code == 0
    assert "raspberry-pi-4" in r.stdout and "Cortex-A72" in r.stdout


def test_bad_recipe_exits_2_with_the_key(tmp_path):
    recipe = tmp_path / "edgecv.yaml"
    recipe.write_text("name: x\ndata: {root: d}\nmodel: {backbone: TinyCNN, weights: none}\n")
    r = runner.invoke(app, ["build", "--target", "raspberry-pi-4", "--recipe", str(recipe), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "does not exist" in r.output  # data root checked first


def test_unknown_backbone_message(tmp_path, tiny_data):
    recipe = tmp_path / "edgecv.yaml"
    recipe.write_text(f"name: x\ndata: {{root: {tiny_data}}}\nmodel: {{backbone: NoSuchNet, weights: none}}\n")
    r = runner.invoke(app, ["build", "-t", "raspberry-pi-4", "-r", str(recipe), "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "unknown backbone 'NoSuchNet'" in r.output and "MobileNetV2" in r.output


def test_validate_flat_folder_prints_predictions(tmp_path, tiny_model, tiny_calibration):
    import numpy as np
    from PIL import Image

    from edgecv.config.target import ArtifactSpec
    from edgecv.exporters import ExportContext, get_exporter

    art = get_exporter("tflite")().export(tiny_model, ArtifactSpec(name="f", format="tflite"), tmp_path,
                                          ExportContext("tiny"))
    (tmp_path / "labels.txt").write_text("red\ngreen\nblue\n")
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(imgs / "a.png")
    (imgs / "broken.jpg").write_bytes(b"")
    r = runner.invoke(app, ["validate", str(art.path), "--data", str(imgs)])
    assert r.exit_code == 0, r.output
    assert "most frequent top-1" in r.stdout and any(c in r.stdout for c in ("red", "green", "blue"))
    assert "a.png" not in r.stdout  # the per-image table only on request
    assert "broken.jpg" in r.output  # reported as skipped
    r = runner.invoke(app, ["validate", str(art.path), "--data", str(imgs), "--per-image"])
    assert r.exit_code == 0 and "a.png" in r.stdout


def test_validate_missing_artifact(tmp_path):
    r = runner.invoke(app, ["validate", str(tmp_path / "nope.tflite"), "--data", str(tmp_path)])
    assert r.exit_code == 3 and "no such file" in r.output
