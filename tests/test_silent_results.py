"""Results that were silently wrong (issue 23): each test here failed on f0987d1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from edgecv.orchestrator.runner import load_build, run_build
from synthetic import make_image_folder, write_recipe

QUIET = Console(file=open("/dev/null", "w"))


def tflite_target(tmp_path: Path, name: str = "t") -> str:
    p = tmp_path / f"{name}.yaml"
    p.write_text("description: d\nruntime: {threads: 1}\nartifacts:\n  - {name: fp32, format: tflite}\n"
                 "gates: {accuracy_drop_max: 100.0}\n")
    return str(p)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    data = make_image_folder(root / "images", classes=3, per_class=12)
    return root, write_recipe(root / "edgecv.yaml", data, train__finetune__epochs=1)


def test_force_train_retrains_and_remakes_what_is_made_from_the_model(project, tmp_path):
    _, recipe = project
    t, out = tflite_target(tmp_path), tmp_path / "out"
    assert run_build(recipe, [t], out, console=QUIET).exit_code == 0
    plan = {r.stage: r.hit for r in load_build(recipe, [t], out, console=QUIET, force=frozenset({"train"})).plan()}
    assert plan == {"index": True, "train": False, "reference": False, "export": False, "validate": False}
    forced = run_build(recipe, [t], out, console=QUIET, force={"train"})
    assert forced.exit_code == 0
    assert {s.stage for s in forced.stages if not s.hit} == {"train", "reference", "export", "validate"}
