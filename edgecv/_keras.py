"""The one module that chooses the Keras edgecv uses.

tensorflow-model-optimization, tf2onnx's Keras path and coremltools only work with Keras 2
(`tf_keras`); TensorFlow 2.21 defaults to Keras 3. Every module that needs TensorFlow or Keras
imports them from here, so the switch happens before TensorFlow is first imported. Modules that
only run artifacts (TFLite, ONNX Runtime) never import this, so `edgecv bench` works on a device
without TensorFlow.
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["tf", "keras"]
