"""The reference stage: the float model's named outputs on the validation split, computed once
and compared with every artifact. Stored as `<out>/reference.npz`: one array per output
(`output:<name>`) plus the targets when the task has them."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from edgecv.files import atomic_write_bytes, ensure_dir
from edgecv.validate.intervals import as_stored

PREFIX = "output:"


def save(path, outputs: dict, targets) -> None:
    arrays = {PREFIX + k: np.asarray(v) for k, v in outputs.items()}
    if targets is not None and not isinstance(targets, list):  # a list: per-image boxes (detection), ragged
        arrays["targets"] = np.asarray(targets)
    np.savez(path, **arrays)


def load(path) -> tuple[dict, object]:
    data = np.load(path, allow_pickle=False)
    outputs = {k[len(PREFIX):]: data[k] for k in data.files if k.startswith(PREFIX)}
    return outputs, (data["targets"] if "targets" in data.files else None)


def predict_in_chunks(model, images, progress, chunk: int = 256) -> dict:
    """The float model's named outputs, a few batches at a time so that progress can move."""
    parts = []
    for i in range(0, len(images), chunk):
        parts.append(model.predict(images[i:i + chunk]))
        progress(min(i + chunk, len(images)) / len(images))
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


@dataclass
class Reference:
    """The float model's outputs on the evaluated samples and the sha256 of reference.npz."""
    outputs: dict
    sha256: str
    _scores: Optional[dict] = field(default=None, repr=False)

    def scores(self, task, index) -> dict:
        """The float model's per-sample scores on the evaluated samples (paired intervals and the
        report's reference); targets only, no image is decoded."""
        if self._scores is None:
            samples = task.eval_samples(index)
            targets = task.targets(samples, index.info) if task.needs_targets else None
            self._scores = {} if targets is None else as_stored(task.sample_scores(
                task.select_outputs(self.outputs, index.info), targets, index.info))
        return self._scores


def run(ctx, step, inputs) -> Reference:
    t0 = time.perf_counter()
    key = step.key
    hit = ctx.hit("reference", key)
    was_hit = hit is not None
    if hit is None:
        images, targets = ctx.eval_set(inputs["index"])
        model = inputs["model"]
        with ctx.log_scope(), ctx.steps.step(f"reference outputs (float Keras, {len(images)} images)") as progress:
            outputs = predict_in_chunks(model, images, progress.update)
        with ctx.cache.put("reference", key) as tmp:
            save(tmp / "reference.npz", outputs, targets)
        hit = ctx.cache.get("reference", key)
    outputs, _ = load(hit / "reference.npz")
    ctx.record("reference", key, was_hit, t0)
    ensure_dir(ctx.out_root)
    raw = (hit / "reference.npz").read_bytes()
    atomic_write_bytes(ctx.out_root / "reference.npz", raw)
    return Reference(outputs, hashlib.sha256(raw).hexdigest())
