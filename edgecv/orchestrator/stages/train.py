"""The train stage: the reference model, from the cache or fine-tuned now (only when needed)."""

from __future__ import annotations

import json
import time

from edgecv.train.cluster import cluster_role
from edgecv.models.user_model import build_user_task_model, model_digest


def info(b, index=None) -> dict:
    """The training record; an entry that is damaged (or gone) is recomputed, even when every
    artifact came from the cache, so reports and `edgecv diagnose` keep the model they name."""
    hit = b.cache.get("train", b.keys.train)
    if hit is None and index is not None:
        b.model(index)
        hit = b.cache.get("train", b.keys.train)
    return json.loads((hit / "train.json").read_text()) if hit else {}


def run(b, index):
    with b.log_scope():  # TensorFlow's import and training speak into the build-level log
        return _run(b, index)


def _run(b, index):
    from edgecv.models.build import TaskModel

    t0 = time.perf_counter()
    key = b.keys.train
    worker = cluster_role()
    # a worker other than the chief always trains: the chief waits for it at every step
    hit = None if worker is not None and not worker.is_chief else b.hit("train", key)
    if hit is not None:
        model = TaskModel.load(hit / "model")
    elif b.recipe.model.path is not None:
        model = load_user(b, index, key)
    else:
        from edgecv.train.trainer import train

        result = train(b.recipe, index, b.console)
        role = worker
        if role is not None and not role.is_chief:  # trained in step with the chief, which keeps the result
            b.record("train", key, False, t0)
            return result.model
        meta = {"key": key, "seconds": result.seconds, "best_metric": result.best_metric,
                "best_value": result.best_value, "history": result.history,
                "precision_policy": result.precision_policy, "strategy": result.strategy,
                "workers": role.workers if role else 1}
        with b.cache.put("train", key) as tmp:
            result.model.save(tmp / "model")
            (tmp / "train.json").write_text(json.dumps(meta, indent=2))
        model = result.model
    b.record("train", key, hit is not None, t0)
    return model


def load_user(b, index, key: str):
    """Bring your own model: the user's model wrapped to take pixels, cached like a trained one."""
    t0 = time.perf_counter()
    path = b.recipe.resolve(b.recipe.model.path)
    model = build_user_task_model(b.recipe, index.info, b.task)
    meta = {"key": key, "seconds": time.perf_counter() - t0, "loaded_from": str(path),
            "model_sha256": model_digest(path), "trained": False}
    with b.cache.put("train", key) as tmp:
        model.save(tmp / "model")
        (tmp / "train.json").write_text(json.dumps(meta, indent=2))
    b.console.print(f"  loaded {path.name} (not trained: it is the float reference)")
    return model
