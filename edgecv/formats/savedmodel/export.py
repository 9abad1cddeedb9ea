"""SavedModel exporter for TF Serving: a uint8 image signature and an encoded-image signature,
laid out <name>/<version>/ with the files that run it on real TF Serving beside the versions.

The `serving_default` signature takes uint8 pixels at the model's input size and returns what the
task serves (`Task.serving_outputs`: its named outputs plus what a client wants ready-made, e.g.
class ids); `serving_encoded` takes JPEG/PNG bytes (`{"b64": ...}` over REST) and decodes and
resizes them in the graph by the preprocessing contract (edgecv.formats.savedmodel.encoded_images). The
task's sidecar files (`Task.sidecars`, e.g. labels.txt) travel inside as assets; the warm-up
requests in assets.extra; models.config, batching and monitoring configs, a Dockerfile, a run
script and Kubernetes/KServe manifests beside (edgecv.formats.savedmodel.tfserving_files).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from edgecv.errors import ConversionError
from edgecv.exporters.base import Artifact, ExportContext, Exporter, artifact_output_names, parse_options
from edgecv.formats.savedmodel.encoded_images import ENCODED_INPUT, ENCODED_SIGNATURE, encoded_to_pixels
from edgecv.formats.savedmodel.tfserving_files import BatchingOptions, DeployOptions, models_config  # noqa: F401
from edgecv.files import atomic_path, atomic_write_text
from edgecv.formats.savedmodel.tfserving_files import write_deployment_files, write_warmup
from edgecv.formats.savedmodel.detection import detection_outputs


class SavedModelOptions(BaseModel):
    """`options:` of a savedmodel artifact."""

    model_config = ConfigDict(extra="forbid")
    version: int = Field(1, ge=1, description="the numbered folder TF Serving loads")
    encoded_images: bool = Field(True, description="add the serving_encoded signature (JPEG/PNG bytes)")
    batching: BatchingOptions = Field(default_factory=BatchingOptions)
    deploy: DeployOptions = Field(default_factory=DeployOptions)


def serving_module(task_model, task=None, resize: str = "center_crop", pad_value: int = 0, encoded: bool = True):
    """A tf.Module whose `serve` takes uint8 HWC images (any batch) and returns the task's serving
    outputs by name; `serve_encoded` takes [N] encoded images and decodes and resizes them by the
    `resize` policy first."""
    from edgecv._keras import tf

    task = task or task_model.make_task()
    model, info = task_model.keras_model, task_model.info
    postprocess = task.postprocess(info)
    h, w = task_model.input_size

    class Serving(tf.Module):
        def __init__(self):
            super().__init__()
            # the weights only, not the Keras model: a model trained in this process still holds its
            # optimizer (Adam's slots: 2.5x the flowers SavedModel), one loaded from the cache does not
            self.weights = list(model.weights)

        @tf.function(input_signature=[tf.TensorSpec([None, h, w, 3], tf.uint8, name="images")])
        def serve(self, images):
            outputs = task_model.named(model(tf.cast(images, tf.float32), training=False))
            if postprocess is not None:  # decode + NMS: the TF Object Detection API's outputs
                return detection_outputs(postprocess, outputs)
            return task.serving_outputs(outputs, images, info)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=ENCODED_INPUT)])
        def serve_encoded(self, image_bytes):
            return self.serve(encoded_to_pixels(image_bytes, (h, w), resize, pad_value))

    return Serving()


def _signature_io(fn) -> tuple[dict, dict]:
    """{name: dtype[shape]} of a signature's inputs and outputs."""
    fn = fn.get_concrete_function()

    def show(spec) -> str:
        return f"{spec.dtype.name}[{','.join('None' if d is None else str(d) for d in spec.shape.as_list())}]"

    inputs = {s.name: show(s) for s in fn.structured_input_signature[0]}
    return inputs, {k: show(v) for k, v in fn.structured_outputs.items()}


class SavedModelExporter(Exporter):
    format = "savedmodel"
    precisions = ("fp32",)

    @classmethod
    def check_spec(cls, spec, task=None) -> None:
        parse_options(spec.options, SavedModelOptions, "savedmodel artifact")

    def export(self, model, spec, out_dir: Path, ctx: ExportContext) -> Artifact:
        from edgecv._keras import tf

        opts = parse_options(spec.options, SavedModelOptions, "savedmodel artifact")
        task = model.make_task()
        version = opts.version
        root = out_dir / f"{ctx.model_name}_{spec.name}"
        pre = ctx.preprocessing or {}
        resize, pad_value = pre.get("resize", "center_crop"), int(pre.get("pad_value", 0))
        module = serving_module(model, task, resize, pad_value)
        inputs, outputs = _signature_io(module.serve)
        signatures = {"serving_default": module.serve}
        if opts.encoded_images:
            signatures[ENCODED_SIGNATURE] = module.serve_encoded
        with tempfile.TemporaryDirectory(prefix="edgecv-assets-") as assets, \
                atomic_path(root / str(version), is_dir=True) as tmp:
            # the task's files (labels.txt ...) become assets: copied into <version>/assets/
            module.sidecars = {}
            for name, text in task.sidecars(model.info).items():
                (Path(assets) / name).write_text(text)
                module.sidecars[name.replace(".", "_")] = tf.saved_model.Asset(str(Path(assets) / name))
            try:
                tf.saved_model.save(module, str(tmp), signatures=signatures)
            except Exception as e:
                raise ConversionError(f"SavedModel export failed: {e}") from None
            warmup = self._warmup(tmp, ctx.model_name, model.input_size, opts, ctx.log)
        atomic_write_text(root / "models.config", models_config(ctx.model_name, f"/models/{root.name}"))
        files = write_deployment_files(root, ctx.model_name, opts.batching, opts.deploy, tf.__version__)
        checks = {"signature": "serving_default", "inputs": inputs, "outputs": outputs,
                  "signatures": sorted(signatures), "assets": sorted(task.sidecars(model.info)), "version": version,
                  "warmup_requests": warmup, "passed": True}
        if opts.encoded_images:
            checks["encoded_inputs"] = _signature_io(module.serve_encoded)[0]
            checks["encoded_resize"] = resize
        return Artifact(spec.name, self.format, spec.precision, root, "savedmodel", checks=checks,
                        metadata=self._metadata(model, task, root, version, files))

    @staticmethod
    def _metadata(model, task, root: Path, version: int, files) -> dict:
        meta = {"layout": f"{root.name}/{version}/ + models.config", "outputs": model.output_names,
                "tf_serving_files": ["models.config", *files]}
        postprocess = task.postprocess(model.info)
        if postprocess is not None:
            meta["outputs"] = artifact_output_names(model, postprocess)
            nms = "non_max_suppression" if not postprocess.nms.per_class else "combined_non_max_suppression"
            meta["postprocess"] = {**postprocess.describe(), "op": f"tf.image.{nms}", "computes_in": "float32",
                                   "raw_outputs": list(postprocess.raw_outputs),
                                   "note": f"decode + tf.image.{nms} in the serving signature ({postprocess.nms.variant}"
                                           " NMS): the TF Object Detection API's output names, 0-based classes"}
        return meta

    @staticmethod
    def _warmup(version_dir: Path, name: str, size, opts: SavedModelOptions, log) -> int:
        """assets.extra/tf_serving_warmup_requests (0 records, said so, without tensorflow-serving-api)."""
        import numpy as np

        try:
            import tensorflow_serving.apis  # noqa: F401
        except ImportError:
            log("warm-up requests skipped: pip install tensorflow-serving-api (the build extra has it)")
            return 0
        from edgecv._keras import tf

        h, w = size
        grey = tf.io.encode_jpeg(np.full((h, w, 3), 128, np.uint8)).numpy()
        sigs = {"serving_default": {"images": lambda n: np.full((n, h, w, 3), 128, np.uint8)}}
        if opts.encoded_images:
            sigs[ENCODED_SIGNATURE] = {ENCODED_INPUT: lambda n: np.array([grey] * n, dtype=object)}
        sizes = sorted({1, opts.batching.max_batch_size})
        return write_warmup(version_dir / "assets.extra" / "tf_serving_warmup_requests", name, sigs, sizes)
