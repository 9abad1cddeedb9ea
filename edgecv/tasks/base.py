"""The task seam: what a model outputs and how it is judged.

A task owns everything that differs between classification, keypoints, embeddings, detection:
how samples and their targets are read, the head, loss and training metric, the named outputs,
metrics and agreement computed with numpy (they run on devices without TensorFlow), the gates it
offers, its sidecar files, calibration strata, its report columns, and the number that passes
optimize. Exporters, runtimes, passes, validation and reports ask the task; none of them knows
what a class or a keypoint is.

Methods that build Keras objects import TensorFlow lazily, so a device that only validates or
benchmarks artifacts can import every task.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, Hashable, List, Optional, Sequence, Tuple

import numpy as np
from pydantic import BaseModel, ConfigDict

from edgecv.registry import LazyRegistry
from edgecv.errors import InputError

TASK_MODULES: Dict[str, str] = {  # built-in task name -> module (imported on first use)
    "classification": "edgecv.tasks.classification",
    "detection": "edgecv.tasks.detection",
    "embedding": "edgecv.tasks.embedding",
    "generic": "edgecv.tasks.generic",
    "keypoints": "edgecv.tasks.keypoints",
    "segmentation": "edgecv.tasks.segmentation",
}
TASKS: "LazyRegistry[Task]" = LazyRegistry("task", TASK_MODULES)


@dataclass(frozen=True)
class OutputSpec:
    """One named model output: `probabilities [N, 12] float32`."""

    name: str
    shape: Tuple[Any, ...]  # symbolic dims allowed: ("N", 12)
    dtype: str = "float32"
    meaning: str = ""

    def to_json(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "meaning": self.meaning}


@dataclass(frozen=True)
class MetricSpec:
    """A number the task computes from outputs (and targets, for quality metrics)."""

    name: str
    higher_is_better: bool
    unit: str = ""  # "%", " px", "" ...
    description: str = ""
    fmt: str = ".4g"
    regression_tolerance: Optional[float] = None  # default allowed worsening for `edgecv gate`
    # How `Task.sample_scores` scores each sample, for confidence intervals: "share" (0 or 1; the
    # metric is scale x their mean: accuracy), "mean" (the metric is their mean: NME), "" (none)
    per_sample: str = ""
    scale: float = 1.0  # a share's unit: 100 for percent


@dataclass(frozen=True)
class GateSpec:
    """A gate `{name: limit}` a target may state: value = sign * result.<source>[key], checked
    against the limit as a `min` or a `max`. A drop of a higher-is-better metric is sign -1 on
    its delta."""

    name: str
    source: str  # metrics | deltas | agreement | latency | size | outputs
    key: str
    bound: str  # "min" | "max"
    sign: float = 1.0
    unit: str = ""
    description: str = ""
    # value: the measured number; significant: fail only when the whole confidence interval is past
    # the limit; confident: pass only when the whole interval is within it (`_significant` and
    # `_confident` forms of a gate on a per-sample metric, edgecv.validate.gates.interval_gates)
    judge: str = "value"


@dataclass(frozen=True)
class ColumnSpec:
    """A report column a task adds: header, where the value lives, how it prints."""

    key: str
    header: str
    source: str  # metrics | deltas | agreement
    field: str
    fmt: str = ".3f"
    suffix: str = ""
    short: bool = True  # shown in the narrow terminal table


@dataclass
class DeviceSet:
    """An evaluation set read on any machine (`edgecv validate` / `bench --data`): the images, each
    one's label as read (a class folder's name, an annotation row; None: unlabelled), the facts
    `evaluate` needs and the resize policy. `Task.device_targets` turns the labels into targets once
    the artifact is loaded (they may depend on its output count or input size)."""

    paths: List[str]
    labels: Optional[List[Any]] = None
    info: dict = field(default_factory=dict)
    resize: str = "resize"
    skipped: List[Tuple[str, str]] = field(default_factory=list)  # (path, why not read)
    state: dict = field(default_factory=dict)  # what the task keeps for its report (label offset ...)


class TaskOptions(BaseModel):
    """A task's settings in the recipe (`task_options:`); a task with none accepts none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Task(ABC):
    name: ClassVar[str]
    description: ClassVar[str] = ""
    options_model: ClassVar[type] = TaskOptions
    metrics: ClassVar[Tuple[MetricSpec, ...]] = ()  # computed against targets
    agreement_metrics: ClassVar[Tuple[MetricSpec, ...]] = ()  # computed against the float outputs
    gates: ClassVar[Tuple[GateSpec, ...]] = ()
    quality_metric: ClassVar[Optional[str]] = None  # what passes optimize; None: agreement only
    columns: ClassVar[Tuple[ColumnSpec, ...]] = ()
    # False where the kept model cannot be fine-tuned with `loss` (its training-only head was
    # dropped by `inference_model`): passes that train (prune, QAT, swap) are refused at planning
    passes_can_train: ClassVar[bool] = True
    needs_targets: ClassVar[bool] = True  # False: unlabelled images are enough (agreement only)
    # Keras: the metric the trainer watches to keep the best weights, and its direction
    monitor: ClassVar[Tuple[str, str]] = ("val_loss", "min")
    # an artifact without preprocessing.json (a third party's) is taken to be of this task when a
    # device command gets: "folder" (--data alone), "annotations" (--data and --annotations)
    device_default_for: ClassVar[Tuple[str, ...]] = ()
    sidecar_names: ClassVar[Tuple[str, ...]] = ()  # files of `sidecars` that name the task beside an artifact
    # pass name -> why the task cannot take it (refused while planning, with the reason)
    refused_passes: ClassVar[Dict[str, str]] = {}
    # artifact option (options.<name> in a target) -> why the task's artifacts cannot take it (refused while planning)
    refused_options: ClassVar[Dict[str, str]] = {}

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if "name" in cls.__dict__:  # a concrete task (edgecv's or a user's) is findable by name
            TASKS.register(cls.name, cls)

    def __init__(self, options: Optional[dict] = None):
        self.options = self.options_model.model_validate(options or {})

    # ---- data ----------------------------------------------------------------------------------
    @abstractmethod
    def read_data(self, recipe):
        """Index the recipe's `data:` section: an edgecv.data.index.DataIndex whose samples carry
        their targets and whose `info` holds the facts that travel with the model (class names,
        keypoint names ...)."""

    @abstractmethod
    def targets(self, samples: Sequence, info: dict) -> Any:
        """Targets of `samples` as numpy, in the form `evaluate` takes."""

    def eval_samples(self, index) -> list:
        """The images every artifact and the float model are run on and judged by (retrieval also
        needs its gallery: the embedding task adds the training split)."""
        return list(index.val)

    def stratum(self, sample) -> Hashable:
        """Calibration images are drawn round-robin over strata (classes, poses ...)."""
        return sample.label if sample.label is not None else 0

    # ---- model ---------------------------------------------------------------------------------
    @abstractmethod
    def output_spec(self, info: dict) -> List[OutputSpec]:
        """The named outputs every artifact of this task has, in the Keras model's output order."""

    def output_names(self, info: dict) -> List[str]:
        return [o.name for o in self.output_spec(info)]

    def build_head(self, features, recipe, info: dict):
        """Keras outputs (a tensor or a list in output_spec order) on the backbone's feature map."""
        raise NotImplementedError(f"task {self.name} does not train a head (bring a model)")

    def inference_model(self, keras_model):
        """The trained model as it is kept and exported: training-only outputs (a margin head)
        dropped. Called once after training."""
        return keras_model

    def register_keras_objects(self) -> None:
        """Import the module that registers this task's own Keras layers, so a saved model loads."""

    def loss(self, recipe):
        raise NotImplementedError(f"task {self.name} does not train")

    def keras_metrics(self) -> list:
        return []

    def encode_targets(self, samples: Sequence, info: dict) -> np.ndarray:
        """Targets as a numpy array the training pipeline batches (before `keras_target`)."""
        return np.asarray(self.targets(samples, info))

    def keras_target(self, y, info: dict):
        """Map a batch of encoded targets to what the loss takes (in TensorFlow)."""
        return y

    def train_dataset(self, samples, info: dict, recipe, batch_size: int, *, training: bool, seed: int = 0,
                      augment: bool = True, size=None):
        """Batches of (float32 0..255 images, loss targets). Tasks whose augmentation must move
        their targets (keypoints, boxes) override this."""
        from edgecv.data.pipeline import augmentation, image_dataset

        aug = augmentation(recipe.augment, seed) if training and augment else None
        return image_dataset(samples, tuple(size or recipe.input.size), recipe.input.resize, batch_size,
                             self.encode_targets(samples, info), lambda y: self.keras_target(y, info),
                             shuffle=training, augment=aug, seed=seed, cache=recipe.data.cache == "memory")

    def distill_outputs(self, keras_model):
        """The model cut where distillation compares teacher and student (e.g. logits)."""
        return keras_model

    def distillation_loss(self, y_true, student, teacher, temperature: float, weight: float):
        """(total, hard, soft) batch means: hard against targets, soft against the teacher."""
        raise NotImplementedError(f"task {self.name} has no distillation loss")

    def serving_outputs(self, outputs: Dict[str, Any], images, info: dict) -> Dict[str, Any]:
        """SavedModel signature outputs (TensorFlow tensors): the named outputs plus what a
        server client wants ready-made (class ids, pixel coordinates)."""
        return dict(outputs)

    def postprocess(self, info: dict) -> Optional["DetectionPostProcess"]:  # noqa: F821
        """The decode + NMS every exporter appends after the raw outputs, or None (the default: the
        artifact's outputs are the model's own). A detection task returns an
        edgecv.metrics.nms.DetectionPostProcess built from info["detection"] (its anchors, scales
        and NMS settings); each format then adds it in its own form (TFLite_Detection_PostProcess,
        ONNX NonMaxSuppression, EfficientNMS_TRT, Core ML's NonMaximumSuppression, a SavedModel
        signature with the TF Object Detection API's names) and its artifact's outputs become the
        four DETECTION_OUTPUTS. The float Keras model's raw outputs go through the same numpy
        post-process (`DetectionPostProcess.from_raw`), so both are judged the same way."""
        return None

    def coreml_classifier_labels(self, info: dict) -> Optional[List[str]]:
        """Labels for a Core ML classifier (None: plain multi-array outputs)."""
        return None

    # ---- judging (numpy only) ------------------------------------------------------------------
    def evaluate(self, outputs: Dict[str, np.ndarray], targets, info: dict) -> dict:
        """Task metrics of outputs against targets ({} when there are none)."""
        return {}

    def agreement(self, reference: Dict[str, np.ndarray], candidate: Dict[str, np.ndarray], info: dict) -> dict:
        """Task-level agreement of a candidate's outputs with the float model's."""
        return {}

    def sample_scores(self, outputs: Dict[str, np.ndarray], targets, info: dict) -> Dict[str, np.ndarray]:
        """Per-sample scores of the metrics declared `per_sample`, one per evaluated sample in order
        (NaN where the metric leaves a sample out). They give each metric a confidence interval and
        its change against the float model a paired one, and let `_significant` / `_confident`
        gates judge it (edgecv.validate.intervals)."""
        return {}

    def metric_intervals(self, candidate: Dict[str, np.ndarray], reference: Optional[Dict[str, np.ndarray]], targets,
                         info: dict, confidence: float) -> Tuple[dict, dict]:
        """Intervals of metrics that are not a mean over samples (mAP: a bootstrap over images of the
        whole computation), and of their change against the reference: ({name: Interval}, {name:
        Interval}). Merged with the per-sample ones; the metric is declared `per_sample="images"`."""
        return {}, {}

    @classmethod
    def claims_folder(cls, data: Path) -> bool:
        """True when `--data data` has this task's layout, so a third party's model without
        preprocessing.json or sidecar is taken to be of this task (before `device_default_for`)."""
        return False

    def agreement_with_targets(self, reference: Dict[str, np.ndarray], candidate: Dict[str, np.ndarray], targets,
                               info: dict) -> dict:
        """Agreement that needs the targets too (retrieval: the candidate's queries searched in the
        reference's gallery); merged into `agreement` when there are targets."""
        return {}

    def quality(self, outputs: Dict[str, np.ndarray], targets, info: dict) -> float:
        """The number passes optimize, higher is better (a lower-is-better metric is negated)."""
        spec = self.metric(self.quality_metric)
        value = float(self.evaluate(outputs, targets, info)[spec.name])
        return value if spec.higher_is_better else -value

    def metric(self, name: str) -> MetricSpec:
        for m in self.metrics + self.agreement_metrics:
            if m.name == name:
                return m
        raise KeyError(f"task {self.name} has no metric {name!r}")

    def select_outputs(self, outputs: Dict[str, np.ndarray], info: dict) -> Dict[str, np.ndarray]:
        """The task's named outputs from a runtime's: by name, or a lone unnamed output (a
        third-party model) taken as the task's only output."""
        names = self.output_names(info)
        if all(n in outputs for n in names):
            return {n: outputs[n] for n in names}
        if len(names) == 1 and len(outputs) == 1:
            return {names[0]: next(iter(outputs.values()))}
        raise ValueError(f"the artifact's outputs {sorted(outputs)} do not include the {self.name} task's "
                         f"{names}; a third party's file of other outputs: --task generic measures it on the images "
                         "(outputs and latency, no metric)")

    # ---- evaluation on any machine (edgecv validate, bench --data) ---------------------------------
    def device_info(self, folder: Optional[Path]) -> dict:
        """The facts `evaluate` needs, read from the sidecar files the build wrote into `folder`
        (the artifact's target folder; None for a third party's file)."""
        return {}

    def read_device_set(self, data: Path, annotations: Optional[Path], info: dict, options: dict) -> DeviceSet:
        """An evaluation set from a folder of images (`data`) and, where the task needs one, an
        annotation file. `options`: the command's own (labels, label_offset, resize, warn ...)."""
        raise InputError(f"task {self.name} cannot read an evaluation set on this machine: it defines no "
                         "read_device_set")

    def device_targets(self, evaluation: DeviceSet, outputs: Dict[str, np.ndarray], input_size: Tuple[int, int]):
        """Targets of the images that were read, as `evaluate` takes them (None: unlabelled)."""
        return None if evaluation.labels is None else np.asarray(evaluation.labels)

    def device_report(self, evaluation: DeviceSet, result, outputs: Dict[str, np.ndarray], options: dict) -> dict:
        """What `edgecv validate --json` writes: per image what the artifact said, and the metrics."""
        return {"images": evaluation.paths, "metrics": result.metrics, "skipped": evaluation.skipped}

    def print_device_report(self, report: dict, artifact: Path, data: Path, out, err, options: dict) -> None:
        """`edgecv validate`'s lines on `out` (notes on `err`): the task's metrics by default."""
        shown = ", ".join(f"{m.name} {report['metrics'][m.name]:{m.fmt}}{m.unit}" for m in self.metrics
                          if isinstance(report["metrics"].get(m.name), (int, float)))
        out.print(f"{artifact.name} on {len(report['images'])} images from {data}")
        out.print(shown or "no targets: the artifact's outputs only (--json FILE)")

    def bench_fields(self, evaluation: DeviceSet, result) -> dict:
        """`edgecv bench --data`: the task's metrics (numbers) it measured on the device."""
        return {"metrics": {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}}

    # ---- files and reports ---------------------------------------------------------------------
    def sidecars(self, info: dict) -> Dict[str, str]:
        """Files written beside every artifact (name -> text), e.g. labels.txt."""
        return {}

    def preprocessing_fields(self, info: dict) -> dict:
        """Extra preprocessing.json fields a device needs to use the outputs (detection: anchors, NMS)."""
        return {}

    @classmethod
    def takes_annotations(cls, annotations) -> bool:
        """Whether a third party's artifact given this annotation file/folder is taken to be of this
        task (before `device_default_for`): a VOC folder is a detector's."""
        return False

    def report_plots(self, report: dict) -> Dict[str, str]:
        """Extra figures for report.html: id -> inline SVG or HTML (already escaped)."""
        return {}

    def to_json(self) -> dict:
        return {"name": self.name, "options": self.options.model_dump(mode="json")}


def as_named(outputs, names: Sequence[str]) -> Dict[str, Any]:
    """A model's raw outputs (a tensor, a list or a dict) as {name: value} in the task's names."""
    if isinstance(outputs, dict):
        return dict(outputs)
    if isinstance(outputs, (list, tuple)):
        if len(outputs) != len(names):
            raise ValueError(f"model has {len(outputs)} outputs, the task names {len(names)}: {list(names)}")
        return dict(zip(names, outputs))
    if len(names) != 1:
        raise ValueError(f"model has one output, the task names {len(names)}: {list(names)}")
    return {names[0]: outputs}


def drop_gate(spec: MetricSpec, unit: str = "") -> GateSpec:
    """`<metric>_drop_max` for a higher-is-better metric, `<metric>_increase_max` otherwise."""
    if spec.higher_is_better:
        return GateSpec(f"{spec.name}_drop_max", "deltas", spec.name, "max", -1.0, unit or spec.unit,
                        f"{spec.name} below the float reference")
    return GateSpec(f"{spec.name}_increase_max", "deltas", spec.name, "max", 1.0, unit or spec.unit,
                    f"{spec.name} above the float reference")


def asdict_json(obj) -> dict:
    return asdict(obj)
