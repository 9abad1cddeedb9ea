"""The one module that chooses the Keras edgecv uses.

tensorflow-model-optimization, tf2onnx's Keras path and coremltools only work with Keras 2
(`tf_keras`); TensorFlow 2.21 defaults to Keras 3. Every module that needs TensorFlow or Keras
imports them from here, so the switch happens before TensorFlow is first imported. Modules that
only run artifacts (TFLite, ONNX Runtime) never import this, so `edgecv bench` works on a device
without TensorFlow.

`tf` and `keras` are imported on first use, not when this module is: listing passes or reading a
pass's settings (`edgecv passes -v`) does not pay TensorFlow's start-up (seconds, and its logs).
"""

import importlib
import os
import types

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter


class _OnFirstUse(types.ModuleType):
    """A module stand-in that imports the real one when an attribute is first read."""

    def __init__(self, name: str):
        super().__init__(name)
        self.__dict__["_real"] = None

    def _load(self):
        if self.__dict__["_real"] is None:
            self.__dict__["_real"] = importlib.import_module(self.__name__)
        return self.__dict__["_real"]

    def __getattr__(self, attr):
        return getattr(self._load(), attr)

    def __dir__(self):
        return dir(self._load())


tf = _OnFirstUse("tensorflow")
keras = _OnFirstUse("tf_keras")

__all__ = ["tf", "keras"]
