"""TFLite artifacts through ai_edge_litert (the maintained successor of tf.lite.Interpreter)."""

from __future__ import annotations

import numpy as np

from edgecv.runtimes.base import Runtime, RuntimeUnavailable


def pixels_to_input(images: np.ndarray, dtype, float_range: tuple[float, float] = (0.0, 255.0)) -> np.ndarray:
    """The pixel contract: uint8 takes the pixel, int8 takes pixel - 128, float takes the pixel
    value (0..255 for edgecv artifacts; third-party float models may declare another range)."""
    if dtype == np.uint8:
        return images.astype(np.uint8)
    if dtype == np.int8:
        return (images.astype(np.int16) - 128).astype(np.int8)
    lo, hi = float_range
    return (images.astype(np.float32) * ((hi - lo) / 255.0) + lo).astype(dtype)


class TFLiteRuntime(Runtime):
    format = "tflite"
    library = "ai_edge_litert"

    def _load(self) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise RuntimeUnavailable("TFLite runtime missing: pip install ai-edge-litert") from None
        self.interpreter = Interpreter(model_path=str(self.path), num_threads=self.threads)
        self.interpreter.allocate_tensors()
        self._in = self.interpreter.get_input_details()[0]
        self._outs = self.interpreter.get_output_details()
        self._batch = int(self._in["shape"][0])
        # a model exported with a fixed batch (most third-party ones) cannot be resized: loop instead
        self._fixed_batch = int(self._in["shape_signature"][0]) if int(self._in["shape_signature"][0]) > 0 else None
        self.float_range = tuple(self.options.get("float_range", (0.0, 255.0)))

    @property
    def input_size(self) -> tuple[int, int]:
        return int(self._in["shape"][1]), int(self._in["shape"][2])

    @property
    def input_dtype(self) -> str:
        return np.dtype(self._in["dtype"]).name

    def _ensure_batch(self, n: int) -> None:
        if n != self._batch:
            self.interpreter.resize_tensor_input(self._in["index"], [n, *self._in["shape"][1:]])
            self.interpreter.allocate_tensors()
            self._in = self.interpreter.get_input_details()[0]
            self._outs = self.interpreter.get_output_details()
            self._batch = n

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        fixed = self._fixed_batch
        if fixed and len(images) != fixed:
            if len(images) % fixed:
                raise ValueError(f"{self.path.name} has a fixed batch of {fixed}; got {len(images)} images")
            parts = [self._predict(images[i:i + fixed]) for i in range(0, len(images), fixed)]
            return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return self._predict(images)

    def _predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        self._ensure_batch(len(images))
        self.interpreter.set_tensor(self._in["index"], pixels_to_input(images, self._in["dtype"], self.float_range))
        self.interpreter.invoke()
        out = {}
        for i, d in enumerate(self._outs):
            raw = self.interpreter.get_tensor(d["index"])
            scale, zero = d["quantization"]
            value = (raw.astype(np.float32) - zero) * scale if scale else raw.astype(np.float32)
            out[output_name(d["name"], i, len(self._outs))] = value
        return out

    def describe(self) -> dict:
        return {**super().describe(), "input_dtype": self.input_dtype,
                "input_quantization": [float(q) for q in self._in["quantization"]]}


def output_name(raw: str, i: int, n: int) -> str:
    """Converters name outputs 'StatefulPartitionedCall:0'; a single output is the task's scores."""
    if n == 1:
        return "probabilities"
    return raw.split(":")[0].split("/")[-1] or f"output_{i}"
