"""`edgecv validate` and `bench --data` on any machine, for every task: the artifact's task comes from
preprocessing.json beside it (or, for a third party's file, from the sidecar files and options
given), the task reads the evaluation set and its targets (Task.read_device_set, device_targets),
and the one evaluation kernel judges the artifact. Nothing here knows a task by name.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Optional

import numpy as np

from edgecv.data.images import ImageDecodeError, load_image
from edgecv.errors import DataError, InputError
from edgecv.tasks import all_task_classes, get_task, known_tasks
from edgecv.tasks.base import DeviceSet, Task
from edgecv.validate.evaluate import EvaluationSet, evaluate_artifact
from edgecv.build_folder import check_before_use, sidecar_input_size
from edgecv.runtimes import RuntimeUnavailable
from edgecv.terminal import native_output, private_log

PREPROCESSING = "preprocessing.json"


class FolderEval(SimpleNamespace):
    """What `edgecv validate` found, as attributes (`vars()` is what --json writes); the fields are the
    task's (Task.device_report): a classifier's accuracy, images, truths, correct, predictions ...;
    a keypoint artifact's metrics, points ..."""


def sidecar_folder(artifact: Path) -> Optional[Path]:
    """The folder holding the build's sidecar files for an artifact: beside it, or up to two folders
    up (a SavedModel's version folder)."""
    artifact = Path(artifact)
    names = {PREPROCESSING} | {n for cls in all_task_classes() for n in cls.sidecar_names}
    for folder in (artifact.parent, artifact.parent.parent, artifact.parent.parent.parent):
        if any((folder / n).is_file() for n in names):
            return folder
    return None


def named_task(name: str) -> Task:
    """--task NAME: a registered task (or package.module:Class), else bad input listing them."""
    try:
        return get_task(name)
    except (KeyError, ValueError) as e:
        raise InputError(f"--task {name}: {e.args[0] if e.args else e} (tasks: {', '.join(known_tasks())})") from None


def artifact_task(artifact: Path, annotations: Optional[Path], data: Optional[Path] = None,
                  task_name: Optional[str] = None) -> tuple[Task, dict]:
    """The artifact's task and the facts its metrics need: preprocessing.json's task, else the task
    whose sidecar file lies beside it, else `task_name` (--task, for a third party's file), else the
    task whose layout `data` has (Task.claims_folder), else the task that takes a third party's file
    for these inputs (an annotation file or a folder alone)."""
    folder = sidecar_folder(artifact)
    task = None
    if folder is not None and (folder / PREPROCESSING).is_file():
        try:
            name = json.loads((folder / PREPROCESSING).read_text()).get("task")
        except (OSError, ValueError) as e:
            raise InputError(f"{folder / PREPROCESSING}: cannot be read ({e})") from None
        task = get_task(name) if name else None
    if task is None and folder is not None:
        task = next((cls() for cls in all_task_classes() if any((folder / n).is_file() for n in cls.sidecar_names)),
                    None)
    if task_name is not None:
        if task is not None and task.name != named_task(task_name).name:
            raise InputError(f"{artifact.name} is a {task.name} artifact (its files in {folder} say so): --task "
                             f"{task_name} is for a file without edgecv's preprocessing.json")
        task = task or named_task(task_name)
    if task is None and annotations is not None:
        task = next((cls() for cls in all_task_classes() if cls.takes_annotations(annotations)), None)
    if task is None and data is not None and annotations is None:
        task = next((cls() for cls in all_task_classes() if cls.claims_folder(Path(data))), None)
    if task is None:
        want = "annotations" if annotations is not None else "folder"
        task = next((cls() for cls in all_task_classes() if want in cls.device_default_for), None)
        if task is None:
            raise InputError(f"{artifact}: no preprocessing.json beside it says its task")
    return task, task.device_info(folder)


def load_images(evaluation: DeviceSet, size: tuple[int, int], data: Path) -> np.ndarray:
    """The set's images at the artifact's input size; an unreadable image is skipped (and its label)."""
    pixels, kept, labels = [], [], []
    for i, path in enumerate(evaluation.paths):
        try:
            pixels.append(load_image(path, size, evaluation.resize))
        except ImageDecodeError as e:
            evaluation.skipped.append((str(path), str(e)))
            continue
        kept.append(path)
        if evaluation.labels is not None:
            labels.append(evaluation.labels[i])
    if not kept:
        raise DataError(f"--data {data}: none of the {len(evaluation.paths)} image(s) could be read")
    evaluation.paths = kept
    evaluation.labels = labels if evaluation.labels is not None else None
    return np.stack(pixels)


def evaluation_set(task: Task, read: Callable[[], DeviceSet], data: Path, check=None) -> tuple[EvaluationSet, dict]:
    """The kernel's view of a device evaluation set, and a dict that holds the DeviceSet once read
    (under "set"). The set is read once the artifact is loaded, so an artifact that cannot run here
    says so before the folder is looked at; its images at the artifact's input size, its targets from
    the task once the outputs are known. `check(runtime)` runs first."""
    holder: dict = {}

    def images(rt) -> np.ndarray:
        if check is not None:
            check(rt)
        evaluation = holder["set"] = read()
        ev.info = evaluation.info  # the task's facts (a keypoint scheme gains the input size below)
        return load_images(evaluation, rt.input_size, data)

    ev = EvaluationSet(images, lambda outputs, size: task.device_targets(holder["set"], outputs, size))
    return ev, holder


def metrics_text(task: Task, metrics: dict) -> str:
    """'nme 0.0412, failure_rate 0.05': the task's metrics a device measured, as the task formats them."""
    return ", ".join(f"{m.name} {metrics[m.name]:{m.fmt}}{m.unit}" for m in task.metrics
                     if isinstance(metrics.get(m.name), (int, float)))


def input_range_options(artifact: Path, input_range: Optional[str], warn=None) -> tuple[dict, Callable]:
    """(runtime options, a check of the loaded runtime) for --input-range LO,HI: the float values a
    third party's float-input model takes for pixels 0..255 (an int8/uint8 input takes the pixels
    through its own quantization). edgecv's artifacts take 0..255 themselves: refused there. Without
    the option, a third party's float input gets a warning that it is fed 0..255."""
    own = sidecar_folder(artifact) is not None
    if input_range is not None:
        if own:
            raise InputError(f"--input-range: {artifact.name} is edgecv's (preprocessing.json beside it): it takes "
                             "0..255 pixels and normalizes inside; the option is for a third party's float model")
        try:
            lo, hi = (float(v) for v in str(input_range).split(","))
        except ValueError:
            raise InputError(f"--input-range {input_range!r}: give LO,HI, the values pixels 0 and 255 become "
                             "(e.g. -1,1 for MobileNet/BlazeFace-style inputs, 0,1)") from None
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo == hi:
            raise InputError(f"--input-range {input_range!r}: LO and HI must be finite and differ")

    def check(rt) -> None:
        if input_range is not None and not rt.input_dtype.startswith("float"):
            raise InputError(f"--input-range: {artifact.name} takes {rt.input_dtype} input (its quantization maps "
                             "the pixels); the option is for a float input")
        if input_range is None and not own and warn is not None and rt.input_dtype.startswith("float"):
            warn(f"{artifact.name} takes {rt.input_dtype} input and no preprocessing.json says its range: fed as "
                 "pixels 0..255; give --input-range LO,HI if it expects other values (e.g. -1,1)")

    return ({"float_range": (lo, hi)} if input_range is not None else {}), check


def validate_on_device(artifact: Path, data: Path, annotations: Optional[Path], options: dict,
                       threads: Optional[int] = None, input_size: Optional[tuple] = None) -> tuple[Task, dict]:
    """(task, what `validate --json` writes): the artifact's task metrics on the evaluation set.
    `options`: the command's own, with `task` (--task) and `input_range` (--input-range)."""
    task, info = artifact_task(artifact, annotations, data, options.get("task"))
    extra, check = input_range_options(artifact, options.get("input_range"), options.get("warn"))
    ev, held = evaluation_set(task, lambda: task.read_device_set(Path(data), annotations, info,
                                                                  {**options, "artifact": artifact}), data, check)
    result = evaluate_artifact(artifact, task, ev, timing=False, threads=threads,
                               runtime_options={"input_size": input_size, **extra})
    ran_here(result)
    return task, task.device_report(held["set"], result, ev.outputs, options)


def ran_here(result) -> None:
    """A device command whose artifact cannot run on this machine stops with why (Core ML off macOS)."""
    if result.validation is not None and not result.validation.numeric:
        raise RuntimeUnavailable(result.validation.reason)


def validate_folder(artifact, data, *, labels=None, label_offset: Optional[int] = None, resize: Optional[str] = None,
                    threads: Optional[int] = None, top_k: int = 3, input_size: Optional[tuple] = None,
                    annotations=None, warn=None, native=None, task: Optional[str] = None,
                    input_range: Optional[str] = None) -> FolderEval:
    """`edgecv validate` as a function (edgecv.api.validate, and the package edgecv.validate called):
    the artifact's task metrics on the folder, native libraries' output kept out of the terminal."""
    from rich.console import Console


    from edgecv.validate.bench import check_bench_options  # lazy: import cycle (validate.bench -> validate.device)

    check_bench_options(threads, [1])
    artifact, data = Path(artifact), Path(data)
    if not artifact.exists():
        raise InputError(f"{artifact}: no such file or folder")
    try:
        warn = warn or (lambda message: print(f"warning: {message}", file=sys.stderr))
        check_before_use(artifact, warn)
        size = input_size or sidecar_input_size(artifact)
        options = {"labels": None if labels is None else Path(labels), "label_offset": label_offset,
                   "resize": resize, "top_k": top_k, "warn": warn, "task": task, "input_range": input_range}
        with private_log("validate") as native_file, native_output(native_file, Console(stderr=True), native):
            _, report = validate_on_device(artifact, data, None if annotations is None else Path(annotations),
                                           options, threads, size)
        return FolderEval(**report)
    except ValueError as e:  # e.g. an unknown file type: a message, not a traceback
        raise InputError(str(e)) from None
