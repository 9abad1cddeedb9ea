"""Run a build: recipe + targets -> data index -> train -> passes -> export -> validate -> reports.

Every stage is content-addressed (see `keys.py`): a stage whose key is in the cache is not run
again, so several targets train once and a rebuild with nothing changed runs no training, no
conversion and no measurement, and does not even import TensorFlow. Entries are written
atomically, so a build killed at any point resumes from its last complete stage. One artifact or
target failing is recorded in its report and does not stop the others.

The build is a graph of steps, built once from the recipe and targets (`graph.py`: what
`--dry-run` prints) and run by `execute.py`, each step's function in `stages/` given only the
outputs of the steps it declares and the shared context (`context.py`: recipe, task, cache,
console, decoded images). Keys are computed in `plan.py` and `keys.py`, the report and manifest
put together in `assemble.py`.
"""

from __future__ import annotations

import hashlib
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from rich.console import Console

from edgecv.config import Recipe, Target, load_recipe, load_target
from edgecv.config.loader import find_target
from edgecv.data.index import DataIndex
from edgecv.errors import ConfigError, EdgecvError, InputError
from edgecv.files import ensure_dir
from edgecv.models.check import check_model_config
from edgecv.models.user_model import with_input_size
from edgecv.orchestrator import publish
from edgecv.orchestrator.context import StageContext
from edgecv.orchestrator.execute import Executor
from edgecv.orchestrator.graph import PlannedStep, build_graph
from edgecv.orchestrator.lock import BuildLock
from edgecv.orchestrator.plan import STAGES, BuildKeys, StageRecord, check_plan, check_untrainable_passes
from edgecv.orchestrator.stages import calibration as calibration_stage
from edgecv.orchestrator.stages import export as export_stage
from edgecv.orchestrator.stages import index as index_stage
from edgecv.orchestrator.stages import passes as passes_stage
from edgecv.orchestrator.stages import reference as reference_stage
from edgecv.orchestrator.stages import target as target_stage
from edgecv.orchestrator.stages import train as train_stage
from edgecv.orchestrator.stages import validate as validate_stage
from edgecv.orchestrator.stages.target import TargetOutcome
from edgecv.results import Report
from edgecv.terminal import NativeOutput
from edgecv.train.cluster import cluster_role

__all__ = ["Build", "BuildResult", "TargetOutcome", "StageRecord", "STAGES", "check_plan", "load_build", "run_build"]


@dataclass
class BuildResult:
    outcomes: list[TargetOutcome]
    stages: list[StageRecord] = field(default_factory=list)
    rejected: list = field(default_factory=list)  # cache entries found damaged (and recomputed)

    @property
    def exit_code(self) -> int:
        """0 ok; 1 a gate failed; 3 an artifact or target failed to build."""
        statuses = {o.status for o in self.outcomes}
        return 3 if "failed" in statuses else 1 if "gates_failed" in statuses else 0

    def report(self, target: Optional[str] = None) -> Report:
        """The typed report of `target` (of the only target when None); see edgecv.results.Report."""
        built = {o.target: o for o in self.outcomes}
        if target is None and len(built) == 1:
            target = next(iter(built))
        o = built.get(target)
        if o is None or o.report is None:
            why = "was not built" if o is None else "has no report (it failed: " + "; ".join(o.messages) + ")"
            raise InputError(f"target {target!r} {why}; built: {', '.join(built) or 'none'}")
        return o.report

    def ran(self, stage: str) -> list[StageRecord]:
        return [s for s in self.stages if s.stage == stage and not s.hit]

    def cache_summary(self) -> str:
        """Which cache entries were reused (each verified against its recorded hashes) and which
        were recomputed because they were damaged."""
        reused = sorted({(s.stage, s.key) for s in self.stages if s.hit})
        line = f"cache: reused {len(reused)} verified entr{'y' if len(reused) == 1 else 'ies'}"
        if self.rejected:
            line += "; recomputed damaged: " + ", ".join(f"{e.stage}/{e.key[:12]}" for e in self.rejected)
        return line


STEP_MODULES = {"index": index_stage, "calibration": calibration_stage, "train": train_stage,
                "reference": reference_stage, "passes": passes_stage, "export": export_stage,
                "validate": validate_stage, "target": target_stage}  # each module's run(ctx, step, inputs)


class Build:
    """One build: its graph (`graph.py`, what `--dry-run` prints) and the executor that runs it."""

    def __init__(self, recipe: Recipe, targets: list[Target], out_root: Path, console: Console, *,
                 gates: bool = True, recipe_sha256: str = "", force: frozenset = frozenset(),
                 regen_reference: bool = False, native: Optional[NativeOutput] = None):
        if recipe.model.path is not None:  # a user's model: input size read from it
            recipe = with_input_size(recipe)
        force = set(force) | ({"reference"} if regen_reference else set())
        unknown = force - set(STAGES) - {"all"}
        if unknown:
            raise ConfigError(f"--force {', '.join(sorted(unknown))}: stages are {', '.join(STAGES)} or all")
        # a retrained model (or one the passes made again): what is made from it is made again, from it
        if "train" in force:
            force |= {"reference", "passes", "export", "validate"}
        if "passes" in force:
            force |= {"export", "validate"}
        self.recipe, self.targets, self.console, self.out_root = recipe, targets, console, Path(out_root)
        self.ctx = StageContext(recipe, out_root, console, force=frozenset(force), gates=gates,
                                recipe_sha256=recipe_sha256, native=native)
        self.keys = BuildKeys.of(recipe)  # from cheap facts, no work done
        self.graph = build_graph(recipe, self.keys, targets)
        self.executor = Executor(self.graph, STEP_MODULES, self.ctx, self.out_root)
        self.index: Optional[DataIndex] = None  # once run: the data index (`--device` copies its validation split)

    @property
    def stages(self) -> list[StageRecord]:
        return self.ctx.stages

    def plan(self, every_step: bool = False) -> list[PlannedStep]:
        """What the build will do with each cached stage's step (`every_step`: also the steps done
        every build: calibration, each target's folder), from the graph the build runs."""
        rows = self.graph.plan(lambda stage, key: self.ctx.hit(stage, key) is not None, self.ctx.cache.get,
                               self.ctx.forced)
        return rows if every_step else [r for r in rows if r.stage in STAGES]

    def run(self, wait_seconds: float = 0.0, held: Optional[BuildLock] = None) -> BuildResult:
        """`held`: the folder's lock, already taken by the caller (the command line takes it before
        opening build.log); otherwise the build takes it."""
        ensure_dir(self.out_root)
        with nullcontext() if held is not None and held.covers(self.out_root) else BuildLock(self.out_root, wait_seconds):
            publish.mark_build_folder(self.out_root)
            publish.check_build_links(self.out_root, [t.name for t in self.targets])  # before any training
            with self.ctx.log_scope():
                index = self.index = self.executor.output("index")
                role = cluster_role()
                if role is not None and not role.is_chief:  # a training worker: train with the chief, then stop
                    self.executor.output("train")
                    done = f"{role}: training done; the chief writes the model, artifacts and reports"
                    return BuildResult([TargetOutcome(t.name, None, "ok", [done]) for t in self.targets], self.stages)
                if index.info.get("labelled") is False:
                    check_untrainable_passes(self.targets, f"the images in {self.recipe.data.root or self.recipe.data.val} "
                                             "are unlabelled")
                self.executor.output("calibration")
            outcomes = []
            for target in self.targets:
                try:
                    outcomes.append(self.executor.output(self.graph.target_step(target).id))
                except EdgecvError as e:
                    kept = "kept as it was" if (self.out_root / target.name).exists() else "not written"
                    outcomes.append(TargetOutcome(target.name, None, "failed", [f"{e} ({self.out_root / target.name} "
                                                                                f"{kept})"]))
            return BuildResult(outcomes, self.stages, self.ctx.cache.rejected)


def check_unique_target_names(targets: list[Target], given: list[str], recipe_dir: Path) -> None:
    """Each target is built into <out>/<name>/: two targets of one name would overwrite each other."""
    by_name: dict[str, list[str]] = {}
    for t, arg in zip(targets, given):
        by_name.setdefault(t.name, []).append(str(find_target(arg, recipe_dir).resolve()))
    twice = {name: paths for name, paths in by_name.items() if len(paths) > 1}
    if twice:
        raise ConfigError("two targets of one name would be built into the same folder and overwrite each other: "
                          + "; ".join(f"{name} from {', '.join(paths)}" for name, paths in twice.items())
                          + ": give each target once, or rename one (the file's name, or `name:` inside it)")


def load_build(recipe_path: Path, target_names: list[str], out_root: Path, overrides=(),
               console: Optional[Console] = None, **kw) -> Build:
    console = console or Console(stderr=True)
    recipe = load_recipe(recipe_path, overrides)
    targets = [load_target(t, recipe.base_dir) for t in target_names]
    check_unique_target_names(targets, target_names, recipe.base_dir)
    check_plan(targets, recipe.make_task(), recipe.gates)
    check_model_config(recipe)
    recipe_sha = hashlib.sha256(Path(recipe_path).read_bytes() + "\n".join(overrides).encode()).hexdigest()
    return Build(recipe, targets, out_root, console, recipe_sha256=recipe_sha, **kw)


def run_build(recipe_path: Path, target_names: list[str], out_root: Path, overrides=(), console: Optional[Console] = None,
              gates: bool = True, force=frozenset(), regen_reference: bool = False, wait_seconds: float = 0.0) -> BuildResult:
    build = load_build(recipe_path, target_names, out_root, overrides, console, gates=gates, force=frozenset(force),
                       regen_reference=regen_reference)
    return build.run(wait_seconds)
