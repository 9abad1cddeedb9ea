"""Each candidate as a recipe model (normalization inside, its backbone, a linear head) and its pooled
features of the training and validation images, extracted once and kept in the stage cache.

The feature key hashes what the features depend on, as the build's keys do: the data index key
(files, split), the candidate (backbone, width, size, the weights file's bytes), the resize
policy, the pooling and the TensorFlow versions. A second run, with another budget or more
candidates, extracts nothing it already has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from edgecv.config.recipe import HeadConfig
from edgecv.errors import ConfigError
from edgecv.orchestrator.cache import StageCache, stable_hash
from edgecv.orchestrator.keys import TRAIN_LIBS, file_key, versions
from edgecv.selection.candidates import Candidate
from edgecv.selection.offline import NeedsDownload, downloads

POOL_LAYER = "pool"  # the classification head's pooling layer: the features
FEATURES = "features.npz"


class Unavailable(Exception):
    """This candidate cannot be built here (weights need a download, a file does not fit ...)."""


@dataclass
class FeatureSet:
    key: str
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    cached: bool


def candidate_recipe(recipe, c: Candidate):
    """The recipe with the candidate's backbone and size and a plain linear head (what the probe fits)."""
    head = HeadConfig(pooling=recipe.model.head.pooling, hidden_units=[], dropout=0.0)
    model = recipe.model.model_copy(update={"backbone": c.backbone, "alpha": c.alpha, "weights": c.weights,
                                            "head": head})
    return recipe.model_copy(update={"model": model, "input": recipe.input.model_copy(update={"size": tuple(c.size)})})


def build_candidate(recipe, info: dict, c: Candidate, allow_downloads: bool):
    """The candidate's TaskModel, or Unavailable with the reason."""
    from edgecv.models.build import build_task_model

    with downloads(allow_downloads):
        try:
            return build_task_model(candidate_recipe(recipe, c), info)
        except NeedsDownload as e:
            raise Unavailable(str(e)) from None
        except ConfigError as e:  # the weights loader wraps what went wrong
            cause = e.__context__
            raise Unavailable(str(cause) if isinstance(cause, NeedsDownload) else str(e)) from None


def weights_identity(weights: str) -> str:
    """A weights file by its bytes (a replaced file at the same path is new features)."""
    from pathlib import Path

    return weights if weights in ("imagenet", "none") or not Path(weights).is_file() else file_key(Path(weights))


def features_key(recipe, c: Candidate, idx_key: str) -> str:
    return stable_hash({"stage": "select-features", "index": idx_key, "backbone": c.backbone, "alpha": c.alpha,
                        "size": list(c.size), "weights": weights_identity(c.weights), "resize": recipe.input.resize,
                        "pooling": recipe.model.head.pooling, "versions": versions(TRAIN_LIBS)})


def extract(cache: StageCache, key: str, model_fn: Callable[[], object], images: Callable[[], tuple],
            train_y, val_y, batch: int = 32) -> FeatureSet:
    """Features from the cache, or computed with the candidate's model on the decoded images and stored."""
    hit = cache.get("select-features", key)
    if hit is None:
        from edgecv._keras import keras

        km = model_fn().keras_model
        pooled = keras.Model(km.input, km.get_layer(POOL_LAYER).output)
        train_imgs, val_imgs = images()
        tx = pooled.predict(train_imgs.astype(np.float32), batch_size=batch, verbose=0)
        vx = pooled.predict(val_imgs.astype(np.float32), batch_size=batch, verbose=0)
        with cache.put("select-features", key) as tmp:
            np.savez(tmp / FEATURES, train_x=tx, train_y=np.asarray(train_y), val_x=vx, val_y=np.asarray(val_y))
        hit = cache.get("select-features", key)
        cached = False
    else:
        cached = True
    with np.load(hit / FEATURES) as z:
        return FeatureSet(key, z["train_x"], z["train_y"], z["val_x"], z["val_y"], cached)


def set_probe(model, kernel: np.ndarray, bias: np.ndarray, layer: Optional[str] = "logits"):
    """Put the probe's weights into the candidate model's linear head."""
    model.keras_model.get_layer(layer).set_weights([kernel, bias])
    return model
