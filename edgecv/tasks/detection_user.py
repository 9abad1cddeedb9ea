"""Bring your own detector (`edgecv export MODEL --task detection --anchors FILE.npy`): a Keras model
whose outputs are the task's raw outputs, `box_encodings [N, L, 4]` (the TF Object Detection API's
center-size encoding divided by the box-coder scales) and `scores [N, L, C]` (sigmoid, no background
column), with the anchors it was trained against.

The anchors are stored as an array in the detection facts (`detection.anchors.boxes`, beside the
parameters edgecv's own heads keep), so every format's NMS, the numpy decode and a device's
`edgecv validate` use exactly the user's anchors.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

from edgecv.data.detection import read_names
from edgecv.errors import ConfigError
from edgecv.tasks.detection_anchors import explicit_anchor_params, read_anchor_file

BOX_OUTPUT, SCORE_OUTPUT = "box_encodings", "scores"


def user_class_names(recipe, options) -> Optional[List[str]]:
    """The detector's class names, in score order: the labels file (`--labels`, one per line),
    else `task_options.classes`, else None (the annotations' names)."""
    if recipe.model.labels is None:
        return options.classes
    path = recipe.resolve(recipe.model.labels)
    if not path.is_file():
        raise ConfigError(f"--labels {path}: no such file (class names of the detector's scores, one per line)")
    return list(read_names(path))


def raw_output_shapes(recipe) -> tuple[list, list]:
    """(box_encodings shape, scores shape) of the user's model, checked against the contract."""
    outputs = recipe.model_facts()["outputs"]
    shapes = {o["name"]: o["shape"] for o in outputs}
    contract = (f"task detection needs two outputs, {BOX_OUTPUT} [N, L, 4] (center-size encoding) and "
                f"{SCORE_OUTPUT} [N, L, C] (sigmoid per class)")
    if len(outputs) != 2 or any(len(o["shape"]) != 3 for o in outputs):
        raise ConfigError(f"model {recipe.model.path}: outputs {[o['name'] + str(o['shape']) for o in outputs]}; "
                          f"{contract}; a model that ends in its own NMS is judged with `edgecv validate`")
    if set(shapes) == {BOX_OUTPUT, SCORE_OUTPUT}:
        boxes, scores = shapes[BOX_OUTPUT], shapes[SCORE_OUTPUT]
    else:  # unnamed: in the contract's order
        boxes, scores = outputs[0]["shape"], outputs[1]["shape"]
    if boxes[2] != 4:
        raise ConfigError(f"model {recipe.model.path}: the first output {outputs[0]['name']} has shape {boxes}, not "
                          f"[N, L, 4]; {contract} (name them so, or put the box encodings first)")
    return boxes, scores


def user_detection_facts(recipe, options, class_names: Sequence[str], nms: dict) -> dict:
    """The `detection` section of a brought detector: its anchors file's array, the scales, NMS."""
    if options.anchors is None:
        raise ConfigError(f"model {recipe.model.path}: a brought detector needs the anchors its box encodings are "
                          "relative to: --anchors FILE.npy ([L, 4] (yc, xc, h, w) in [0, 1] of the input, the layout "
                          "TFLite_Detection_PostProcess takes); recipe: task_options.anchors")
    path = recipe.resolve(options.anchors)
    if not path.is_file():
        raise ConfigError(f"--anchors {path}: no such file")
    try:
        anchors = read_anchor_file(path)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    boxes, scores = raw_output_shapes(recipe)
    for what, n in (("box encodings", boxes[1]), ("scores", scores[1])):
        if n is not None and n != len(anchors):
            raise ConfigError(f"--anchors {path.name} has {len(anchors)} anchors, the model's {what} have {n} "
                              "(L): give the anchors the model was trained with, in its output order")
    if scores[2] is not None and scores[2] != len(class_names):
        raise ConfigError(f"model {recipe.model.path} scores {scores[2]} classes, the class names are "
                          f"{len(class_names)} ({', '.join(class_names[:6])}{', ...' if len(class_names) > 6 else ''}):"
                          " give --labels with one name per score column (no background line)")
    return {"head": "user", "anchors": explicit_anchor_params(anchors, path.name),
            "scales": [float(s) for s in options.box_scales], "nms": nms, "score_threshold": options.score_threshold}
