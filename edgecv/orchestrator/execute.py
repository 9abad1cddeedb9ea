"""Run a build graph (`graph.py`): each step's function gets the outputs of the steps it declares,
computed when it first asks for them.

A step is computed once per build and its output kept. Its inputs are pulled, not pushed: a step
whose entry is cached loads it without asking for its inputs, so a rebuild whose artifacts are all
cached loads no model and trains nothing (it does not even import TensorFlow), while a step that
runs has its inputs run first, in the graph's dependency order. A step can only read what it
declared: asking for anything else is an error, so the graph `--dry-run` prints is the graph that
runs, and `reads` records what each step actually read.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Optional

from edgecv.errors import EdgecvError, StageFailed
from edgecv.files import OutputError, explain_write_error, is_write_error
from edgecv.orchestrator.graph import BuildGraph, Step

# Stages every artifact needs: a failure is raised again, at once, to every later artifact and
# target (a failed training is not retried per artifact); the name is the one errors say
SHARED = {"train": "training", "reference": "reference"}


class UndeclaredRead(RuntimeError):
    """A step asked for an input its graph step does not declare: a bug in edgecv, not in the recipe."""


class Inputs:
    """What a step may read: by role (`inputs["model"]`), the output of the step it names, computed
    on first access; `entry(role)` gives that step's cache entry instead, computing the step only
    when there is none (a report reads train.json without loading the model)."""

    def __init__(self, executor: "Executor", step: Step):
        self._executor, self._step, self._by_role = executor, step, dict(step.reads)

    def _id(self, role: str) -> str:
        if role not in self._by_role:
            raise UndeclaredRead(f"step {self._step.id!r} read {role!r}, which it does not declare "
                                 f"(it reads {', '.join(self._by_role) or 'nothing'})")
        step_id = self._by_role[role]
        self._executor.reads[self._step.id].add(step_id)
        return step_id

    def __getitem__(self, role: str):
        return self._executor.output(self._id(role))

    def entry(self, role: str) -> Optional[Path]:
        return self._executor.entry(self._id(role))

    def step(self, role: str) -> Step:
        """The graph step behind a role (its key, target, spec), without computing it."""
        if role not in self._by_role:
            self._id(role)  # raises
        return self._executor.graph[self._by_role[role]]


class Executor:
    def __init__(self, graph: BuildGraph, modules: dict, context, out_root: Path):
        """`modules[stage].run(context, step, inputs)` computes (or loads) a step's output."""
        self.graph, self.modules, self.context, self.out_root = graph, modules, context, out_root
        self.outputs: dict[str, object] = {}
        self.reads: dict[str, set[str]] = defaultdict(set)  # step id -> the step ids it read
        self.started: list[str] = []  # step ids in the order their functions were called
        self._failed: dict[str, EdgecvError] = {}  # shared stage -> its error, raised again, never retried

    def output(self, step_id: str):
        if step_id in self.outputs:
            return self.outputs[step_id]
        step = self.graph[step_id]
        shared = SHARED.get(step.stage)
        if shared in self._failed:
            raise self._failed[shared]
        self.started.append(step_id)
        try:
            value = self.modules[step.stage].run(self.context, step, Inputs(self, step))
        except Exception as e:
            if shared is None or isinstance(e, UndeclaredRead):
                raise
            err = self._shared_failure(shared, e)
            self._failed[shared] = err
            raise err from e
        self.outputs[step_id] = value
        return value

    def entry(self, step_id: str) -> Optional[Path]:
        """The step's cache entry; the step is computed first only when the cache has none (a
        damaged entry is recomputed, so reports keep naming the model and passes they came from)."""
        step = self.graph[step_id]
        hit = self.context.cache.get(step.stage, step.key)
        if hit is None:
            self.output(step_id)
            hit = self.context.cache.get(step.stage, step.key)
        return hit

    def _shared_failure(self, stage: str, e: Exception) -> EdgecvError:
        if isinstance(e, (StageFailed, OutputError)):
            return e
        if is_write_error(e):
            return explain_write_error(Path(getattr(e, "filename", None) or self.out_root), e)
        return StageFailed(f"{stage} failed: {e if isinstance(e, EdgecvError) else f'{type(e).__name__}: {e}'}")
