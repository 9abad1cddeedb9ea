"""The task seam holds: a task defined only in tests/ (two outputs, regression, targets from an
annotation CSV) trains and builds TFLite int8, ONNX and SavedModel artifacts, each validated
output by output, with the task's own metrics, gates, columns and sidecar file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from rich.console import Console

from seam_task import make_spot_data

QUIET = Console(file=open("/dev/null", "w"))
TARGETS = {
    "spot-int8": "description: int8 TFLite with the task's gates\nruntime: {threads: 1}\nartifacts:\n"
                 "  - {name: int8, format: tflite, precision: int8}\n"
                 "gates: {position_shift_max: 0.1, position_error_increase_max: 0.1, accuracy_drop_max: 1.0}\n",
    "spot-onnx": "description: ONNX fp32\nartifacts:\n  - {name: fp32, format: onnx}\n"
                 "gates: {tolerances: {'*': {atol: 0.001, rtol: 0.0}}}\n",
    "spot-serving": "description: SavedModel\nartifacts:\n  - {name: serving, format: savedmodel}\n",
}


@pytest.fixture(scope="module")
def spot_build(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    from edgecv.orchestrator.runner import run_build

    root = tmp_path_factory.mktemp("spot")
    images, ann = make_spot_data(root)
    recipe = {"name": "spot", "task": "seam_task:SpotTask",
              "data": {"root": str(images), "annotations": str(ann), "val_fraction": 0.25},
              "input": {"size": [32, 32], "resize": "resize"},
              "model": {"backbone": "TinyCNN", "weights": "none"}, "augment": {"flip": "none"},
              "train": {"batch_size": 16, "warmup": {"epochs": 0},
                        "finetune": {"epochs": 6, "learning_rate": 0.005, "unfreeze": {"all": True}}},
              "calibration": {"size": 16}}
    (root / "edgecv.yaml").write_text(yaml.safe_dump(recipe))
    targets = []
    for name, text in TARGETS.items():
        (root / f"{name}.yaml").write_text(text)
        targets.append(str(root / f"{name}.yaml"))
    out = root / "out"
    return out, run_build(root / "edgecv.yaml", targets, out, console=QUIET)


def report(out, target) -> dict:
    return json.loads((out / target / "report.json").read_text())


def test_tests_only_task_builds_every_format(spot_build):
    out, result = spot_build
    assert result.exit_code == 0, [o.messages for o in result.outcomes]
    for target in TARGETS:
        r = report(out, target)
        a = r["artifacts"][0]
        assert r["task"]["name"] == "spot" and a["status"] == "ok", a.get("error")
        assert set(a["outputs"]) == {"position", "intensity"}  # every named output compared
        assert set(a["metrics"]) == {"position_error", "intensity_error"}
        assert a["metrics"]["position_error"] < 0.25  # learned something (the mean guess is ~0.22)
        assert (out / target / "outputs.txt").read_text().split() == ["position", "intensity"]
        pre = json.loads((out / target / "preprocessing.json").read_text())
        assert pre["task"] == "spot" and set(pre["outputs"]) == {"position", "intensity"}


def test_the_tasks_gates_are_checked_and_others_noted(spot_build):
    out, _ = spot_build
    a = report(out, "spot-int8")["artifacts"][0]
    assert {g["gate"] for g in a["gates"]} == {"position_shift_max", "position_error_increase_max"}
    assert any("not applicable to task spot: accuracy_drop_max" in n for n in a["notes"])
    assert a["agreement"]["position_shift"] < 0.1 and a["checks"]["integer_only"]
    onnx = report(out, "spot-onnx")["artifacts"][0]
    assert {g["gate"] for g in onnx["gates"]} == {"tolerance:position", "tolerance:intensity"}
    assert all(g["passed"] for g in onnx["gates"])


def test_reports_show_the_tasks_columns(spot_build):
    out, _ = spot_build
    summary = (out / "spot-int8" / "summary.md").read_text()
    assert "pos err" in summary and "pos shift" in summary and "position_error" in summary
    html = (out / "spot-int8" / "report.html").read_text()
    assert "pos err" in html and "spot" in html


def test_reference_stores_every_output_and_the_targets(spot_build):
    out, _ = spot_build
    ref = np.load(out / "reference.npz")
    assert {"output:position", "output:intensity", "targets"} <= set(ref.files)
    assert ref["output:position"].shape[1] == 2 and ref["targets"].shape[1] == 3


def test_validate_and_bench_give_the_tests_only_tasks_metrics(spot_build, tmp_path):
    """`edgecv validate` and `bench --data` take the task from preprocessing.json and read the
    evaluation set through its hooks: on the build's validation images they give the report's numbers."""
    import csv

    from typer.testing import CliRunner

    from edgecv.cli.main import app

    out, _ = spot_build
    r = report(out, "spot-int8")
    a = r["artifacts"][0]
    images = r["data"]["eval_images"]
    root = out.parent
    with (root / "spots.csv").open() as f:
        rows = {row["file"]: row for row in csv.DictReader(f)}
    ann = tmp_path / "val.csv"
    with ann.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "x", "y", "intensity"])
        for p in images:
            row = rows[p.rsplit("/", 1)[-1]]
            w.writerow([row["file"], row["x"], row["y"], row["intensity"]])
    artifact = out / "spot-int8" / a["path"]
    js = tmp_path / "validate.json"
    res = CliRunner().invoke(app, ["validate", str(artifact), "--data", str(root / "images"), "--annotations",
                                   str(ann), "--json", str(js)])
    assert res.exit_code == 0, res.output
    got = json.loads(js.read_text())
    assert got["images"] == images
    for name in ("position_error", "intensity_error"):
        assert got["metrics"][name] == pytest.approx(a["metrics"][name], abs=1e-5), name
        assert name in res.output
    bj = tmp_path / "bench.json"
    res = CliRunner().invoke(app, ["bench", str(artifact), "--data", str(root / "images"), "--annotations", str(ann),
                                   "--runs", "3", "--seconds", "0", "--json", str(bj)])
    assert res.exit_code == 0, res.output
    bench = json.loads(bj.read_text())
    assert bench["metrics"]["position_error"] == pytest.approx(a["metrics"]["position_error"], abs=1e-5)
    assert bench["latency"]["p50_ms"] > 0 and bench["accuracy"] is None
