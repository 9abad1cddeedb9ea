"""Run a build: recipe + targets -> data index -> train -> passes -> export -> validate -> reports.

Every stage is content-addressed (see `keys.py`): a stage whose key is in the cache is not run
again, so several targets train once and a rebuild with nothing changed runs no training, no
conversion and no measurement, and does not even import TensorFlow. Entries are written
atomically, so a build killed at any point resumes from its last complete stage. One artifact or
target failing is recorded in its report and does not stop the others.

The stages live in `stages/`, planning in `plan.py`, the report and manifest in `assemble.py`;
this module holds what they share (recipe, task, cache, decoded images, reference outputs).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import traceback
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from rich.console import Console

from edgecv.config import Recipe, Target, load_recipe, load_target
from edgecv.config.target import effective_gates
from edgecv.report.merge import carry_device_results
from edgecv.data.calibration import CalibrationSet, select_calibration
from edgecv.data.images import load_batch
from edgecv.data.index import DataIndex
from edgecv.errors import ConfigError, EdgecvError, InputError, StageFailed
from edgecv.files import OutputError, ensure_dir, explain_write_error, is_write_error, tree_sha256
from edgecv.models.backbones import get_backbone, normalization
from edgecv.models.check import check_model_config
from edgecv.orchestrator import assemble, publish
from edgecv.orchestrator.keys import validation_entry_key
from edgecv.orchestrator.cache import StageCache
from edgecv.orchestrator.lock import BuildLock
from edgecv.orchestrator.plan import (STAGES, BuildKeys, StageRecord, artifact_keys, check_plan,
                                      check_untrainable_passes, plan_rows)
from edgecv.orchestrator.stages import export as export_stage
from edgecv.orchestrator.stages import index as index_stage
from edgecv.orchestrator.stages import passes as passes_stage
from edgecv.orchestrator.stages import reference as reference_stage
from edgecv.orchestrator.stages import train as train_stage
from edgecv.orchestrator.stages import validate as validate_stage
from edgecv.environment import describe_environment
from edgecv.report.outputs import write_reports
from edgecv.progress import steps as progress_steps
from edgecv.results import ArtifactResult, Report
from edgecv.terminal import NativeOutput
from edgecv.sidecars import preprocessing, write_sidecars
from edgecv.train.cluster import cluster_role
from edgecv.config.loader import find_target
from edgecv.models.preprocess import user_normalization
from edgecv.models.user_model import with_input_size
from edgecv.validate.intervals import as_stored

__all__ = ["Build", "BuildResult", "TargetOutcome", "StageRecord", "STAGES", "check_plan", "load_build", "run_build"]


@dataclass
class TargetOutcome:
    target: str
    report_path: Optional[Path]
    status: str  # ok | gates_failed | failed
    messages: list[str] = field(default_factory=list)
    report: Optional[Report] = None
    log: Optional[Path] = None  # native output to look at when something failed


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


class Build:
    def __init__(self, recipe: Recipe, targets: list[Target], out_root: Path, console: Console, *,
                 gates: bool = True, recipe_sha256: str = "", force: frozenset = frozenset(),
                 regen_reference: bool = False, native: Optional[NativeOutput] = None):
        if recipe.model.path is not None:  # a user's model: input size read from it

            recipe = with_input_size(recipe)
        self.recipe, self.targets, self.console, self.gates = recipe, targets, console, gates
        self.native = native  # where converters' own output goes (None: wherever fds 1 and 2 point)
        self.steps = progress_steps(console)
        self.task = recipe.make_task()
        self.out_root = Path(out_root)
        self.cache = StageCache(self.out_root / ".cache", log=lambda m: console.print(f"[yellow]{m}[/]"))
        self.recipe_sha256 = recipe_sha256
        self.force = set(force) | ({"reference"} if regen_reference else set())
        unknown = self.force - set(STAGES) - {"all"}
        if unknown:
            raise ConfigError(f"--force {', '.join(sorted(unknown))}: stages are {', '.join(STAGES)} or all")
        if "train" in self.force:  # a retrained model: what is made from it is made again, from it
            self.force |= {"reference", "passes", "export", "validate"}
        self.stages: list[StageRecord] = []
        self.keys = BuildKeys.of(recipe)  # from cheap facts, no work done
        self.info: dict = {}
        self.index: Optional[DataIndex] = None
        self.pass_models: dict[str, object] = {}
        self.reference_sha256 = ""
        self._model = None
        self._index: Optional[DataIndex] = None
        self._failed: dict[str, EdgecvError] = {}  # shared stage -> its error, raised again, never retried
        self._eval: dict[tuple, tuple[np.ndarray, object]] = {}
        self._reference: Optional[dict] = None
        self._reference_scores: Optional[dict] = None
        self._environment: Optional[dict] = None
        self._calibration_images: dict[tuple, list] = {}  # (set, size, policy) -> decoded 1xHxWx3 batches

    # ---- shared state the stages use -----------------------------------------------------------
    def hit(self, stage: str, key: str) -> Optional[Path]:
        if stage in self.force or "all" in self.force:
            return None
        return self.cache.get(stage, key)

    def log_path(self, target: Optional[str] = None) -> Path:
        """The log of native output: `<out>/build.log` for shared stages, `<out>/<target>/build.log`
        (written in the target's staging folder while it is built, so it swaps in with the rest)."""
        if target is None:
            return self.out_root / "build.log"
        return publish.staging_path(self.out_root, target) / "build.log"

    def log_scope(self, target: Optional[str] = None):
        """Converters' and TensorFlow's output inside the block goes to that log."""
        return self.native.scope(self.log_path(target)) if self.native else nullcontext()

    def record(self, stage, key, hit, t0, target=None, artifact=None):
        self.stages.append(StageRecord(stage, key, hit, time.perf_counter() - t0, target, artifact))

    def plan(self) -> list[StageRecord]:
        return plan_rows(self.recipe, self.keys, self.targets, lambda s, k: self.hit(s, k) is not None,
                         self._planned_validation_key)

    def _planned_validation_key(self, akeys: dict) -> Optional[str]:
        """The validation entry's key when the export is cached (its artifact's bytes are known)."""
        hit = self.hit("export", akeys["export"])
        if hit is None or not (hit / "artifact.json").is_file():
            return None
        path = hit / json.loads((hit / "artifact.json").read_text())["path"]
        return validation_entry_key(akeys["validate"], tree_sha256(path))

    def gates_for(self, target: Target, spec=None):
        """The artifact's effective gates (the task's defaults in the recipe, the target's, its own)."""
        return effective_gates(self.recipe.gates, target, spec)

    def artifact_keys(self, target: Target, spec) -> dict:
        return artifact_keys(self.recipe, self.keys, target, spec)

    def _shared_stage(self, stage: str, run):
        """Run a stage every artifact needs once: if it fails, every later artifact and target gets
        the same error at once (a failed training is not retried per artifact)."""
        if stage in self._failed:
            raise self._failed[stage]
        try:
            return run()
        except Exception as e:
            if isinstance(e, (StageFailed, OutputError)):
                err = e
            elif is_write_error(e):
                err = explain_write_error(Path(getattr(e, "filename", None) or self.out_root), e)
            else:
                err = StageFailed(f"{stage} failed: {e if isinstance(e, EdgecvError) else f'{type(e).__name__}: {e}'}")
            self._failed[stage] = err
            raise err from e

    def model(self, index: DataIndex):
        if self._model is None:
            self._model = self._shared_stage("training", lambda: train_stage.run(self, index))
        return self._model

    def train_info(self) -> dict:
        return train_stage.info(self, self._index)

    def reference(self, index: DataIndex) -> dict:
        if self._reference is None:
            self._reference = self._shared_stage("reference", lambda: reference_stage.run(self, index))
        return self._reference

    def reference_scores(self, index: DataIndex) -> dict:
        """The float model's per-sample scores on the evaluated samples (paired intervals and the
        report's reference); targets only, no image is decoded."""
        if self._reference_scores is None:
            samples = self.task.eval_samples(index)
            targets = self.task.targets(samples, index.info) if self.task.needs_targets else None
            self._reference_scores = {} if targets is None else as_stored(self.task.sample_scores(
                self.task.select_outputs(self.reference(index), self.info), targets, self.info))
        return self._reference_scores

    def eval_set(self, index: DataIndex, size=None) -> tuple[np.ndarray, object]:
        """The validation images decoded at `size` (default the recipe's input size) by the recipe's
        resize policy, and the task's targets. A pass may change a model's input size (backbone
        swap): its artifacts see the same images at their own size, compared with the same reference."""
        size = tuple(size or self.recipe.input.size)
        if size not in self._eval:
            samples = self.task.eval_samples(index)
            images = load_batch([s.path for s in samples], size, self.recipe.input.resize)
            self._eval[size] = images, self.task.targets(samples, index.info) if self.task.needs_targets else None
        return self._eval[size]

    def calibration_batches(self, calib: CalibrationSet, size=None):
        """Calibration images at `size` (default the recipe's input size) by the recipe's resize policy."""
        size, policy = tuple(size or self.recipe.input.size), self.recipe.input.resize
        key = (calib.sha256, size, policy)

        def batches():
            # decoded once per build: the int8 steps' statistics, the converter's calibration and
            # the accuracy-aware search of every artifact read the same images
            if key not in self._calibration_images:
                self._calibration_images[key] = [load_batch([s.path], size, policy) for s in calib.samples]
            for batch in self._calibration_images[key]:
                yield batch.copy()  # a consumer may write into its batch

        return batches

    def normalization_json(self) -> dict:
        if self.recipe.model.path is not None:
            return user_normalization(self.recipe.model.preprocess or self.recipe.model.architecture).to_json()
        return normalization(get_backbone(self.recipe.model.backbone).normalization).to_json()

    def preprocessing(self, index: DataIndex, input_size=None, artifact_sizes=None) -> dict:
        return preprocessing(self.task, index.info, input_size or self.recipe.input.size, self.recipe.input.resize,
                             self.normalization_json(), artifact_sizes)

    def environment(self) -> dict:
        if self._environment is None:
            self._environment = describe_environment()
        return self._environment

    # ---- per artifact and target ---------------------------------------------------------------
    def _publish(self, entry_dir: Path, out_dir: Path) -> None:
        """Copy an export entry's files (verified by the cache) into the staging folder."""
        for item in entry_dir.iterdir():
            if item.name in (".complete", "artifact.json", "not_built.json"):
                continue
            dest = out_dir / item.name
            try:
                shutil.copytree(item, dest) if item.is_dir() else shutil.copyfile(item, dest)
            except OSError as e:
                raise explain_write_error(dest, e) if is_write_error(e) else e

    def build_artifact(self, spec, target: Target, out_dir: Path, index: DataIndex, calib: CalibrationSet,
                       final_dir: Optional[Path] = None) -> ArtifactResult:
        """Build one artifact into `out_dir` (the staging folder that becomes `final_dir`)."""
        final_dir = final_dir or out_dir
        akeys = self.artifact_keys(target, spec)
        entry = {"name": spec.name, "format": spec.format, "precision": spec.precision, "status": "ok", "keys": akeys}
        exp_dir = export_stage.run(self, spec, target, akeys, index, calib, sidecar_dir=out_dir)
        self._publish(exp_dir, out_dir)
        if spec.passes:
            if self.cache.get("passes", akeys["passes"]) is None:  # damaged while its export was cached: recompute
                passes_stage.run(self, spec, akeys, index, calib)
            entry["passes"] = passes_stage.reports(self, akeys)
        if (exp_dir / "not_built.json").is_file():
            nb = json.loads((exp_dir / "not_built.json").read_text())
            if nb.get("prepared"):  # the exporter named its working folder; point at the published copy
                nb["how_to_finish"] = nb["how_to_finish"].replace(nb.pop("prepared_at", ""), str(final_dir / nb["prepared"]))
            nb.pop("prepared_at", None)
            return ArtifactResult(**{**entry, **nb, "status": "not_built"})
        meta = json.loads((exp_dir / "artifact.json").read_text())
        path = out_dir / meta["path"]
        # a pass may have changed the input size (backbone swap): validate at the model's own size
        input_size = meta.get("input_size") or list(self.recipe.input.size)
        entry.update({"path": meta["path"], "sha256": tree_sha256(path), "checks": meta["checks"],
                      "artifact_metadata": meta["metadata"], "input_size": list(input_size),
                      "quantization": (meta["metadata"].get("ptq") or {}).get("applied", [])})
        result = validate_stage.run(self, spec, target, akeys, path, meta["runtime_format"], index, input_size, entry)
        for name, why in ((meta["metadata"].get("ptq") or {}).get("not_applied") or {}).items():
            result.notes.append(f"int8 {name} not applied: {why}")
        postprocess = meta["metadata"].get("postprocess") or {}
        if postprocess.get("note"):  # what the format appended after the model (a detector's decode + NMS)
            result.notes.append(postprocess["note"])
        return result

    def build_target(self, target: Target, index: DataIndex, calib: CalibrationSet) -> TargetOutcome:
        """Build the target in a staging folder and swap it in whole; on any error the previous
        target folder stays as it was."""
        final = self.out_root / target.name
        staging = publish.start(self.out_root, target.name)
        try:
            outcome = self._build_target_into(staging, final, target, index, calib)
            publish.commit(staging, final)
        except BaseException:
            publish.discard(staging)
            raise
        return outcome

    def _build_target_into(self, out_dir: Path, final: Path, target: Target, index: DataIndex,
                           calib: CalibrationSet) -> TargetOutcome:
        write_sidecars(out_dir, self.task, index.info, self.preprocessing(index), calib,
                       relative_to=self.recipe.base_dir)
        entries: list[ArtifactResult] = []
        for spec in target.artifacts:
            t0 = time.perf_counter()
            with self.log_scope(target.name):
                entry = self._artifact_or_failure(spec, target, out_dir, index, calib, final)
            entry.seconds = time.perf_counter() - t0
            entries.append(entry)
        other_sizes = {e.name: e.input_size for e in entries
                       if e.input_size and tuple(e.input_size) != tuple(self.recipe.input.size)}
        if other_sizes:
            write_sidecars(out_dir, self.task, index.info, self.preprocessing(index, artifact_sizes=other_sizes))
        report = assemble.target_report(self, target, index, calib, entries)
        specs = {spec.name: spec for spec in target.artifacts}
        kept = carry_device_results(final / "report.json", report,
                                    lambda e: target.gates_for(specs[e.name], self.recipe.gates))
        if kept:
            self.console.print(f"  {target.name}: kept the device results of {', '.join(kept)} (the same files) "
                               "from the previous report")
        entries = list(report.artifacts)
        write_reports(out_dir, report)
        assemble.write_manifest(self, out_dir, target, entries)
        failed = [e for e in entries if e.status == "failed"]
        gate_fail = [g for e in entries for g in e.failed_gates]
        messages = [f"{e.name}: {e.error}" for e in failed] + [g.message for g in gate_fail]
        status = "failed" if failed else "gates_failed" if gate_fail and self.gates else "ok"
        log = final / "build.log" if self.native and failed else None
        return TargetOutcome(target.name, final / "report.json", status, messages, report, log)

    def _artifact_or_failure(self, spec, target: Target, out_dir: Path, index: DataIndex,
                             calib: CalibrationSet, final: Path) -> ArtifactResult:
        base = {"name": spec.name, "format": spec.format, "precision": spec.precision, "status": "failed"}
        try:
            entry = self.build_artifact(spec, target, out_dir, index, calib, final)
        except (StageFailed, OutputError):  # shared by every artifact, or the disk: the target stops
            raise
        except EdgecvError as e:
            entry = ArtifactResult(**base, error=str(e))
        except Exception as e:  # a converter or runtime bug: record it, keep building the others
            if is_write_error(e):
                raise explain_write_error(Path(e.filename or out_dir), e) from None
            entry = ArtifactResult(**base, error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=8))
        if entry.status == "failed" and self.native:
            entry.notes.append("the converters' and runtimes' own output is in build.log beside this report")
        return entry

    def run(self, wait_seconds: float = 0.0, held: Optional[BuildLock] = None) -> BuildResult:
        """`held`: the folder's lock, already taken by the caller (the command line takes it before
        opening build.log); otherwise the build takes it."""
        ensure_dir(self.out_root)
        with nullcontext() if held is not None and held.covers(self.out_root) else BuildLock(self.out_root, wait_seconds):
            publish.mark_build_folder(self.out_root)
            publish.check_build_links(self.out_root, [t.name for t in self.targets])  # before any training
            with self.log_scope():
                index = self._index = index_stage.run(self)
                self.index, self.info = index, index.info
                role = cluster_role()
                if role is not None and not role.is_chief:  # a training worker: train with the chief, then stop
                    self.model(index)
                    done = f"{role}: training done; the chief writes the model, artifacts and reports"
                    return BuildResult([TargetOutcome(t.name, None, "ok", [done]) for t in self.targets], self.stages)
                if index.info.get("labelled") is False:
                    check_untrainable_passes(self.targets, f"the images in {self.recipe.data.root or self.recipe.data.val} "
                                             "are unlabelled")
                calib = select_calibration(index, self.recipe.calibration, self.recipe.resolve,
                                           stratum=self.task.stratum)
            wanted = self.recipe.calibration.size
            if self.recipe.calibration.list is None and len(calib.samples) < wanted:
                self.console.print(f"[yellow]calibration: {len(calib.samples)} images, not calibration.size {wanted}: "
                                   "the training split has no more[/]")
            outcomes = []
            for target in self.targets:
                try:
                    outcomes.append(self.build_target(target, index, calib))
                except EdgecvError as e:
                    kept = "kept as it was" if (self.out_root / target.name).exists() else "not written"
                    outcomes.append(TargetOutcome(target.name, None, "failed", [f"{e} ({self.out_root / target.name} "
                                                                                f"{kept})"]))
            return BuildResult(outcomes, self.stages, self.cache.rejected)


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
