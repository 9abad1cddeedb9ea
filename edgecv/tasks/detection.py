"""Object detection: boxes of C classes per image, judged by COCO mAP.

The Keras model's raw outputs (what passes and int8 quantize and what the comparator compares) are
`box_encodings [N, L, 4]` (the TF Object Detection API's center-size encoding against L anchors)
and `scores [N, L, C]` (sigmoid, no background column); the anchors' parameters (or a brought
detector's own anchor array: edgecv.tasks.detection_user), the scales and the NMS settings travel in
info["detection"] (preprocessing.json, detection.json), so any machine regenerates the anchors with
numpy (edgecv.tasks.detection_anchors) and decodes. Exported artifacts
end in their format's decode + NMS (`Task.postprocess`) and answer with the four outputs of
TFLite's detection post-process: detection_boxes, detection_classes, detection_scores,
num_detections. Judging takes either form: raw outputs go through the numpy reference
(edgecv.metrics.nms), post-processed ones are used as they are.

Annotations: PASCAL VOC XML (a folder), COCO JSON or YOLO txt (edgecv.data.detection). Metrics are
COCO's (edgecv.metrics.detection): mAP@[.5:.95], AP@0.5, AP@0.75, precision/recall/F1 at the
operating score threshold, with bootstrap intervals over images; agreement with the float model is
the F1 of boxes matched at IoU 0.5, their mean IoU and score error.
"""

from __future__ import annotations

from typing import Dict, List, Literal, Optional, Sequence

import numpy as np
from pydantic import Field, model_validator

from edgecv.data.detection import ImageBoxes, read_detection
from edgecv.data.index import DataIndex
from edgecv.errors import ConfigError, DataError
from edgecv.metrics.detection import (DetectionEvaluation, detection_agreement, from_postprocess, map_delta_interval,
                                      map_interval)
from edgecv.metrics.nms import DetectionPostProcess, NmsSettings
from edgecv.tasks.base import ColumnSpec, GateSpec, MetricSpec, OutputSpec, Task, TaskOptions
from edgecv.tasks.detection_anchors import (DEFAULT_SCALES, anchor_boxes, anchor_params, anchors_per_location,
                                           generate_anchors)
from edgecv.tasks.detection_data import detection_dataset
from edgecv.tasks.detection_folder import (detection_report, detection_sidecar, looks_like_detection,
                                           print_detection_report, read_detection_set)
from edgecv.tasks.detection_plots import detection_plots
from edgecv.tasks.detection_user import user_class_names, user_detection_facts
from edgecv.tasks.keypoints import seeded_split

BOX_OUTPUT, SCORE_OUTPUT = "box_encodings", "scores"
RAW_OUTPUTS = (BOX_OUTPUT, SCORE_OUTPUT)
DETECTION_OUTPUTS = ("detection_boxes", "detection_classes", "detection_scores", "num_detections")
SIDECAR = "detection.json"
PREVIEW_BOXES = 10  # per image, kept for the report's pictures
PREVIEW_IMAGE_LIMIT = 200  # images whose detections the report keeps
# backbone -> (its output's stride, {finer stride: layer}) the feature pyramid reads
BACKBONE_LEVELS = {"MobileNetV2": (32, {16: "block_13_expand_relu"}), "TinyCNN": (8, {})}

MAP = MetricSpec("map", True, "", "COCO mAP@[.5:.95] (101-point, maxDets 100)", ".4f", 0.01, per_sample="images")
AP50 = MetricSpec("ap50", True, "", "AP at IoU 0.5", ".4f", 0.01, per_sample="images")
AP75 = MetricSpec("ap75", True, "", "AP at IoU 0.75", ".4f")
PRECISION = MetricSpec("precision", True, "", "precision of the detections at the operating threshold, IoU 0.5", ".3f")
RECALL = MetricSpec("recall", True, "", "recall at the operating threshold, IoU 0.5", ".3f")
F1 = MetricSpec("f1", True, "", "F1 at the operating threshold, IoU 0.5", ".3f")
BOX_F1 = MetricSpec("box_f1", True, "", "F1 of the artifact's boxes matched to the float model's (IoU 0.5, same "
                    "class, operating threshold)", ".4f")
BOX_IOU = MetricSpec("box_iou_mean", True, "", "mean IoU of the matched boxes", ".4f")
SCORE_ERROR = MetricSpec("score_error_mean", False, "", "mean |score difference| of the matched boxes", ".4f")

ANCHOR_LAYOUTS = {  # head -> (anchor scale in strides, scales per octave, aspect ratios)
    "ssd": (4.0, 2, (0.5, 1.0, 2.0)),
    "anchor_free": (4.0, 1, (1.0,)),
}


class NmsOptions(TaskOptions):
    iou_threshold: float = Field(0.5, ge=0, le=1, description="a kept box suppresses a later one above this IoU")
    score_threshold: float = Field(0.05, ge=0, le=1, description="boxes scoring below this are never detections")
    max_detections: int = Field(100, ge=1, description="detections per image (K)")
    per_class: bool = Field(False, description="NMS within each class (TFLite's regular NMS); false: one "
                            "class-agnostic NMS over each box's best class (TFLite's fast NMS)")


class DetectionOptions(TaskOptions):
    classes: Optional[List[str]] = Field(None, description="class names, in output order (default: the names "
                                         "found in the annotations, sorted; or the YOLO names file)")
    annotation_format: Optional[Literal["voc", "coco", "yolo"]] = Field(
        None, description="default: from the path (a .json file COCO, a folder of .xml VOC, of .txt YOLO)")
    head: Literal["ssd", "anchor_free"] = Field(
        "ssd", description="ssd: 6 anchors per location (2 scales x aspect 1:2, 1:1, 2:1); anchor_free: one "
        "square box per location, centred on it")
    strides: List[int] = Field([16, 32, 64], description="pyramid levels (16 and 32 from the backbone, coarser ones "
                               "added by stride-2 convolutions)")
    anchor_scale: Optional[float] = Field(None, gt=0, description="anchor side in strides (default 4)")
    channels: int = Field(96, ge=8, description="feature pyramid and head width")
    positive_iou: float = Field(0.5, gt=0, le=1, description="an anchor is positive at this IoU with a box")
    negative_iou: float = Field(0.4, ge=0, le=1, description="and background below this IoU with every box")
    giou_weight: float = Field(1.0, ge=0, description="GIoU term of the box loss beside smooth L1")
    score_threshold: float = Field(0.5, gt=0, lt=1, description="operating point: precision/recall/F1 and "
                                   "agreement count detections scoring at least this")
    nms: NmsOptions = NmsOptions()
    anchors: Optional[str] = Field(None, description="a brought detector (model.path): .npy file of its [L, 4] "
                                   "anchors (yc, xc, h, w) in [0, 1] of the input (edgecv export --anchors)")
    box_scales: List[float] = Field(list(DEFAULT_SCALES), description="a brought detector: the box coder's scales "
                                    "(y, x, h, w) its encodings are divided by (edgecv export --box-scales)")

    @model_validator(mode="after")
    def _thresholds(self) -> "DetectionOptions":
        if len(self.box_scales) != 4 or min(self.box_scales) <= 0:
            raise ValueError(f"box_scales {self.box_scales}: give four positive numbers (y, x, h, w), e.g. "
                             "[10, 10, 5, 5]")
        if self.negative_iou > self.positive_iou:
            raise ValueError(f"negative_iou {self.negative_iou} is above positive_iou {self.positive_iou}")
        if sorted(self.strides) != list(self.strides) or len(set(self.strides)) != len(self.strides):
            raise ValueError(f"strides {self.strides}: give them increasing, each once (e.g. [16, 32, 64])")
        bad = [s for s in self.strides if s < 8 or s & (s - 1)]
        if bad:
            raise ValueError(f"strides {bad}: each must be a power of two, at least 8")
        return self


# ---- numpy: raw or post-processed outputs -> detections -------------------------------------------

def postprocessor(info: dict):
    """The numpy decode + NMS of info["detection"] (edgecv.metrics.nms.DetectionPostProcess)."""

    det = info.get("detection")
    if not det:
        raise DataError("the model's facts have no `detection` section (anchors, scales, NMS): raw box encodings "
                        "cannot be decoded; give an artifact with the four detection outputs, or its detection.json")
    return DetectionPostProcess(anchor_boxes(det["anchors"]), tuple(det["scales"]), NmsSettings.from_dict(det["nms"]))


def detection_outputs(outputs: Dict[str, np.ndarray], info: dict) -> Dict[str, np.ndarray]:
    """The four detection outputs: as given, or from raw outputs through the numpy reference."""
    if all(n in outputs for n in DETECTION_OUTPUTS):
        return {n: np.asarray(outputs[n]) for n in DETECTION_OUTPUTS}
    if all(n in outputs for n in RAW_OUTPUTS):
        return postprocessor(info).from_raw(outputs)
    raise ValueError(f"outputs {sorted(outputs)} are neither the raw {list(RAW_OUTPUTS)} nor the detection outputs "
                     f"{list(DETECTION_OUTPUTS)}")


def padding_cleared(d: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The four detection outputs with the rows past num_detections set to 0: they are padding, which
    a runtime may leave uninitialised (not a NaN the artifact produced)."""
    count = np.nan_to_num(np.asarray(d["num_detections"], np.float64)).reshape(-1).astype(np.int64)
    out = dict(d)
    for name in DETECTION_OUTPUTS[:3]:
        v = np.array(d[name], copy=True)
        if v.ndim >= 2 and len(v) == len(count):
            rows = np.arange(v.shape[1])[None, :] >= count[:, None]
            v[rows] = 0
        out[name] = v
    return out


def image_detections(outputs: Dict[str, np.ndarray], info: dict, frames: Optional[Sequence] = None) -> list:
    """Per image an edgecv.metrics.detection.ImageDetections: in pixels of each photo when `frames`
    gives each one's (width, height), else in pixels of the model input (IoU is the same in both
    frames for the `resize` policy and up to the crop for the others)."""

    d = detection_outputs(outputs, info)
    size = tuple(info.get("input_size") or (1, 1))
    policy = info.get("resize", "resize")
    offset = int(info.get("class_offset", 0))
    out = []
    for i in range(len(d["num_detections"])):
        wh = (size[1], size[0]) if frames is None else frames[i]
        out.append(from_postprocess(d["detection_boxes"][i], d["detection_classes"][i], d["detection_scores"][i],
                                    d["num_detections"][i], wh, size, policy if frames is not None else "resize",
                                    offset))
    return out


def _preview(dets: list, limit: int = PREVIEW_BOXES) -> list:
    """Each image's best detections, rounded: [[x1, y1, x2, y2, score, class], ...] in photo pixels."""
    rows = []
    for d in dets[:PREVIEW_IMAGE_LIMIT]:
        order = np.argsort(-d.scores, kind="stable")[:limit]
        rows.append([[*np.round(d.boxes[j], 1).tolist(), round(float(d.scores[j]), 4), int(d.classes[j])]
                     for j in order])
    return rows


class Detection(Task):
    name = "detection"
    description = "boxes of C classes from VOC/COCO/YOLO annotations; raw anchor outputs, NMS per format"
    options_model = DetectionOptions
    metrics = (MAP, AP50, AP75, PRECISION, RECALL, F1)
    agreement_metrics = (BOX_F1, BOX_IOU, SCORE_ERROR)
    gates = (
        GateSpec("map_min", "metrics", "map", "min", description="mAP@[.5:.95] on the validation split"),
        GateSpec("ap50_min", "metrics", "ap50", "min", description="AP@0.5 on the validation split"),
        GateSpec("map_drop_max", "deltas", "map", "max", -1.0, description="mAP below the float reference"),
        GateSpec("box_f1_min", "agreement", "box_f1", "min",
                 description="F1 of the artifact's boxes matched to the float model's at IoU 0.5"),
    )
    quality_metric = "map"
    columns = (
        ColumnSpec("map", "mAP", "metrics", "map", ".4f"),
        ColumnSpec("delta", "Δ mAP", "deltas", "map", "+.4f"),
        ColumnSpec("ap50", "AP50", "metrics", "ap50", ".4f"),
        ColumnSpec("box_f1", "box F1", "agreement", "box_f1", ".3f"),
        ColumnSpec("box_iou", "box IoU", "agreement", "box_iou_mean", ".3f", short=False),
    )
    monitor = ("val_loss", "min")
    sidecar_names = (SIDECAR,)
    # training passes need a distillation view and QAT wrappers this head does not have yet
    refused_passes = {
        "qat": "quantization-aware training is not wired for the detection head (UpSampling2D, SeparableConv2D "
               "and the flattened outputs are not checked with tfmot's wrappers); int8 PTQ is what it is measured with",
        "swap": "a backbone swap distils through a classification view; detection has no distillation loss",
        "prune": "pruning a detector is not measured yet (its fine-tuning would need the detection data pipeline "
                 "at the pass's schedule); it is refused rather than reported untested",
    }

    refused_options = {
        "accuracy_aware": "the accuracy-aware int8 search keeps layers float by their effect on the raw outputs and "
                          "is not wired for an artifact that ends in its decode + NMS (the exporters would refuse it "
                          "after training); int8 is post-training quantization with options.ptq",
    }

    # ---- data ----------------------------------------------------------------------------------
    def read_data(self, recipe):

        d, o = recipe.data, self.options
        brought = recipe.model.path is not None
        if not brought and ({"anchors", "box_scales"} & o.model_fields_set):
            raise ConfigError("task_options.anchors and box_scales are for a detector you bring (model.path, edgecv "
                              "export --anchors); the head edgecv trains makes its anchors from head, strides and "
                              "anchor_scale and encodes with the scales (10, 10, 5, 5)")
        if d.annotations is None:
            raise ConfigError("task detection needs `data.annotations` (edgecv export: --annotations): a folder of "
                              "PASCAL VOC .xml files, a COCO .json file or a folder of YOLO .txt files (with "
                              "classes.txt)")
        classes = user_class_names(recipe, o) if brought else o.classes
        if d.root is None:
            tr = read_detection(recipe.resolve(d.train), recipe.resolve(d.annotations), classes, o.annotation_format)
            va = read_detection(recipe.resolve(d.val), recipe.resolve(d.annotations), tr.class_names,
                                o.annotation_format)

            index = DataIndex({"class_names": tr.class_names, "annotation_format": tr.format}, tr.samples(),
                              va.samples(), [s for s in tr.skipped + va.skipped if "image not found" not in s.reason])
        else:
            found = read_detection(recipe.resolve(d.root), recipe.resolve(d.annotations), classes,
                                   o.annotation_format)
            if d.group_by is not None:

                train, val = seeded_split(found.samples(), d.val_fraction, d.seed, d.group_by, recipe.resolve(d.root))
                index = DataIndex({"class_names": found.class_names, "annotation_format": found.format}, train, val,
                                  list(found.skipped))
            else:
                index = found.to_index(d.val_fraction, d.seed)
        # path order, as a device reads the same folder: COCO's matching breaks score ties by image
        # order, so the build and `edgecv validate` give the same mAP only in the same order
        index.train.sort(key=lambda s: s.path)
        index.val.sort(key=lambda s: s.path)
        if not index.train or not index.val:
            raise DataError(f"{d.annotations}: {len(index.train)} training and {len(index.val)} validation images; "
                            "both splits need images (lower or raise data.val_fraction)")
        if recipe.augment.flip in ("vertical", "both"):
            raise ConfigError(f"augment.flip: {recipe.augment.flip} is not supported for detection (photos are not "
                              "upside down): use horizontal or none")
        if recipe.augment.rotation:
            raise ConfigError("augment.rotation is not supported for detection (a rotated box is no longer "
                              "axis-aligned): set it to 0 and use zoom/translate")
        index.info.update(self.model_facts(index.info["class_names"], recipe.input.size, recipe.input.resize))
        if brought:  # the user's anchors and box coder, checked against the model's outputs
            index.info["detection"] = user_detection_facts(recipe, o, index.info["class_names"], o.nms.model_dump())
        index.info["preview_images"] = [s.path for s in index.val[:PREVIEW_IMAGE_LIMIT]]
        return index

    def model_facts(self, class_names: Sequence[str], input_size, resize: str) -> dict:
        """class names, input size, resize policy and the detection section (anchors, scales, NMS)."""

        o = self.options
        scale, per_octave, ratios = ANCHOR_LAYOUTS[o.head]
        params = anchor_params(input_size, o.strides, o.anchor_scale or scale, per_octave, ratios)
        return {"class_names": list(class_names), "input_size": list(input_size), "resize": resize,
                "detection": {"head": o.head, "anchors": params, "scales": list(DEFAULT_SCALES),
                              "nms": o.nms.model_dump(), "score_threshold": o.score_threshold}}

    def targets(self, samples: Sequence, info: dict) -> Optional[list]:
        """Ground truth per image (edgecv.data.detection.ImageBoxes, pixels of the photo)."""

        if any(not isinstance(s.target, dict) for s in samples):
            return None
        return [ImageBoxes.from_sample(s) for s in samples]

    def stratum(self, sample):
        return sample.label if sample.label is not None else -1

    # ---- model ---------------------------------------------------------------------------------
    def output_spec(self, info: dict) -> List[OutputSpec]:
        det = info.get("detection")
        n_anchor = "L"
        if det:

            n_anchor = len(anchor_boxes(det["anchors"]))
        c = len(info.get("class_names", [])) or "C"
        return [OutputSpec(BOX_OUTPUT, ("N", n_anchor, 4), "float32",
                           "(ty, tx, th, tw) per anchor, center-size encoding divided by the scales (TF OD API); "
                           "anchors and scales in detection.json"),
                OutputSpec(SCORE_OUTPUT, ("N", n_anchor, c), "float32", "sigmoid score per anchor and class "
                           "(no background column)")]

    def postprocess(self, info: dict):
        return postprocessor(info) if info.get("detection") else None

    def build_head(self, features, recipe, info: dict):
        from edgecv.tasks.detection_heads import build_detection_head

        backbone = recipe.model.backbone
        if backbone not in BACKBONE_LEVELS:
            raise ConfigError(f"task detection: backbone {backbone} has no known feature levels for the pyramid; "
                              f"use one of {', '.join(BACKBONE_LEVELS)}")
        det = info["detection"]
        out_stride, layers = BACKBONE_LEVELS[backbone]
        return build_detection_head(features, len(info["class_names"]), anchors_per_location(det["anchors"]),
                                    det["anchors"]["strides"], self.options.channels, out_stride, layers)

    def loss(self, recipe):
        from edgecv.tasks.detection_heads import box_loss, focal_loss

        info = getattr(self, "_train_info", None)
        if info is None:
            raise ConfigError("task detection: the loss needs the anchors; build the training data first")
        det = info["detection"]
        return [box_loss(generate_anchors(det["anchors"]), det["scales"], self.options.giou_weight), focal_loss()]

    def train_dataset(self, samples, info: dict, recipe, batch_size: int, *, training: bool, seed: int = 0,
                      augment: bool = True, size=None):

        size = tuple(size or recipe.input.size)
        if list(size) != list(info["detection"]["anchors"]["input_size"]):
            raise ConfigError(f"task detection: the anchors were made for input {info['detection']['anchors']['input_size']}"
                              f", not {list(size)}")
        self._train_info = info
        return detection_dataset(self, samples, info, recipe, batch_size, training=training, seed=seed,
                                 augment=augment, size=size)

    # ---- judging (numpy only) ------------------------------------------------------------------
    def select_outputs(self, outputs: Dict[str, np.ndarray], info: dict) -> Dict[str, np.ndarray]:
        """Raw outputs by name, the four detection outputs by name, or four unnamed ones in the order
        of TFLite's post-process (boxes, classes, scores, count: a third party's file)."""
        if all(n in outputs for n in RAW_OUTPUTS):
            return {n: outputs[n] for n in RAW_OUTPUTS}
        if all(n in outputs for n in DETECTION_OUTPUTS):
            return padding_cleared({n: outputs[n] for n in DETECTION_OUTPUTS})
        if len(outputs) == 4:
            return padding_cleared(dict(zip(DETECTION_OUTPUTS, outputs.values())))
        given = ", ".join(f"{n} {list(np.shape(v))}" for n, v in outputs.items())
        raise ValueError(f"the artifact's outputs ({given}) are not a detector's that edgecv can judge: it expects the "
                         "four outputs of TFLite's detection post-process, detection_boxes [1, K, 4], "
                         "detection_classes [1, K], detection_scores [1, K], num_detections [1] (unnamed: in that "
                         f"order), or the raw {BOX_OUTPUT} [1, L, 4] and {SCORE_OUTPUT} [1, L, C] with the anchors in "
                         "edgecv's detection.json. A model that needs its own decode (BlazeFace's regressors and "
                         "classificators) is measured with --task generic")

    def _evaluation(self, outputs, targets, info):

        dets = image_detections(outputs, info, [(t.width, t.height) for t in targets])
        return DetectionEvaluation(targets, dets, info["class_names"]), dets

    def _score_threshold(self, info: dict) -> float:
        return float((info.get("detection") or {}).get("score_threshold", self.options.score_threshold))

    def evaluate(self, outputs: Dict[str, np.ndarray], targets, info: dict) -> dict:
        if targets is None:
            return {}
        evaluation, dets = self._evaluation(outputs, targets, info)
        m = evaluation.metrics(self._score_threshold(info)).as_dict()
        m["count"] = m.pop("num_images")
        m["preview_detections"] = _preview(dets)
        m["preview_ground_truth"] = [[[*np.round(b, 1).tolist(), int(c)] for b, c in zip(t.boxes, t.classes)]
                                     for t in targets[:PREVIEW_IMAGE_LIMIT]]
        return m

    def metric_intervals(self, candidate, reference, targets, info: dict, confidence: float) -> tuple[dict, dict]:
        """Bootstrap intervals over images of mAP and AP@0.5, and of their change against the
        reference (the same images drawn for both)."""

        if targets is None:
            return {}, {}
        cand, _ = self._evaluation(candidate, targets, info)
        ref = self._evaluation(reference, targets, info)[0] if reference is not None else None
        metrics, deltas = {}, {}
        for name, iou in (("map", None), ("ap50", 0.5)):
            iv = map_interval(cand, iou, confidence)
            if iv is not None:
                metrics[name] = iv
            if ref is not None:
                dv = map_delta_interval(ref, cand, iou, confidence)
                if dv is not None:
                    deltas[name] = dv
        return metrics, deltas

    def agreement(self, reference: Dict[str, np.ndarray], candidate: Dict[str, np.ndarray], info: dict) -> dict:

        a = detection_agreement(image_detections(reference, info), image_detections(candidate, info),
                                score_threshold=self._score_threshold(info))
        d = a.as_dict()
        return {"box_f1": d["f1"], "box_iou_mean": d["mean_iou"], "score_error_mean": d["score_error"],
                "score_error_max": d["max_score_error"], "matched_boxes": d["matched"],
                "reference_boxes": d["reference_boxes"], "candidate_boxes": d["candidate_boxes"],
                "per_image_box_f1": np.round(a.per_image_f1, 4).tolist()[:PREVIEW_IMAGE_LIMIT]}

    # ---- evaluation on any machine ---------------------------------------------------------------
    @classmethod
    def takes_annotations(cls, annotations) -> bool:

        return looks_like_detection(annotations)

    def device_info(self, folder) -> dict:

        return detection_sidecar(folder) or {}

    def read_device_set(self, data, annotations, info: dict, options: dict):

        return read_detection_set(self, data, annotations, info, options)

    def device_targets(self, evaluation, outputs, input_size):
        evaluation.info["input_size"] = list(input_size)
        return evaluation.labels

    def device_report(self, evaluation, result, outputs, options: dict) -> dict:

        return detection_report(self, evaluation, result, outputs)

    def print_device_report(self, report: dict, artifact, data, out, err, options: dict) -> None:

        print_detection_report(report, artifact, data, out)

    # ---- files and reports ---------------------------------------------------------------------
    def sidecars(self, info: dict) -> Dict[str, str]:
        import json

        keep = ("class_names", "input_size", "resize", "detection")
        labels = "".join(f"{n}\n" for n in info.get("class_names", []))
        return {SIDECAR: json.dumps({k: info.get(k) for k in keep}, indent=2) + "\n", "labels.txt": labels}

    def preprocessing_fields(self, info: dict) -> dict:
        """The detection section, and `outputs` as every artifact answers (after its decode + NMS);
        the Keras model's raw outputs under `raw_outputs`."""
        if not info.get("detection"):
            return {}
        k = info["detection"]["nms"]["max_detections"]
        meaning = {"detection_boxes": ((1, k, 4), "ymin, xmin, ymax, xmax in [0, 1] of the input"),
                   "detection_classes": ((1, k), "0-based class index (labels.txt line), as float"),
                   "detection_scores": ((1, k), "score of each detection, decreasing"),
                   "num_detections": ((1,), "valid rows; rows past it are padding")}
        return {"detection": info["detection"],
                "raw_outputs": {o.name: o.to_json() for o in self.output_spec(info)},
                "outputs": {n: OutputSpec(n, shape, "float32", text).to_json() for n, (shape, text) in meaning.items()}}

    def report_plots(self, report: dict) -> Dict[str, str]:

        return detection_plots(report)
