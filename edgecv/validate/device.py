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
from edgecv.tasks import all_task_classes, get_task
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


def artifact_task(artifact: Path, annotations: Optional[Path], data: Optional[Path] = None) -> tuple[Task, dict]:
    """The artifact's task and the facts its metrics need: preprocessing.json's task, else the task
    whose sidecar file lies beside it, else the task whose layout `data` has (Task.claims_folder),
    else the task that takes a third party's file for these inputs (an annotation file or a folder
    alone)."""
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


def validate_on_device(artifact: Path, data: Path, annotations: Optional[Path], options: dict,
                       threads: Optional[int] = None, input_size: Optional[tuple] = None) -> tuple[Task, dict]:
    """(task, what `validate --json` writes): the artifact's task metrics on the evaluation set."""
    task, info = artifact_task(artifact, annotations, data)
    ev, held = evaluation_set(task, lambda: task.read_device_set(Path(data), annotations, info,
                                                                  {**options, "artifact": artifact}), data)
    result = evaluate_artifact(artifact, task, ev, timing=False, threads=threads,
                               runtime_options={"input_size": input_size})
    ran_here(result)
    return task, task.device_report(held["set"], result, ev.outputs, options)


def ran_here(result) -> None:
    """A device command whose artifact cannot run on this machine stops with why (Core ML off macOS)."""
    if result.validation is not None and not result.validation.numeric:
        raise RuntimeUnavailable(result.validation.reason)


def validate_folder(artifact, data, *, labels=None, label_offset: Optional[int] = None, resize: Optional[str] = None,
                    threads: Optional[int] = None, top_k: int = 3, input_size: Optional[tuple] = None,
                    annotations=None, warn=None, native=None) -> FolderEval:
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
                   "resize": resize, "top_k": top_k, "warn": warn}
        with private_log("validate") as native_file, native_output(native_file, Console(stderr=True), native):
            _, report = validate_on_device(artifact, data, None if annotations is None else Path(annotations),
                                           options, threads, size)
        return FolderEval(**report)
    except ValueError as e:  # e.g. an unknown file type: a message, not a traceback
        raise InputError(str(e)) from None
