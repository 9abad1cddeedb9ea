"""The build graph: every step of one build, what it reads and writes, built once from the recipe
and the targets before any work is done.

`edgecv build --dry-run` prints this graph (`plan`), and the executor (`execute.py`) runs it: a
step's function gets the outputs of the steps it declares in `reads`, and nothing else, so the
printed graph is the graph that runs. Keys come from cheap facts (`plan.BuildKeys`), so building
the graph decodes no image and imports no TensorFlow.

Steps, by stage:
  index          the data's samples per split                 (cache index/<key>)
  calibration    the calibration images chosen from the index (in memory, every build)
  train          the float model, trained or loaded           (cache train/<key>)
  reference      the float model's outputs on the eval images (cache reference/<key>, reference.npz)
  passes         one per distinct passes key: the model the artifacts with those passes come from
  export         one per artifact of a target: the artifact, put into the target's folder
  validate       one per artifact of a target: run, compared with the reference, timed, gated
  target         one per target: sidecars, report and manifest; the folder swapped in whole
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

from edgecv.files import tree_sha256
from edgecv.orchestrator.keys import validation_entry_key
from edgecv.orchestrator.plan import STAGES, BuildKeys, artifact_keys

EVERY_BUILD = ("calibration", "target")  # steps with no cache entry: cheap, done by every build


@dataclass(frozen=True)
class Step:
    id: str  # "export pi/int8": stage, then target/artifact
    stage: str
    key: str  # the cache key ("" for a step done every build); validate: the planned key (see `keys.py`)
    reads: tuple[tuple[str, str], ...] = ()  # (role, step id): what the step's function is given
    writes: tuple[str, ...] = ()  # cache entry and files it produces
    target: object = field(default=None, compare=False, repr=False)  # config.Target
    spec: object = field(default=None, compare=False, repr=False)  # config.ArtifactSpec
    keys: dict = field(default_factory=dict, compare=False, repr=False)  # the artifact's passes/export/validate keys

    @property
    def read_ids(self) -> tuple[str, ...]:
        return tuple(step_id for _, step_id in self.reads)

    @property
    def target_name(self) -> Optional[str]:
        return self.target.name if self.target is not None else None

    @property
    def artifact_name(self) -> Optional[str]:
        return self.spec.name if self.spec is not None else None


@dataclass(frozen=True)
class PlannedStep:
    """One row of `--dry-run`: a step, what it reads, its key and what the build will do with it.

    status: `cached` (its entry is reused, or not even loaded when nothing needs it), `run`,
    `each build` (no cache entry), `if new bytes` (a validation of an artifact exported again: its
    entry is keyed by the artifact's bytes, so it runs only if the new export differs), `not built`
    (the cached export could not be finished on this machine: nothing to validate), or
    `reuses <step>` (an earlier step of this build writes the same entry)."""
    step: str
    stage: str
    key: str
    status: str
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    target: Optional[str] = None
    artifact: Optional[str] = None

    @property
    def hit(self) -> bool:
        """Nothing to compute for it in this build."""
        return self.status == "cached" or self.status.startswith("reuses ")


@dataclass
class BuildGraph:
    steps: dict[str, Step]  # by id, in dependency order (every step after the steps it reads)
    keys: BuildKeys

    def __getitem__(self, step_id: str) -> Step:
        return self.steps[step_id]

    def target_step(self, target) -> Step:
        return self.steps[f"target {target.name}"]

    def plan(self, is_cached: Callable[[str, str], bool], cache_entry: Callable[[str, str], object],
             forced: Callable[[str], bool]) -> list[PlannedStep]:
        """What the build will do with each step: `is_cached(stage, key)` (the forced stages not
        cached), `cache_entry(stage, key)` the entry's folder regardless of --force, `forced(stage)`."""
        rows: list[PlannedStep] = []
        status: dict[str, str] = {}
        made: dict[tuple[str, str], str] = {}  # (stage, key) -> the step of this build that writes it
        for step in self.steps.values():
            key = step.key
            if step.stage in EVERY_BUILD:
                s = "each build"
            elif step.stage == "validate":
                key, s = self._validation(step, status, is_cached, cache_entry)
            else:
                s = "cached" if is_cached(step.stage, key) else "run"
            if s == "run" and (step.stage, key) in made and not forced(step.stage):
                s = f"reuses {made[(step.stage, key)]}"  # the entry is there by the time this step asks
            elif s == "run" and step.stage in STAGES:
                made.setdefault((step.stage, key), step.id)
            status[step.id] = s
            rows.append(PlannedStep(step.id, step.stage, key, s, step.read_ids, step.writes, step.target_name,
                                    step.artifact_name))
        return rows

    def _validation(self, step: Step, status: dict, is_cached, cache_entry) -> tuple[str, str]:
        """A validation is cached by its planned key and the artifact's bytes, known only once the
        export exists: the status from the export's entry when there is one."""
        export_id = dict(step.reads)["export"]
        exported = cache_entry("export", self.steps[export_id].key)
        if exported is None or not (exported / "artifact.json").is_file():
            if exported is not None and (exported / "not_built.json").is_file() and status[export_id] == "cached":
                return step.key, "not built"
            return step.key, "run"
        path = exported / json.loads((exported / "artifact.json").read_text())["path"]
        key = validation_entry_key(step.key, tree_sha256(path))
        if not is_cached("validate", key):
            return key, "run"
        return key, "cached" if status[export_id] != "run" else "if new bytes"


def artifact_step_id(stage: str, target: str, artifact: str) -> str:
    return f"{stage} {target}/{artifact}"


def build_graph(recipe, keys: BuildKeys, targets) -> BuildGraph:
    steps: dict[str, Step] = {}

    def add(step: Step) -> str:
        assert all(r in steps for r in step.read_ids), (step.id, step.read_ids)  # dependency order
        steps[step.id] = step
        return step.id

    add(Step("index", "index", keys.index, writes=(f"cache index/{keys.index[:12]}",)))
    add(Step("calibration", "calibration", keys.calibration, (("index", "index"),)))
    add(Step("train", "train", keys.train, (("index", "index"),), (f"cache train/{keys.train[:12]}",)))
    add(Step("reference", "reference", keys.reference, (("index", "index"), ("model", "train")),
             (f"cache reference/{keys.reference[:12]}", "reference.npz")))
    passes_steps: dict[str, str] = {}  # passes key -> the step that makes it (artifacts with the same passes share it)
    data = (("index", "index"), ("calibration", "calibration"))
    for target in targets:
        target_reads = [*data, ("train", "train"), ("reference", "reference")]
        for spec in target.artifacts:
            akeys = artifact_keys(recipe, keys, target, spec)
            model = "train"
            if spec.passes:
                key = akeys["passes"]
                if key not in passes_steps:
                    passes_steps[key] = add(Step(artifact_step_id("passes", target.name, spec.name), "passes", key,
                                                 (*data, ("model", "train")), (f"cache passes/{key[:12]}",),
                                                 spec=spec, keys=akeys))
                model = passes_steps[key]
                target_reads.append((f"passes {spec.name}", model))
            export = add(Step(artifact_step_id("export", target.name, spec.name), "export", akeys["export"],
                              (("model", model), *data, ("reference", "reference")),
                              (f"cache export/{akeys['export'][:12]}", f"{target.name}/"), target, spec, akeys))
            passes = (("passes", model),) if spec.passes else ()  # the result names what its passes did
            validate = add(Step(artifact_step_id("validate", target.name, spec.name), "validate", akeys["validate"],
                                (("export", export), *passes, ("reference", "reference"), ("index", "index")),
                                ("cache validate/<key with the artifact's sha256>",), target, spec, akeys))
            target_reads += [(f"export {spec.name}", export), (f"validate {spec.name}", validate)]
        add(Step(f"target {target.name}", "target", "", tuple(target_reads),
                 (f"{target.name}/ (report.json, manifest.json, sidecars)",), target, keys=asdict(keys)))
    return BuildGraph(steps, keys)
