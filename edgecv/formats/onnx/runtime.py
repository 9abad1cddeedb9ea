"""ONNX artifacts through onnxruntime (CPU here; CUDA or TensorRT providers where installed).
Outputs come back under the session's output names.

Runtime options (target `runtime.options`):
  providers: [CUDAExecutionProvider, CPUExecutionProvider]  preference order; a provider this
             onnxruntime build lacks is skipped (and said so in describe()), CPU is always last.
  float_range: [lo, hi]  for third-party float models that take another pixel range.
  int8_semantics: qdq | s8s8 | u8u8 | native  what int8 arithmetic a QDQ graph gets on this CPU
             (edgecv.formats.onnx.session); default qdq for a graph with Q/DQ nodes: Q/DQ as written,
             as TensorRT runs them, not onnxruntime's u8s8 kernels, which can overflow on x86 without VNNI.
  session_config: {key: value}  onnxruntime session config entries, applied after the preset's.
The entries a session actually ran with are read back and recorded (describe()["session_options"]).
"""

from __future__ import annotations

import numpy as np

from edgecv.runtimes.base import Runtime, RuntimeUnavailable, as_outputs, pixels_to_input
from edgecv.formats.onnx.session import DEFAULT_FOR_INTEGER_OPS, DEFAULT_FOR_QDQ, INT8_SEMANTICS, resolve_session_config

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8,
              "tensor(int8)": np.int8, "tensor(double)": np.float64}


class OnnxRuntime(Runtime):
    format = "onnx"
    suffixes = (".onnx",)
    library = "onnxruntime"

    @classmethod
    def key_settings(cls) -> dict:
        """The int8 arithmetic edgecv picks by default (a changed default re-validates)."""
        return {"onnx_int8": {"default_for_qdq": DEFAULT_FOR_QDQ, "default_for_integer_ops": DEFAULT_FOR_INTEGER_OPS,
                              "presets": {name: entries for name, (entries, _) in INT8_SEMANTICS.items()}}}

    def _load(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise RuntimeUnavailable("ONNX Runtime missing: pip install onnxruntime (or onnxruntime-gpu)") from None
        self._ort = ort
        so = ort.SessionOptions()
        if self.threads:
            so.intra_op_num_threads = int(self.threads)
            so.inter_op_num_threads = 1
        so.log_severity_level = 3  # errors only: no provider-fallback chatter

        self.session_options = resolve_session_config(self.path, self.options.get("int8_semantics"),
                                                      self.options.get("session_config"))
        for key, value in self.session_options["session_config"].items():
            so.add_session_config_entry(key, value)
        # what the session holds, not what was asked: the report's record of the arithmetic used
        self.session_options["session_config"] = {k: so.get_session_config_entry(k)
                                                  for k in self.session_options["session_config"]}
        available = ort.get_available_providers()
        requested = list(self.options.get("providers") or ["CPUExecutionProvider"])
        unknown = [p for p in requested if not isinstance(p, str)]
        if unknown:
            raise ValueError(f"runtime.options.providers: give provider names, got {unknown}")
        self.providers_skipped = [p for p in requested if p not in available]
        providers = [p for p in requested if p in available]
        if "CPUExecutionProvider" not in providers:
            providers.append("CPUExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=so, providers=providers)
        except Exception as e:  # a malformed or unsupported model: say which file
            raise ValueError(f"onnxruntime cannot load {self.path}: {e}") from None
        self._in = self.session.get_inputs()[0]
        self._outs = self.session.get_outputs()
        shape = self._in.shape  # named or unknown dimensions come as strings or None
        # edgecv's ONNX is NHWC; accept third-party NCHW models (channels first, 3 channels)
        self.channels_first = len(shape) == 4 and shape[1] == 3 and shape[3] != 3
        dims = [d if isinstance(d, int) and d > 0 else None for d in shape]
        self.fixed_batch = dims[0]
        self._size = self.resolve_size(tuple(dims[2:4] if self.channels_first else dims[1:3]))
        self._dtype = _ORT_TYPES.get(self._in.type)
        if self._dtype is None:
            raise ValueError(f"{self.path}: input {self._in.name} has type {self._in.type}; expected float or 8-bit images")
        self.float_range = tuple(self.options.get("float_range", (0.0, 255.0)))

    @property
    def input_size(self) -> tuple[int, int]:
        return self._size

    @property
    def input_dtype(self) -> str:
        return np.dtype(self._dtype).name

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        if self.fixed_batch and len(images) != self.fixed_batch:
            return self.predict_in_fixed_batches(images, self._predict)
        return self._predict(images)

    def _predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        x = pixels_to_input(images, self._dtype, self.float_range)
        if self.channels_first:
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        values = self.session.run(None, {self._in.name: x})
        return as_outputs(zip((o.name for o in self._outs), values))

    def describe(self) -> dict:
        d = {**super().describe(), "onnxruntime": self._ort.__version__, "providers": self.session.get_providers(),
             "input_dtype": self.input_dtype, "layout": "NCHW" if self.channels_first else "NHWC",
             "session_options": self.session_options}
        for raw in ("int8_semantics", "session_config"):  # recorded resolved, under session_options
            d.pop(raw, None)
        if self.providers_skipped:
            d["providers_unavailable"] = self.providers_skipped
        return d
