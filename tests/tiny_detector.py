"""A tiny detector with the detection contract's raw outputs, for the format tests: random small
weights, 16x16 input, 4x4 locations x 2 anchors, 3 classes; and a task, defined only in tests,
that asks for the post-process (`Task.postprocess`). Seconds to build and export."""

from __future__ import annotations

from typing import List

import numpy as np

from edgecv.metrics.nms import DetectionPostProcess, NmsSettings
from edgecv.tasks.base import OutputSpec, Task

SIZE = 16
CLASSES = 3
GRID, PER_CELL = 4, 2


def tiny_anchors() -> np.ndarray:
    """(yc, xc, h, w) for a 4x4 grid, two sizes per cell."""
    c = (np.arange(GRID) + 0.5) / GRID
    yc, xc = np.meshgrid(c, c, indexing="ij")
    rows = [[y, x, s, s * r] for y, x in zip(yc.ravel(), xc.ravel()) for s, r in ((0.3, 1.0), (0.5, 0.7))]
    return np.asarray(rows, np.float32)


class TinyDetection(Task):
    """Raw outputs box_encodings [N, L, 4] and scores [N, L, C]; the post-process from info."""

    name = "test_tiny_detection"
    needs_targets = False

    def read_data(self, recipe):
        raise NotImplementedError

    def targets(self, samples, info):
        return None

    def output_spec(self, info: dict) -> List[OutputSpec]:
        n = len(tiny_anchors())
        return [OutputSpec("box_encodings", ("N", n, 4)), OutputSpec("scores", ("N", n, CLASSES))]

    def postprocess(self, info: dict):
        d = info["detection"]
        return DetectionPostProcess(tiny_anchors(), tuple(d["scales"]), NmsSettings.from_dict(d["nms"]))


def tiny_detector(nms: dict, seed: int = 0):
    """A TaskModel of TinyDetection with the given NMS settings."""
    from edgecv._keras import keras
    from edgecv.models.backbones import normalization
    from edgecv.models.build import TaskModel, normalization_layer

    keras.utils.set_random_seed(seed)
    norm = normalization("tf")
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    x = normalization_layer(norm)(inp)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    b = keras.layers.Conv2D(PER_CELL * 4, 1, name="box_head")(x)
    s = keras.layers.Conv2D(PER_CELL * CLASSES, 1, activation="sigmoid", name="class_head",
                            bias_initializer=keras.initializers.Constant(-0.5))(x)
    b = keras.layers.Reshape((-1, 4), name="box_encodings")(b)
    s = keras.layers.Reshape((-1, CLASSES), name="scores")(s)
    info = {"class_names": ["a", "b", "c"],
            "detection": {"anchors": {"tiny": True}, "scales": [10.0, 10.0, 5.0, 5.0], "nms": nms}}
    return TaskModel(keras.Model(inp, [b, s], name="tiny_det"), TinyDetection.name, info, (SIZE, SIZE), norm,
                     "toy", [])


def images(count: int = 6, seed: int = 1) -> np.ndarray:
    """Blocky images (constant 4x4 patches): the activations vary much more than on pixel noise."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (count, SIZE // 4, SIZE // 4, 3))
    return np.repeat(np.repeat(small, 4, axis=1), 4, axis=2).astype(np.uint8)


def calibration(count: int = 16, seed: int = 2):
    batches = [images(1, seed + i) for i in range(count)]
    return lambda: iter(batches)


def save_raw_detector(path, size: int = 32, classes: int = 2, seed: int = 0, swap_outputs: bool = False):
    """A plain Keras detector a user would bring, saved to `path`: input [N, size, size, 3] in [-1, 1]
    (`--preprocess tf`), outputs box_encodings [N, 32, 4] and scores [N, 32, classes] (sigmoid)
    against `tiny_anchors()` (4x4 locations x 2 anchors); `swap_outputs` lists scores first."""
    from edgecv._keras import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3), name="pixels")
    x = inp
    for i in range(3):  # 32 -> 4x4 locations
        x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name=f"conv{i}")(x)
    b = keras.layers.Conv2D(PER_CELL * 4, 1, name="box_head",
                            kernel_initializer=keras.initializers.RandomNormal(stddev=0.3))(x)
    s = keras.layers.Conv2D(PER_CELL * classes, 1, activation="sigmoid", name="class_head")(x)
    b = keras.layers.Reshape((-1, 4), name="box_encodings")(b)
    s = keras.layers.Reshape((-1, classes), name="scores")(s)
    keras.Model(inp, [s, b] if swap_outputs else [b, s], name="brought_detector").save(path)
    return path
