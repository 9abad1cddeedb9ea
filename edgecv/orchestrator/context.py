"""What every step of a build shares that is not another step's output: the recipe and task, the
cache and the forced stages, the console and logs, the stage records, and images decoded once per
build (the evaluation images at each input size, the calibration batches)."""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import numpy as np
from rich.console import Console

from edgecv.config.target import effective_gates
from edgecv.data.calibration import CalibrationSet
from edgecv.data.images import load_batch
from edgecv.data.index import DataIndex
from edgecv.environment import describe_environment
from edgecv.models.backbones import get_backbone, normalization
from edgecv.models.preprocess import user_normalization
from edgecv.orchestrator import publish
from edgecv.orchestrator.cache import StageCache
from edgecv.orchestrator.plan import StageRecord
from edgecv.progress import steps as progress_steps
from edgecv.sidecars import preprocessing
from edgecv.terminal import NativeOutput


class StageContext:
    def __init__(self, recipe, out_root: Path, console: Console, *, force: frozenset, gates: bool = True,
                 recipe_sha256: str = "", native: Optional[NativeOutput] = None):
        self.recipe, self.console, self.gates, self.recipe_sha256 = recipe, console, gates, recipe_sha256
        self.task = recipe.make_task()
        self.out_root = Path(out_root)
        self.native = native  # where converters' own output goes (None: wherever fds 1 and 2 point)
        self.steps = progress_steps(console)
        self.cache = StageCache(self.out_root / ".cache", log=lambda m: console.print(f"[yellow]{m}[/]"))
        self.force = force
        self.stages: list[StageRecord] = []
        self._eval: dict[tuple, tuple[np.ndarray, object]] = {}
        self._calibration_images: dict[tuple, list] = {}  # (set, size, policy) -> decoded 1xHxWx3 batches
        self._environment: Optional[dict] = None

    # ---- the cache and the records -------------------------------------------------------------
    def forced(self, stage: str) -> bool:
        return stage in self.force or "all" in self.force

    def hit(self, stage: str, key: str) -> Optional[Path]:
        """The stage's entry unless the stage is forced (--force) or the entry is missing or damaged."""
        return None if self.forced(stage) else self.cache.get(stage, key)

    def record(self, stage, key, hit, t0, target=None, artifact=None):
        self.stages.append(StageRecord(stage, key, hit, time.perf_counter() - t0, target, artifact))

    # ---- output --------------------------------------------------------------------------------
    def log_path(self, target: Optional[str] = None) -> Path:
        """The log of native output: `<out>/build.log` for shared stages, `<out>/<target>/build.log`
        (written in the target's staging folder while it is built, so it swaps in with the rest)."""
        if target is None:
            return self.out_root / "build.log"
        return publish.staging_path(self.out_root, target) / "build.log"

    def log_scope(self, target: Optional[str] = None):
        """Converters' and TensorFlow's output inside the block goes to that log."""
        return self.native.scope(self.log_path(target)) if self.native else nullcontext()

    # ---- images decoded once per build ---------------------------------------------------------
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

    # ---- facts of the recipe and this machine --------------------------------------------------
    def gates_for(self, target, spec=None):
        """The artifact's effective gates (the task's defaults in the recipe, the target's, its own)."""
        return effective_gates(self.recipe.gates, target, spec)

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
