"""CUDA without cuda-python (JetPack 5): the runtime falls back to ctypes on libcudart."""

import importlib.util

import pytest

from edgecv.formats.tensorrt import runtime as trt_runtime
from edgecv.formats.tensorrt import cuda_ctypes
from edgecv.runtimes.base import RuntimeUnavailable


@pytest.fixture
def no_cuda_python(monkeypatch):
    if importlib.util.find_spec("cuda") is not None:
        pytest.skip("cuda-python is installed here; the fallback is for machines without it")


def test_without_cuda_python_or_libcudart_the_message_says_what_to_install(no_cuda_python, monkeypatch):
    monkeypatch.setattr(cuda_ctypes, "load_libcudart", lambda: None)
    with pytest.raises(RuntimeUnavailable, match="neither cuda-python nor libcudart") as e:
        trt_runtime.import_cudart()
    assert "edgecv[tensorrt]" in str(e.value)


def test_without_cuda_python_libcudart_is_used(no_cuda_python):
    lib = cuda_ctypes.load_libcudart()
    if lib is None:
        pytest.skip("no libcudart on this machine (needs the CUDA runtime or JetPack)")
    cudart = trt_runtime.import_cudart()
    assert isinstance(cudart, cuda_ctypes.CtypesCudart)
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess or count == 0:  # libcudart without a GPU: a named error, as cuda-python
        assert err.name.startswith("cuda")
        with pytest.raises(RuntimeUnavailable, match="no CUDA GPU"):
            trt_runtime.cuda_device(cudart)
        return
    device = trt_runtime.cuda_device(cudart)
    assert device["name"] and device["memory_mb"] > 0 and "." in device["compute_capability"]
