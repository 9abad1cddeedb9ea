"""TFLite artifacts through ai_edge_litert (the maintained successor of tf.lite.Interpreter).

Outputs come back under their real names: the model's signature (edgecv's TFLite files have a
`serving_default` signature mapping each task output name to its tensor); a model without one
(third-party) falls back to its output tensor names.
"""

from __future__ import annotations

import numpy as np

from edgecv.runtimes.base import Runtime, RuntimeUnavailable, as_outputs, pixels_to_input  # noqa: F401 (its old home)


def import_interpreter(runtime):
    """ai_edge_litert's Interpreter, or tflite_runtime's (the same API; the one with wheels for
    Python 3.8/3.9, e.g. JetPack 5). Sets `runtime.library` to the one found."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise RuntimeUnavailable("TFLite runtime missing: pip install ai-edge-litert "
                                     "(tflite-runtime on Python 3.8/3.9)") from None
        runtime.library = "tflite_runtime"
    return Interpreter


class TFLiteRuntime(Runtime):
    format = "tflite"
    suffixes = (".tflite",)
    library = "ai_edge_litert"

    def _load(self) -> None:
        Interpreter = import_interpreter(self)
        self.interpreter = Interpreter(model_path=str(self.path), num_threads=self.threads)
        self.interpreter.allocate_tensors()
        self._in = self.interpreter.get_input_details()[0]
        self._outs = self.interpreter.get_output_details()
        self._names = output_names(self.interpreter)  # output tensor index -> name
        self._batch = int(self._in["shape"][0])
        signature = [int(d) for d in self._in["shape_signature"]]
        # a model exported with a fixed batch (most third-party ones) cannot be resized: loop instead
        self.fixed_batch = signature[0] if signature[0] > 0 else None
        self._size = self.resolve_size(tuple(d if d > 0 else None for d in signature[1:3]))
        if tuple(int(d) for d in self._in["shape"][1:3]) != self._size:  # any-size input: set it once
            self.interpreter.resize_tensor_input(self._in["index"], [self._batch, *self._size, int(self._in["shape"][3])])
            self.interpreter.allocate_tensors()
            self._in = self.interpreter.get_input_details()[0]
            self._outs = self.interpreter.get_output_details()
        self.float_range = tuple(self.options.get("float_range", (0.0, 255.0)))

    @property
    def input_size(self) -> tuple[int, int]:
        return self._size

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
        if self.fixed_batch and len(images) != self.fixed_batch:
            return self.predict_in_fixed_batches(images, self._predict)
        return self._predict(images)

    def _predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        self._ensure_batch(len(images))
        self.interpreter.set_tensor(self._in["index"], pixels_to_input(images, self._in["dtype"], self.float_range))
        self.interpreter.invoke()
        out = {}
        for d in self._outs:
            raw = self.interpreter.get_tensor(d["index"])
            scale, zero = d["quantization"]
            out[self._names[d["index"]]] = (raw.astype(np.float32) - zero) * scale if scale else raw
        return as_outputs(out)

    def describe(self) -> dict:
        return {**super().describe(), "input_dtype": self.input_dtype,
                "input_quantization": [float(q) for q in self._in["quantization"]]}


def output_names(interpreter) -> dict[int, str]:
    """Output tensor index -> output name: from the signature (the first, `serving_default` when
    there are several), else from the tensor names."""
    outs = interpreter.get_output_details()
    signatures = interpreter.get_signature_list()
    if signatures:
        key = "serving_default" if "serving_default" in signatures else next(iter(signatures))
        details = interpreter.get_signature_runner(key).get_output_details()
        names = {int(d["index"]): name for name, d in details.items()}
        if set(names) == {int(d["index"]) for d in outs}:  # the signature is the main graph's
            return names
    return dict(zip((int(d["index"]) for d in outs), tensor_output_names([d["name"] for d in outs])))


def tensor_output_names(raw: list[str]) -> list[str]:
    """Names for outputs known only by their tensor names ('model/head/Softmax:0' -> 'Softmax');
    `output_<i>` where that leaves no name or the same name twice (the task maps a lone output to
    its only output)."""
    short = [r.split(":")[0].split("/")[-1] for r in raw]
    if all(short) and len(set(short)) == len(short):
        return short
    return [f"output_{i}" for i in range(len(raw))]
