"""The serving signature every format converts from: float32 pixels `image` [batch, H, W, 3] in,
the model's outputs under the task's names out. TFLite, ONNX (through a SavedModel) and Core ML
trace this one function, so the three artifacts of a model share their input and output names."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from edgecv.tasks.base import as_named


def serving_function(keras_model, output_names: Optional[Sequence[str]] = None, batch: Optional[int] = None,
                     tail: Optional[Callable[[dict], dict]] = None):
    """A tf.function from float32 pixels `image` [batch, H, W, 3] to the model's outputs by name
    (the task's names; the Keras output names when none are given). `tail`, when given, maps those
    named outputs to the artifact's (a format's detection post-process, say)."""
    from edgecv._keras import tf  # TensorFlow only when a model is converted, not when this is imported

    names = list(output_names or keras_model.output_names)
    h, w = keras_model.input_shape[1:3]

    @tf.function(input_signature=[tf.TensorSpec([batch, h, w, 3], tf.float32, name="image")])
    def serve(image):
        outputs = as_named(keras_model(image, training=False), names)
        return outputs if tail is None else tail(outputs)

    return serve
