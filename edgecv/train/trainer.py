"""Fine-tune the task model: warm up the head on a frozen backbone, then unfreeze the top.

Batch-norm layers stay frozen (inference mode) in both phases: re-normalizing with small-batch
statistics wrecks pretrained features (the Keras transfer-learning advice). The task gives the
head, loss, metrics and the validation number to watch; the best weights by that number across
both phases are what the reference model keeps (`train.keep: best`), or the final ones
(`train.keep: last`: picking the epoch on the validation split makes its score optimistic).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from rich.console import Console

from edgecv._keras import keras, tf
from edgecv.data.index import DataIndex
from edgecv.errors import ConfigError
from edgecv.models.build import TaskModel, build_task_model
from edgecv.progress import steps as progress_steps
from edgecv.train.progress import EpochProgress
from edgecv.train.strategy import make_strategy, set_precision_policy


@dataclass
class TrainResult:
    model: TaskModel
    history: list[dict] = field(default_factory=list)  # one row per epoch: phase, epoch, metrics
    best_metric: str = "val_loss"  # what chose the kept weights
    best_value: float = 0.0
    seconds: float = 0.0
    precision_policy: str = "float32"
    strategy: str = ""


def _learning_rate(phase, steps_per_epoch: int):
    """The phase's learning rate: a number, or a schedule over the phase's optimizer steps."""
    if phase.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(phase.learning_rate, phase.epochs * steps_per_epoch)
    return phase.learning_rate


def _optimizer(phase, steps_per_epoch: int):
    lr = _learning_rate(phase, steps_per_epoch)
    return {
        "adam": lambda: keras.optimizers.Adam(lr),
        "adamw": lambda: keras.optimizers.AdamW(lr),
        "sgd": lambda: keras.optimizers.SGD(lr, momentum=0.9),
        "rmsprop": lambda: keras.optimizers.RMSprop(lr),
    }[phase.optimizer]()


def set_trainable(task_model: TaskModel, unfreeze) -> int:
    """Freeze the backbone, then unfreeze its top per the rule; BN always frozen. Returns the count."""
    model = task_model.keras_model
    names = task_model.backbone_layers
    if unfreeze is None:
        chosen: list[str] = []
    elif unfreeze.all:
        chosen = names
    elif unfreeze.from_layer is not None:
        if unfreeze.from_layer not in names:
            raise ConfigError(f"train.finetune.unfreeze.from_layer: no backbone layer {unfreeze.from_layer!r}; "
                              f"the last ones are: {', '.join(names[-8:])}")
        chosen = names[names.index(unfreeze.from_layer):]
    else:
        chosen = names[len(names) - min(unfreeze.layers or 0, len(names)):]
    chosen_set = set(chosen)
    for name in names:
        layer = model.get_layer(name)
        layer.trainable = name in chosen_set and not isinstance(layer, keras.layers.BatchNormalization)
    return sum(1 for n in chosen if model.get_layer(n).trainable_weights)


class _KeepBest(keras.callbacks.Callback):
    """Remember the weights with the best monitored validation number (kept in memory, restored at
    the end)."""

    def __init__(self, state: dict, monitor: str, mode: str):
        super().__init__()
        self.state, self.monitor, self.sign = state, monitor, (1.0 if mode == "max" else -1.0)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise ConfigError(f"training logged no {self.monitor!r} to keep the best weights by "
                              f"(logged: {', '.join(sorted(logs or {}))})")
        if self.state["weights"] is None or self.sign * value > self.sign * self.state["best"]:
            self.state["best"] = float(value)
            self.state["weights"] = self.model.get_weights()


def train(recipe, index: DataIndex, console: Console | None = None) -> TrainResult:
    console = console or Console(stderr=True)
    cfg = recipe.train
    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    policy = set_precision_policy(cfg.mixed_precision)
    strategy = make_strategy()
    task = recipe.make_task()
    train_ds = task.train_dataset(index.train, index.info, recipe, cfg.batch_size, training=True, seed=cfg.seed)
    val_ds = task.train_dataset(index.val, index.info, recipe, cfg.batch_size, training=False, seed=cfg.seed)
    steps = math.ceil(len(index.train) / cfg.batch_size)
    with strategy.scope():
        task_model = build_task_model(recipe, index.info, task)
    model = task_model.keras_model
    monitor, mode = task.monitor
    state = {"best": None, "weights": None}
    history: list[dict] = []
    t0 = time.perf_counter()
    phases = [("warm-up", cfg.warmup, None), ("fine-tune", cfg.finetune, cfg.finetune.unfreeze)]
    if cfg.warmup.epochs + cfg.finetune.epochs == 0:
        raise ConfigError("train: warmup.epochs and finetune.epochs are both 0; train at least one epoch")
    for phase_name, phase, unfreeze in phases:
        if phase.epochs == 0:
            continue
        n = set_trainable(task_model, unfreeze)
        with strategy.scope():
            model.compile(optimizer=_optimizer(phase, steps), loss=task.loss(recipe), metrics=task.keras_metrics())
        title = phase_name + (f" ({n} backbone layers unfrozen)" if n else "")
        with progress_steps(console).step(title) as step:
            hist = model.fit(train_ds, validation_data=val_ds, epochs=phase.epochs, verbose=0,
                             callbacks=[EpochProgress(step, phase_name, phase.epochs, steps, (monitor, mode)),
                                        _KeepBest(state, monitor, mode)])
        for e in range(phase.epochs):
            history.append({"phase": phase_name, "epoch": e + 1,
                            **{k: float(v[e]) for k, v in hist.history.items()}})
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # The chief goes on alone (reference, passes, export) once the workers leave: a model whose
        # variables are not the cluster's, so nothing after training waits on a collective op
        weights = state["weights"] if state["weights"] is not None and cfg.keep == "best" else model.get_weights()
        task_model = build_task_model(recipe, index.info, task)
        model = task_model.keras_model
        model.set_weights(weights)
    elif state["weights"] is not None and cfg.keep == "best":
        model.set_weights(state["weights"])
    for layer in model.layers:  # ready for later fine-tuning passes: everything but batch norm trainable
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
    task_model = task_model.with_keras(task.inference_model(model))  # e.g. a margin head dropped
    name = "MultiWorkerMirroredStrategy" if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) else (
        type(strategy).__name__)  # the public name, not TensorFlow's class behind it
    kept = float(state["best"]) if cfg.keep == "best" else history[-1][monitor]
    return TrainResult(task_model, history, monitor, kept, time.perf_counter() - t0, policy, name)
