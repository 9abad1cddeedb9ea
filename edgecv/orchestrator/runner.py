"""Run a build: recipe + targets -> data index -> train -> passes -> export -> validate -> reports.

Every stage is content-addressed (see `keys.py`): a stage whose key is in the cache is not run
again, so several targets train once and a rebuild with nothing changed runs no training, no
conversion and no measurement, and does not even import TensorFlow. Entries are written
atomically, so a build killed at any point resumes from its last complete stage. One artifact or
target failing is recorded in its report and does not stop the others.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import numpy as np
from rich.console import Console

import edgecv
from edgecv.orchestrator import keys
from edgecv.orchestrator.cache import StageCache
from edgecv.files import atomic_path, atomic_write_bytes, atomic_write_text, ensure_dir, tree_sha256
from edgecv.orchestrator.lock import BuildLock
from edgecv.config import Recipe, Target, load_recipe, load_target
from edgecv.data.calibration import CalibrationSet, select_calibration
from edgecv.data.images import PAD_VALUE, load_batch
from edgecv.data.index import DataIndex, build_index
from edgecv.errors import ConfigError, EdgecvError
from edgecv.models.backbones import get_backbone, normalization
from edgecv.models.check import check_model_config
from edgecv.report.environment import describe_environment
from edgecv.report.outputs import write_reports
from edgecv.report.table import print_summary
from edgecv.validate.comparator import compare_classification
from edgecv.validate.gates import check_gates

REPORT_SCHEMA_VERSION = 1
STAGES = ("index", "train", "reference", "passes", "export", "validate")


@dataclass
class StageRecord:
    stage: str
    key: str
    hit: bool
    seconds: float = 0.0
    target: Optional[str] = None
    artifact: Optional[str] = None


@dataclass
class TargetOutcome:
    target: str
    report_path: Optional[Path]
    status: str  # ok | gates_failed | failed
    messages: list[str] = field(default_factory=list)


@dataclass
class BuildResult:
    outcomes: list[TargetOutcome]
    stages: list[StageRecord] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 ok; 1 a gate failed; 3 an artifact or target failed to build."""
        statuses = {o.status for o in self.outcomes}
        return 3 if "failed" in statuses else 1 if "gates_failed" in statuses else 0

    def ran(self, stage: str) -> list[StageRecord]:
        return [s for s in self.stages if s.stage == stage and not s.hit]


def check_plan(targets: list[Target]) -> None:
    """Reject unknown formats, precisions and passes before any training starts."""
    from edgecv.exporters import get_exporter
    from edgecv.passes.base import parse_pass_config

    problems = []
    for t in targets:
        for a in t.artifacts:
            try:
                exp = get_exporter(a.format)
            except KeyError as e:
                problems.append(f"target {t.name}, artifact {a.name}: {e.args[0]}")
                continue
            if a.precision not in exp.precisions:
                problems.append(f"target {t.name}, artifact {a.name}: format {a.format} supports precision "
                                f"{', '.join(exp.precisions)}, not {a.precision}")
            try:  # the spec as the exporter will be held to it: with its effective gates
                exp.check_spec(a.model_copy(update={"gates": t.gates_for(a)}))
            except ConfigError as e:
                problems.append(f"target {t.name}, artifact {a.name}: {e}")
            for i, raw in enumerate(a.passes):
                try:
                    cls, _ = parse_pass_config(raw)
                except (KeyError, ValueError) as e:  # pydantic's ValidationError is a ValueError
                    msg = e.args[0] if isinstance(e, KeyError) else str(e)
                    problems.append(f"target {t.name}, artifact {a.name}, passes[{i}]: {msg}")
                    continue
                if a.precision not in cls.precisions:
                    problems.append(f"target {t.name}, artifact {a.name}: pass {cls.name} suits precision "
                                    f"{', '.join(cls.precisions)}, not {a.precision}")
    if problems:
        raise ConfigError("the plan cannot be built:\n  - " + "\n  - ".join(problems))


class Build:
    def __init__(self, recipe: Recipe, targets: list[Target], out_root: Path, console: Console, *,
                 gates: bool = True, recipe_sha256: str = "", force: frozenset = frozenset(),
                 regen_reference: bool = False):
        self.recipe, self.targets, self.console, self.gates = recipe, targets, console, gates
        self.out_root = Path(out_root)
        self.cache = StageCache(self.out_root / ".cache")
        self.recipe_sha256 = recipe_sha256
        self.force = set(force) | ({"reference"} if regen_reference else set())
        unknown = self.force - set(STAGES) - {"all"}
        if unknown:
            raise ConfigError(f"--force {', '.join(sorted(unknown))}: stages are {', '.join(STAGES)} or all")
        self.stages: list[StageRecord] = []
        self._model = None
        self._models: dict[str, object] = {}
        self._eval: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._reference: Optional[np.ndarray] = None
        self._environment: Optional[dict] = None
        # keys: computed from cheap facts, no work done
        self.index_key = keys.index_key(recipe)
        self.train_key = keys.train_key(recipe, self.index_key)
        self.calib_key = keys.calibration_key(recipe, self.index_key)
        self.ref_key = keys.reference_key(recipe, self.train_key, self.index_key)

    # ---- plan ----------------------------------------------------------------------------------
    def _hit(self, stage: str, key: str) -> Optional[Path]:
        if stage in self.force or "all" in self.force:
            return None
        return self.cache.get(stage, key)

    def artifact_keys(self, target: Target, spec) -> dict:
        model_key = self.train_key
        out = {}
        if spec.passes:
            model_key = out["passes"] = keys.passes_key(self.train_key, spec.passes, self.calib_key,
                                                                 self.recipe.resolve)
        searched = None
        if "accuracy_aware" in spec.options:  # the export itself is validated against the gates
            searched = {"gates": target.gates_for(spec).model_dump(mode="json"), "reference": self.ref_key,
                        "runtime": target.runtime.model_dump(mode="json")}
        out["export"] = keys.export_key(model_key, spec, self.calib_key, self.recipe.name, searched)
        out["validate"] = keys.validate_key(out["export"], self.ref_key, target.runtime.model_dump(mode="json"))
        return out

    def plan(self) -> list[StageRecord]:
        rows = [StageRecord(s, k, self._hit(s, k) is not None) for s, k in
                (("index", self.index_key), ("train", self.train_key), ("reference", self.ref_key))]
        for t in self.targets:
            for spec in t.artifacts:
                for stage, key in self.artifact_keys(t, spec).items():
                    rows.append(StageRecord(stage, key, self._hit(stage, key) is not None, target=t.name, artifact=spec.name))
        return rows

    # ---- shared stages -------------------------------------------------------------------------
    def _record(self, stage, key, hit, t0, target=None, artifact=None):
        self.stages.append(StageRecord(stage, key, hit, time.perf_counter() - t0, target, artifact))

    def index(self) -> DataIndex:
        t0 = time.perf_counter()
        hit = self._hit("index", self.index_key)
        if hit is not None:
            index = DataIndex.from_json(json.loads((hit / "index.json").read_text()))
        else:
            self.console.print(f"[bold]data[/]: indexing {self.recipe.data.root or self.recipe.data.train}")
            index = build_index(self.recipe.data, self.recipe.resolve)
            with self.cache.put("index", self.index_key) as tmp:
                (tmp / "index.json").write_text(json.dumps(index.to_json()))
        self._record("index", self.index_key, hit is not None, t0)
        self.console.print(f"[bold]data[/]: {len(index.classes)} classes, {len(index.train)} train / {len(index.val)} val"
                           + (f", [yellow]{len(index.skipped)} unreadable skipped[/]" if index.skipped else "")
                           + (" (cached)" if hit is not None else ""))
        return index

    def train_info(self) -> dict:
        hit = self.cache.get("train", self.train_key)
        return json.loads((hit / "train.json").read_text()) if hit else {}

    def model(self, index: DataIndex):
        """The reference model: from the cache, or trained now (only when something needs it)."""
        if self._model is not None:
            return self._model
        from edgecv.models.build import TaskModel

        t0 = time.perf_counter()
        hit = self._hit("train", self.train_key)
        if hit is not None:
            self._model = TaskModel.load(hit / "model")
        else:
            from edgecv.train.trainer import train

            result = train(self.recipe, index, self.console)
            info = {"key": self.train_key, "seconds": result.seconds, "best_val_accuracy": result.best_val_accuracy,
                    "history": result.history, "precision_policy": result.precision_policy, "strategy": result.strategy}
            with self.cache.put("train", self.train_key) as tmp:
                result.model.save(tmp / "model")
                (tmp / "train.json").write_text(json.dumps(info, indent=2))
            self.console.print(f"  trained in {result.seconds:.0f} s, best val accuracy {result.best_val_accuracy:.4f}")
            self._model = result.model
        self._record("train", self.train_key, hit is not None, t0)
        return self._model

    def eval_set(self, index: DataIndex, size=None) -> tuple[np.ndarray, np.ndarray]:
        """The validation images decoded at `size` (default the recipe's input size) by the recipe's
        resize policy, and their labels. A pass may change a model's input size (backbone swap):
        its artifacts see the same images at their own size, compared with the same reference."""
        size = tuple(size or self.recipe.input.size)
        if size not in self._eval:
            images = load_batch([s.path for s in index.val], size, self.recipe.input.resize)
            self._eval[size] = images, np.array([s.label for s in index.val])
        return self._eval[size]

    def reference(self, index: DataIndex) -> np.ndarray:
        """The float model's outputs on the evaluation split: computed once, reused by every artifact."""
        if self._reference is not None:
            return self._reference
        t0 = time.perf_counter()
        hit = self._hit("reference", self.ref_key)
        was_hit = hit is not None
        if hit is None:
            images, labels = self.eval_set(index)
            probs = self.model(index).keras_model.predict(images.astype(np.float32), batch_size=32, verbose=0)
            with self.cache.put("reference", self.ref_key) as tmp:
                np.savez(tmp / "reference.npz", probabilities=probs, labels=labels)
            hit = self.cache.get("reference", self.ref_key)
        data = np.load(hit / "reference.npz")
        self._reference = data["probabilities"]
        self._ref_labels = data["labels"]
        self._record("reference", self.ref_key, was_hit, t0)
        ensure_dir(self.out_root)
        raw = (hit / "reference.npz").read_bytes()
        atomic_write_bytes(self.out_root / "reference.npz", raw)
        self.reference_sha256 = hashlib.sha256(raw).hexdigest()
        return self._reference

    def calibration_batches(self, calib: CalibrationSet, size=None):
        """Calibration images at `size` (default the recipe's input size) by the recipe's resize policy."""
        size, policy = tuple(size or self.recipe.input.size), self.recipe.input.resize

        def batches():
            for s in calib.samples:
                yield load_batch([s.path], size, policy)

        return batches

    # ---- per artifact --------------------------------------------------------------------------
    def model_for(self, spec, akeys: dict, index: DataIndex, calib: CalibrationSet):
        """The model an artifact is exported from: the reference, or the result of its passes."""
        base = self.model(index)
        if not spec.passes:
            return base
        from edgecv.models.build import TaskModel
        from edgecv.passes.base import make_context, parse_pass_config

        key = akeys["passes"]
        if key in self._models:
            return self._models[key]
        t0 = time.perf_counter()
        hit = self._hit("passes", key)
        if hit is not None:
            model = TaskModel.load(hit / "model")
        else:
            reports, model = [], base
            for raw in spec.passes:
                cls, cfg = parse_pass_config(raw)
                ctx = make_context(self.recipe, index, calibration=self.calibration_batches(calib),
                                   teacher=base, console=self.console)
                self.console.print(f"  pass [bold]{cls.name}[/]: {cfg.model_dump(exclude={'name'})}")
                model = cls().run(model, cfg, ctx)
                reports.append({"pass": cls.name, "config": cfg.model_dump(mode="json"), **ctx.report})
            with self.cache.put("passes", key) as tmp:
                model.save(tmp / "model")
                (tmp / "passes.json").write_text(json.dumps(reports, indent=2, default=float))
        self._record("passes", key, hit is not None, t0, artifact=spec.name)
        self._models[key] = model
        return model

    def export(self, spec, target: Target, akeys: dict, index: DataIndex, calib: CalibrationSet) -> Path:
        """The export stage's cache entry: artifact files plus artifact.json (or not_built.json)."""
        from edgecv.exporters import ExportContext, NotBuiltHere, get_exporter

        key = akeys["export"]
        t0 = time.perf_counter()
        hit = self._hit("export", key)
        was_hit = hit is not None
        if hit is None:
            model = self.model_for(spec, akeys, index, calib)
            self.console.print(f"[bold]{target.name}[/]: exporting {spec.name} ({spec.format} {spec.precision})")
            images, labels = self.eval_set(index, model.input_size)
            ctx = ExportContext(self.recipe.name, self.calibration_batches(calib, model.input_size), calib.sha256,
                                {"recipe_sha256": self.recipe_sha256, "edgecv_version": edgecv.__version__,
                                 "class_names": model.class_names},
                                validation={"images": images, "labels": labels, "reference": self.reference(index)},
                                sidecar_dir=self.out_root / target.name,
                                evaluate=self.candidate_evaluator(spec, target, images, labels, self.reference(index)),
                                log=lambda m: self.console.print(f"    {m}"))
            with self.cache.put("export", key) as tmp:
                try:
                    art = get_exporter(spec.format)().export(model, spec, tmp, ctx)
                except NotBuiltHere as e:
                    prepared = None
                    if e.prepared is not None and Path(e.prepared).exists():
                        prepared = Path(e.prepared).relative_to(tmp).as_posix()
                    (tmp / "not_built.json").write_text(json.dumps(
                        {"reason": e.reason, "how_to_finish": e.how_to_finish, "prepared": prepared,
                         "prepared_at": str(e.prepared) if e.prepared else ""}))
                else:
                    meta = {"name": art.name, "format": art.format, "precision": art.precision,
                            "path": art.path.relative_to(tmp).as_posix(), "runtime_format": art.runtime_format,
                            "checks": art.checks, "metadata": art.metadata, "input_size": list(model.input_size)}
                    (tmp / "artifact.json").write_text(json.dumps(meta, indent=2, default=float))
            hit = self.cache.get("export", key)
        self._record("export", key, was_hit, t0, target.name, spec.name)
        return hit

    def candidate_evaluator(self, spec, target: Target, images: np.ndarray, labels: np.ndarray, reference: np.ndarray):
        """What an exporter that searches (accuracy-aware int8) calls on each candidate file: the
        build's own validation (images, runtime settings, comparator), checked against the
        artifact's accuracy gates only."""
        from edgecv.exporters.accuracy_aware import ACCURACY_GATES

        limits = {k: v for k, v in target.gates_for(spec).model_dump().items() if k in ACCURACY_GATES}

        def evaluate(path: Path, latency: bool = False) -> dict:
            from edgecv.runtimes import load_runtime
            from edgecv.validate.latency import measure_latency
            from edgecv.validate.measure import predict_all

            with load_runtime(path, None, threads=target.runtime.threads, **target.runtime.options) as rt:
                cmp = compare_classification(predict_all(rt, images), labels, reference).to_json()
                lat = measure_latency(rt.predict, images[:16], batch=1) if latency else None
            gates = check_gates(spec.name, {"metrics": cmp["metrics"], "accuracy_delta": cmp["accuracy_delta"],
                                            "agreement": cmp["agreement"]}, limits)
            return {"passed": all(g.passed for g in gates), "accuracy": cmp["metrics"]["accuracy"],
                    "accuracy_delta": cmp["accuracy_delta"], "top1_agreement": cmp["agreement"]["top1_agreement"],
                    "gates": [g.message for g in gates], "latency_p50_ms": lat.p50_ms if lat else None}

        return evaluate

    def _publish(self, entry_dir: Path, out_dir: Path) -> None:
        """Copy an export entry's files into the target folder (atomically, skipping bookkeeping)."""
        for item in entry_dir.iterdir():
            if item.name in (".complete", "artifact.json", "not_built.json"):
                continue
            dest = out_dir / item.name
            if item.is_dir():
                with atomic_path(dest, is_dir=True) as tmp:
                    shutil.copytree(item, tmp)
            else:
                with atomic_path(dest) as tmp:
                    shutil.copyfile(item, tmp)

    def validate(self, spec, target: Target, akeys: dict, artifact_path: Path, runtime_format: str,
                 index: DataIndex, input_size=None) -> dict:
        from edgecv.runtimes import RuntimeUnavailable
        from edgecv.validate.measure import measure_artifact

        key = akeys["validate"]
        t0 = time.perf_counter()
        hit = self._hit("validate", key)
        if hit is not None:
            result = json.loads((hit / "validation.json").read_text())
        else:
            images, labels = self.eval_set(index, input_size)
            reference = self.reference(index)
            try:
                m = measure_artifact(artifact_path, runtime_format, images, target.runtime.threads,
                                     target.runtime.batches, target.runtime.options)
            except RuntimeUnavailable as e:  # e.g. Core ML predicts on macOS only: structural checks only
                result = {"validation": {"numeric": False, "reason": str(e)}}
            else:
                scores = m.pop("_scores")
                cmp = compare_classification(scores, labels, reference).to_json()
                result = {"validation": {"numeric": True}, "metrics": cmp["metrics"],
                          "accuracy_delta": cmp["accuracy_delta"], "agreement": cmp["agreement"],
                          "nonfinite_outputs": cmp["nonfinite_outputs"], "notes": cmp["notes"], **m}
            with self.cache.put("validate", key) as tmp:
                (tmp / "validation.json").write_text(json.dumps(result, default=float))
        self._record("validate", key, hit is not None, t0, target.name, spec.name)
        return result

    def build_artifact(self, spec, target: Target, out_dir: Path, index: DataIndex, calib: CalibrationSet) -> dict:
        entry = {"name": spec.name, "format": spec.format, "precision": spec.precision, "status": "ok"}
        akeys = self.artifact_keys(target, spec)
        entry["keys"] = akeys
        exp_dir = self.export(spec, target, akeys, index, calib)
        self._publish(exp_dir, out_dir)
        if spec.passes:
            phit = self.cache.get("passes", akeys["passes"])
            entry["passes"] = json.loads((phit / "passes.json").read_text()) if phit else []
        if (exp_dir / "not_built.json").is_file():
            nb = json.loads((exp_dir / "not_built.json").read_text())
            if nb.get("prepared"):  # the exporter named its working folder; point at the published copy
                nb["how_to_finish"] = nb["how_to_finish"].replace(nb.pop("prepared_at", ""), str(out_dir / nb["prepared"]))
            entry.update({"status": "not_built", **nb})
            return entry
        meta = json.loads((exp_dir / "artifact.json").read_text())
        path = out_dir / meta["path"]
        entry.update({"path": meta["path"], "sha256": tree_sha256(path), "checks": meta["checks"],
                      "artifact_metadata": meta["metadata"]})
        # a pass may have changed the input size (backbone swap): validate at the model's own size
        input_size = meta.get("input_size") or list(self.recipe.input.size)
        entry["input_size"] = list(input_size)
        entry.update(self.validate(spec, target, akeys, path, meta["runtime_format"], index, input_size))
        if "size_bytes" not in entry:
            from edgecv.validate.measure import sizes

            entry.update(sizes(path))
        gate_limits = target.gates_for(spec).model_dump()
        entry["gates"] = [g.to_json() for g in check_gates(spec.name, entry, gate_limits)]
        return entry

    def build_target(self, target: Target, index: DataIndex, calib: CalibrationSet) -> TargetOutcome:
        out_dir = ensure_dir(self.out_root / target.name)
        write_sidecars(out_dir, index.classes, self.recipe, calib, self._normalization_json(index))
        entries = []
        for spec in target.artifacts:
            t0 = time.perf_counter()
            try:
                entry = self.build_artifact(spec, target, out_dir, index, calib)
            except EdgecvError as e:
                entry = {"name": spec.name, "format": spec.format, "precision": spec.precision,
                         "status": "failed", "error": str(e)}
            except Exception as e:  # a converter or runtime bug: record it, keep building the others
                entry = {"name": spec.name, "format": spec.format, "precision": spec.precision,
                         "status": "failed", "error": f"{type(e).__name__}: {e}",
                         "traceback": traceback.format_exc(limit=8)}
            entry["seconds"] = time.perf_counter() - t0
            entries.append(entry)
        other_sizes = {e["name"]: e["input_size"] for e in entries
                       if e.get("input_size") and tuple(e["input_size"]) != tuple(self.recipe.input.size)}
        if other_sizes:
            write_preprocessing(out_dir, index.classes, self.recipe, self._normalization_json(index), other_sizes)
        reference = self.reference(index)
        ref_m = compare_classification(reference, self._ref_labels).metrics
        report = {
            "schema_version": REPORT_SCHEMA_VERSION,
            "edgecv_version": edgecv.__version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "target": target.model_dump(mode="json"),
            "recipe": {"name": self.recipe.name, "sha256": self.recipe_sha256, "task": self.recipe.task},
            "data": {"classes": index.classes, "train_count": len(index.train), "val_count": len(index.val),
                     "skipped": [{"path": s.path, "reason": s.reason} for s in index.skipped]},
            "calibration": {"size": len(calib.samples), "seed": calib.seed, "source": calib.source,
                            "sha256": calib.sha256, "file_list": "calibration.txt"},
            "training": self.train_info(),
            "reference": {"format": "keras", "file": "../reference.npz", "sha256": self.reference_sha256,
                          "accuracy": ref_m.accuracy, "top5_accuracy": ref_m.top5_accuracy,
                          "per_class_recall": ref_m.per_class_recall},
            "environment": self.environment(),
            "gates_enforced": self.gates,
            "artifacts": entries,
            "stages": [asdict(s) for s in self.stages if s.target in (None, target.name)],
        }
        write_reports(out_dir, report)
        self.write_manifest(out_dir, target, entries)
        print_summary(report, self.console)
        failed = [e for e in entries if e["status"] == "failed"]
        gate_fail = [g for e in entries for g in e.get("gates", []) if g["passed"] is False]
        messages = [f"{e['name']}: {e['error']}" for e in failed] + [g["message"] for g in gate_fail]
        status = "failed" if failed else "gates_failed" if gate_fail and self.gates else "ok"
        return TargetOutcome(target.name, out_dir / "report.json", status, messages)

    def _normalization_json(self, index: DataIndex) -> dict:
        return normalization(get_backbone(self.recipe.model.backbone).normalization).to_json()

    def environment(self) -> dict:
        if self._environment is None:
            self._environment = describe_environment()
        return self._environment

    def write_manifest(self, out_dir: Path, target: Target, entries: list[dict]) -> None:
        arts = []
        for e in entries:
            if e.get("path"):
                arts.append({"name": e["name"], "path": e["path"], "sha256": e.get("sha256"),
                             "size_bytes": e.get("size_bytes"), "stage": "export", "key": e["keys"]["export"],
                             "made_from": e["keys"].get("passes", self.train_key)})
        manifest = {"schema_version": 1, "target": target.name, "recipe_sha256": self.recipe_sha256,
                    "recipe_dir": str(self.recipe.base_dir), "model_name": self.recipe.name,
                    "input": {"size": list(self.recipe.input.size), "resize": self.recipe.input.resize},
                    "stage_keys": {"index": self.index_key, "train": self.train_key, "reference": self.ref_key,
                                   "calibration": self.calib_key},
                    "artifacts": arts, "libraries": self.environment()["libraries"],
                    "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        atomic_write_text(out_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")

    def run(self, wait_seconds: float = 0.0) -> BuildResult:
        ensure_dir(self.out_root)
        with BuildLock(self.out_root, wait_seconds):
            index = self.index()
            calib = select_calibration(index, self.recipe.calibration, self.recipe.resolve)
            outcomes = []
            for target in self.targets:
                try:
                    outcomes.append(self.build_target(target, index, calib))
                except EdgecvError as e:
                    outcomes.append(TargetOutcome(target.name, None, "failed", [str(e)]))
            return BuildResult(outcomes, self.stages)


def write_sidecars(out_dir: Path, class_names: list[str], recipe: Recipe, calib: CalibrationSet, normalization: dict) -> None:
    """labels.txt, preprocessing.json and the calibration list: what an app needs beside the model."""
    atomic_write_text(out_dir / "labels.txt", "".join(f"{c}\n" for c in class_names))
    write_preprocessing(out_dir, class_names, recipe, normalization)
    calib.write(out_dir, relative_to=recipe.base_dir)


def write_preprocessing(out_dir: Path, class_names: list[str], recipe: Recipe, normalization: dict,
                        artifact_sizes: Optional[dict] = None) -> None:
    """preprocessing.json; `artifact_sizes` names artifacts whose input size differs (a swapped backbone)."""
    h, w = recipe.input.size
    pre = {
        "input": {"color": "RGB", "layout": "NHWC", "height": h, "width": w},
        "pixel_contract": {"uint8": "pixel value 0..255", "int8": "pixel value - 128", "float32": "pixel value 0.0..255.0"},
        "resize": recipe.input.resize, "interpolation": "bilinear", "pad_value": PAD_VALUE,
        "normalization_inside_model": normalization,
        "outputs": {"probabilities": f"float32[N,{len(class_names)}] softmax; index i is line i of labels.txt"},
    }
    if artifact_sizes:
        pre["artifact_input_sizes"] = {name: {"height": s[0], "width": s[1]} for name, s in artifact_sizes.items()}
    atomic_write_text(out_dir / "preprocessing.json", json.dumps(pre, indent=2) + "\n")


def load_build(recipe_path: Path, target_names: list[str], out_root: Path, overrides=(),
               console: Optional[Console] = None, **kw) -> Build:
    console = console or Console(stderr=True)
    recipe = load_recipe(recipe_path, overrides)
    targets = [load_target(t, recipe.base_dir) for t in target_names]
    check_plan(targets)
    check_model_config(recipe)
    recipe_sha = hashlib.sha256(Path(recipe_path).read_bytes() + "\n".join(overrides).encode()).hexdigest()
    return Build(recipe, targets, out_root, console, recipe_sha256=recipe_sha, **kw)


def run_build(recipe_path: Path, target_names: list[str], out_root: Path, overrides=(), console: Optional[Console] = None,
              gates: bool = True, force=frozenset(), regen_reference: bool = False, wait_seconds: float = 0.0) -> BuildResult:
    build = load_build(recipe_path, target_names, out_root, overrides, console, gates=gates, force=frozenset(force),
                       regen_reference=regen_reference)
    return build.run(wait_seconds)
