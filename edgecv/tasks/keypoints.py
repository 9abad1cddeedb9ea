"""Keypoint regression (facial landmarks, body joints): `keypoints [N, K, 2]` out, (x, y) in [0, 1]
of the input image, x to the right, y down.

Annotations are a CSV `image,x0,y0,...` in pixels or COCO keypoints JSON (edgecv.data.keypoints);
names and left/right flip pairs come from a preset (`ibug68`) or `task_options`. Judged by NME,
the mean point error divided by a normalizing distance (inter-ocular for faces), the failure rate
(NME above a threshold) and the error per keypoint; agreement with the float model is the point
distance in pixels of the input.
"""

from __future__ import annotations

import random
from typing import Dict, List, Literal, Optional, Sequence, Tuple, Union

import numpy as np
from pydantic import Field, model_validator

from edgecv.errors import ConfigError, DataError
from edgecv.tasks.base import ColumnSpec, GateSpec, MetricSpec, OutputSpec, Task, TaskOptions, drop_gate
from edgecv.data.groups import group_of, split_by_group
from edgecv.data.index import DataIndex
from edgecv.data.keypoints import PRESETS, read_annotations, input_targets, flip_permutation
from edgecv.tasks.keypoint_folder import (keypoint_sidecar, read_keypoint_set, keypoint_targets, keypoint_report,
                                          print_keypoint_report)
from edgecv.tasks.keypoint_plots import keypoint_plots

OUTPUT = "keypoints"
PREVIEW_IMAGES = 4  # validation images drawn in report.html
NME = MetricSpec("nme", False, "", "mean point error / normalizing distance (inter-ocular for ibug68)", ".4f", 0.005,
                 per_sample="mean")
FAILURE_RATE = MetricSpec("failure_rate", False, "", "share of images with NME above task_options.failure_nme",
                          ".3f", per_sample="share")
MEAN_DISTANCE = MetricSpec("point_error_px_mean", False, " px", "mean distance from the float model's points, "
                           "pixels of the input", ".3f")
P99_DISTANCE = MetricSpec("point_error_px_p99", False, " px", "99th percentile of the distances from the float "
                          "model's points, pixels of the input", ".3f")
MAX_DISTANCE = MetricSpec("point_error_px_max", False, " px", "largest distance from the float model's points, "
                          "pixels of the input", ".3f")

PointRef = Union[int, str]


class KeypointOptions(TaskOptions):
    preset: Optional[Literal["ibug68"]] = Field(None, description="a named scheme: names, flip pairs, NME normalizer")
    names: Optional[List[str]] = Field(None, description="keypoint names, in annotation order")
    flip_pairs: Optional[List[Tuple[PointRef, PointRef]]] = Field(
        None, description="left/right pairs (indices or names) swapped by a horizontal flip; [] for none")
    normalize_by: Optional[Tuple[PointRef, PointRef]] = Field(
        None, description="two points whose distance normalizes NME (default: the preset's, else the diagonal of "
        "the labelled points' box)")
    failure_nme: float = Field(0.1, gt=0, description="an image fails above this NME")
    head: Literal["regression", "heatmap"] = Field(
        "regression", description="regression: pooled features to sigmoid (x, y); heatmap: one map per point, "
        "decoded inside the model by soft-argmax")
    feature_layer: Optional[str] = Field(None, description="backbone layer the head reads (default: its output); a "
                                         "finer map suits heatmaps, e.g. block_13_expand_relu of MobileNetV2")
    loss: Literal["l1", "wing"] = Field("l1", description="masked L1, or wing loss (Feng et al. 2018) in pixels")
    dropout: float = Field(0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _names_match_preset(self) -> "KeypointOptions":
        if self.preset and self.names and len(self.names) != len(_preset(self.preset).names):
            raise ValueError(f"preset {self.preset} has {len(_preset(self.preset).names)} points, names has "
                             f"{len(self.names)}")
        return self


def _preset(name: str):
    return PRESETS[name]


# ---- numpy metrics (run on devices) ------------------------------------------------------------

def normalizing_distance(targets: np.ndarray, normalize_by: Optional[Sequence[int]], aspect_wh) -> np.ndarray:
    """Per image, in pixels of the input: |p_a - p_b| of the two named points, or the diagonal of the
    labelled points' box. NaN where it cannot be measured (a point unlabelled, a single point)."""
    scale = np.asarray(aspect_wh, np.float64)
    xy, v = targets[..., :2] * scale, targets[..., 2] > 0
    if normalize_by is not None:
        a, b = normalize_by
        d = np.linalg.norm(xy[:, a] - xy[:, b], axis=-1)
        ok = v[:, a] & v[:, b]
    else:
        big = np.where(v[..., None], xy, np.nan)
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                span = np.nanmax(big, axis=1) - np.nanmin(big, axis=1)
        d = np.linalg.norm(span, axis=-1)
        ok = v.sum(axis=1) >= 2
    return np.where(ok & (d > 0), d, np.nan)


def _point_errors(points, targets, input_size, normalize_by):
    """(points, targets, pixel distances [N, K], normalized errors [N, K], usable images [N])."""
    points = np.asarray(points, np.float64).reshape(targets.shape[0], targets.shape[1], 2)
    targets = np.asarray(targets, np.float64)
    h, w = input_size
    px = np.array([w, h], np.float64)
    v = targets[..., 2] > 0
    dist_px = np.linalg.norm((points - targets[..., :2]) * px, axis=-1)  # [N, K]
    norm = normalizing_distance(targets, normalize_by, px)
    usable = ~np.isnan(norm) & v.any(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        err = dist_px / norm[:, None]
    return points, targets, dist_px, err, usable


def per_image_nme(points: np.ndarray, targets: np.ndarray, input_size: Sequence[int],
                  normalize_by: Optional[Sequence[int]] = None) -> np.ndarray:
    """Each image's NME in order [N]; NaN for an image whose normalizing distance cannot be measured."""
    _, targets, _, err, usable = _point_errors(points, targets, input_size, normalize_by)
    v = targets[..., 2] > 0
    out = np.full(len(targets), np.nan)
    out[usable] = np.where(v[usable], err[usable], 0).sum(axis=1) / v[usable].sum(axis=1)
    return out


def keypoint_metrics(points: np.ndarray, targets: np.ndarray, input_size: Sequence[int],
                     normalize_by: Optional[Sequence[int]] = None, failure_nme: float = 0.1,
                     preview: int = 0) -> dict:
    """NME, failure rate and per-keypoint error of `points` [N, K, 2] against `targets` [N, K, 3]
    ((x, y) in [0, 1], labelled); unlabelled points count nowhere; images whose normalizing distance
    cannot be measured are left out and counted."""
    points, targets, dist_px, err_all, usable = _point_errors(points, targets, input_size, normalize_by)
    v = targets[..., 2] > 0
    err, vis = err_all[usable], v[usable]
    per_image = np.where(vis, err, 0).sum(axis=1) / vis.sum(axis=1)
    counts = vis.sum(axis=0)
    per_kp = np.where(counts > 0, np.where(vis, err, 0).sum(axis=0) / np.maximum(counts, 1), np.nan)
    out = {
        "count": int(usable.sum()),
        "unnormalized_images": int((~usable).sum()),
        "nme": float(per_image.mean()) if len(per_image) else float("nan"),
        "failure_rate": float((per_image > failure_nme).mean()) if len(per_image) else float("nan"),
        "mean_error_px": float(dist_px[v].mean()) if v.any() else float("nan"),
        "per_keypoint_nme": [None if np.isnan(e) else float(e) for e in per_kp],
    }
    if preview:
        out["preview_points"] = np.round(points[:preview], 5).tolist()
        out["preview_targets"] = np.round(targets[:preview], 5).tolist()
    return out


def point_agreement(reference: np.ndarray, candidate: np.ndarray, input_size: Sequence[int]) -> dict:
    h, w = input_size
    ref, cand = np.asarray(reference, np.float64), np.asarray(candidate, np.float64).reshape(np.shape(reference))
    d = np.linalg.norm((cand - ref) * np.array([w, h], np.float64), axis=-1)
    return {"point_error_px_mean": float(d.mean()) if d.size else float("nan"),
            "point_error_px_p99": float(np.percentile(d, 99)) if d.size else float("nan"),
            "point_error_px_max": float(d.max()) if d.size else float("nan")}


class Keypoints(Task):
    name = "keypoints"
    description = "K points per image from a CSV or COCO keypoints file; (x, y) in [0, 1] of the input out"
    options_model = KeypointOptions
    metrics = (NME, FAILURE_RATE)
    agreement_metrics = (MEAN_DISTANCE, P99_DISTANCE, MAX_DISTANCE)
    gates = (
        GateSpec("nme_max", "metrics", "nme", "max", description="NME on the validation split"),
        drop_gate(NME),
        GateSpec("point_error_px_max", "agreement", "point_error_px_max", "max", unit=" px",
                 description="largest distance of any point from the float model's, pixels of the input"),
    )
    quality_metric = "nme"
    columns = (
        ColumnSpec("nme", "NME", "metrics", "nme", ".4f"),
        ColumnSpec("delta", "Δ NME", "deltas", "nme", "+.4f"),
        ColumnSpec("fail", "fail", "metrics", "failure_rate", ".3f", short=False),
        ColumnSpec("px_mean", "px mean", "agreement", "point_error_px_mean", ".2f"),
        ColumnSpec("px_p99", "px p99", "agreement", "point_error_px_p99", ".2f", short=False),
        ColumnSpec("px_max", "px max", "agreement", "point_error_px_max", ".2f"),
    )
    monitor = ("val_nme", "min")
    device_default_for = ("annotations",)
    sidecar_names = ("keypoints.json",)

    # ---- data ----------------------------------------------------------------------------------
    def read_data(self, recipe):
        d = recipe.data
        if d.annotations is None:
            raise ConfigError("task keypoints needs `data.annotations`: a CSV `image,x0,y0,...` in pixels or a COCO "
                              "keypoints JSON, with image names relative to the image folder")
        ann = recipe.resolve(d.annotations)
        if d.root is not None:
            rows = read_annotations(recipe.resolve(d.root), ann)
            train, val = seeded_split(rows.samples, d.val_fraction, d.seed, d.group_by, recipe.resolve(d.root))
            skipped, file_names = rows.skipped, rows.names
        else:
            tr, va = read_annotations(recipe.resolve(d.train), ann), read_annotations(recipe.resolve(d.val), ann)
            train, val = tr.samples, va.samples
            skipped = tr.skipped + va.skipped  # each folder reports the rows of the other as missing images
            skipped = [s for s in skipped if "image not found" not in s.reason] or skipped
            file_names = tr.names
        if not train or not val:
            raise DataError(f"{ann}: {len(train)} training and {len(val)} validation images with usable keypoints "
                            f"({len(skipped)} rows skipped); the first reasons: "
                            + "; ".join(s.reason for s in skipped[:3]))
        k = len(train[0].target["xy"])
        info = self.scheme_info(k, file_names)
        info.update(input_size=list(recipe.input.size), resize=recipe.input.resize,
                    preview_images=[s.path for s in val[:PREVIEW_IMAGES]])
        if recipe.augment.flip in ("vertical", "both"):
            raise ConfigError(f"augment.flip: {recipe.augment.flip} is not supported for keypoints (no top/bottom "
                              "pairs): use horizontal (with flip pairs) or none")
        if recipe.augment.flip == "horizontal" and info["flip_pairs"] is None:
            raise ConfigError("augment.flip: horizontal needs left/right flip pairs: set task_options.preset (ibug68) "
                              "or task_options.flip_pairs ([] when no point has a mirror), or augment.flip: none")
        return DataIndex(info, train, val, skipped)

    def scheme_info(self, k: int, file_names: Optional[List[str]] = None) -> dict:
        """Names, flip pairs (indices) and NME normalizer for K points, from the options, the preset and the file."""
        o = self.options
        preset = _preset(o.preset) if o.preset else None
        if preset and len(preset.names) != k:
            raise DataError(f"task_options.preset {o.preset} has {len(preset.names)} points; the annotations have {k}")
        names = list(o.names or file_names or (preset.names if preset else [f"kp{i}" for i in range(k)]))
        if len(names) != k:
            raise DataError(f"task_options.names has {len(names)} names; the annotations have {k} points")

        def index(ref: PointRef, what: str) -> int:
            if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
                i = int(ref)
                if 0 <= i < k:
                    return i
                raise ConfigError(f"task_options.{what}: point {i} is outside 0..{k - 1}")
            if ref not in names:
                raise ConfigError(f"task_options.{what}: no keypoint named {ref!r}; the names are {', '.join(names[:8])} ...")
            return names.index(ref)

        pairs = o.flip_pairs if o.flip_pairs is not None else (preset.flip_pairs if preset else None)
        pairs = None if pairs is None else [[index(a, "flip_pairs"), index(b, "flip_pairs")] for a, b in pairs]
        norm = o.normalize_by if o.normalize_by is not None else (preset.normalize_by if preset else None)
        norm = None if norm is None else [index(norm[0], "normalize_by"), index(norm[1], "normalize_by")]
        return {"keypoint_names": names, "num_keypoints": k, "flip_pairs": pairs, "normalize_by": norm,
                "failure_nme": o.failure_nme}

    def targets(self, samples: Sequence, info: dict) -> np.ndarray:
        return input_targets(samples, tuple(info["input_size"]), info["resize"])

    # ---- model ---------------------------------------------------------------------------------
    def output_spec(self, info: dict) -> List[OutputSpec]:
        return [OutputSpec(OUTPUT, ("N", info.get("num_keypoints", "K"), 2), "float32",
                           "(x, y) of each keypoint in [0, 1] of the input image, x right, y down; "
                           "multiply by the image's width and height for pixels")]

    def build_head(self, features, recipe, info: dict):
        from edgecv.tasks.keypoint_heads import heatmap_head, regression_head, tensor_of_layer

        o = self.options
        if o.feature_layer:
            features = tensor_of_layer(features, o.feature_layer)
        k = info["num_keypoints"]
        if o.head == "heatmap":
            return heatmap_head(features, k, OUTPUT)
        return regression_head(features, k, OUTPUT, o.dropout)

    def register_keras_objects(self) -> None:
        import edgecv.tasks.keypoint_heads  # noqa: F401  (SoftArgmax2D)

    def loss(self, recipe):
        from edgecv.tasks.keypoint_heads import masked_l1, wing_loss

        if self.options.loss == "wing":
            return wing_loss(tuple(recipe.input.size))
        return masked_l1

    def keras_metrics(self) -> list:
        from edgecv.tasks.keypoint_heads import keras_nme

        info = getattr(self, "_train_info", None)  # the trainer asks for datasets before it compiles
        if info is None:
            return []
        return [keras_nme(info.get("normalize_by"), tuple(info["input_size"]))]

    def train_dataset(self, samples, info: dict, recipe, batch_size: int, *, training: bool, seed: int = 0,
                      augment: bool = True, size=None):
        from edgecv._keras import tf
        from edgecv.data.keypoint_augment import KeypointAugment, augment_batch
        from edgecv.data.pipeline import image_dataset

        size = tuple(size or recipe.input.size)
        self._train_info = {**info, "input_size": list(size)}
        ds = image_dataset(samples, size, recipe.input.resize, batch_size,
                           np.asarray(self.targets(samples, {**info, "input_size": list(size)}), np.float32),
                           shuffle=training, seed=seed, cache=recipe.data.cache == "memory")
        if training and augment:
            cfg = KeypointAugment.from_recipe(recipe.augment,
                                              flip_permutation(info["num_keypoints"], info["flip_pairs"] or []))
            tf.random.set_seed(seed)
            ds = ds.map(lambda x, y: augment_batch(x, y, cfg), num_parallel_calls=1, deterministic=True)
        return ds

    def distill_outputs(self, keras_model):
        return keras_model

    def distillation_loss(self, y_true, student, teacher, temperature: float, weight: float):
        """Masked L1 to the targets and L1 to the teacher's points (temperature has no meaning here)."""
        from edgecv._keras import tf
        from edgecv.tasks.keypoint_heads import masked_l1

        hard = tf.reduce_mean(masked_l1(y_true, student))
        soft = tf.reduce_mean(tf.abs(tf.cast(student, tf.float32) - tf.cast(teacher, tf.float32)))
        return (1.0 - weight) * hard + weight * soft, hard, soft

    def serving_outputs(self, outputs: Dict, images, info: dict) -> Dict:
        """Also `keypoints_px`: the points in pixels of the image given (its own height and width)."""
        from edgecv._keras import tf

        shape = tf.shape(images)
        wh = tf.cast(tf.stack([shape[2], shape[1]]), tf.float32)
        return {**outputs, "keypoints_px": outputs[OUTPUT] * wh}

    # ---- judging -------------------------------------------------------------------------------
    def evaluate(self, outputs: Dict[str, np.ndarray], targets, info: dict) -> dict:
        if targets is None:
            return {}
        return keypoint_metrics(outputs[OUTPUT], np.asarray(targets), info.get("input_size", (1, 1)),
                                info.get("normalize_by"), info.get("failure_nme", self.options.failure_nme),
                                preview=PREVIEW_IMAGES)

    def sample_scores(self, outputs: Dict[str, np.ndarray], targets, info: dict) -> Dict[str, np.ndarray]:
        if targets is None:
            return {}
        nme = per_image_nme(outputs[OUTPUT], np.asarray(targets), info.get("input_size", (1, 1)),
                            info.get("normalize_by"))
        failed = np.where(np.isnan(nme), np.nan, nme > info.get("failure_nme", self.options.failure_nme))
        return {"nme": nme, "failure_rate": failed}

    def agreement(self, reference: Dict[str, np.ndarray], candidate: Dict[str, np.ndarray], info: dict) -> dict:
        return point_agreement(reference[OUTPUT], candidate[OUTPUT], info.get("input_size", (1, 1)))

    # ---- evaluation on any machine ---------------------------------------------------------------
    def device_info(self, folder) -> dict:
        return keypoint_sidecar(folder) or {}

    def read_device_set(self, data, annotations, info: dict, options: dict):
        return read_keypoint_set(self, data, annotations, info, options)

    def device_targets(self, evaluation, outputs, input_size):
        return keypoint_targets(evaluation, input_size)

    def device_report(self, evaluation, result, outputs, options: dict) -> dict:
        return keypoint_report(evaluation, result, outputs)

    def print_device_report(self, report: dict, artifact, data, out, err, options: dict) -> None:
        print_keypoint_report(report, artifact, data, out)

    # ---- files and reports ---------------------------------------------------------------------
    def sidecars(self, info: dict) -> Dict[str, str]:
        import json

        keep = ("keypoint_names", "num_keypoints", "flip_pairs", "normalize_by", "failure_nme", "input_size", "resize")
        return {"keypoints.json": json.dumps({k: info.get(k) for k in keep}, indent=2) + "\n"}

    def report_plots(self, report: dict) -> Dict[str, str]:
        return keypoint_plots(report)


def seeded_split(samples: list, val_fraction: float, seed: int, group_by: Optional[str] = None,
                 root=None) -> tuple[list, list]:
    """Shuffle by path with the seed; the first val_fraction are validation (both kept in path order).
    With `group_by`, whole groups are shuffled instead (edgecv.data.groups)."""
    order = sorted(samples, key=lambda s: s.path)
    if group_by is not None:
        return split_by_group(order, lambda s: group_of(s.path, root, group_by), val_fraction, seed)
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(order) * val_fraction)) if len(order) >= 2 else 0
    return sorted(order[n_val:], key=lambda s: s.path), sorted(order[:n_val], key=lambda s: s.path)
