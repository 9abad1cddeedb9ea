"""The few CUDA runtime calls the TensorRT runtime makes, through ctypes on libcudart.

JetPack 5 (CUDA 11.4, Python 3.8) has no usable cuda-python wheel, but every JetPack has
libcudart. This mirrors the subset of cuda-python's `cudart` API that `edgecv.formats.tensorrt.runtime`
uses, with the same calling convention (each call returns `(error, *values)`), so the runtime
works with either.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path
from types import SimpleNamespace
from typing import List, Optional

# Where JetPack and the CUDA toolkit put libcudart when it is not on the loader's path
CUDART_NAMES = ("libcudart.so", "libcudart.so.12", "libcudart.so.11.0", "libcudart.so.10.2")
CUDART_DIRS = ("/usr/local/cuda/lib64", "/usr/local/cuda/targets/aarch64-linux/lib",
               "/usr/local/cuda/targets/x86_64-linux/lib")
ATTR_COMPUTE_MAJOR, ATTR_COMPUTE_MINOR = 75, 76  # cudaDevAttrComputeCapabilityMajor / Minor
PROPS_BYTES = 4096  # larger than cudaDeviceProp in any CUDA version; `name` is its first field everywhere


class CudaError(int):
    """A cudaError_t code with its name, as cuda-python's enum has."""

    name = ""


def load_libcudart() -> Optional[ctypes.CDLL]:
    found = ctypes.util.find_library("cudart")
    candidates: List[str] = ([found] if found else []) + list(CUDART_NAMES)
    candidates += [str(Path(d) / n) for d in CUDART_DIRS for n in CUDART_NAMES]
    for name in candidates:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


class CtypesCudart:
    cudaError_t = SimpleNamespace(cudaSuccess=0)
    cudaMemcpyKind = SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)

    def __init__(self, lib: ctypes.CDLL):
        self._lib = lib
        lib.cudaGetErrorName.restype = ctypes.c_char_p
        lib.cudaMalloc.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t]
        lib.cudaFree.argtypes = [ctypes.c_void_p]
        lib.cudaMemcpyAsync.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                                        ctypes.c_void_p]
        lib.cudaStreamCreate.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        lib.cudaStreamSynchronize.argtypes = [ctypes.c_void_p]
        lib.cudaStreamDestroy.argtypes = [ctypes.c_void_p]

    def _err(self, code: int) -> CudaError:
        err = CudaError(code)
        err.name = (self._lib.cudaGetErrorName(code) or b"cudaError").decode()
        return err

    def cudaGetDeviceCount(self):
        n = ctypes.c_int(0)
        return self._err(self._lib.cudaGetDeviceCount(ctypes.byref(n))), n.value

    def cudaGetDevice(self):
        d = ctypes.c_int(0)
        return self._err(self._lib.cudaGetDevice(ctypes.byref(d))), d.value

    def cudaGetDeviceProperties(self, device: int):
        """name, major, minor and totalGlobalMem: the fields the runtime reads (the struct's layout
        changes between CUDA versions, so only `name` is read from it)."""
        buf = ctypes.create_string_buffer(PROPS_BYTES)
        err = self._lib.cudaGetDeviceProperties(buf, int(device))
        if err:
            return self._err(err), None
        major, minor = ctypes.c_int(0), ctypes.c_int(0)
        self._lib.cudaDeviceGetAttribute(ctypes.byref(major), ATTR_COMPUTE_MAJOR, int(device))
        self._lib.cudaDeviceGetAttribute(ctypes.byref(minor), ATTR_COMPUTE_MINOR, int(device))
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        self._lib.cudaMemGetInfo(ctypes.byref(free), ctypes.byref(total))
        props = SimpleNamespace(name=buf.raw[:256], major=major.value, minor=minor.value, totalGlobalMem=total.value)
        return self._err(0), props

    def cudaStreamCreate(self):
        s = ctypes.c_void_p()
        return self._err(self._lib.cudaStreamCreate(ctypes.byref(s))), s.value or 0

    def cudaMalloc(self, nbytes: int):
        p = ctypes.c_void_p()
        return self._err(self._lib.cudaMalloc(ctypes.byref(p), int(nbytes))), p.value or 0

    def cudaMemcpyAsync(self, dst: int, src: int, nbytes: int, kind: int, stream: int):
        return (self._err(self._lib.cudaMemcpyAsync(ctypes.c_void_p(dst), ctypes.c_void_p(src), int(nbytes),
                                                    int(kind), ctypes.c_void_p(stream or None))),)

    def cudaStreamSynchronize(self, stream: int):
        return (self._err(self._lib.cudaStreamSynchronize(ctypes.c_void_p(stream or None))),)

    def cudaFree(self, ptr: int):
        return (self._err(self._lib.cudaFree(ctypes.c_void_p(ptr))),)

    def cudaStreamDestroy(self, stream: int):
        return (self._err(self._lib.cudaStreamDestroy(ctypes.c_void_p(stream))),)
