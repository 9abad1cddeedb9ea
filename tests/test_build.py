"""End-to-end builds on the tiny recipe: reports, sidecars, gates, failures isolated, training cached."""

import json
from pathlib import Path

import pytest
from rich.console import Console

from edgecv.orchestrator.runner import run_build
from edgecv.errors import ConversionError

QUIET = Console(file=open("/dev/null", "w"))


def target_file(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / f"{name}.yaml"
    p.write_text(text)
    return str(p)


@pytest.fixture(scope="module")
def pi_build(tmp_path_factory, tiny_recipe_path):
    out = tmp_path_factory.mktemp("build")
    result = run_build(tiny_recipe_path, ["raspberry-pi-4", "cloud-tfserving"], out, console=QUIET)
    return out, result


def test_build_writes_artifacts_sidecars_and_report(pi_build):
    out, result = pi_build
    assert result.exit_code == 0, [o.messages for o in result.outcomes]
    pi = out / "raspberry-pi-4"
    for f in ("tiny_int8.tflite", "tiny_fp32.tflite", "labels.txt", "preprocessing.json", "calibration.txt",
              "calibration.json", "report.json"):
        assert (pi / f).is_file(), f
    assert (pi / "labels.txt").read_text().split() == ["class_0", "class_1", "class_2"]
    report = json.loads((pi / "report.json").read_text())
    assert report["schema_version"] == 2 and report["target"]["name"] == "raspberry-pi-4"
    int8 = report["artifacts"][0]
    assert int8["status"] == "ok" and int8["checks"]["integer_only"]
    assert int8["quantization"] == ["adaround", "bias_correction"]  # the post-training techniques applied by default
    assert int8["runtime"]["threads"] == 4 and int8["latency"]["p50_ms"] > 0
    assert int8["metrics"]["accuracy"] >= 80 and abs(int8["deltas"]["accuracy"]) <= 10
    assert {g["gate"] for g in int8["gates"]} == {"accuracy_drop_max", "accuracy_drop_max_significant",
                                                 "top1_agreement_min"}
    significant = next(g for g in int8["gates"] if g["gate"] == "accuracy_drop_max_significant")
    assert significant["judged_on"] == "interval low" and significant["interval"] is not None
    assert report["calibration"]["sha256"] == json.loads((pi / "calibration.json").read_text())["sha256"]
    assert report["environment"]["libraries"]["tensorflow"].startswith("2.")
    serving = json.loads((out / "cloud-tfserving" / "report.json").read_text())["artifacts"][0]
    assert serving["status"] == "ok" and serving["agreement"]["top1_agreement"] == 1.0


def test_second_build_reuses_training(pi_build, tiny_recipe_path, monkeypatch):
    out, _ = pi_build
    import edgecv.train.trainer as trainer

    monkeypatch.setattr(trainer, "train", lambda *a, **k: pytest.fail("training ran again"))
    assert run_build(tiny_recipe_path, ["cloud-tfserving"], out, console=QUIET).exit_code == 0


def test_too_tight_gate_fails_with_exit_code_1_and_a_clear_message(pi_build, tiny_recipe_path, tmp_path):
    out, _ = pi_build
    t = target_file(tmp_path, "strict", "description: d\nartifacts:\n  - {name: f, format: tflite}\n"
                                        "gates: {size_mb_max: 0.000001}\n")
    result = run_build(tiny_recipe_path, [t], out, console=QUIET)
    assert result.exit_code == 1
    msg = result.outcomes[0].messages[0]
    assert "f: size_mb_max FAILED" in msg and "limit at most 1e-06 MB" in msg
    assert run_build(tiny_recipe_path, [t], out, console=QUIET, gates=False).exit_code == 0


def test_one_failing_artifact_does_not_hide_the_others(pi_build, tiny_recipe_path, tmp_path, monkeypatch):
    out, _ = pi_build
    import edgecv.formats.tflite.export as tfl

    real = tfl.convert

    def picky(model, precision, *a, **k):
        if precision == "fp16":
            raise ConversionError("converter rejected op FOO (test)")
        return real(model, precision, *a, **k)

    monkeypatch.setattr(tfl, "convert", picky)
    result = run_build(tiny_recipe_path, ["android-arm64", "cloud-tfserving"], out, console=QUIET)
    assert result.exit_code == 3
    android = json.loads((out / "android-arm64" / "report.json").read_text())
    by_name = {a["name"]: a for a in android["artifacts"]}
    assert by_name["fp16"]["status"] == "failed" and "FOO" in by_name["fp16"]["error"]
    assert by_name["int8"]["status"] == "ok"
    assert [o.status for o in result.outcomes] == ["failed", "ok"]


def test_skipped_images_are_listed_in_the_report(tmp_path):
    from synthetic import make_image_folder, write_recipe

    root = make_image_folder(tmp_path / "d", classes=2, per_class=8)
    (root / "class_0" / "corrupt.jpg").write_bytes(b"\xff\xd8\xffnope")
    recipe = write_recipe(tmp_path / "edgecv.yaml", root, train__finetune__epochs=1)
    t = target_file(tmp_path, "t", "description: d\nartifacts:\n  - {name: f, format: tflite}\n")
    result = run_build(recipe, [t], tmp_path / "out", console=QUIET)
    assert result.exit_code == 0
    skipped = json.loads((tmp_path / "out" / "t" / "report.json").read_text())["data"]["skipped"]
    assert [Path(s["path"]).name for s in skipped] == ["corrupt.jpg"]
