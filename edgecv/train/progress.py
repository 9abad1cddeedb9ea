"""A Keras callback that shows training progress with rich instead of Keras' own progress bar."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edgecv._keras import keras


class RichProgress(keras.callbacks.Callback):
    def __init__(self, phase: str, epochs: int, steps: int, console: Console | None = None):
        super().__init__()
        self.phase, self.epochs, self.steps = phase, epochs, steps
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[metrics]}"), TimeElapsedColumn(), console=self.console, transient=True,
        )
        self.task = None

    def on_epoch_begin(self, epoch, logs=None):
        self.progress.start()
        self.task = self.progress.add_task(f"{self.phase} epoch {epoch + 1}/{self.epochs}", total=self.steps, metrics="")

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        self.progress.update(self.task, completed=batch + 1, metrics=_numbers(logs, "{:.3f}"))

    def on_epoch_end(self, epoch, logs=None):
        self.progress.stop()
        logs = logs or {}
        self.console.print(f"  {self.phase} epoch {epoch + 1}/{self.epochs}: {_numbers(logs, '{:.4f}')}")


def _numbers(logs: dict, fmt: str) -> str:
    """Whatever the task's loss and metrics logged: 'loss 0.123 accuracy 0.950 val_loss ...'."""
    return " ".join(f"{k} {fmt.format(float(v))}" for k, v in logs.items() if isinstance(v, (int, float)))
