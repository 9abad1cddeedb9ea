"""Tasks: what a model outputs and how it is judged (see base.Task).

A task is named in the recipe (`task: classification`) and found here, or given as an import path
`package.module:ClassName` for a task that lives outside edgecv. Task modules import no TensorFlow
at import time, so devices can validate artifacts of every task.
"""

from __future__ import annotations

import importlib
from typing import Optional

from edgecv.registry import UnknownName
from edgecv.tasks.base import (TASK_MODULES, TASKS, ColumnSpec, GateSpec, MetricSpec, OutputSpec, Task, TaskOptions,
                               as_named)


def task_class(name: str) -> type[Task]:
    if ":" in name:  # package.module:ClassName
        module, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise UnknownName(f"task {name!r}: cannot import it ({e}); give a task name "
                              f"({', '.join(known_tasks())}) or an importable module:Class") from None
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise UnknownName(f"task {name!r} is not an edgecv.tasks.Task subclass")
        return cls
    return TASKS.get(name)  # built-in modules load on demand; a subclass defined elsewhere registered on import


def get_task(name: str, options: Optional[dict] = None) -> Task:
    return task_class(name)(options)


def known_tasks() -> list[str]:
    return sorted(set(TASKS.modules) | set(TASKS.classes))


def all_task_classes() -> list[type[Task]]:
    """Every built-in and registered task class (imports the built-in modules: no TensorFlow)."""
    return [task_class(n) for n in known_tasks()]


__all__ = ["Task", "TaskOptions", "OutputSpec", "MetricSpec", "GateSpec", "ColumnSpec", "as_named", "get_task",
           "task_class", "known_tasks", "all_task_classes", "TASKS"]
