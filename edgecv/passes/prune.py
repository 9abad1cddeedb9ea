"""Magnitude pruning (tensorflow-model-optimization): fine-tune on the training split while the
smallest weights are zeroed to a target sparsity, then strip the wrappers.

Two patterns:
- `unstructured`: any weight may be zeroed; a polynomial schedule (sparsity rises from
  `initial_sparsity` to `sparsity` over the first `end_fraction` of the fine-tuning steps, then the
  mask stays fixed while the remaining weights recover) or a constant one (the target from step 0).
  Dense kernels do not get faster on CPUs, but zeros compress: the gzip size of the model shrinks.
- `2:4`: two zeros in every four consecutive input-channel weights (`sparsity_m_by_n`), the
  pattern NVIDIA sparse tensor cores (Ampere, Jetson Orin) run faster through TensorRT. Layers
  whose input channel count is not a multiple of 4 (the RGB stem) are left dense.

Only Conv2D and Dense kernels are pruned (tfmot cannot prune depthwise kernels; they are a small
share of a MobileNet's weights). The report gives the sparsity each layer reached, the gzip size of
the weights before and after, and the validation accuracy before and after.
"""

from __future__ import annotations

import time
from typing import Literal, Optional

import numpy as np
from pydantic import Field, model_validator

from edgecv._keras import keras
from edgecv.models.build import NORMALIZE_LAYER, TaskModel
from edgecv.passes import common
from edgecv.passes.base import Pass, PassConfig
from edgecv.errors import ConfigError


class PruneConfig(PassConfig):
    sparsity: float = Field(0.5, gt=0.0, lt=1.0, description="final fraction of zeros in each pruned kernel")
    pattern: Literal["unstructured", "2:4"] = "unstructured"
    schedule: Literal["polynomial", "constant"] = "polynomial"
    initial_sparsity: float = Field(0.0, ge=0.0, lt=1.0, description="polynomial schedule: sparsity at step 0")
    end_fraction: float = Field(0.7, gt=0.0, le=1.0,
                                description="polynomial schedule: reach the target after this share of the steps")
    frequency: Optional[int] = Field(None, ge=1, description="steps between mask updates (default: 10 updates to the end)")
    epochs: int = Field(3, ge=1)
    learning_rate: float = Field(1e-4, gt=0.0)
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    batch_size: Optional[int] = Field(None, ge=1, description="default: the recipe's")
    augment: bool = True
    exclude: list[str] = Field(default_factory=list, description="layer names to leave dense")
    train_layers: Literal["all", "from_first_pruned"] = Field(
        "from_first_pruned", description="fine-tune every layer, or only from the first pruned one up (dense early "
                                         "layers keep their features, and their backward pass is skipped)")
    min_params: int = Field(0, ge=0, description="leave kernels smaller than this dense (early layers: "
                                                 "few weights to save, much accuracy to lose)")

    @model_validator(mode="after")
    def _consistent(self) -> "PruneConfig":
        if self.pattern == "2:4" and self.sparsity != 0.5:
            raise ValueError("pattern 2:4 zeroes exactly half of each group of four: leave sparsity at 0.5")
        if self.schedule == "polynomial" and self.initial_sparsity >= self.sparsity:
            raise ValueError("initial_sparsity must be below sparsity")
        return self


def _prunable(layer, pattern: str, exclude: set[str], min_params: int = 0) -> tuple[bool, str]:
    if layer.name == NORMALIZE_LAYER:
        return False, "input normalization (fixed)"
    if type(layer) not in (keras.layers.Conv2D, keras.layers.Dense):
        return False, ""
    if layer.name in exclude:
        return False, "excluded in the pass config"
    if layer.kernel.shape.num_elements() < min_params:
        return False, f"{layer.kernel.shape.num_elements()} weights: below min_params {min_params}"
    if pattern == "2:4" and layer.kernel.shape[-2] % 4:
        return False, f"{layer.kernel.shape[-2]} input channels: not a multiple of 4 for 2:4"
    return True, ""


def kernel_sparsity(kernel: np.ndarray) -> float:
    return float((kernel == 0).mean())


def is_2_of_4(kernel: np.ndarray) -> bool:
    """At least two zeros in every four consecutive input-channel weights (TFLite layout)."""
    k = np.moveaxis(kernel, -1, 0).reshape(-1, kernel.shape[-2])  # [out*h*w, in]
    if k.shape[1] % 4:
        return False
    groups = k.reshape(k.shape[0], -1, 4)
    return bool(((groups == 0).sum(-1) >= 2).all())


class Prune(Pass):
    name = "prune"
    description = "magnitude pruning to a target sparsity (polynomial/constant schedule) or 2:4, fine-tuned"
    config = PruneConfig
    needs = frozenset({"train_data"})
    suits = "any; unstructured: smaller gzip download; 2:4: NVIDIA sparse tensor cores (Jetson Orin, TensorRT)"

    def run(self, model: TaskModel, cfg: PruneConfig, ctx) -> TaskModel:
        import tensorflow_model_optimization as tfmot

        sparsity_api = tfmot.sparsity.keras
        t0 = time.perf_counter()
        r = ctx.recipe
        batch = cfg.batch_size or r.train.batch_size
        steps = common.steps_per_epoch(ctx, batch) * cfg.epochs

        base = common.copy_keras(model.keras_model)
        common.set_finetune_trainable(base)
        exclude = set(cfg.exclude)
        chosen, skipped = [], []
        for layer in base.layers:
            ok, why = _prunable(layer, cfg.pattern, exclude, cfg.min_params)
            if ok:
                chosen.append(layer.name)
            elif why:
                skipped.append({"layer": layer.name, "reason": why})
        if not chosen:
            raise ConfigError("prune: no Conv2D or Dense layer left to prune (check `exclude` and `min_params`)")
        if cfg.train_layers == "from_first_pruned":
            first = [l.name for l in base.layers].index(chosen[0])
            for layer in base.layers[:first]:
                layer.trainable = False

        if cfg.schedule == "constant" or cfg.pattern == "2:4":
            freq = cfg.frequency or max(1, steps // 10)
            schedule = sparsity_api.ConstantSparsity(cfg.sparsity, begin_step=0, frequency=freq)
        else:
            end = max(1, int(steps * cfg.end_fraction))
            freq = cfg.frequency or max(1, end // 10)
            end = max(freq, end - end % freq)  # the last mask update lands exactly on end_step
            schedule = sparsity_api.PolynomialDecay(cfg.initial_sparsity, cfg.sparsity, begin_step=0,
                                                    end_step=end, frequency=freq)
        params = {"pruning_schedule": schedule}
        if cfg.pattern == "2:4":
            params["sparsity_m_by_n"] = (2, 4)
        chosen_set = set(chosen)

        def wrap(layer):
            return sparsity_api.prune_low_magnitude(layer, **params) if layer.name in chosen_set else layer

        wrapped = keras.models.clone_model(base, clone_function=wrap)
        wrapped.compile(optimizer=common.make_optimizer(cfg.optimizer, cfg.learning_rate),
                        loss=ctx.task.loss(r), metrics=ctx.task.keras_metrics())
        if ctx.console:
            ctx.console.print(f"    pruning {len(chosen)} layer(s) to {cfg.sparsity:.0%} ({cfg.pattern}, {cfg.schedule}), "
                              f"{cfg.epochs} epoch(s) x {steps // cfg.epochs} steps")
        callbacks = [sparsity_api.UpdatePruningStep()]
        if ctx.console:
            from edgecv.train.progress import RichProgress

            callbacks.append(RichProgress("prune", cfg.epochs, steps // cfg.epochs, ctx.console))
        hist = wrapped.fit(ctx.train_dataset(batch, cfg.augment), epochs=cfg.epochs, verbose=0, callbacks=callbacks)
        stripped = sparsity_api.strip_pruning(wrapped)
        common.set_finetune_trainable(stripped)  # as the trainer leaves a model: ready for a later pass
        out = model.with_keras(stripped)

        per_layer = []
        zeros = total = 0
        for name in chosen:
            k = stripped.get_layer(name).kernel.numpy()
            row = {"layer": name, "params": int(k.size), "sparsity": round(kernel_sparsity(k), 4)}
            if cfg.pattern == "2:4":
                row["2:4"] = is_2_of_4(k)
            per_layer.append(row)
            zeros += int((k == 0).sum())
            total += int(k.size)
        # every convolution/dense kernel (depthwise included), pruned or not
        all_kernels = [w for l in stripped.layers if l.name != NORMALIZE_LAYER for w in l.get_weights() if w.ndim >= 2]
        all_count = sum(k.size for k in all_kernels)
        images, targets = common.val_arrays(ctx, model.input_size)
        before = common.quality(ctx, model.keras_model, images, targets)
        after = common.quality(ctx, stripped, images, targets)
        ctx.report.update({
            "pattern": cfg.pattern,
            "schedule": "constant" if cfg.pattern == "2:4" else cfg.schedule,
            "target_sparsity": cfg.sparsity,
            "steps": steps,
            "mask_update_every_steps": freq,
            "achieved_sparsity": zeros / total,  # over the pruned kernels
            "model_kernel_sparsity": sum(int((k == 0).sum()) for k in all_kernels) / all_count,  # all kernels
            "pruned_params": total,
            "kernel_params": int(all_count),
            "layers": per_layer,
            "skipped": skipped,
            **common.quality_report(ctx, "val_", _before=before, _after=after),
            **common.quality_report(ctx, "", _delta=after - before),
            "weights_gzip_bytes_before": common.weights_gzip_bytes(model.keras_model),
            "weights_gzip_bytes_after": common.weights_gzip_bytes(stripped),
            "history": [{k: float(v[e]) for k, v in hist.history.items()} for e in range(cfg.epochs)],
            "seconds": time.perf_counter() - t0,
        })
        if cfg.pattern == "2:4":
            ctx.report["all_2_of_4"] = all(row["2:4"] for row in per_layer)
        return out
