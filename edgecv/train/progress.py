"""Training progress: one live bar per training phase (a `fit` call), not one per epoch.

On a terminal the bar carries the epoch and the latest loss and closes into one line; without a
terminal each epoch prints one line (no redraws, no blank lines).
"""

from __future__ import annotations

from typing import Optional

from rich.console import Console

from edgecv._keras import keras
from edgecv.progress import Step, steps


class EpochProgress(keras.callbacks.Callback):
    """Feeds an open `Step` from Keras' batch and epoch ends."""

    def __init__(self, step: Step, phase: str, epochs: int, steps_per_epoch: int,
                 watch: Optional[tuple[str, str]] = None):
        super().__init__()
        self.step, self.phase, self.epochs, self.steps = step, phase, epochs, max(1, steps_per_epoch)
        self.watch, self.mode = watch or (None, "min")  # the validation number that picks the weights
        self.epoch = 0
        self.best: Optional[float] = None
        self.last: dict = {}

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        done = (self.epoch * self.steps + batch + 1) / (self.epochs * self.steps)
        loss = (logs or {}).get("loss")
        detail = f"epoch {self.epoch + 1}/{self.epochs}" + ("" if loss is None else f" loss {float(loss):.3f}")
        self.step.update(done, detail)

    def on_epoch_end(self, epoch, logs=None):
        self.last = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float))}
        value = self.last.get(self.watch) if self.watch else None
        if value is not None:
            self.best = value if self.best is None else (max if self.mode == "max" else min)(self.best, value)
        self.step.log_plain(f"  {self.phase} epoch {epoch + 1}/{self.epochs}: {_numbers(self.last)}")
        self.step.result = self.summary()

    def summary(self) -> str:
        done = f"{self.epoch + 1} epoch{'s' if self.epoch else ''}"
        if self.watch and self.watch in self.last:
            return f"{done}, {self.watch} {_value(self.watch, self.last[self.watch])} (best {_value(self.watch, self.best)})"
        return f"{done}, {_numbers(self.last)}"


class RichProgress(EpochProgress):
    """A self-opening bar for one `fit` (passes that fine-tune: prune, QAT): opened when training
    begins, closed when it ends."""

    def __init__(self, phase: str, epochs: int, steps_per_epoch: int, console: Console | None = None,
                 watch: Optional[tuple[str, str]] = None):
        self._console = console or Console(stderr=True)
        self._cm = None
        super().__init__(None, phase, epochs, steps_per_epoch, watch)

    def on_train_begin(self, logs=None):
        self._cm = steps(self._console).step(f"{self.phase}: {self.epochs} epoch(s)")
        self.step = self._cm.__enter__()

    def on_train_end(self, logs=None):
        if self._cm is not None:
            self._cm.__exit__(None, None, None)
            self._cm = None


def _is_share(name: str) -> bool:
    """Keras logs accuracies as fractions; the report table shows them in percent."""
    return "accuracy" in name or name.endswith(("recall", "precision"))


def _value(name: str, v: float) -> str:
    return f"{v * 100:.2f}%" if _is_share(name) else f"{v:.4f}"


def _numbers(logs: dict) -> str:
    """Whatever the task's loss and metrics logged: 'loss 0.1230 accuracy 95.00% val_loss ...'
    (accuracies in percent, as in the report table)."""
    return " ".join(f"{k} {_value(k, v)}" for k, v in logs.items())
