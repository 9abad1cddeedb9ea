"""SavedModel exporter for TF Serving: a uint8 image signature, laid out <name>/<version>/.

The `serving_default` signature returns what the task serves (`Task.serving_outputs`: its named
outputs plus what a client wants ready-made, e.g. class ids); the task's sidecar files
(`Task.sidecars`, e.g. labels.txt) travel inside as assets.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgecv.errors import ConversionError
from edgecv.exporters.base import Artifact, ExportContext, Exporter
from edgecv.files import atomic_path, atomic_write_text


def serving_module(task_model, task=None):
    """A tf.Module whose `serving_default` takes uint8 HWC images (any batch) and returns the
    task's serving outputs by name."""
    from edgecv._keras import tf

    task = task or task_model.make_task()
    model, info = task_model.keras_model, task_model.info
    h, w = task_model.input_size

    class Serving(tf.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None, h, w, 3], tf.uint8, name="images")])
        def serve(self, images):
            outputs = task_model.named(self.model(tf.cast(images, tf.float32), training=False))
            return task.serving_outputs(outputs, images, info)

    return Serving()


def models_config(name: str, base_path: str) -> str:
    return (
        "model_config_list {\n  config {\n"
        f"    name: '{name}'\n    base_path: '{base_path}'\n    model_platform: 'tensorflow'\n"
        "  }\n}\n"
    )


def _signature_io(module) -> tuple[dict, dict]:
    """{name: dtype[shape]} of the signature's inputs and outputs."""
    fn = module.serve.get_concrete_function()

    def show(spec) -> str:
        return f"{spec.dtype.name}[{','.join('None' if d is None else str(d) for d in spec.shape.as_list())}]"

    inputs = {s.name: show(s) for s in fn.structured_input_signature[0]}
    return inputs, {k: show(v) for k, v in fn.structured_outputs.items()}


class SavedModelExporter(Exporter):
    format = "savedmodel"
    precisions = ("fp32",)

    def export(self, model, spec, out_dir: Path, ctx: ExportContext) -> Artifact:
        from edgecv._keras import tf

        task = model.make_task()
        version = int(spec.options.get("version", 1))
        root = out_dir / f"{ctx.model_name}_{spec.name}"
        module = serving_module(model, task)
        inputs, outputs = _signature_io(module)
        with tempfile.TemporaryDirectory(prefix="edgecv-assets-") as assets, \
                atomic_path(root / str(version), is_dir=True) as tmp:
            # the task's files (labels.txt ...) become assets: copied into <version>/assets/
            module.sidecars = {}
            for name, text in task.sidecars(model.info).items():
                (Path(assets) / name).write_text(text)
                module.sidecars[name.replace(".", "_")] = tf.saved_model.Asset(str(Path(assets) / name))
            try:
                tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve})
            except Exception as e:
                raise ConversionError(f"SavedModel export failed: {e}") from None
        atomic_write_text(root / "models.config", models_config(ctx.model_name, f"/models/{root.name}"))
        return Artifact(spec.name, self.format, spec.precision, root, "savedmodel",
                        checks={"signature": "serving_default", "inputs": inputs, "outputs": outputs,
                                "assets": sorted(task.sidecars(model.info)), "version": version, "passed": True},
                        metadata={"layout": f"{root.name}/{version}/ + models.config", "outputs": model.output_names})
