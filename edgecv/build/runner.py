"""Run a build: recipe + targets -> trained reference -> artifacts -> validation -> reports.

Stages share a content-addressed cache, so building several targets trains once and a rebuild
with nothing changed trains and converts nothing. One artifact or target failing is recorded in
its report and does not stop the others.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import numpy as np
from rich.console import Console

import edgecv
from edgecv.build.cache import StageCache, stable_hash
from edgecv.build.files import atomic_write_text, ensure_dir
from edgecv.config import Recipe, Target, load_recipe, load_target
from edgecv.data.calibration import CalibrationSet, select_calibration
from edgecv.data.images import PAD_VALUE, load_batch
from edgecv.data.index import DataIndex, build_index
from edgecv.errors import ConfigError, EdgecvError
from edgecv.report.environment import describe_environment, library_versions
from edgecv.report.table import print_summary
from edgecv.validate.comparator import compare_classification
from edgecv.validate.gates import check_gates
from edgecv.validate.latency import measure_latency

REPORT_SCHEMA_VERSION = 1
EVAL_BATCH = 32


@dataclass
class TargetOutcome:
    target: str
    report_path: Optional[Path]
    status: str  # ok | gates_failed | failed
    messages: list[str] = field(default_factory=list)


@dataclass
class BuildResult:
    outcomes: list[TargetOutcome]

    @property
    def exit_code(self) -> int:
        """0 ok; 1 a gate failed; 3 an artifact or target failed to build."""
        statuses = {o.status for o in self.outcomes}
        return 3 if "failed" in statuses else 1 if "gates_failed" in statuses else 0


def _training_key(recipe: Recipe, index: DataIndex) -> str:
    sections = recipe.model_dump(mode="json", include={"task", "input", "model", "augment", "train"})
    weights = recipe.model.weights
    if weights not in ("imagenet", "none"):  # a weights file: its bytes, not its path
        sections["model"]["weights"] = hashlib.sha256(recipe.resolve(weights).read_bytes()).hexdigest()
    versions = {k: v for k, v in library_versions().items() if k in ("edgecv", "tensorflow", "tf-keras")}
    return stable_hash({"stage": "train", "recipe": sections, "data": index.digest(), "versions": versions})


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
    def __init__(self, recipe: Recipe, targets: list[Target], out_root: Path, console: Console,
                 gates: bool = True, recipe_sha256: str = ""):
        self.recipe, self.targets, self.console, self.gates = recipe, targets, console, gates
        self.out_root = ensure_dir(Path(out_root))
        self.cache = StageCache(self.out_root / ".cache")
        self.recipe_sha256 = recipe_sha256
        self.environment = describe_environment()

    # ---- shared stages -------------------------------------------------------------------------
    def index(self) -> DataIndex:
        self.console.print(f"[bold]data[/]: indexing {self.recipe.data.root or self.recipe.data.train}")
        index = build_index(self.recipe.data, self.recipe.resolve)
        self.console.print(f"  {len(index.classes)} classes, {len(index.train)} train / {len(index.val)} val images"
                           + (f", [yellow]{len(index.skipped)} unreadable skipped[/]" if index.skipped else ""))
        return index

    def reference_model(self, index: DataIndex):
        from edgecv.models.build import TaskModel
        from edgecv.train.trainer import train

        key = _training_key(self.recipe, index)
        hit = self.cache.get("train", key)
        if hit is not None:
            self.console.print(f"[bold]train[/]: cached ({key[:12]})")
            return TaskModel.load(hit / "model"), json.loads((hit / "train.json").read_text()), key
        result = train(self.recipe, index, self.console)
        info = {"key": key, "seconds": result.seconds, "best_val_accuracy": result.best_val_accuracy,
                "history": result.history, "precision_policy": result.precision_policy, "strategy": result.strategy}
        with self.cache.put("train", key) as tmp:
            result.model.save(tmp / "model")
            (tmp / "train.json").write_text(json.dumps(info, indent=2))
        self.console.print(f"  trained in {result.seconds:.0f} s, best val accuracy {result.best_val_accuracy:.4f}")
        return result.model, info, key

    def eval_images(self, index: DataIndex) -> tuple[np.ndarray, np.ndarray]:
        images = load_batch([s.path for s in index.val], self.recipe.input.size, self.recipe.input.resize)
        return images, np.array([s.label for s in index.val])

    def reference_outputs(self, model, images: np.ndarray, train_key: str) -> np.ndarray:
        key = stable_hash({"stage": "reference", "train": train_key, "images": hashlib.sha256(images.tobytes()).hexdigest()})
        hit = self.cache.get("reference", key)
        if hit is not None:
            return np.load(hit / "reference.npz")["probabilities"]
        probs = model.keras_model.predict(images.astype(np.float32), batch_size=EVAL_BATCH, verbose=0)
        with self.cache.put("reference", key) as tmp:
            np.savez(tmp / "reference.npz", probabilities=probs)
        return probs

    # ---- per target ----------------------------------------------------------------------------
    def export(self, model, spec, out_dir: Path, calib: CalibrationSet, train_key: str, validation: Optional[dict] = None):
        from edgecv.exporters import ExportContext, get_exporter

        exporter = get_exporter(spec.format)()
        ctx = ExportContext(self.recipe.name, self._calibration_batches(calib), calib.sha256,
                            {"recipe_sha256": self.recipe_sha256, "edgecv_version": edgecv.__version__},
                            validation=validation)
        return exporter.export(model, spec, out_dir, ctx)

    def validate(self, artifact, images, labels, reference, target: Target) -> dict:
        from edgecv.runtimes import load_runtime

        with load_runtime(artifact.path, artifact.runtime_format, threads=target.runtime.threads,
                          **target.runtime.options) as rt:
            outs = [rt.predict(images[i:i + EVAL_BATCH])["probabilities"] for i in range(0, len(images), EVAL_BATCH)]
            probs = np.concatenate(outs)
            cmp = compare_classification(probs, labels, reference)
            latency = measure_latency(rt.predict, images[:16], batch=target.runtime.batch)
            return {"comparison": cmp.to_json(), "latency": latency.to_json(), "runtime": rt.describe(),
                    "load_seconds": rt.load_seconds}

    def apply_passes(self, model, spec, train_key: str, index, calib: CalibrationSet):
        """Run the artifact's pass chain (cached: same model, same chain, same result)."""
        from edgecv.models.build import TaskModel
        from edgecv.passes.base import PassContext, parse_pass_config

        if not spec.passes:
            return model, train_key, []
        key = stable_hash({"stage": "passes", "train": train_key, "passes": spec.passes,
                           "calibration": calib.sha256, "edgecv": edgecv.__version__})
        hit = self.cache.get("passes", key)
        if hit is not None:
            self.console.print(f"  passes {[p['name'] for p in spec.passes]}: cached ({key[:12]})")
            return TaskModel.load(hit / "model"), key, json.loads((hit / "passes.json").read_text())
        from edgecv.data.pipeline import augmentation, image_dataset

        r = self.recipe
        n_cls = len(index.classes)

        def train_ds(batch_size: int = r.train.batch_size, augment: bool = True):
            return image_dataset(index.train, r.input.size, r.input.resize, batch_size, n_cls, shuffle=True,
                                 augment=augmentation(r.augment, r.train.seed) if augment else None, seed=r.train.seed)

        def val_ds(batch_size: int = r.train.batch_size):
            return image_dataset(index.val, r.input.size, r.input.resize, batch_size, n_cls)

        reports = []
        current = model
        for raw in spec.passes:
            cls, cfg = parse_pass_config(raw)
            ctx = PassContext(r, index, train_ds, val_ds, calibration=self._calibration_batches(calib),
                              teacher=model, console=self.console)
            self.console.print(f"  pass [bold]{cls.name}[/]: {cfg.model_dump(exclude={'name'})}")
            current = cls().run(current, cfg, ctx)
            reports.append({"pass": cls.name, "config": cfg.model_dump(mode="json"), **ctx.report})
        with self.cache.put("passes", key) as tmp:
            current.save(tmp / "model")
            (tmp / "passes.json").write_text(json.dumps(reports, indent=2, default=float))
        return current, key, reports

    def _calibration_batches(self, calib: CalibrationSet):
        size, policy = self.recipe.input.size, self.recipe.input.resize

        def batches():
            for s in calib.samples:
                yield load_batch([s.path], size, policy)

        return batches

    def build_artifact(self, spec, target: Target, out_dir: Path, model, train_key, index, images, labels,
                       reference, calib) -> dict:
        from edgecv.exporters import NotBuiltHere
        from edgecv.runtimes import RuntimeUnavailable

        entry = {"name": spec.name, "format": spec.format, "precision": spec.precision, "status": "ok"}
        self.console.print(f"[bold]{target.name}[/]: building {spec.name} ({spec.format} {spec.precision})")
        model, model_key, pass_reports = self.apply_passes(model, spec, train_key, index, calib)
        if pass_reports:
            entry["passes"] = pass_reports
        try:
            artifact = self.export(model, spec, out_dir, calib, model_key,
                                   {"images": images, "labels": labels, "reference": reference})
        except NotBuiltHere as e:
            entry.update({"status": "not_built", "reason": e.reason, "how_to_finish": e.how_to_finish,
                          "prepared": str(e.prepared.relative_to(out_dir)) if e.prepared else None})
            return entry
        entry.update({"path": str(artifact.path.relative_to(out_dir)), "size_bytes": artifact.size_bytes,
                      "sha256": artifact.sha256(), "checks": artifact.checks, "artifact_metadata": artifact.metadata})
        try:
            v = self.validate(artifact, images, labels, reference, target)
        except RuntimeUnavailable as e:  # e.g. Core ML predicts on macOS only: structural checks only
            entry["validation"] = {"numeric": False, "reason": str(e)}
        else:
            cmp = v["comparison"]
            entry.update({"validation": {"numeric": True}, "metrics": cmp["metrics"],
                          "accuracy_delta": cmp["accuracy_delta"], "agreement": cmp["agreement"],
                          "nonfinite_outputs": cmp["nonfinite_outputs"], "latency": v["latency"],
                          "runtime": v["runtime"], "load_seconds": v["load_seconds"]})
        gate_limits = target.gates_for(spec).model_dump()
        entry["gates"] = [g.to_json() for g in check_gates(spec.name, entry, gate_limits)]
        return entry

    def build_target(self, target: Target, model, train_info, train_key, index, images, labels, reference, calib) -> TargetOutcome:
        out_dir = ensure_dir(self.out_root / target.name)
        write_sidecars(out_dir, model, self.recipe, calib)
        ref_metrics = compare_classification(reference, labels).metrics
        entries = []
        messages = []
        for spec in target.artifacts:
            t0 = time.perf_counter()
            try:
                entry = self.build_artifact(spec, target, out_dir, model, train_key, index, images, labels,
                                            reference, calib)
            except EdgecvError as e:
                entry = {"name": spec.name, "format": spec.format, "precision": spec.precision,
                         "status": "failed", "error": str(e)}
            except Exception as e:  # a converter or runtime bug: record it, keep building the others
                entry = {"name": spec.name, "format": spec.format, "precision": spec.precision,
                         "status": "failed", "error": f"{type(e).__name__}: {e}",
                         "traceback": traceback.format_exc(limit=8)}
            entry["seconds"] = time.perf_counter() - t0
            entries.append(entry)
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
            "training": {k: v for k, v in train_info.items() if k != "history"} | {"history": train_info.get("history", [])},
            "reference": {"format": "keras", "accuracy": ref_metrics.accuracy, "top5_accuracy": ref_metrics.top5_accuracy,
                          "per_class_recall": ref_metrics.per_class_recall},
            "environment": self.environment,
            "gates_enforced": self.gates,
            "artifacts": entries,
        }
        atomic_write_text(out_dir / "report.json", json.dumps(report, indent=2, default=float) + "\n")
        print_summary(report, self.console)
        failed = [e for e in entries if e["status"] == "failed"]
        gate_fail = [g for e in entries for g in e.get("gates", []) if g["passed"] is False]
        messages += [f"{e['name']}: {e['error']}" for e in failed] + [g["message"] for g in gate_fail]
        status = "failed" if failed else "gates_failed" if gate_fail and self.gates else "ok"
        return TargetOutcome(target.name, out_dir / "report.json", status, messages)

    def run(self) -> BuildResult:
        index = self.index()
        model, train_info, train_key = self.reference_model(index)
        images, labels = self.eval_images(index)
        reference = self.reference_outputs(model, images, train_key)
        calib = select_calibration(index, self.recipe.calibration, self.recipe.resolve)
        outcomes = []
        for target in self.targets:
            try:
                outcomes.append(self.build_target(target, model, train_info, train_key, index, images, labels, reference, calib))
            except EdgecvError as e:
                outcomes.append(TargetOutcome(target.name, None, "failed", [str(e)]))
        return BuildResult(outcomes)


def write_sidecars(out_dir: Path, model, recipe: Recipe, calib: CalibrationSet) -> None:
    """labels.txt, preprocessing.json and the calibration list: what an app needs beside the model."""
    atomic_write_text(out_dir / "labels.txt", "".join(f"{c}\n" for c in model.class_names))
    pre = {
        "input": {"color": "RGB", "layout": "NHWC", "height": model.input_size[0], "width": model.input_size[1]},
        "pixel_contract": {"uint8": "pixel value 0..255", "int8": "pixel value - 128", "float32": "pixel value 0.0..255.0"},
        "resize": recipe.input.resize, "interpolation": "bilinear", "pad_value": PAD_VALUE,
        "normalization_inside_model": model.normalization.to_json(),
        "outputs": {"probabilities": f"float32[N,{model.num_classes}] softmax; index i is line i of labels.txt"},
    }
    atomic_write_text(out_dir / "preprocessing.json", json.dumps(pre, indent=2) + "\n")
    calib.write(out_dir, relative_to=recipe.base_dir)


def run_build(recipe_path: Path, target_names: list[str], out_root: Path, overrides=(), console: Optional[Console] = None,
              gates: bool = True) -> BuildResult:
    console = console or Console(stderr=True)
    recipe = load_recipe(recipe_path, overrides)
    targets = [load_target(t, recipe.base_dir) for t in target_names]
    check_plan(targets)
    recipe_sha = hashlib.sha256(Path(recipe_path).read_bytes() + "\n".join(overrides).encode()).hexdigest()
    return Build(recipe, targets, out_root, console, gates=gates, recipe_sha256=recipe_sha).run()
