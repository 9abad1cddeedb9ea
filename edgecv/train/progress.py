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
        self.progress.update(self.task, completed=batch + 1,
                             metrics=f"loss {logs.get('loss', float('nan')):.3f} acc {logs.get('accuracy', float('nan')):.3f}")

    def on_epoch_end(self, epoch, logs=None):
        self.progress.stop()
        logs = logs or {}
        val = (f" val_loss {logs.get('val_loss', 0):.4f} val_acc {logs.get('val_accuracy', 0):.4f}"
               if "val_loss" in logs else "")  # passes fine-tune without validation
        self.console.print(
            f"  {self.phase} epoch {epoch + 1}/{self.epochs}: loss {logs.get('loss', 0):.4f} "
            f"acc {logs.get('accuracy', 0):.4f}{val}"
        )
