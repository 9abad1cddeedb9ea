"""TFLite detection post-process: decode + NMS as the TFLite_Detection_PostProcess custom op.

As the TF Object Detection API exports SSD models for TFLite: an empty tf.function whose
`experimental_implements` signature names the op and its attributes; the MLIR converter replaces
the call with the op (needs `allow_custom_ops`; ai_edge_litert's and tflite_runtime's builtin
resolvers register it). The op takes the raw `box_encodings [1, L, 4]`, `scores [1, L, C]` and the
anchors as a constant, decodes with the scales and runs NMS: `use_regular_nms` false is the fast
class-agnostic NMS, true the regular per-class one (edgecv.metrics.nms describes both; the
settings' `per_class` chooses). Outputs, in the op's order: detection_boxes [1, K, 4],
detection_classes [1, K], detection_scores [1, K], num_detections [1], all float32.

The op runs one image at a time (batch 1, a fixed batch the runtime loops over) and computes in
float: in an int8 model everything before it is integer and the two DEQUANTIZE ops feeding it and
the op itself are the float part (`postprocess_ops`, which checks names and does not count as
float compute).
"""

from __future__ import annotations

OP_NAME = "TFLite_Detection_PostProcess"


def implements_signature(pp, num_classes: int) -> str:
    """The attribute string the converter reads (the TF OD API's attribute names)."""
    s = pp.nms
    y, x, h, w = pp.scales
    attrs = [("max_detections", "i", s.max_detections), ("max_classes_per_detection", "i", 1),
             ("detections_per_class", "i", s.max_detections), ("use_regular_nms", "b", str(s.per_class).lower()),
             ("nms_score_threshold", "f", repr(float(s.score_threshold))),
             ("nms_iou_threshold", "f", repr(float(s.iou_threshold))),
             ("y_scale", "f", repr(y)), ("x_scale", "f", repr(x)), ("h_scale", "f", repr(h)), ("w_scale", "f", repr(w)),
             ("num_classes", "i", int(num_classes))]
    return " ".join([f'name: "{OP_NAME}"'] + [f'attr {{ key: "{k}" value {{ {t}: {v} }} }}' for k, t, v in attrs])


def fused_postprocess(pp, num_classes: int):
    """A tf.function (box_encodings, scores) -> the four outputs that the converter turns into the
    op. In TensorFlow it returns placeholders: the artifact, not this function, computes them."""
    from edgecv._keras import tf

    signature = implements_signature(pp, num_classes)
    anchors = tf.constant(pp.anchors)

    @tf.function(experimental_implements=signature)
    def detection_postprocess(box_encodings, class_predictions, anchor_boxes):  # noqa: ARG001 (fused away)
        return (tf.constant(0.0, name="boxes"), tf.constant(0.0, name="classes"),
                tf.constant(0.0, name="scores"), tf.constant(0.0, name="num_detections"))

    def run(box_encodings, scores):
        return detection_postprocess(box_encodings, scores, anchors)

    return run


def postprocess_ops(ops: list, outputs: set) -> set:
    """Indices of the ops that make up the post-process in an interpreter's op list: the custom op
    and the DEQUANTIZE ops that only feed it."""
    pp = [op for op in ops if op["op_name"] == OP_NAME]
    feeding = {int(i) for op in pp for i in op["inputs"]}
    consumers: dict = {}
    for op in ops:
        for i in op["inputs"]:
            consumers.setdefault(int(i), []).append(op["op_name"])
    found = {op["index"] for op in pp}
    for op in ops:
        if op["op_name"] == "DEQUANTIZE" and all(int(o) in feeding and set(consumers.get(int(o), [])) == {OP_NAME}
                                                 for o in op["outputs"]):
            found.add(op["index"])
    return found


def outputs_in_op_order(flat: bytes) -> bytes:
    """The model with its outputs listed in the op's order (boxes, classes, scores, count): apps and
    the TFLite Task Library read them by index, and the converter lists a signature's outputs in
    an order of its own (num_detections first). The signature keeps mapping each name to its tensor."""
    from tensorflow.lite.python import util

    model = util._convert_model_from_bytearray_to_object(flat)
    graph = model.subgraphs[0]
    codes = [c.customCode for c in model.operatorCodes]
    ops = [op for op in graph.operators if codes[op.opcodeIndex] in (OP_NAME, OP_NAME.encode())]
    if len(ops) != 1:
        return flat  # inspect_tflite reports the missing op
    order = [int(i) for i in ops[0].outputs]
    if sorted(order) != sorted(int(i) for i in graph.outputs):
        return flat
    graph.outputs = order
    return bytes(util._convert_model_from_object_to_bytearray(model))
