"""SavedModel exporter for TF Serving: a uint8 image signature, laid out <name>/<version>/."""

from __future__ import annotations

from pathlib import Path

from edgecv.files import atomic_path, atomic_write_text
from edgecv.errors import ConversionError
from edgecv.exporters.base import Artifact, ExportContext, Exporter


def serving_module(task_model):
    """A tf.Module whose `serving_default` takes uint8 HWC images (any batch) and returns
    `probabilities` and `class_id`; labels travel as an asset."""
    from edgecv._keras import tf

    model = task_model.keras_model
    h, w = task_model.input_size

    class Serving(tf.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None, h, w, 3], tf.uint8, name="images")])
        def serve(self, images):
            probs = self.model(tf.cast(images, tf.float32), training=False)
            return {"probabilities": probs, "class_id": tf.argmax(probs, axis=-1, output_type=tf.int32)}

    return Serving()


def models_config(name: str, base_path: str) -> str:
    return (
        "model_config_list {\n  config {\n"
        f"    name: '{name}'\n    base_path: '{base_path}'\n    model_platform: 'tensorflow'\n"
        "  }\n}\n"
    )


class SavedModelExporter(Exporter):
    format = "savedmodel"
    precisions = ("fp32",)

    def export(self, model, spec, out_dir: Path, ctx: ExportContext) -> Artifact:
        from edgecv._keras import tf

        version = int(spec.options.get("version", 1))
        root = out_dir / f"{ctx.model_name}_{spec.name}"
        module = serving_module(model)
        with atomic_path(root / str(version), is_dir=True) as tmp:
            labels = tmp.parent / "labels.txt"
            labels.write_text("".join(f"{c}\n" for c in model.class_names))
            module.labels = tf.saved_model.Asset(str(labels))
            try:
                tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve})
            except Exception as e:
                raise ConversionError(f"SavedModel export failed: {e}") from None
        atomic_write_text(root / "models.config", models_config(ctx.model_name, f"/models/{root.name}"))
        return Artifact(spec.name, self.format, spec.precision, root, "savedmodel",
                        checks={"signature": "serving_default", "inputs": {"images": f"uint8[None,{model.input_size[0]},{model.input_size[1]},3]"},
                                "outputs": ["probabilities", "class_id"], "version": version, "passed": True},
                        metadata={"layout": f"{root.name}/{version}/ + models.config"})
