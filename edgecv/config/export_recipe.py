"""The recipe `edgecv export MODEL --data DIR` stands for: a model trained elsewhere, no training,
built like any recipe (the command line and the Python API both make it here)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import List, Optional, Tuple
from edgecv.config.loader import apply_overrides, format_validation_error
from edgecv.config.recipe import Recipe
from edgecv.errors import ConfigError
from edgecv.tasks import task_class


def export_recipe(model: Path, data: Path, task: str, preprocess: Optional[str], architecture: Optional[str],
                  labels: Optional[Path],
                  label_offset: Optional[int], calibration_data: Optional[Path], input_size: Optional[Tuple[int, int]],
                  resize: str, name: Optional[str], custom_objects: Optional[str], unsafe: bool,
                  annotations: Optional[Path] = None, anchors: Optional[Path] = None,
                  box_scales: Optional[str] = None) -> dict:
    """The recipe the one-shot command stands for, as YAML-shaped data. `annotations`: the --data
    images' annotation file or folder (a task that reads one); `anchors`, `box_scales`: a brought
    detector's anchors file and box coder scales (its task's options of those names)."""
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
    if annotations is not None:
        recipe["data"]["annotations"] = str(annotations.resolve())
    options = {}
    if anchors is not None:
        options["anchors"] = str(anchors.resolve())
    if box_scales is not None:
        options["box_scales"] = parse_scales(box_scales)
    if options:
        fields = _task_option_fields(task)
        for key in options:
            if fields is not None and key not in fields:
                raise ConfigError(f"--{key.replace('_', '-')} is not an option of task {task}: it is for a detector "
                                  "you bring, whose raw box encodings are relative to anchors")
        recipe["task_options"] = options
    return recipe


def parse_scales(text: str) -> list:
    """`10,10,5,5` -> [10.0, 10.0, 5.0, 5.0]: the box coder's (y, x, h, w) scales."""
    try:
        values = [float(v) for v in str(text).replace(" ", "").split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or min(values) <= 0:
        raise ConfigError(f"--box-scales {text!r}: give four positive numbers y,x,h,w (the TF Object Detection API's "
                          "default is 10,10,5,5)")
    return values


def _task_option_fields(task: str):
    try:
        return set(task_class(task).options_model.model_fields)
    except KeyError:
        return None  # an unknown task: the recipe's validation names it


def recipe_of(data: dict, overrides: List[str]):
    """Validate the in-memory recipe (after --set) as a recipe file would be."""
    from pydantic import ValidationError


    data = apply_overrides(data, overrides, Path("edgecv export"))
    try:
        recipe = Recipe.model_validate({**data, "base_dir": Path.cwd()})
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, Recipe, Path("edgecv export options"), None)) from None
    return recipe, hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
