"""Semantic segmentation: a class per pixel from PNG label maps.

Outputs (the contract every artifact has):
- `scores [N, h, w, C]` float32: per-class scores (logits) at the decoder's stride (8 for LR-ASPP, 4
  for the U-Net decoder); metrics upsample them bilinearly to each label map's size;
- `classes [N, H, W]` uint8 (task_options.class_map, on by default): the argmax inside the model at
  the input size, the mask an app draws. Core ML, whose cast has no uint8, gives it as int32.
Data: `data.train` / `data.val` (or `data.root`, split by val_fraction) are folders holding
`images/` and `labels/` paired by file stem, and a class file (`classes.txt` in the folder or the
one above it, or task_options.classes): edgecv.data.segmentation. Pixels equal to the ignore index
(255) count nowhere. Images are stretched to the input size (input.resize: resize), so the
scores map back to the photo by a plain resize.

Judged by mIoU (per-class IoU averaged over the classes present), pixel accuracy, mean Dice and
per-class IoU, from a confusion matrix accumulated image by image (edgecv.metrics.segmentation);
agreement with the float model is the share of pixels with the same class and the mIoU of the
artifact's map taking the float one as truth. mIoU is not a mean over images: its interval is a
bootstrap over images of the whole confusion matrix (Task.metric_intervals).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Literal, Optional, Sequence, Tuple

import numpy as np
from pydantic import Field

from edgecv.data.images import load_batch
from edgecv.data.index import DataIndex
from edgecv.data.segmentation import SegmentationClasses, read_label, read_segmentation
from edgecv.errors import ConfigError, DataError
from edgecv.metrics.segmentation import (AgreementAccumulator, ConfusionAccumulator, miou_delta_interval, miou_interval,
                                         predicted_classes, resize_class_map)
from edgecv.tasks.base import ColumnSpec, GateSpec, MetricSpec, OutputSpec, Task, TaskOptions, drop_gate
from edgecv.tasks.segmentation_folder import read_segmentation_set, segmentation_sidecar

SCORES, CLASSES = "scores", "classes"
SIDECAR = "segmentation.json"
PREVIEW_IMAGES = 4  # validation images drawn in report.html
MIOU = MetricSpec("miou", True, "%", "mean IoU over the classes present, validation split", ".2f", 1.0,
                  per_sample="images", scale=100.0)
PIXEL_ACCURACY = MetricSpec("pixel_accuracy", True, "%", "share of labelled pixels classified right", ".2f")
MEAN_DICE = MetricSpec("mean_dice", True, "%", "mean Dice score over the classes present", ".2f")
PIXEL_AGREEMENT = MetricSpec("pixel_agreement", True, "", "share of pixels whose class matches the float model's",
                             ".4f")
AGREEMENT_MIOU = MetricSpec("agreement_miou", True, "", "mIoU of the artifact's class map taking the float model's "
                            "as the truth", ".4f")


class SegmentationOptions(TaskOptions):
    decoder: Literal["lraspp", "unet"] = Field(
        "lraspp", description="lraspp: Lite R-ASPP, scores at stride 8; unet: skip connections to stride 4")
    high_layer: str = Field("block_13_expand_relu", description="backbone layer at stride 16 the decoder reads")
    mid_layer: str = Field("block_6_expand_relu", description="backbone layer at stride 8 (skip connection)")
    low_layer: str = Field("block_3_expand_relu", description="backbone layer at stride 4 (unet's second skip)")
    class_map: bool = Field(True, description="also output `classes [N, H, W]` uint8: the argmax inside the model")
    classes: Optional[Path] = Field(None, description="class file, one name a line in label-index order (default: "
                                    "classes.txt in the data folder or the folder above it)")
    ignore_index: int = Field(255, ge=0, description="label value of unlabelled pixels")
    class_weights: Literal["median_frequency_sqrt", "none"] = Field(
        "median_frequency_sqrt", description="cross-entropy weight of each class: sqrt(median frequency / the "
        "class's pixel frequency) in the training labels, normalized to mean 1 per pixel; or none")
    scale: Tuple[float, float] = Field((0.75, 1.5), description="random scale range of the scale-and-crop augmentation")


# ---- numpy judging (runs on devices) -------------------------------------------------------------

def class_maps(outputs: Dict[str, np.ndarray], sizes: Sequence[tuple]) -> List[np.ndarray]:
    """Each image's predicted class map at its label's size: from the scores (bilinear, then argmax)
    when the outputs have them, else from the class map (nearest)."""
    if SCORES in outputs:
        return [predicted_classes(outputs[SCORES][i], size) for i, size in enumerate(sizes)]
    return [resize_class_map(outputs[CLASSES][i], size) for i, size in enumerate(sizes)]


def accumulate(outputs: Dict[str, np.ndarray], targets: Sequence[np.ndarray], class_names, ignore_index: int):
    acc = ConfusionAccumulator(class_names, ignore_index)
    n = len(class_names)
    for label, pred in zip(targets, class_maps(outputs, [np.shape(t) for t in targets])):
        if pred.size and int(pred.max()) >= n:
            raise DataError(f"the model predicts class {int(pred.max())} but the class file names {n} classes "
                            f"(0..{n - 1}): the model was trained on other classes than these labels'. Give its own "
                            "class file (--labels FILE) and label maps in its class indices")
        acc.add(label, pred)
    return acc


class Segmentation(Task):
    name = "segmentation"
    description = "a class per pixel from PNG label maps; per-class scores and a uint8 class map out"
    options_model = SegmentationOptions
    metrics = (MIOU, PIXEL_ACCURACY, MEAN_DICE)
    agreement_metrics = (PIXEL_AGREEMENT, AGREEMENT_MIOU)
    gates = (
        GateSpec("miou_min", "metrics", "miou", "min", unit="%", description="mIoU on the validation split, percent"),
        drop_gate(MIOU, " points"),
        GateSpec("pixel_agreement_min", "agreement", "pixel_agreement", "min",
                 description="share of pixels whose class matches the float model's"),
    )
    quality_metric = "miou"
    columns = (
        ColumnSpec("miou", "mIoU", "metrics", "miou", ".2f", "%"),
        ColumnSpec("delta", "Δ mIoU", "deltas", "miou", "+.2f"),
        ColumnSpec("pixacc", "pixel acc", "metrics", "pixel_accuracy", ".2f", "%", short=False),
        ColumnSpec("agree", "px agree", "agreement", "pixel_agreement", ".4f"),
    )
    sidecar_names = (SIDECAR,)

    @property
    def passes_can_train(self) -> bool:  # the kept model's class map has no loss: prune/QAT would need it gone
        return not self.options.class_map

    # ---- data ----------------------------------------------------------------------------------
    def read_data(self, recipe):
        d, o = recipe.data, self.options
        if recipe.input.resize != "resize":
            raise ConfigError(f"task segmentation takes input.resize: resize (the scores map back to the photo by a "
                              f"plain resize); {recipe.input.resize} would need the crop undone: choose an input size "
                              "of the photos' aspect instead")
        if recipe.augment.flip in ("vertical", "both"):
            raise ConfigError(f"augment.flip: {recipe.augment.flip}: road scenes are not upside down; use horizontal "
                              "or none")
        folders = [recipe.resolve(d.root)] if d.root is not None else [recipe.resolve(d.train), recipe.resolve(d.val)]
        classes = recipe.resolve(o.classes) if o.classes is not None else find_class_file(folders[0])
        sets = [read_segmentation(f / "images", f / "labels", classes, o.ignore_index) for f in folders]
        if d.root is not None:
            index = sets[0].to_index(d.val_fraction, d.seed)
        else:
            index = DataIndex({"class_names": list(sets[0].class_names), "ignore_index": o.ignore_index},
                              sets[0].samples, sets[1].samples, sets[0].skipped + sets[1].skipped)
        info = dict(index.info)
        info.update(num_classes=len(info["class_names"]), input_size=list(recipe.input.size), resize="resize",
                    class_map=o.class_map, preview_indices=preview_indices(len(index.val)),
                    preview_images=[index.val[i].path for i in preview_indices(len(index.val))],
                    preview_labels=[index.val[i].target["label"] for i in preview_indices(len(index.val))])
        if sets[0].classes.colours:
            info["class_colours"] = {"classes": [list(c) for c in sets[0].classes.colours],
                                     "ignore": [list(c) for c in sets[0].classes.ignore_colours]}
        if o.class_weights != "none":
            info["class_weights"] = median_frequency_weights(sets[0], index.train, len(info["class_names"]))
        return DataIndex(info, index.train, index.val, index.skipped)

    def targets(self, samples: Sequence, info: dict) -> list:
        classes = SegmentationClasses(list(info["class_names"]), *_colours(info))
        return [read_label(Path(s.target["label"]), classes, info.get("ignore_index", 255)) for s in samples]

    def stratum(self, sample):
        return 0

    # ---- model ---------------------------------------------------------------------------------
    def output_spec(self, info: dict) -> List[OutputSpec]:
        c = info.get("num_classes", "C")
        out = [OutputSpec(SCORES, ("N", "h", "w", c), "float32",
                          "per-class scores (logits) at the decoder's stride; resize bilinearly to the photo, then "
                          "argmax")]
        if info.get("class_map", self.options.class_map):
            h, w = info.get("input_size", ("H", "W"))
            out.append(OutputSpec(CLASSES, ("N", h, w), "uint8", "class index per pixel of the input (argmax of the "
                                  "scores resized to the input inside the model)"))
        return out

    def select_outputs(self, outputs: Dict[str, np.ndarray], info: dict) -> Dict[str, np.ndarray]:
        """By name; a third party's lone output is scores when it has a class axis [N, h, w, C], a
        class map when it is [N, H, W]."""
        names = self.output_names(info)
        if all(n in outputs for n in names):
            return {n: outputs[n] for n in names}
        if SCORES in outputs or CLASSES in outputs:
            return {n: outputs[n] for n in (SCORES, CLASSES) if n in outputs}
        if len(outputs) == 1:
            value = next(iter(outputs.values()))
            if np.ndim(value) == 4:
                return {SCORES: value}
            if np.ndim(value) == 3:
                return {CLASSES: value}
        raise ValueError(f"the artifact's outputs {sorted(outputs)} are neither per-class scores [N, h, w, C] nor a "
                         "class map [N, H, W]")

    def build_head(self, features, recipe, info: dict):
        from edgecv.tasks.segmentation_heads import build_head

        return build_head(features, self.options, int(info["num_classes"]), SCORES)

    def inference_model(self, keras_model):
        if not self.options.class_map:
            return keras_model
        from edgecv.tasks.segmentation_heads import with_class_map

        return with_class_map(keras_model, SCORES, CLASSES)

    def register_keras_objects(self) -> None:
        import edgecv.tasks.segmentation_heads  # noqa: F401  (ClassMap)

    def loss(self, recipe):
        from edgecv.tasks.segmentation_heads import weighted_cross_entropy

        info = getattr(self, "_train_info", None) or {}
        n = int(info.get("num_classes", 0))
        weights = info.get("class_weights") or ([1.0] * n)
        if not weights:
            raise ConfigError("segmentation: the loss is built before the training data (no class count)")
        return weighted_cross_entropy(weights)

    def train_dataset(self, samples, info: dict, recipe, batch_size: int, *, training: bool, seed: int = 0,
                      augment: bool = True, size=None):
        from edgecv.tasks.segmentation_heads import segmentation_dataset

        size = tuple(size or recipe.input.size)
        self._train_info = {**info, "input_size": list(size)}
        images, labels = input_arrays(samples, self.targets(samples, info), size)
        a = recipe.augment
        return segmentation_dataset(images, labels, batch_size, training=training, seed=seed, augment=augment,
                                    scale=tuple(self.options.scale), flip=a.flip == "horizontal", colour=a.contrast)

    # ---- judging -------------------------------------------------------------------------------
    def evaluate(self, outputs: Dict[str, np.ndarray], targets, info: dict) -> dict:
        if targets is None:
            return {}
        names = info.get("class_names") or [str(i) for i in range(_num_classes(outputs))]
        acc = accumulate(outputs, targets, names, info.get("ignore_index", 255))
        m = acc.metrics().as_dict()
        pct = lambda v: None if v is None else 100.0 * v  # noqa: E731
        extra = {}
        if SCORES in outputs and CLASSES in outputs:  # the in-model map an app draws, judged on its own
            extra["miou_class_map"] = pct(accumulate({CLASSES: outputs[CLASSES]}, targets, names,
                                                     info.get("ignore_index", 255)).metrics().as_dict()["miou"])
        return {**extra, "count": m["num_images"], "miou": pct(m["miou"]), "pixel_accuracy": pct(m["pixel_accuracy"]),
                "mean_dice": pct(m["mean_dice"]), "mean_class_accuracy": pct(m["mean_class_accuracy"]),
                "per_class_iou": m["per_class_iou"], "per_class_dice": m["per_class_dice"],
                "labelled_pixels": m["num_pixels"], "evaluated_from": SCORES if SCORES in outputs else CLASSES,
                "preview_masks": preview_masks(outputs, targets, info)}

    def sample_scores(self, outputs: Dict[str, np.ndarray], targets, info: dict) -> Dict[str, np.ndarray]:
        """Each image's own mIoU (`image_miou`, percent), to find the worst images; the mIoU interval
        is not a mean of these (metric_intervals)."""
        if targets is None:
            return {}
        acc = accumulate(outputs, targets, self._names(outputs, info), info.get("ignore_index", 255))
        return {"image_miou": np.array([100.0 * acc.miou(np.eye(acc.num_images)[i]) for i in range(acc.num_images)])}

    def metric_intervals(self, candidate, reference, targets, info: dict, confidence: float) -> tuple[dict, dict]:
        """Bootstrap intervals over images of mIoU (each image's per-class TP/FP/FN re-weighted by how
        often a resample draws it), and of its change against the reference (the same images drawn
        for both), in percent."""
        if targets is None:
            return {}, {}
        names, ignore = self._names(candidate, info), info.get("ignore_index", 255)
        cand = accumulate(candidate, targets, names, ignore)
        metrics, deltas = {}, {}
        iv = miou_interval(cand, confidence)
        if iv is not None:
            metrics["miou"] = _percent(iv)
        if reference is not None:
            dv = miou_delta_interval(accumulate(reference, targets, names, ignore), cand, confidence)
            if dv is not None:
                deltas["miou"] = _percent(dv)
        return metrics, deltas

    def _names(self, outputs, info: dict) -> list:
        return list(info.get("class_names") or [str(i) for i in range(_num_classes(outputs))])

    def agreement(self, reference: Dict[str, np.ndarray], candidate: Dict[str, np.ndarray], info: dict) -> dict:
        n = _num_classes(reference) or _num_classes(candidate) or len(info.get("class_names") or [])
        acc = AgreementAccumulator([str(i) for i in range(n)])
        size = tuple(info.get("input_size") or _map_size(reference))
        for ref, cand in zip(class_maps(reference, [size] * _count(reference)),
                             class_maps(candidate, [size] * _count(candidate))):
            acc.add(ref, cand)
        r = acc.result()
        return {"pixel_agreement": r.pixel_agreement, "agreement_miou": r.miou,
                "worst_image_agreement": float(np.nanmin(r.per_image_agreement)) if len(r.per_image_agreement) else None}

    # ---- evaluation on any machine ---------------------------------------------------------------
    @classmethod
    def claims_folder(cls, data: Path) -> bool:
        """A third party's model with `--data` holding images/ and labels/ is taken as a segmenter."""
        return (Path(data) / "images").is_dir() and (Path(data) / "labels").is_dir()

    def device_info(self, folder) -> dict:
        return segmentation_sidecar(folder) or {}

    def read_device_set(self, data, annotations, info: dict, options: dict):
        return read_segmentation_set(self, Path(data), info, options)

    def device_targets(self, evaluation, outputs, input_size):
        evaluation.info["input_size"] = list(input_size)
        return evaluation.labels

    def device_report(self, evaluation, result, outputs, options: dict) -> dict:
        return {"images": evaluation.paths, "metrics": result.metrics, "skipped": evaluation.skipped,
                "class_names": evaluation.info.get("class_names"),
                "per_image_miou": result.sample_scores.get("image_miou")}

    def print_device_report(self, report: dict, artifact, data, out, err, options: dict) -> None:
        m = report["metrics"]
        out.print(f"{artifact.name} on {len(report['images'])} images from {data}"
                  + (f" ({len(report['skipped'])} skipped)" if report["skipped"] else ""))
        if m.get("miou") is None:
            out.print("no label maps: the artifact's outputs only (--json FILE)")
            return
        out.print(f"mIoU {m['miou']:.2f}%, pixel accuracy {m['pixel_accuracy']:.2f}%, mean Dice {m['mean_dice']:.2f}% "
                  f"(from the {m.get('evaluated_from')} output)")
        out.print("per-class IoU: " + ", ".join(f"{c} {'-' if v is None else f'{100 * v:.1f}'}"
                                                for c, v in (m.get("per_class_iou") or {}).items()))

    # ---- files and reports ---------------------------------------------------------------------
    def sidecars(self, info: dict) -> Dict[str, str]:
        keep = ("class_names", "num_classes", "ignore_index", "input_size", "resize", "class_map", "class_colours")
        return {SIDECAR: json.dumps({k: info.get(k) for k in keep if k in info}, indent=2) + "\n"}

    def report_plots(self, report: dict) -> Dict[str, str]:
        from edgecv.tasks.segmentation_plots import segmentation_plots  # lazy: matplotlib, reports only

        return segmentation_plots(report)


# ---- helpers -------------------------------------------------------------------------------------

def find_class_file(folder: Path) -> Path:
    for candidate in (Path(folder) / "classes.txt", Path(folder).parent / "classes.txt"):
        if candidate.is_file():
            return candidate
    raise DataError(f"no class file: put classes.txt (one class name a line, in label-index order) in {folder} or "
                    f"{Path(folder).parent}, or set task_options.classes")


def median_frequency_weights(dataset, samples, num_classes: int) -> List[float]:
    """sqrt(median frequency / frequency) per class over the training labels (a softened form of
    SegNet's median frequency balancing), scaled to mean 1 per labelled pixel; an absent class 1."""
    counts = np.zeros(num_classes, np.float64)
    for s in samples:
        label = dataset.load_label(s)
        counts += np.bincount(label[label != dataset.ignore_index].ravel(), minlength=num_classes)[:num_classes]
    freq = counts / max(counts.sum(), 1.0)
    present = freq > 0
    w = np.ones(num_classes)
    w[present] = np.sqrt(np.median(freq[present]) / freq[present])
    w = w / float((w * freq).sum() or 1.0)
    return [round(float(v), 4) for v in w]


def input_arrays(samples, labels, size) -> tuple[np.ndarray, np.ndarray]:
    """Images stretched to the input size (uint8) and their label maps by nearest neighbour."""
    images = load_batch([s.path for s in samples], tuple(size), "resize")
    maps = np.stack([resize_class_map(lab, tuple(size)).astype(np.uint8) for lab in labels])
    return images, maps


def encode_mask(class_map: np.ndarray) -> str:
    """A class map as a base64 PNG (one byte a pixel; class maps compress well)."""
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(class_map).astype(np.uint8)).save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_mask(text: str) -> np.ndarray:
    import base64
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


def preview_indices(n: int) -> List[int]:
    """The validation images drawn in report.html: spread over the split (neighbouring frames of one
    video would show one scene four times)."""
    return sorted({int(i) for i in np.linspace(0, n - 1, min(n, PREVIEW_IMAGES)).round()}) if n else []


def preview_masks(outputs: Dict[str, np.ndarray], targets: Sequence[np.ndarray], info: dict) -> List[str]:
    """The predicted class maps (at the label's size) of the images info["preview_images"] lists, for
    report.html. Their indices travel with that list (a model trained before they were recorded
    previews the first images, as it did then), so a photo is never drawn beside another's mask."""
    idx = [i for i in info.get("preview_indices", range(PREVIEW_IMAGES)) if i < len(targets)]
    return [encode_mask(m) for m in class_maps({k: np.asarray(v)[idx] for k, v in outputs.items()},
                                               [np.shape(targets[i]) for i in idx])]


def _percent(interval):
    return interval.model_copy(update={"low": 100.0 * interval.low, "high": 100.0 * interval.high})


def _colours(info: dict) -> tuple:
    colours = info.get("class_colours")
    return (None, []) if not colours else ([tuple(c) for c in colours["classes"]],
                                           [tuple(c) for c in colours.get("ignore", [])])


def _num_classes(outputs: Dict[str, np.ndarray]) -> int:
    return int(outputs[SCORES].shape[-1]) if SCORES in outputs else 0


def _count(outputs: Dict[str, np.ndarray]) -> int:
    return len(next(iter(outputs.values())))


def _map_size(outputs: Dict[str, np.ndarray]) -> tuple:
    return tuple(outputs[CLASSES].shape[1:3]) if CLASSES in outputs else tuple(outputs[SCORES].shape[1:3])
