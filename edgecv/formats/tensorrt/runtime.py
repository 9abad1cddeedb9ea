"""TensorRT engines (`.engine` plans) on an NVIDIA GPU: the name-based tensor API and
`execute_async_v3` with tensor addresses (TensorRT 8.5 to 11.x), device memory through cuda-python
or, without it, ctypes on libcudart (`cuda_ctypes`).

An engine runs only on the TensorRT version and GPU that built it. The sidecar `<engine>.json`
written by `edgecv engine build` says which; a mismatch is reported before TensorRT tries.
No TensorFlow here: this runs on a Jetson with TensorRT and numpy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from edgecv.runtimes.base import Runtime, RuntimeUnavailable, as_outputs, pixels_to_input
from edgecv.formats.tensorrt import cuda_ctypes  # cuda_ctypes.load_libcudart: looked up at call time (a test stands in)


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise RuntimeUnavailable("no TensorRT: the `tensorrt` Python package is not installed (JetPack ships it "
                                 "as python3-libnvinfer; on x86: pip install 'edgecv[tensorrt]')") from None
    except Exception as e:  # a broken install (missing libnvinfer.so ...)
        raise RuntimeUnavailable(f"no TensorRT: importing tensorrt failed: {e}") from None
    return trt


def import_cudart():
    """cuda-python's runtime bindings (cuda.bindings.runtime since 12.6, cuda.cudart before), or
    the same calls through ctypes on libcudart where cuda-python is absent (JetPack 5)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            lib = cuda_ctypes.load_libcudart()
            if lib is None:
                raise RuntimeUnavailable("no CUDA runtime: neither cuda-python nor libcudart is here (JetPack ships "
                                         "libcudart; on x86: pip install 'edgecv[tensorrt]')") from None
            return cuda_ctypes.CtypesCudart(lib)
    return cudart


def cuda_check(cudart, result, what: str):
    """cuda-python returns (error, *values); raise on error, return the value(s)."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        name = getattr(err, "name", str(err))
        raise RuntimeError(f"CUDA {what} failed: {name}")
    return values[0] if len(values) == 1 else values or None


def cuda_device(cudart) -> dict:
    """Name and compute capability of the current GPU; RuntimeUnavailable if there is none."""
    try:
        err, count = cudart.cudaGetDeviceCount()
    except Exception as e:  # libcudart missing or unloadable
        raise RuntimeUnavailable(f"no CUDA runtime here: {e}") from None
    if err != cudart.cudaError_t.cudaSuccess or count == 0:
        raise RuntimeUnavailable(f"no CUDA GPU here ({getattr(err, 'name', err)}, {count or 0} device(s))")
    dev = cuda_check(cudart, cudart.cudaGetDevice(), "cudaGetDevice")
    props = cuda_check(cudart, cudart.cudaGetDeviceProperties(dev), "cudaGetDeviceProperties")
    name = props.name
    name = name.split(b"\0", 1)[0].decode(errors="replace") if isinstance(name, (bytes, bytearray)) else str(name)
    return {"index": int(dev), "name": name.strip(), "compute_capability": f"{props.major}.{props.minor}",
            "memory_mb": int(props.totalGlobalMem) // (1 << 20)}


def read_sidecar(engine: Path) -> Optional[dict]:
    side = engine.with_name(engine.name + ".json")
    return json.loads(side.read_text()) if side.is_file() else None


def compatibility_problem(sidecar: Optional[dict], trt_version: str, device: dict) -> Optional[str]:
    """Why this engine cannot run here, from its sidecar (None when it can, or when unknown)."""
    if not sidecar:
        return None
    built = sidecar.get("tensorrt_version")
    if built and built != trt_version:
        return (f"engine built with TensorRT {built}, this machine has TensorRT {trt_version}: "
                "rebuild it here with `edgecv engine build`")
    cc = (sidecar.get("gpu") or {}).get("compute_capability")
    if cc and cc != device["compute_capability"]:
        return (f"engine built for compute capability {cc} ({sidecar['gpu'].get('name')}), this GPU is "
                f"{device['compute_capability']} ({device['name']}): rebuild it here with `edgecv engine build`")
    return None


class TensorRTRuntime(Runtime):
    format = "tensorrt"
    suffixes = (".engine", ".plan")
    library = "tensorrt"

    def _load(self) -> None:
        trt = import_tensorrt()
        cudart = import_cudart()
        self._trt, self._cudart = trt, cudart
        self.device = cuda_device(cudart)
        self.sidecar = read_sidecar(self.path)
        problem = compatibility_problem(self.sidecar, trt.__version__, self.device)
        if problem:
            raise RuntimeUnavailable(problem)
        self._buffers = []
        self._stream = None
        logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise RuntimeUnavailable(f"TensorRT {trt.__version__} could not deserialize {self.path.name}: it was built "
                                     "by another TensorRT version or for another GPU; rebuild it with `edgecv engine build`")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1:
            raise ValueError(f"{self.path.name}: expected one image input, found {inputs}")
        self._in = inputs[0]
        self._outs = [n for n in names if n not in inputs]
        self._in_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self._in)))
        self._out_dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in self._outs}
        shape = tuple(self.engine.get_tensor_shape(self._in))
        self._chw = len(shape) == 4 and shape[1] == 3 and shape[3] != 3
        lo, _, hi = (tuple(s) for s in self.engine.get_tensor_profile_shape(self._in, 0))
        self.min_batch, self.max_batch = int(lo[0]), int(hi[0])
        self._sample_shape = tuple(int(d) for d in hi[1:])
        self.float_range = tuple(self.options.get("float_range", (0.0, 255.0)))
        # device buffers for the largest batch the profile allows, addresses bound once
        self._stream = cuda_check(cudart, cudart.cudaStreamCreate(), "cudaStreamCreate")
        self.context.set_input_shape(self._in, tuple(hi))
        self._device = {}
        for name, dtype in [(self._in, self._in_dtype), *self._out_dtypes.items()]:
            shp = tuple(self.context.get_tensor_shape(name))
            nbytes = int(np.prod(shp)) * dtype.itemsize
            ptr = cuda_check(cudart, cudart.cudaMalloc(nbytes), "cudaMalloc")
            self._buffers.append(ptr)
            self._device[name] = int(ptr)
            if not self.context.set_tensor_address(name, int(ptr)):
                raise RuntimeError(f"TensorRT rejected the address of tensor {name}")

    @property
    def input_size(self) -> tuple[int, int]:
        s = self._sample_shape
        return (s[1], s[2]) if self._chw else (s[0], s[1])

    @property
    def input_dtype(self) -> str:
        return self._in_dtype.name

    def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        cudart = self._cudart
        n = len(x)
        if n < self.min_batch:  # pad up to the profile's smallest batch
            x = np.concatenate([x, np.zeros((self.min_batch - n, *x.shape[1:]), x.dtype)])
        x = np.ascontiguousarray(x)
        if not self.context.set_input_shape(self._in, x.shape):
            raise ValueError(f"input shape {x.shape} is outside the engine's profile")
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        cuda_check(cudart, cudart.cudaMemcpyAsync(self._device[self._in], x.ctypes.data, x.nbytes, h2d, self._stream),
                   "copy to device")
        if not self.context.execute_async_v3(int(self._stream)):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")
        outs = {}
        for name in self._outs:
            host = np.empty(tuple(self.context.get_tensor_shape(name)), self._out_dtypes[name])
            cuda_check(cudart, cudart.cudaMemcpyAsync(host.ctypes.data, self._device[name], host.nbytes, d2h,
                                                      self._stream), "copy to host")
            outs[name] = host
        cuda_check(cudart, cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return {k: v[:n] for k, v in outs.items()}

    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        x = pixels_to_input(images, self._in_dtype.type, self.float_range)
        if self._chw:
            x = x.transpose(0, 3, 1, 2)
        parts = [self._run(x[i:i + self.max_batch]) for i in range(0, len(x), self.max_batch)]
        return as_outputs((name, np.concatenate([p[name] for p in parts])) for name in self._outs)

    def describe(self) -> dict:
        side = self.sidecar or {}
        return {**super().describe(), "tensorrt": self._trt.__version__, "gpu": self.device,
                "precision": side.get("precision"), "batch_range": [self.min_batch, self.max_batch],
                "input_dtype": self.input_dtype}

    def close(self) -> None:
        cudart = getattr(self, "_cudart", None)
        if cudart is None:
            return
        for ptr in getattr(self, "_buffers", []):
            cudart.cudaFree(ptr)
        self._buffers = []
        if getattr(self, "_stream", None) is not None:
            cudart.cudaStreamDestroy(self._stream)
            self._stream = None
