"""Core ML detection: a pipeline of the detector (an ML Program that decodes its boxes) and a
NonMaximumSuppression model, the form Vision turns into VNRecognizedObjectObservation results.

- The ML Program takes the image and returns `raw_confidence [L, C]` (the class scores) and
  `raw_coordinates [L, 4]` (x_center, y_center, width, height, normalized: Vision's layout),
  decoded in the program with the anchors and scales (edgecv.metrics.nms), float32.
- The NonMaximumSuppression model (Core ML's own, spec version 4+) keeps boxes by the settings'
  iou_threshold and score_threshold (confidenceThreshold), across classes for the fast variant
  (pickTop.perClass false) or per class (true), carrying the class labels; its outputs
  `confidence [M, C]` and `coordinates [M, 4]` have a variable first dimension M. Core ML's NMS has
  no count limit: `max_detections` is applied by whoever reads the outputs (the runtime here).
- The runtime (macOS only: Core ML predicts there alone) reads a kept row as the class of its
  highest confidence and that confidence, and returns the four contract outputs (`to_contract`).
  A box the per-class NMS keeps for two classes comes back as one row per class with the same
  confidence vector: read by its best class, so per-class results can differ from the reference's
  there; the fast variant has no such case.
On Linux the pipeline is checked structurally (`inspect_pipeline`): numeric agreement needs macOS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from edgecv.metrics.nms import DETECTION_OUTPUTS
from edgecv.formats.detection_tf import decode
from edgecv.tasks.base import as_named

RAW_CONFIDENCE, RAW_COORDINATES = "raw_confidence", "raw_coordinates"
CONFIDENCE, COORDINATES = "confidence", "coordinates"
NMS_SPEC_VERSION = 4  # NonMaximumSuppression models exist from Core ML 2 (iOS 12) on


def detector_function(keras_model, output_names: Sequence[str], pp):
    """A tf.function [1, H, W, 3] float32 `image` -> {raw_confidence [L, C], raw_coordinates [L, 4]}."""
    from edgecv._keras import tf

    h, w = keras_model.input_shape[1:3]
    box_name, score_name = pp.raw_outputs

    @tf.function(input_signature=[tf.TensorSpec([1, h, w, 3], tf.float32, name="image")])
    def detect(image):
        raw = as_named(keras_model(image, training=False), list(output_names))
        b = decode(tf, raw[box_name], pp)[0]
        xywh = tf.stack([(b[:, 1] + b[:, 3]) / 2, (b[:, 0] + b[:, 2]) / 2, b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]], axis=1)
        return {RAW_CONFIDENCE: raw[score_name][0], RAW_COORDINATES: xywh}

    return detect


def nms_model(program_spec, pp, class_names: Sequence[str]):
    """The NonMaximumSuppression MLModel reading the program's two outputs."""
    import coremltools as ct

    spec = ct.proto.Model_pb2.Model()
    spec.specificationVersion = NMS_SPEC_VERSION
    by_name = {o.name: o for o in program_spec.description.output}
    for raw, out, width in ((RAW_CONFIDENCE, CONFIDENCE, len(class_names)), (RAW_COORDINATES, COORDINATES, 4)):
        spec.description.input.add().CopyFrom(by_name[raw])
        o = spec.description.output.add()
        o.CopyFrom(by_name[raw])
        o.name = out
        array = o.type.multiArrayType
        del array.shape[:]
        rows, cols = array.shapeRange.sizeRanges.add(), array.shapeRange.sizeRanges.add()
        rows.lowerBound, rows.upperBound = 0, -1  # as many rows as boxes are kept
        cols.lowerBound = cols.upperBound = width
    nms = spec.nonMaximumSuppression
    nms.confidenceInputFeatureName, nms.coordinatesInputFeatureName = RAW_CONFIDENCE, RAW_COORDINATES
    nms.confidenceOutputFeatureName, nms.coordinatesOutputFeatureName = CONFIDENCE, COORDINATES
    nms.iouThreshold = pp.nms.iou_threshold
    nms.confidenceThreshold = pp.nms.score_threshold
    nms.pickTop.perClass = pp.nms.per_class
    nms.stringClassLabels.vector.extend(str(c) for c in class_names)
    spec.description.output[0].shortDescription = "confidence of each class for every kept box"
    spec.description.output[1].shortDescription = "kept boxes: x_center, y_center, width, height in [0, 1]"
    return ct.models.MLModel(spec)


def class_names_of(info: dict, num_classes: int) -> list[str]:
    names = list(info.get("class_names") or [])
    return names if len(names) == num_classes else [str(i) for i in range(num_classes)]


def inspect_pipeline(path: Path, pp=None, class_names: Optional[Sequence[str]] = None) -> dict:
    """The package is a pipeline whose last model is a NonMaximumSuppression reading the
    detector's confidence and coordinates, with the build's thresholds and labels."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(path))
    problems, checks = [], {"type": spec.WhichOneof("Type")}
    models = list(spec.pipeline.models) if checks["type"] == "pipeline" else []
    checks["pipeline_models"] = [m.WhichOneof("Type") for m in models]
    if not models or models[-1].WhichOneof("Type") != "nonMaximumSuppression":
        problems.append(f"not a pipeline ending in a NonMaximumSuppression model (found {checks['pipeline_models']})")
    else:
        nms = models[-1].nonMaximumSuppression
        program_outputs = {o.name: o for o in models[0].description.output}
        checks["nms"] = {"iou_threshold": round(nms.iouThreshold, 6), "confidence_threshold": round(nms.confidenceThreshold, 6),
                         "per_class": nms.pickTop.perClass, "labels": list(nms.stringClassLabels.vector),
                         "inputs": [nms.confidenceInputFeatureName, nms.coordinatesInputFeatureName],
                         "outputs": [nms.confidenceOutputFeatureName, nms.coordinatesOutputFeatureName]}
        if set(checks["nms"]["inputs"]) - set(program_outputs):
            problems.append(f"the NMS reads {checks['nms']['inputs']}, the detector outputs {sorted(program_outputs)}")
        coords = program_outputs.get(nms.coordinatesInputFeatureName)
        conf = program_outputs.get(nms.confidenceInputFeatureName)
        if coords is not None and conf is not None:
            shapes = [list(conf.type.multiArrayType.shape), list(coords.type.multiArrayType.shape)]
            checks["detector_outputs"] = {"confidence": shapes[0], "coordinates": shapes[1]}
            if len(shapes[0]) != 2 or shapes[1][1:] != [4] or shapes[0][0] != shapes[1][0]:
                problems.append(f"detector outputs must be confidence [L, C] and coordinates [L, 4], got {shapes}")
        if pp is not None:
            if abs(nms.iouThreshold - pp.nms.iou_threshold) > 1e-6 or \
                    abs(nms.confidenceThreshold - pp.nms.score_threshold) > 1e-6 or nms.pickTop.perClass != pp.nms.per_class:
                problems.append(f"NMS settings {checks['nms']} differ from the build's {pp.nms.to_json()}")
        if class_names is not None and list(nms.stringClassLabels.vector) != [str(c) for c in class_names]:
            problems.append("the NMS class labels differ from the model's class names")
    checks["outputs"] = [o.name for o in spec.description.output]
    if checks["outputs"] != [CONFIDENCE, COORDINATES]:
        problems.append(f"the pipeline's outputs must be {[CONFIDENCE, COORDINATES]} (Vision reads them), got {checks['outputs']}")
    checks["passed"] = not problems
    checks["message"] = "; ".join(problems)
    return checks


def to_contract(confidence: np.ndarray, coordinates: np.ndarray, max_detections: int) -> dict:
    """One image's NMS outputs (confidence [M, C], coordinates [M, 4] x_center, y_center, width,
    height) -> the four contract outputs of a batch of one, best first, cut to max_detections."""
    conf = np.asarray(confidence, np.float32).reshape(-1, np.asarray(confidence).shape[-1] if np.size(confidence) else 1)
    xywh = np.asarray(coordinates, np.float32).reshape(-1, 4)
    scores = conf.max(axis=1) if len(conf) else np.zeros(0, np.float32)
    order = np.argsort(-scores, kind="stable")[:max_detections]
    k, m = max_detections, len(order)
    boxes = np.zeros((1, k, 4), np.float32)
    x, y, w, h = (xywh[order, i] for i in range(4))
    boxes[0, :m] = np.stack([y - h / 2, x - w / 2, y + h / 2, x + w / 2], axis=1) if m else boxes[0, :0]
    classes, out_scores = np.zeros((1, k), np.float32), np.zeros((1, k), np.float32)
    classes[0, :m] = conf[order].argmax(axis=1) if m else classes[0, :0]
    out_scores[0, :m] = scores[order]
    return dict(zip(DETECTION_OUTPUTS, (boxes, classes, out_scores, np.array([m], np.float32))))
