"""Any edgecv artifact (TFLite, ONNX, SavedModel, ...) or a Keras task model as an image embedder:
pixels of the artifact's input size in, L2-normalized embeddings out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edgecv.errors import ConfigError
from edgecv.features.embedding_layer import embedding_model, looks_like_probabilities
from edgecv.files import tree_sha256
from edgecv.models.user_model import load_user_model
from edgecv.runtimes import load_runtime

EMBEDDING = "embedding"


@dataclass
class Embedder:
    path: Path
    sha256: str
    input_size: tuple[int, int]
    resize: str
    _predict: Callable[[np.ndarray], dict]
    _close: Callable[[], None] = lambda: None
    layer: Optional[str] = None  # a Keras model cut at this layer (a classifier's pooled features)

    def embed(self, images: np.ndarray) -> np.ndarray:
        """uint8 pixels [N, H, W, 3] -> float32 [N, D], unit length."""
        outputs = self._predict(images)
        if EMBEDDING in outputs:
            emb = outputs[EMBEDDING]
        elif len(outputs) == 1:  # a third-party model: its only output is taken as the embedding
            emb = next(iter(outputs.values()))
            if self.layer is None and looks_like_probabilities(emb):
                raise ConfigError(f"{self.path} outputs class probabilities (each row sums to 1): they are no "
                                  "embedding (every hit of a class would score about 1.0). Give the Keras model "
                                  "instead (a build's .cache/train/<key>/model folder, a .keras or .h5 file): its "
                                  "pooled features are used, or --layer NAME picks a layer")
        else:
            raise ConfigError(f"{self.path} has outputs {sorted(outputs)}; none is named {EMBEDDING!r}. "
                              "Give an artifact of an embedding build (task: embedding).")
        emb = np.asarray(emb, np.float32).reshape(len(images), -1)
        norm = np.linalg.norm(emb, axis=1, keepdims=True)
        return emb / np.where(norm > 0, norm, 1.0)

    def close(self) -> None:
        self._close()


def _resize_policy(path: Path, given: Optional[str]) -> str:
    """The resize policy: given, else from the preprocessing.json beside the artifact, else center_crop."""
    if given:
        return given
    for folder in (path.parent, path.parent.parent):
        pre = folder / "preprocessing.json"
        if pre.is_file():
            return json.loads(pre.read_text()).get("resize", "center_crop")
    return "center_crop"


def load_embedder(path: Path | str, resize: Optional[str] = None, threads: Optional[int] = None,
                  unsafe: bool = False, layer: Optional[str] = None) -> Embedder:
    """An artifact edgecv can run (format from the file), or a Keras task model folder (with
    model.json, as a build's cache keeps it) / a .keras or .h5 file, read by edgecv's safe loader
    (a Lambda layer is refused unless `unsafe`: --unsafe-deserialization). A Keras classifier embeds
    with its pooled features (or `layer`), never its softmax."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such artifact or model; give a .tflite, .onnx, SavedModel folder or a "
                          "Keras model folder (model.json) from an embedding build")
    sha = tree_sha256(path)
    if (path.is_dir() and (path / "model.json").is_file()) or path.suffix in (".keras", ".h5"):
        return _keras_embedder(path, sha, resize, unsafe, layer)
    if layer is not None:
        raise ConfigError(f"--layer {layer}: only a Keras model can be cut at a layer; {path.name} is an artifact")

    try:
        rt = load_runtime(path, None, threads=threads)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return Embedder(path, sha, tuple(rt.input_size), _resize_policy(path, resize), rt.predict, rt.close)


def _keras_embedder(path: Path, sha: str, resize: Optional[str], unsafe: bool = False,
                    layer: Optional[str] = None) -> Embedder:
    if path.is_dir():
        from edgecv.models.build import TaskModel

        model = TaskModel.load(path, unsafe=unsafe)  # the folder's own model.json does not decide
        if model.task == "embedding" and layer is None:
            return Embedder(path, sha, tuple(model.input_size), resize or "center_crop", model.predict)
        cut, chosen = embedding_model(model.keras_model, layer, f"{path.name} ({model.task} model)")
        return Embedder(path, sha, tuple(model.input_size), resize or "center_crop", _keras_predict(cut), layer=chosen)

    km = load_user_model(path, unsafe=unsafe)
    h, w = km.input_shape[1:3]
    cut, chosen = embedding_model(km, layer, path.name)
    return Embedder(path, sha, (int(h), int(w)), resize or "center_crop", _keras_predict(cut), layer=chosen)


def _keras_predict(km):
    def predict(images):
        out = km.predict(images.astype(np.float32), verbose=0)
        return {EMBEDDING: out[0] if isinstance(out, list) else out}

    return predict
