"""SavedModel artifacts through their `serving_default` signature, as TF Serving calls them: every
signature output by its name (the task's outputs plus ready-made extras such as class ids)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecv.runtimes.base import Runtime, as_outputs


def savedmodel_dir(path: Path) -> Path:
    """Accept the model folder itself or a TF Serving <name>/ folder holding numbered versions."""
    if (path / "saved_model.pb").is_file():
        return path
    versions = sorted((p for p in path.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    return versions[-1]


class SavedModelRuntime(Runtime):
    format = "savedmodel"

    @classmethod
    def recognizes(cls, path: Path) -> bool:
        """A SavedModel folder, or TF Serving's layout <model>/<version>/saved_model.pb."""
        if path.is_dir() and (path / "saved_model.pb").is_file():
            return True
        if path.is_dir():
            versions = sorted((p for p in path.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
            return bool(versions) and (versions[-1] / "saved_model.pb").is_file()
        return False
    library = "tensorflow"

    def _load(self) -> None:
        from edgecv._keras import tf

        if self.threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(self.threads)
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:
                pass  # TensorFlow already initialized in this process; keep its thread pool
        self._tf = tf
        self.model_dir = savedmodel_dir(self.path)
        self.loaded = tf.saved_model.load(str(self.model_dir))
        self.fn = self.loaded.signatures["serving_default"]
        spec = list(self.fn.structured_input_signature[1].values())[0]
        self._input_key = list(self.fn.structured_input_signature[1].keys())[0]
        self._shape = spec.shape
        self._dtype = spec.dtype

    @property
    def input_size(self) -> tuple[int, int]:
        return int(self._shape[1]), int(self._shape[2])

    @property
    def input_dtype(self) -> str:
        return self._dtype.name

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        out = self.fn(**{self._input_key: self._tf.constant(images, dtype=self._dtype)})
        return as_outputs((k, v.numpy()) for k, v in out.items())

    def describe(self) -> dict:
        return {**super().describe(), "tensorflow": self._tf.__version__}
