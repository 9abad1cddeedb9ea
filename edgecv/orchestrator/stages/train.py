"""The train stage: the reference model, from the cache or fine-tuned now (only when needed)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

from edgecv.train.cluster import cluster_role
from edgecv.models.user_model import build_user_task_model, model_digest


def info(entry: Optional[Path]) -> dict:
    """The training record kept in the train entry (empty when there is none)."""
    return json.loads((entry / "train.json").read_text()) if entry else {}


def run(ctx, step, inputs):
    with ctx.log_scope():  # TensorFlow's import and training speak into the build-level log
        return _run(ctx, step.key, inputs)


def _run(ctx, key: str, inputs):
    from edgecv.models.build import TaskModel

    t0 = time.perf_counter()
    worker = cluster_role()
    # a worker other than the chief always trains: the chief waits for it at every step
    hit = None if worker is not None and not worker.is_chief else ctx.hit("train", key)
    if hit is not None:
        model = TaskModel.load(hit / "model")
    elif ctx.recipe.model.path is not None:
        model = load_user(ctx, inputs["index"], key)
    else:
        from edgecv.train.trainer import train

        result = train(ctx.recipe, inputs["index"], ctx.console)
        role = worker
        if role is not None and not role.is_chief:  # trained in step with the chief, which keeps the result
            ctx.record("train", key, False, t0)
            return result.model
        meta = {"key": key, "seconds": result.seconds, "best_metric": result.best_metric,
                "best_value": result.best_value, "history": result.history,
                "precision_policy": result.precision_policy, "strategy": result.strategy,
                "workers": role.workers if role else 1}
        with ctx.cache.put("train", key) as tmp:
            result.model.save(tmp / "model")
            (tmp / "train.json").write_text(json.dumps(meta, indent=2))
        model = result.model
    ctx.record("train", key, hit is not None, t0)
    return model


def load_user(ctx, index, key: str):
    """Bring your own model: the user's model wrapped to take pixels, cached like a trained one."""
    t0 = time.perf_counter()
    path = ctx.recipe.resolve(ctx.recipe.model.path)
    model = build_user_task_model(ctx.recipe, index.info, ctx.task)
    meta = {"key": key, "seconds": time.perf_counter() - t0, "loaded_from": str(path),
            "model_sha256": model_digest(path), "trained": False}
    with ctx.cache.put("train", key) as tmp:
        model.save(tmp / "model")
        (tmp / "train.json").write_text(json.dumps(meta, indent=2))
    ctx.console.print(f"  loaded {path.name} (not trained: it is the float reference)")
    return model
