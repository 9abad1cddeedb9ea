"""Backbone swap with knowledge distillation: a smaller network (MobileNet v1/v2/v3 at a chosen
width and input size) learns from the trained model's outputs.

The student is built like any recipe model (normalization inside, flat layers, the recipe's head)
with the new backbone, optionally initialized from pretrained no-top weights, then trained on the
training split against a mix of the labels and the teacher's temperature-softened outputs
(Hinton et al. 2015):

    loss = (1 - distill_weight) * CE(labels, softmax(s))
           + distill_weight * T^2 * KL(softmax(t / T) || softmax(s / T))

with s, t the student's and teacher's logits. Two phases as in the recipe's training: the new head
on a frozen backbone, then everything but batch norm (kept in inference mode: the shared weights
have it folded).

Input size: each augmented training batch is decoded at the recipe's size; the teacher sees it
as is and the student sees it resized (bilinear, antialiased) to its own size. The build
validates the student on the validation images decoded directly at its size by the recipe's
resize policy. Both views agree because the student's aspect ratio must equal the recipe's.

Paths in `weights` resolve against the recipe file's folder, like `model.weights`.
"""

from __future__ import annotations

import time
from typing import Literal, Optional, Union

import numpy as np
from pydantic import Field, field_validator

from edgecv._keras import keras, tf
from edgecv.config.recipe import UnfreezeConfig
from edgecv.errors import ConfigError
from edgecv.models.build import TaskModel, build_task_model
from edgecv.passes import common
from edgecv.passes.base import Pass, PassConfig


class SwapConfig(PassConfig):
    backbone: str = Field("MobileNet", description="MobileNet (v1), MobileNetV2, MobileNetV3Small/Large, ...")
    alpha: Optional[float] = Field(None, gt=0.0, description="width multiplier")
    input_size: Optional[Union[int, tuple[int, int]]] = Field(None, description="student input (default: the model's)")
    weights: str = Field("none", description="none | imagenet | a keras-applications no-top h5, relative to the recipe")
    temperature: float = Field(4.0, gt=0.0)
    distill_weight: float = Field(0.7, ge=0.0, le=1.0, description="share of the loss from the teacher; rest from labels")
    warmup_epochs: int = Field(3, ge=0, description="new head only, backbone frozen")
    warmup_learning_rate: float = Field(1e-3, gt=0.0)
    epochs: int = Field(10, ge=0, description="then every layer but batch norm")
    learning_rate: float = Field(1e-4, gt=0.0)
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    batch_size: Optional[int] = Field(None, ge=1, description="default: the recipe's")
    augment: bool = True

    @field_validator("backbone")
    @classmethod
    def _known(cls, v: str) -> str:
        from edgecv.models.backbones import get_backbone

        try:
            return get_backbone(v).name
        except KeyError as e:
            raise ValueError(e.args[0]) from None

    def size(self, default: tuple[int, int]) -> tuple[int, int]:
        if self.input_size is None:
            return tuple(default)
        return (self.input_size, self.input_size) if isinstance(self.input_size, int) else tuple(self.input_size)


def keras_latency_ms(model: keras.Model, image: np.ndarray) -> float:
    from edgecv.validate.latency import measure_latency

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
        from edgecv.train.trainer import set_trainable

        t0 = time.perf_counter()
        teacher = ctx.teacher or model
        task = ctx.task
        metric = task.quality_metric
        student = self.build_student(teacher, cfg, ctx.recipe, task)
        size = tuple(student.input_size)
        resize = size != tuple(ctx.recipe.input.size)
        t_logits = task.distill_outputs(teacher.keras_model)
        s_logits = task.distill_outputs(student.keras_model)
        val_x, val_y = common.val_arrays(ctx, size)
        batch = cfg.batch_size or ctx.recipe.train.batch_size
        history = []

        def phase(name: str, epochs: int, lr: float, unfreeze):
            if epochs == 0:
                return
            set_trainable(student, unfreeze)
            opt = common.make_optimizer(cfg.optimizer, lr)
            variables = s_logits.trainable_variables

            @tf.function
            def step(x, y):
                teacher_out = t_logits(x, training=False)
                xs = tf.image.resize(x, size, method="bilinear", antialias=True) if resize else x
                with tf.GradientTape() as tape:
                    total, hard, soft = task.distillation_loss(y, s_logits(xs, training=True), teacher_out,
                                                               cfg.temperature, cfg.distill_weight)
                opt.apply_gradients(zip(tape.gradient(total, variables), variables))
                return total, hard, soft

            for e in range(epochs):
                sums, n = np.zeros(3), 0
                for x, y in ctx.train_dataset(batch, cfg.augment):
                    sums += [float(v) for v in step(x, y)]
                    n += 1
                row = {"phase": name, "epoch": e + 1, "loss": sums[0] / n, "label_loss": sums[1] / n,
                       "distill_loss": sums[2] / n, f"val_{metric}": common.quality(ctx, student.keras_model, val_x, val_y)}
                history.append(row)
                if ctx.console:
                    ctx.console.print(f"    distill {name} {e + 1}/{epochs}: loss {row['loss']:.4f} "
                                      f"(labels {row['label_loss']:.4f}, teacher {row['distill_loss']:.4f}), "
                                      f"val {metric} {row[f'val_{metric}']:.4g}")

        phase("warm-up", cfg.warmup_epochs, cfg.warmup_learning_rate, None)
        phase("fine-tune", cfg.epochs, cfg.learning_rate, UnfreezeConfig(all=True))
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
