"""Core ML packages through coremltools, which predicts on macOS only.

Outputs come back by name: a classifier's class scores (a dict label -> score) as one array in
label order, named as the task's output (from the package's `edgecv.outputs` metadata; Core ML's
class-score output for third-party classifiers); other packages' multi-array outputs under
their own names.

Elsewhere loading raises RuntimeUnavailable: the build then records structural validation only
(see edgecv.formats.coreml.checks) and reports every numeric gate as not measured.

Options (target `runtime.options`):
- `compute_units`: cpu_only | cpu_and_gpu | cpu_and_ne | all (default all) for predictions;
- `latency_compute_units`: e.g. [cpu_only, cpu_and_gpu, all]: `describe()` adds the one-image
  latency under each of these compute units, on the first (up to 16) images `predict` was given.

Never imports TensorFlow itself (coremltools imports it when it is installed).
"""

from __future__ import annotations

import json
import platform
import sys

import numpy as np

from edgecv.runtimes.base import Runtime, RuntimeUnavailable, as_outputs
from edgecv.formats.coreml.checks import OUTPUTS_KEY, load_package, read_labels
from edgecv.runtimes.latency import measure_latency
from edgecv.formats.coreml.detection import CONFIDENCE, COORDINATES, to_contract

COMPUTE_UNITS = ("cpu_only", "cpu_and_gpu", "cpu_and_ne", "all")
LATENCY_IMAGES = 16


def _compute_unit(name: str):
    import coremltools as ct

    key = str(name).lower()
    if key not in COMPUTE_UNITS:
        raise ValueError(f"coreml compute_units {name!r}: use one of {', '.join(COMPUTE_UNITS)}")
    return ct.ComputeUnit[key.upper()]


class CoreMLRuntime(Runtime):
    format = "coreml"
    suffixes = (".mlpackage", ".mlmodel")
    library = "coremltools"

    def _load(self) -> None:
        if sys.platform != "darwin":
            raise RuntimeUnavailable(
                f"Core ML predicts on macOS only and this is {platform.system() or sys.platform}: numeric "
                "validation (accuracy, agreement with the reference, latency) needs macOS and was not run here; "
                "run the build or `edgecv validate` on a Mac to measure them.")
        try:
            import coremltools as ct
        except ImportError:
            raise RuntimeUnavailable("Core ML runtime missing: pip install 'edgecv[coreml]' (coremltools)") from None

        self._ct = ct
        self.compute_units = str(self.options.get("compute_units", "all")).lower()
        self.model = ct.models.MLModel(str(self.path), compute_units=_compute_unit(self.compute_units))
        spec = self.model.get_spec()
        func = load_package(self.path)[2] if spec.WhichOneof("Type") == "mlProgram" else None  # or a pipeline
        image = next((f for f in spec.description.input if f.type.WhichOneof("Type") == "imageType"), None)
        if image is None:
            raise ValueError(f"{self.path}: no image input; edgecv runs Core ML models that take an image")
        self._input = image.name
        self._size = (int(image.type.imageType.height), int(image.type.imageType.width))
        self.labels = read_labels(func) if func is not None else None
        self._probs = spec.description.predictedProbabilitiesName or None  # a classifier's scores
        self._outputs = [o.name for o in spec.description.output]
        listed = json.loads(self.model.user_defined_metadata.get(OUTPUTS_KEY) or "[]")
        self._scores_name = listed[0]["name"] if self._probs and len(listed) == 1 else self._probs
        # a detection pipeline (NMS model last): its variable-length rows read as the four contract outputs
        post = json.loads(self.model.user_defined_metadata.get("edgecv.postprocess") or "null")
        self._max_detections = int(post["nms"]["max_detections"]) if post else None
        self._sample = None

    @property
    def input_size(self) -> tuple[int, int]:
        return self._size

    def _predict_with(self, model, images: np.ndarray) -> dict[str, np.ndarray]:
        from PIL import Image

        rows: dict[str, list] = {}
        for img in np.asarray(images, np.uint8):
            out = model.predict({self._input: Image.fromarray(img, "RGB")})
            if self._max_detections is not None:
                for name, value in to_contract(out[CONFIDENCE], out[COORDINATES], self._max_detections).items():
                    rows.setdefault(name, []).append(value[0])
            elif self._probs:
                scores = out[self._probs]
                rows.setdefault(self._scores_name, []).append(
                    [scores[label] for label in self.labels] if self.labels else list(scores.values()))
            else:
                for name in self._outputs:  # one image per call: drop the batch axis Core ML keeps
                    value = np.asarray(out[name])
                    rows.setdefault(name, []).append(value[0] if value.ndim and value.shape[0] == 1 else value)
        return as_outputs((name, np.asarray(v)) for name, v in rows.items())

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        if self._sample is None or len(self._sample) < min(LATENCY_IMAGES, len(images)):
            self._sample = np.array(images[:LATENCY_IMAGES])  # the images latency per compute unit reuses
        return self._predict_with(self.model, images)

    def latency_by_compute_units(self, images: np.ndarray, units) -> dict:
        """Latency of one-image predictions under each compute unit (a fresh model load for each)."""
        result = {}
        for unit in units:
            model = self._ct.models.MLModel(str(self.path), compute_units=_compute_unit(unit))
            result[str(unit).lower()] = measure_latency(
                lambda batch, m=model: self._predict_with(m, batch), images, batch=1).to_json()
        return result

    def describe(self) -> dict:
        info = {**super().describe(), "compute_units": self.compute_units, "coremltools": self._ct.__version__,
                "macos": platform.mac_ver()[0]}
        units = self.options.get("latency_compute_units")
        if units and self._sample is not None:
            info["latency_by_compute_units"] = self.latency_by_compute_units(self._sample, units)
        return info
