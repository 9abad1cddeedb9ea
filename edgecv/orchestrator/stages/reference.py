"""The reference stage: the float model's named outputs on the validation split, computed once
and compared with every artifact. Stored as `<out>/reference.npz`: one array per output
(`output:<name>`) plus the targets when the task has them."""

from __future__ import annotations

import hashlib
import time

import numpy as np

from edgecv.files import atomic_write_bytes, ensure_dir

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


def run(b, index) -> dict:
    t0 = time.perf_counter()
    key = b.keys.reference
    hit = b.hit("reference", key)
    was_hit = hit is not None
    if hit is None:
        images, targets = b.eval_set(index)
        model = b.model(index)
        with b.log_scope(), b.steps.step(f"reference outputs (float Keras, {len(images)} images)") as step:
            outputs = predict_in_chunks(model, images, step.update)
        with b.cache.put("reference", key) as tmp:
            save(tmp / "reference.npz", outputs, targets)
        hit = b.cache.get("reference", key)
    outputs, _ = load(hit / "reference.npz")
    b.record("reference", key, was_hit, t0)
    ensure_dir(b.out_root)
    raw = (hit / "reference.npz").read_bytes()
    atomic_write_bytes(b.out_root / "reference.npz", raw)
    b.reference_sha256 = hashlib.sha256(raw).hexdigest()
    return outputs
