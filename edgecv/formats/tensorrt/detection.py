"""TensorRT detection post-process: the ONNX decode (edgecv.formats.onnx.detection) followed by
NVIDIA's EfficientNMS_TRT plugin node, which TensorRT's ONNX parser builds from a node of that name
(the plugin ships with TensorRT; its `class_agnostic` attribute, the fast NMS, from 8.6 on).
onnxruntime cannot run it: the engine's detections are measured on the device."""

from __future__ import annotations

import numpy as np

from edgecv.formats.onnx.detection import Graph, decode, set_outputs


def tensorrt_tail(data: bytes, pp) -> bytes:
    """The ONNX model with the decode and NVIDIA's EfficientNMS_TRT plugin (TensorRT >= 8.4 builds
    it from an ONNX node of that name; onnxruntime cannot run it): boxes already decoded
    (box_coding 0, corners), scores as they are (score_activation 0), no background class,
    class_agnostic for the fast variant. Its int32 count [batch, 1] and classes become the contract's
    float outputs."""
    import onnx
    from onnx import TensorProto

    proto = onnx.load_from_string(data)
    g = Graph(proto.graph)
    box_name, score_name = pp.raw_outputs
    boxes = decode(g, box_name, pp)
    s, k = pp.nms, pp.nms.max_detections
    count, det_boxes, det_scores, det_classes = g.op(
        "EfficientNMS_TRT", [boxes, score_name], "efficient_nms", outputs=4,
        background_class=-1, box_coding=0, iou_threshold=float(s.iou_threshold), max_output_boxes=int(k),
        plugin_version="1", score_activation=0, score_threshold=float(s.score_threshold),
        class_agnostic=int(not s.per_class))
    count = g.op("Cast", [g.op("Reshape", [count, g.const(np.array([-1], np.int64))])], to=TensorProto.FLOAT)
    det_classes = g.op("Cast", [det_classes], to=TensorProto.FLOAT)
    set_outputs(proto, g, [det_boxes, det_classes, det_scores, count], k)
    return proto.SerializeToString()
