"""`edgecv export MODEL -t TARGET ...`: bring your own model, no recipe file.

The options are written into a recipe in memory (`model: {path: MODEL}`, no training) and built by
the same orchestrator as `edgecv build`: same target folders, reports, gates and cache.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import List, Optional, Tuple

import typer

TASK_CHOICES = "classification | keypoints | embedding | generic"


def export_recipe(model: Path, data: Path, task: str, preprocess: Optional[str], architecture: Optional[str],
                  labels: Optional[Path],
                  label_offset: Optional[int], calibration_data: Optional[Path], input_size: Optional[Tuple[int, int]],
                  resize: str, name: Optional[str], custom_objects: Optional[str], unsafe: bool) -> dict:
    """The recipe the one-shot command stands for, as YAML-shaped data."""
    model = model.resolve()
    recipe: dict = {
        "name": name or re.sub(r"[^A-Za-z0-9_.-]", "_", model.stem if model.is_file() else model.name),
        "task": task,
        "model": {"path": str(model)},
        "input": {"resize": resize},
        # with calibration images of their own, every --data image validates
        "data": {"train": str(calibration_data.resolve()), "val": str(data.resolve())} if calibration_data
        else {"root": str(data.resolve())},
    }
    m = recipe["model"]
    if preprocess is not None:
        m["preprocess"] = preprocess
    if architecture is not None:
        m["architecture"] = architecture
    if labels is not None:
        m["labels"] = str(labels.resolve())
    if label_offset is not None:
        m["label_offset"] = label_offset
    if custom_objects:
        m["custom_objects"] = custom_objects
    if unsafe:
        m["unsafe_deserialization"] = True
    if input_size:
        recipe["input"]["size"] = list(input_size)
    return recipe


def recipe_of(data: dict, overrides: List[str]):
    """Validate the in-memory recipe (after --set) as a recipe file would be."""
    from pydantic import ValidationError

    from edgecv.config.loader import apply_overrides, format_validation_error
    from edgecv.config.recipe import Recipe
    from edgecv.errors import ConfigError

    data = apply_overrides(data, overrides, Path("edgecv export"))
    try:
        recipe = Recipe.model_validate({**data, "base_dir": Path.cwd()})
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, Recipe, Path("edgecv export options"), None)) from None
    return recipe, hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def export_model(
    model: Path = typer.Argument(..., help="your trained model: a .keras file, a Keras .h5 or a SavedModel folder"),
    target: List[str] = typer.Option(..., "--target", "-t", help="target name (targets/NAME.yaml) or path; repeatable"),
    data: Path = typer.Option(..., "--data", help="images to calibrate and validate on; class sub-folders named "
                              "after the model's labels give accuracy, any other images agreement with the float model"),
    task: str = typer.Option("classification", "--task", help=f"{TASK_CHOICES} (generic: any named outputs, "
                             "judged per output against the float model)"),
    preprocess: Optional[str] = typer.Option(None, "--preprocess", help="the model's input normalization: a "
                                             "keras-applications family (mobilenet_v2, resnet50, efficientnet, ...), "
                                             "tf | torch | caffe | none; explicit values: --set model.preprocess.mean=[...]"),
    architecture: Optional[str] = typer.Option(None, "--architecture", help="for a weights-only h5 (keras-applications "
                                               "files): its keras.applications model, e.g. MobileNetV2; its family's "
                                               "preprocessing is then the default"),
    labels: Optional[Path] = typer.Option(None, "--labels", help="classification: class names, one per line"),
    label_offset: Optional[int] = typer.Option(None, "--label-offset", help="output i is labels line i+N (default: "
                                               "auto, 1 for a file with one extra leading `background` line)"),
    calibration_data: Optional[Path] = typer.Option(None, "--calibration-data", help="images to calibrate int8 "
                                                    "on; then every --data image validates (default: a split of --data)"),
    input_size: Optional[Tuple[int, int]] = typer.Option(None, "--input-size", help="H W: the size to build for, for "
                                                         "a model whose input size is dynamic"),
    resize: str = typer.Option("center_crop", "--resize", help="center_crop | resize | pad"),
    name: Optional[str] = typer.Option(None, "--name", help="artifact name prefix (default: the model file's name)"),
    custom_objects: Optional[str] = typer.Option(None, "--custom-objects", help="module (package.module) defining "
                                                 "the model's custom layers: its `custom_objects` dict or its classes"),
    unsafe_deserialization: bool = typer.Option(False, "--unsafe-deserialization", help="load Lambda layers: this "
                                                "RUNS PYTHON CODE STORED IN THE MODEL FILE; only for files you trust"),
    out_dir: Path = typer.Option(Path("build"), "--out", "-o", help="build folder: <out>/<target>/"),
    set_: List[str] = typer.Option([], "--set", help="override a recipe key: --set calibration.size=100"),
    no_gates: bool = typer.Option(False, "--no-gates", help="report gates without failing"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan and stop"),
    force: List[str] = typer.Option([], "--force", help="re-run a stage even if cached (index, train, reference, "
                                    "passes, export, validate, all)"),
    wide: bool = typer.Option(False, "--wide", help="every report column in the terminal table, not the 80-column set"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="also show TensorFlow's and the converters' own "
                                 "output (always kept in <out>/build.log and <out>/<target>/build.log)"),
):
    """Export, validate and gate a model you trained elsewhere for the target(s); no training."""
    from edgecv.cli.app import capture_native, console, finish, print_plan
    from edgecv.cli.app import fail as _fail
    from edgecv.config import load_target
    from edgecv.errors import EdgecvError
    from edgecv.models.check import check_model_config
    from edgecv.orchestrator.plan import check_plan
    from edgecv.orchestrator.runner import Build

    try:
        with capture_native(out_dir / "build.log", verbose) as native:
            raw = export_recipe(model, data, task, preprocess, architecture, labels, label_offset, calibration_data,
                                input_size, resize, name, custom_objects, unsafe_deserialization)
            recipe, sha = recipe_of(raw, set_)
            targets = [load_target(t) for t in target]
            check_plan(targets, recipe.make_task(), recipe.gates)
            check_model_config(recipe)
            b = Build(recipe, targets, out_dir, console, gates=not no_gates, recipe_sha256=sha, force=frozenset(force),
                      native=native)
            if dry_run:
                print_plan(b.plan())
                raise typer.Exit(0)
            result = b.run()
    except EdgecvError as e:
        _fail(e, log=out_dir / "build.log")
    raise typer.Exit(finish(result, wide))
