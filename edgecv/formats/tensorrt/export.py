"""TensorRT engines, built where they will run.

An engine runs only on the GPU model and TensorRT version that built it, and TensorRT 10
deprecated (11 removed) implicit int8 calibration and the FP16/INT8 builder flags: networks are
strongly typed and precision comes from the ONNX graph. So this exporter writes the engine's
source ONNX (int8 QDQ or fp16, with the task's named outputs) into a self-contained device bundle
(`tensorrt_bundle`) and builds the engine there (`edgecv.formats.tensorrt.engine`) when TensorRT
can create a builder on a GPU here. Where it cannot (a CI runner, a laptop), the artifact is
reported `not_built` with the reason and the command that finishes it on the device:
`edgecv engine build <bundle>`, which builds every engine with the same code, validates it on
the bundle's images and writes report.json beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from pydantic import Field, field_validator

from edgecv.errors import ConversionError
from edgecv.exporters.base import (Artifact, ExportContext, Exporter, NotBuiltHere, artifact_output_names, parse_options,
                                   task_postprocess)
from edgecv.formats.onnx.export import OnnxOptions
from edgecv.formats.onnx.export import (qdq_key_fields, qdq_int8_passes, INPUT_NAME, _ensure_onnx, export_onnx_bytes,
                                        inspect_onnx, model_fingerprint)
from edgecv.formats.tensorrt.bundle import write_bundle
from edgecv.formats.tensorrt.engine import build_engine, tensorrt_status
from edgecv.formats.tensorrt.detection import tensorrt_tail
from edgecv.formats.tensorrt import versions as trt_versions  # trt_versions.jetpack_version: probed at call time


class TensorRTOptions(OnnxOptions):
    """`options:` of a tensorrt artifact: the ONNX options plus the engine's."""

    batch: list[int] = Field([1, 8], description="optimization profile: [min, max] or [min, opt, max] batch size")
    workspace_mb: int = Field(1024, ge=16, description="builder workspace memory pool limit")
    builder_optimization_level: Optional[int] = Field(None, ge=0, le=5, description="TensorRT default (3) when unset")
    bundle: Optional[str] = Field(None, pattern=r"^[A-Za-z0-9_.-]+$",
                                  description="bundle folder in the target's build folder (default device-bundle-<artifact>)")
    validation_images: int = Field(256, ge=0, description="validation images copied into the bundle (0: none)")
    tensorrt: Optional[str] = Field(None, description="TensorRT versions the device has, e.g. '>=10,<11': recorded in "
                                    "the bundle; `engine build`/`validate` refuse another")
    jetpack: Optional[str] = Field(None, description="JetPack versions the device has, e.g. '>=6': recorded in the "
                                   "bundle; `engine build`/`validate` refuse another or a machine that is not a Jetson")

    @field_validator("tensorrt", "jetpack")
    @classmethod
    def _requirement(cls, v: Optional[str]) -> Optional[str]:
        if v is not None:
            trt_versions.parse_requirement(v)
        return v

    @field_validator("batch")
    @classmethod
    def _batch_range(cls, v: list[int]) -> list[int]:
        if len(v) not in (2, 3) or min(v) < 1 or sorted(v) != list(v):
            raise ValueError(f"give [min, max] or [min, opt, max] with 1 <= min <= opt <= max, got {v}")
        return v

    @property
    def batch_range(self) -> tuple[int, int, int]:
        b = self.batch
        return (b[0], b[0], b[1]) if len(b) == 2 else (b[0], b[1], b[2])  # opt = min: edge latency is batch 1

    def onnx_options(self) -> OnnxOptions:
        return OnnxOptions(**self.model_dump(include=set(OnnxOptions.model_fields)))


class TensorRTExporter(Exporter):
    format = "tensorrt"
    precisions = ("fp32", "fp16", "int8")
    needs_calibration = ("int8",)

    @classmethod
    def check_spec(cls, spec, task=None) -> None:
        parse_options(spec.options, TensorRTOptions, "tensorrt artifact")

    @classmethod
    def export_key_fields(cls, spec, options: dict) -> tuple[dict, dict]:
        return qdq_key_fields(spec, options)

    @classmethod
    def int8_passes(cls, spec) -> list:
        return qdq_int8_passes(spec)

    def export(self, model, spec, out_dir: Path, ctx: ExportContext) -> Artifact:
        _ensure_onnx()
        opts = parse_options(spec.options, TensorRTOptions, "tensorrt artifact")
        onnx_bytes, meta = export_onnx_bytes(model, spec.precision, opts.onnx_options(), ctx)
        postprocess = task_postprocess(model)
        expects = {"tensorrt": opts.tensorrt, "jetpack": opts.jetpack,
                   "reasons": ["the target's tensorrt artifact options"] if opts.tensorrt or opts.jetpack else []}
        if postprocess is not None:  # decode + EfficientNMS_TRT after the (QDQ or fp16) graph
            onnx_bytes = tensorrt_tail(onnx_bytes, postprocess)
            meta["outputs"] = artifact_output_names(model, postprocess)
            meta["postprocess"] = {**postprocess.describe(), "op": "EfficientNMS_TRT", "computes_in": "float32",
                                   "raw_outputs": list(postprocess.raw_outputs),
                                   "note": f"decode + EfficientNMS_TRT ({postprocess.nms.variant} NMS, K "
                                           f"{postprocess.nms.max_detections})"}
            need = ">=8.0" if postprocess.nms.per_class else ">=8.6"
            expects["tensorrt"] = trt_versions.combine(opts.tensorrt, need)
            expects["reasons"].append(f"EfficientNMS_TRT {'per class' if postprocess.nms.per_class else 'with class_agnostic'}"
                                      f" needs TensorRT {need}")
        checks = inspect_onnx(onnx_bytes, spec.precision, artifact_output_names(model, postprocess))
        if not checks["passed"]:
            raise ConversionError(f"{spec.name}: source ONNX checks failed: {checks['message']}")
        expects = expects if expects["tensorrt"] or expects["jetpack"] else None
        # one self-contained bundle per engine artifact: each export is its own cached stage
        bundle = Path(out_dir) / (opts.bundle or f"device-bundle-{spec.name}")
        data = write_bundle(bundle, model, spec, opts, onnx_bytes, checks, meta, ctx,
                            model_fingerprint(model.keras_model), INPUT_NAME, expects=expects, postprocess=postprocess)
        entry = data["engines"][spec.name]
        trt, reason = tensorrt_status()
        if trt is None:
            raise NotBuiltHere(reason, prepared=bundle, how_to_finish=f"edgecv engine build {bundle}")

        trt_versions.check_device(expects, trt.__version__, trt_versions.jetpack_version(), str(bundle))
        engine_path = bundle / entry["engine"]
        b = entry["batch"]
        sidecar = build_engine(trt, bundle / entry["onnx"], engine_path, spec.precision, (b["min"], b["opt"], b["max"]),
                               opts.workspace_mb, opts.builder_optimization_level, log=lambda m: None)
        checks = {"source_onnx": {k: v for k, v in checks.items() if k != "passed"}, "engine": sidecar, "passed": True}
        return Artifact(spec.name, self.format, spec.precision, engine_path, "tensorrt", checks=checks,
                        metadata={"bundle": str(bundle.relative_to(out_dir)), **meta})
