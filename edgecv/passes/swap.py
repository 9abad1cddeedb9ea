"""Backbone swap with knowledge distillation: a smaller network (MobileNet v1/v2/v3 at a chosen
width and input size) learns from the trained model's outputs.

The student is built like any recipe model (normalization inside, flat layers, the recipe's head)
with the new backbone, optionally initialized from pretrained no-top weights, then trained on the
training split against a mix of the labels and the teacher's temperature-softened outputs
(Hinton et al. 2015):

    loss = (1 - distill_weight) * CE(labels, softmax(s))
           + distill_weight * T^2 * KL(softmax(t / T) || softmax(s / T))
           + feature_weight * (1 - cos(P f_s, f_t))

with s, t the student's and teacher's logits, f_s, f_t their backbones' spatially pooled
features and P a dense projection learned with the student and then dropped. Two phases as in
the recipe's training: the new head on a frozen backbone, then everything but batch norm (kept in
inference mode: the shared weights have it folded); within each phase the learning rate follows
a cosine decay to zero (`schedule: constant` keeps it flat).

Teacher views (`teacher_views: N`, the default 6): the teacher runs once, over N augmented passes
of the training split (the recipe's augmentation plus random-resized crops of at least
`crop_min_area` of the image), and its outputs are cached with each view stored at the student's
size; an epoch is still one pass over the training split (one cached view of each image, a
fresh view each epoch until all are used), and costs only the student. `mix: mixup |
cutmix` with `mixed_views` adds blended images and `unlabelled: FOLDER` images without labels;
both are trained on the teacher's outputs only. `teacher_views: 0` runs the teacher on every
batch instead (the behaviour before these options).

The defaults are what measured best on flowers (MobileNet v1 0.5/128 from the fine-tuned
MobileNetV2 1.0/224, seed-0 split): int8 97.22 % (float 97.22 %) against the teacher's 98.61 %
float; 36 fine-tune epochs gave 96.53 %, the feature loss (weight 1.0) 97.22 % int8 with a lower
float 96.53 %, two extra cutmix views 96.53 % (docs/guide.md, "Optimization passes", has the table).

Input size: each augmented training batch is decoded at the recipe's size; the teacher sees it
as is and the student sees it resized (bilinear, antialiased) to its own size, so the teacher's
label belongs to the student's pixels. The build validates the student on the validation images
decoded directly at its size by the recipe's resize policy. Both views agree because the
student's aspect ratio must equal the recipe's.

Paths in `weights` resolve against the recipe file's folder, like `model.weights`.
"""

from __future__ import annotations

import time
from typing import Literal, Optional, Union

import numpy as np
from pydantic import Field, field_validator, model_validator

from edgecv._keras import keras, tf
from edgecv.config.recipe import UnfreezeConfig
from edgecv.errors import ConfigError
from edgecv.models.build import TaskModel, build_task_model
from edgecv.passes import common, distill_views
from edgecv.passes.base import Pass, PassConfig
from edgecv.data.images import load_batch
from edgecv.models.backbones import get_backbone
from edgecv.runtimes.latency import measure_latency
from edgecv.tasks.base import Task


class SwapConfig(PassConfig):
    backbone: str = Field("MobileNet", description="MobileNet (v1), MobileNetV2, MobileNetV3Small/Large, ...")
    alpha: Optional[float] = Field(None, gt=0.0, description="width multiplier")
    input_size: Optional[Union[int, tuple[int, int]]] = Field(None, description="student input (default: the model's)")
    weights: str = Field("none", description="none | imagenet | a keras-applications no-top h5, relative to the recipe")
    temperature: float = Field(4.0, gt=0.0)
    distill_weight: float = Field(0.7, ge=0.0, le=1.0, description="share of the loss from the teacher; rest from labels")
    warmup_epochs: int = Field(12, ge=0, description="new head only, backbone frozen")
    warmup_learning_rate: float = Field(1e-3, gt=0.0)
    epochs: int = Field(48, ge=0, description="then every layer but batch norm")
    learning_rate: float = Field(5e-4, gt=0.0)
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    batch_size: Optional[int] = Field(None, ge=1, description="default: the recipe's")
    augment: bool = True
    schedule: Literal["constant", "cosine"] = Field("cosine", description="learning rate within each phase")
    teacher_views: int = Field(6, ge=0, description="cache this many augmented views of the training split with "
                               "the teacher's outputs (an epoch is still one pass over the training split, each "
                               "image in a fresh cached view); 0: the teacher runs on every batch")
    crop_min_area: Optional[float] = Field(0.35, gt=0.0, le=1.0, description="random-resized crops of this much of "
                                           "the image or more in the cached views (None: off)")
    mix: Literal["none", "mixup", "cutmix"] = Field("none", description="blend pairs of images in extra views")
    mixed_views: int = Field(0, ge=0, description="extra views of blended images, labelled by the teacher only")
    unlabelled: Optional[str] = Field(None, description="folder of images without labels (relative to the recipe), "
                                      "labelled by the teacher only")
    feature_weight: float = Field(0.0, ge=0.0, description="weight of the pooled-feature distillation loss "
                                  "(cosine distance through a learned projection)")

    @field_validator("backbone")
    @classmethod
    def _known(cls, v: str) -> str:
        try:
            return get_backbone(v).name
        except KeyError as e:
            raise ValueError(e.args[0]) from None

    @model_validator(mode="after")
    def _views_needed(self):
        if self.teacher_views == 0 and (self.mixed_views or self.unlabelled):
            raise ValueError("mixed_views and unlabelled need teacher_views >= 1 (they live in the cached views)")
        if self.mixed_views and self.mix == "none":
            raise ValueError("mixed_views needs mix: mixup or cutmix")
        return self

    def size(self, default: tuple[int, int]) -> tuple[int, int]:
        if self.input_size is None:
            return tuple(default)
        return (self.input_size, self.input_size) if isinstance(self.input_size, int) else tuple(self.input_size)


def keras_latency_ms(model: keras.Model, image: np.ndarray) -> float:
    x = tf.constant(image[:1].astype(np.float32))
    fn = tf.function(lambda b: model(b, training=False))
    return measure_latency(lambda b: fn(x), image[:1], min_runs=20, min_seconds=0.5).p50_ms


class Swap(Pass):
    name = "swap"
    description = "replace the backbone by a smaller one (MobileNet v1/v2/v3) trained by distillation"
    config = SwapConfig
    needs = frozenset({"train_data", "teacher"})
    suits = "low-end CPUs (Raspberry Pi Zero 2, Cortex-A53 phones) where the original is too slow or too large"

    def build_student(self, teacher: TaskModel, cfg: SwapConfig, recipe, task) -> TaskModel:
        size = cfg.size(teacher.input_size)
        th, tw = teacher.input_size
        if abs(size[0] / size[1] - th / tw) > 1e-6:
            raise ConfigError(f"swap: input_size {list(size)} has another aspect ratio than the model's "
                              f"{[th, tw]}; keep it so training and validation see the same crop")
        model_cfg = recipe.model.model_copy(update={"backbone": cfg.backbone, "alpha": cfg.alpha, "weights": cfg.weights})
        input_cfg = recipe.input.model_copy(update={"size": size})
        student_recipe = recipe.model_copy(update={"model": model_cfg, "input": input_cfg})
        return build_task_model(student_recipe, teacher.info, task)

    def run(self, model: TaskModel, cfg: SwapConfig, ctx) -> TaskModel:
        t0 = time.perf_counter()
        teacher = ctx.teacher or model
        task = ctx.task
        metric = task.quality_metric
        student = self.build_student(teacher, cfg, ctx.recipe, task)
        size = tuple(student.input_size)
        val_x, val_y = common.val_arrays(ctx, size)
        batch = cfg.batch_size or ctx.recipe.train.batch_size
        history: list = []

        def log_epoch(name, e, epochs, sums, n):
            row = {"phase": name, "epoch": e + 1, "loss": sums[0] / n, "label_loss": sums[1] / n,
                   "distill_loss": sums[2] / n, "feature_loss": sums[3] / n,
                   f"val_{metric}": common.quality(ctx, student.keras_model, val_x, val_y)}
            history.append(row)
            if ctx.console:
                ctx.console.print(f"    distill {name} {e + 1}/{epochs}: loss {row['loss']:.4f} "
                                  f"(labels {row['label_loss']:.4f}, teacher {row['distill_loss']:.4f}, "
                                  f"features {row['feature_loss']:.4f}), val {metric} {row[f'val_{metric}']:.4g}")

        trainer = DistillTrainer(teacher, student, cfg, task)
        pool = None
        if cfg.teacher_views:
            t_pool = time.perf_counter()
            pool = self.teacher_pool(teacher, student, cfg, ctx, trainer, batch)
            ctx.report["teacher_pool"] = {"views": len(pool), "labelled": pool.labelled,
                                          "seconds": time.perf_counter() - t_pool}
        for name, epochs, lr, unfreeze in (("warm-up", cfg.warmup_epochs, cfg.warmup_learning_rate, None),
                                           ("fine-tune", cfg.epochs, cfg.learning_rate, UnfreezeConfig(all=True))):
            if pool is not None:
                trainer.train_on_pool(name, pool, epochs, lr, unfreeze, batch, ctx.recipe.train.seed, log_epoch)
            else:
                trainer.train_online(name, lambda: ctx.train_dataset(batch, cfg.augment), epochs, lr, unfreeze,
                                     common.steps_per_epoch(ctx, batch), log_epoch)
        common.set_finetune_trainable(student.keras_model)

        teacher_x, teacher_y = common.val_arrays(ctx, teacher.input_size)
        ctx.report.update({
            "teacher": {"backbone": teacher.backbone, "input_size": list(teacher.input_size),
                        "params": common.param_count(teacher.keras_model),
                        f"val_{metric}": common.quality(ctx, teacher.keras_model, teacher_x, teacher_y),
                        "keras_latency_p50_ms": keras_latency_ms(teacher.keras_model, teacher_x)},
            "student": {"backbone": student.backbone, "alpha": cfg.alpha, "input_size": list(size),
                        "weights": cfg.weights, "params": common.param_count(student.keras_model),
                        f"val_{metric}": common.quality(ctx, student.keras_model, val_x, val_y),
                        "keras_latency_p50_ms": keras_latency_ms(student.keras_model, val_x)},
            "history": history,
            "seconds": time.perf_counter() - t0,
        })
        ctx.report[f"{metric}_delta"] = ctx.report["student"][f"val_{metric}"] - ctx.report["teacher"][f"val_{metric}"]
        return student

    def teacher_pool(self, teacher: TaskModel, student: TaskModel, cfg: SwapConfig, ctx, trainer, batch: int):
        batches = self.unlabelled_batches(teacher, cfg, ctx, batch) if cfg.unlabelled else None
        log = ctx.console.print if ctx.console else None
        return distill_views.build_pool(
            lambda: ctx.train_dataset(batch, cfg.augment), batches, teacher_out=trainer.teacher_out,
            teacher_feat=trainer.teacher_feat, student_size=tuple(student.input_size), views=cfg.teacher_views,
            mixed_views=cfg.mixed_views if cfg.mix != "none" else 0, mix=cfg.mix, crop_min_area=cfg.crop_min_area,
            crop_labelled=crops_keep_targets(ctx.task), seed=ctx.recipe.train.seed, log=log)

    @staticmethod
    def unlabelled_batches(teacher: TaskModel, cfg: SwapConfig, ctx, batch: int):
        """Augmented float batches of the unlabelled folder's images at the teacher's size."""
        from edgecv.data.pipeline import augmentation

        files = distill_views.unlabelled_files(ctx.recipe.resolve(cfg.unlabelled))
        aug = augmentation(ctx.recipe.augment, ctx.recipe.train.seed) if cfg.augment else None

        def batches():
            for i in range(0, len(files), batch):
                x = tf.constant(load_batch(files[i:i + batch], teacher.input_size, ctx.recipe.input.resize), tf.float32)
                yield tf.clip_by_value(aug(x, training=True), 0.0, 255.0) if aug is not None else x

        return batches


def crops_keep_targets(task) -> bool:
    """Whether a random crop leaves the task's targets right: true for tasks that augment through
    the base pipeline (class labels); a task that overrides train_dataset moves its targets with
    the pixels (keypoints), so its labelled views are not cropped (teacher-only views still are)."""
    return type(task).train_dataset is Task.train_dataset


class DistillTrainer:
    """The student's training steps: the task's distillation loss (labels and the teacher's
    softened outputs) plus, with feature_weight, a cosine distance between the student's pooled
    features, projected by a learned dense layer, and the teacher's."""

    def __init__(self, teacher: TaskModel, student: TaskModel, cfg: SwapConfig, task):
        self.student, self.cfg, self.task = student, cfg, task
        self.teacher_out = task.distill_outputs(teacher.keras_model)
        self.student_out = task.distill_outputs(student.keras_model)
        self.teacher_feat = self.student_both = None
        if cfg.feature_weight:
            self.teacher_feat = distill_views.pooled_features(teacher.keras_model, teacher.backbone_layers)
            s_feat = distill_views.pooled_features(student.keras_model, student.backbone_layers).output
            self.projection = keras.layers.Dense(int(self.teacher_feat.output.shape[-1]), name="distill_projection")
            self.projection.build(s_feat.shape)
            self.student_both = keras.Model(student.keras_model.input, [self.student_out.output, s_feat])
        self.resize = tuple(student.input_size) != tuple(teacher.input_size)

    def losses(self, xs, y, teacher_out, teacher_feat, label_weight):
        if self.student_both is not None:
            s_out, s_feat = self.student_both(xs, training=True)
        else:
            s_out = self.student_out(xs, training=True)
        _, hard, soft = self.task.distillation_loss(y, s_out, teacher_out, self.cfg.temperature,
                                                    self.cfg.distill_weight)
        w = self.cfg.distill_weight + (1.0 - self.cfg.distill_weight) * (1.0 - label_weight)
        total = (1.0 - w) * hard + w * soft
        feat = tf.constant(0.0)
        if self.cfg.feature_weight:
            p = tf.math.l2_normalize(self.projection(s_feat), axis=-1)
            feat = tf.reduce_mean(1.0 - tf.reduce_sum(p * tf.math.l2_normalize(teacher_feat, axis=-1), axis=-1))
            total = total + self.cfg.feature_weight * feat
        return total, hard, soft, feat

    def make_step(self, lr, unfreeze, steps: int):
        from edgecv.train.trainer import set_trainable

        set_trainable(self.student, unfreeze)
        if self.cfg.schedule == "cosine":
            lr = keras.optimizers.schedules.CosineDecay(lr, max(steps, 1))
        opt = common.make_optimizer(self.cfg.optimizer, lr)
        variables = self.student_out.trainable_variables
        if self.cfg.feature_weight:
            variables = variables + self.projection.trainable_variables

        @tf.function(autograph=False)  # no tensor-dependent Python control flow; spares autograph's warnings
        def step(xs, y, teacher_out, teacher_feat, label_weight):
            with tf.GradientTape() as tape:
                out = self.losses(xs, y, teacher_out, teacher_feat, label_weight)
            opt.apply_gradients(zip(tape.gradient(out[0], variables), variables))
            return out

        return step

    def train_on_pool(self, name, pool, epochs, lr, unfreeze, batch, seed, log_epoch):
        if epochs == 0:
            return
        plans = distill_views.epoch_plans(pool, self.cfg.teacher_views, epochs, batch, np.random.default_rng(seed))
        step = self.make_step(lr, unfreeze, sum(len(p) for p in plans))
        take = lambda tree, i: tf.nest.map_structure(lambda a: tf.constant(a[i]), tree)  # noqa: E731
        for e, plan in enumerate(plans):
            sums, n, n_labelled = np.zeros(4), 0, 0
            for idx in plan:
                idx = np.sort(idx)
                labelled = bool(idx[0] < pool.labelled)
                y = take(pool.targets, idx) if labelled else take(pool.teacher, idx)
                out = step(tf.cast(tf.constant(pool.images[idx]), tf.float32), y, take(pool.teacher, idx),
                           tf.constant(pool.features[idx]), tf.constant(1.0 if labelled else 0.0))
                values = [float(v) for v in out]
                if not labelled:  # no ground truth: keep the label-loss mean over labelled batches only
                    values[1] = 0.0
                sums += values
                n += 1
                n_labelled += labelled
            sums[1] *= n / max(n_labelled, 1)
            log_epoch(name, e, epochs, sums, n)

    def train_online(self, name, dataset, epochs, lr, unfreeze, steps_per_epoch: int, log_epoch):
        """The teacher runs on every augmented batch (teacher_views: 0)."""
        if epochs == 0:
            return
        step = self.make_step(lr, unfreeze, epochs * steps_per_epoch)
        size = tuple(self.student.input_size)
        ds = dataset()  # iterated once per epoch: new augmentation and order each time
        for e in range(epochs):
            sums, n = np.zeros(4), 0
            for x, y in ds:
                xs = tf.image.resize(x, size, method="bilinear", antialias=True) if self.resize else x
                feat = self.teacher_feat(x, training=False) if self.teacher_feat is not None else tf.zeros((1, 1))
                out = step(xs, y, self.teacher_out(x, training=False), feat, tf.constant(1.0))
                sums += [float(v) for v in out]
                n += 1
            log_epoch(name, e, epochs, sums, n)
