"""Build TensorRT engines from ONNX, where they will run (`edgecv engine build` on a Jetson, or the
build host when it has TensorRT and a GPU).

Networks are strongly typed on TensorRT 10/11 (precision comes from the ONNX graph: Q/DQ for int8,
float16 tensors for fp16); TensorRT 8.5 (JetPack 5) builds them with explicit batch and the
INT8/FP16 builder flags. Inputs and outputs are addressed by name. No TensorFlow here.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

import edgecv
from edgecv.errors import ConversionError, EdgecvError
from edgecv.files import atomic_write_bytes, atomic_write_text
from edgecv.formats.tensorrt.runtime import cuda_device, import_cudart, import_tensorrt
from edgecv.runtimes.base import RuntimeUnavailable


class TensorRTUnavailable(EdgecvError):
    """TensorRT, the CUDA runtime or a GPU is missing on this machine."""

    exit_code = 4


def tensorrt_status():
    """(tensorrt module, "") when TensorRT can create a builder on a GPU here, else (None, reason)."""
    try:
        trt = import_tensorrt()
    except RuntimeUnavailable as e:
        return None, str(e)
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    except Exception as e:  # pybind raises when CUDA cannot initialize
        return None, f"TensorRT {trt.__version__} cannot create a builder here: {e} (no usable NVIDIA GPU or driver?)"
    if builder is None:
        return None, f"TensorRT {trt.__version__} cannot create a builder here (no usable NVIDIA GPU or driver)"
    try:
        cuda_device(import_cudart())
    except RuntimeUnavailable as e:
        return None, str(e)
    return trt, ""


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def build_engine(trt, onnx_path: Path, engine_path: Path, precision: str, batch: tuple[int, int, int],
                 workspace_mb: int, optimization_level: Optional[int] = None,
                 log: Callable[[str], None] = print) -> dict:
    """Parse the ONNX, build a strongly typed engine with one optimization profile, save the plan,
    the timing cache (reused by the next build) and the metadata sidecar. Returns the sidecar."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags_enum = trt.NetworkDefinitionCreationFlag
    strongly_typed = hasattr(flags_enum, "STRONGLY_TYPED")
    if strongly_typed:  # TensorRT 10: opt in; TensorRT 11: always strongly typed, the flag is accepted
        flags = 1 << int(flags_enum.STRONGLY_TYPED)
    else:  # TensorRT 8.x (JetPack 5): explicit batch, weakly typed
        flags = 1 << int(flags_enum.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ConversionError(f"TensorRT's ONNX parser rejected {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    if not strongly_typed:
        # TensorRT 8.x needs the flags for Q/DQ (INT8) and fp16 tensors (FP16); later versions
        # take precision from the graph alone and removed these flags
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
        if precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
    if optimization_level is not None:
        if hasattr(config, "builder_optimization_level"):  # TensorRT 8.6+
            config.builder_optimization_level = int(optimization_level)
        else:
            log(f"  TensorRT {trt.__version__} has no builder optimization level: building at its default")
            optimization_level = None
    if network.num_inputs != 1:
        raise ConversionError(f"{onnx_path.name}: expected one input, found {network.num_inputs}")
    inp = network.get_input(0)
    sample = tuple(int(d) for d in inp.shape)[1:]
    if any(d < 0 for d in sample):
        raise ConversionError(f"{onnx_path.name}: only the batch axis may be dynamic, input shape is {tuple(inp.shape)}")
    shapes = {k: (b, *sample) for k, b in zip(("min", "opt", "max"), batch)}
    profile = builder.create_optimization_profile()
    profile.set_shape(inp.name, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(profile)

    cache_path = engine_path.with_name(engine_path.stem + ".timing.cache")
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    if not config.set_timing_cache(cache, ignore_mismatch=False):  # a cache from another GPU/TensorRT
        log(f"  {cache_path.name} does not match this GPU/TensorRT: starting a new timing cache")
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)

    log(f"  building {engine_path.name} ({precision}, batch {batch[0]}-{batch[2]}, TensorRT {trt.__version__})")
    t0 = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - t0
    if plan is None:
        raise ConversionError(f"TensorRT could not build {engine_path.name} from {onnx_path.name} (see the log above)")
    atomic_write_bytes(engine_path, bytes(memoryview(plan)))  # the plain plan: trtexec --loadEngine reads it
    atomic_write_bytes(cache_path, bytes(memoryview(config.get_timing_cache().serialize())))
    sidecar = {
        "engine": engine_path.name,
        "tensorrt_version": trt.__version__,
        "gpu": cuda_device(import_cudart()),
        "precision": precision,
        "strongly_typed": strongly_typed,
        "input_shapes": {inp.name: {k: list(v) for k, v in shapes.items()}},
        "outputs": [network.get_output(i).name for i in range(network.num_outputs)],
        "source_onnx": onnx_path.name,
        "source_onnx_sha256": file_sha256(onnx_path),
        "workspace_mb": workspace_mb,
        "builder_optimization_level": optimization_level,
        "timing_cache": cache_path.name,
        "build_seconds": round(seconds, 2),
        "created": now(),
        "edgecv_version": edgecv.__version__,
    }
    atomic_write_text(engine_path.with_name(engine_path.name + ".json"), json.dumps(sidecar, indent=2) + "\n")
    return sidecar
