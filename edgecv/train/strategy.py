"""Pick the tf.distribute strategy and precision policy for the machine training runs on."""

from __future__ import annotations

import os

from edgecv._keras import keras, tf


def make_strategy() -> tf.distribute.Strategy:
    """Several workers (TF_CONFIG set) > several GPUs > the default single-device strategy."""
    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def set_precision_policy(setting: str) -> str:
    """mixed_float16 on GPUs (tensor cores), float32 on CPUs where it only slows training down."""
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    policy = "mixed_float16" if setting == "on" or (setting == "auto" and has_gpu) else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy
