"""The train stage: the reference model, from the cache or fine-tuned now (only when needed)."""

from __future__ import annotations

import json
import time

from edgecv.train.cluster import cluster_role


def info(b) -> dict:
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
