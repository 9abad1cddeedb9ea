"""ONNX detection post-process: decode + NonMaxSuppression appended to the exported graph.

Appended with onnx.helper after conversion (and after QDQ quantization, so the int8 flow is
unchanged: calibration and Q/DQ placement see the raw outputs, the post-process stays float). The
graph's raw outputs `box_encodings [batch, L, 4]` and `scores [batch, L, C]` become internal and the
outputs are the contract's four: detection_boxes [batch, K, 4] (ymin, xmin, ymax, xmax),
detection_classes [batch, K], detection_scores [batch, K], num_detections [batch], float32,
rows past the count zero.

- decode: the center-size coder with the anchors and scales as constants (edgecv.metrics.nms);
- NMS: ONNX NonMaxSuppression (center_point_box 0: (y1, x1, y2, x2) corners), per class for the
  regular variant; for the fast class-agnostic one over each box's best class score (ReduceMax),
  the class its ArgMax;
- the kept (image, class, box) triples are scattered into a [batch, classes x L] score table (-1
  elsewhere) and TopK takes each image's best K: that merges the classes and pads, whatever order
  the runtime lists the triples in.

The TensorRT bundle reuses the decode with NVIDIA's EfficientNMS_TRT plugin in place of
NonMaxSuppression (edgecv.formats.tensorrt.detection).
"""

from __future__ import annotations

import numpy as np

from edgecv.metrics.nms import DETECTION_OUTPUTS
from edgecv.errors import ConversionError

BATCH_DIM = "batch"


class Graph:
    """Nodes and constants added to a graph under one name prefix."""

    def __init__(self, graph, prefix: str = "postprocess"):
        self.graph, self.prefix, self.n = graph, prefix, 0

    def name(self, hint: str) -> str:
        self.n += 1
        return f"{self.prefix}/{hint}_{self.n}"

    def const(self, value, hint: str = "const") -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs, hint: str = "", outputs: int = 1, domain: str = "", **attrs):
        from onnx import helper

        names = [self.name(hint or op_type.lower()) for _ in range(outputs)]
        node = helper.make_node(op_type, list(inputs), names, name=self.name(op_type), domain=domain or None, **attrs)
        self.graph.node.append(node)
        return names[0] if outputs == 1 else names

    def rename_output(self, tensor: str, name: str):
        self.op("Identity", [tensor])
        self.graph.node[-1].output[0] = name


def opset_of(proto) -> int:
    return max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)


def _reduce_max(g: Graph, x: str, axis: int, opset: int) -> str:
    if opset >= 18:
        return g.op("ReduceMax", [x, g.const(np.array([axis], np.int64), "axes")], keepdims=0)
    return g.op("ReduceMax", [x], axes=[axis], keepdims=0)


def _reduce_sum(g: Graph, x: str, axis: int) -> str:  # axes as input since opset 13
    return g.op("ReduceSum", [x, g.const(np.array([axis], np.int64), "axes")], keepdims=0)


def decode(g: Graph, encodings: str, pp) -> str:
    """(ty, tx, th, tw) [batch, L, 4] -> (ymin, xmin, ymax, xmax) [batch, L, 4], in the numpy
    reference's order of operations."""
    a = pp.anchors
    sy, sx, sh, sw = pp.scales

    def cols(lo, hi):
        return g.op("Slice", [encodings, g.const(np.array([lo], np.int64)), g.const(np.array([hi], np.int64)),
                              g.const(np.array([2], np.int64))])

    anchor_yx, anchor_hw = g.const(a[:, 0:2].astype(np.float32), "anchor_yx"), g.const(a[:, 2:4].astype(np.float32), "anchor_hw")
    center = g.op("Add", [g.op("Mul", [g.op("Div", [cols(0, 2), g.const(np.array([sy, sx], np.float32))]), anchor_hw]),
                          anchor_yx])
    size = g.op("Mul", [g.op("Exp", [g.op("Div", [cols(2, 4), g.const(np.array([sh, sw], np.float32))])]), anchor_hw])
    half = g.op("Div", [size, g.const(np.array(2.0, np.float32))])
    return g.op("Concat", [g.op("Sub", [center, half]), g.op("Add", [center, half])], "boxes", axis=2)


def append_postprocess(data: bytes, pp) -> bytes:
    """The ONNX model `data` (outputs include pp.raw_outputs) with decode + NonMaxSuppression
    appended; its outputs become the four DETECTION_OUTPUTS."""
    import onnx
    from onnx import TensorProto

    proto = onnx.load_from_string(data)
    opset = opset_of(proto)
    g = Graph(proto.graph)
    box_name, score_name = pp.raw_outputs
    scores_vi = next(o for o in proto.graph.output if o.name == score_name)
    num_classes = int(scores_vi.type.tensor_type.shape.dim[2].dim_value)
    if num_classes < 1:
        raise ConversionError(f"the ONNX output {score_name} has no fixed class count: the NMS needs [batch, L, C]")
    L, k = pp.num_anchors, pp.nms.max_detections
    boxes = decode(g, box_name, pp)
    if pp.nms.per_class:
        nms_scores, groups = g.op("Transpose", [score_name], perm=[0, 2, 1]), num_classes  # [batch, C, L]
    else:
        best = _reduce_max(g, score_name, 2, opset)  # [batch, L]
        best_class = g.op("ArgMax", [score_name], axis=2, keepdims=0)
        nms_scores, groups = g.op("Unsqueeze", [best, g.const(np.array([1], np.int64))]), 1  # [batch, 1, L]
    s = pp.nms
    selected = g.op("NonMaxSuppression", [boxes, nms_scores, g.const(np.array([k], np.int64), "max_out"),
                                          g.const(np.array([s.iou_threshold], np.float32), "iou"),
                                          g.const(np.array([s.score_threshold], np.float32), "score")],
                    center_point_box=0)  # [M, 3]: image, class, box
    image, group, box = (g.op("Gather", [selected, g.const(np.array(i, np.int64))], axis=1) for i in range(3))
    kept_scores = g.op("GatherND", [nms_scores, selected])  # [M]
    # a [batch, groups * L] table of kept scores, -1 elsewhere; TopK takes each image's best K
    column = g.op("Add", [g.op("Mul", [group, g.const(np.array(L, np.int64))]), box])
    where = g.op("Concat", [g.op("Unsqueeze", [image, g.const(np.array([1], np.int64))]),
                            g.op("Unsqueeze", [column, g.const(np.array([1], np.int64))])], axis=1)
    batch = g.op("Slice", [g.op("Shape", [score_name]), g.const(np.array([0], np.int64)), g.const(np.array([1], np.int64))])
    table_shape = g.op("Concat", [batch, g.const(np.array([groups * L], np.int64))], axis=0)
    from onnx import helper

    table = g.op("ConstantOfShape", [table_shape], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [-1.0]))
    table = g.op("ScatterND", [table, where, kept_scores])
    kk = min(k, groups * L)
    top, top_index = g.op("TopK", [table, g.const(np.array([kk], np.int64))], outputs=2, axis=1, largest=1, sorted=1)
    box_index = g.op("Mod", [top_index, g.const(np.array(L, np.int64))])  # [batch, kk]
    if pp.nms.per_class:
        classes = g.op("Div", [top_index, g.const(np.array(L, np.int64))])
    else:
        classes = g.op("GatherElements", [best_class, box_index], axis=1)
    valid = g.op("Cast", [g.op("Greater", [top, g.const(np.array(-0.5, np.float32))])], to=TensorProto.FLOAT)
    det_boxes = g.op("GatherND", [boxes, g.op("Unsqueeze", [box_index, g.const(np.array([2], np.int64))])], batch_dims=1)
    det_boxes = g.op("Mul", [det_boxes, g.op("Unsqueeze", [valid, g.const(np.array([2], np.int64))])])
    det_classes = g.op("Mul", [g.op("Cast", [classes], to=TensorProto.FLOAT), valid])
    det_scores = g.op("Mul", [top, valid])
    count = _reduce_sum(g, valid, 1)
    if kk < k:  # fewer candidates than K: pad the rows
        pad = np.array([0, 0, 0, 0, k - kk, 0], np.int64)
        det_boxes = g.op("Pad", [det_boxes, g.const(pad)])
        det_classes, det_scores = (g.op("Pad", [t, g.const(np.array([0, 0, 0, k - kk], np.int64))])
                                   for t in (det_classes, det_scores))
    set_outputs(proto, g, [det_boxes, det_classes, det_scores, count], k)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def set_outputs(proto, g: Graph, tensors, k: int) -> None:
    from onnx import TensorProto, helper

    for tensor, name in zip(tensors, DETECTION_OUTPUTS):
        g.rename_output(tensor, name)
    shapes = {"detection_boxes": [BATCH_DIM, k, 4], "detection_classes": [BATCH_DIM, k],
              "detection_scores": [BATCH_DIM, k], "num_detections": [BATCH_DIM]}
    del proto.graph.output[:]
    proto.graph.output.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, shapes[n]) for n in DETECTION_OUTPUTS)
