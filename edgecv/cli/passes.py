"""`edgecv passes`: the registered optimization passes with what they need and suit."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table


def list_passes(verbose: bool = typer.Option(False, "--verbose", "-v", help="also list each pass's settings")):
    """List optimization passes: what each needs, which precisions and targets it suits."""
    from edgecv.passes.base import PASS_MODULES, get_pass

    t = Table()
    for col in ("pass", "needs", "precisions", "suits", "description"):
        t.add_column(col, overflow="fold")
    for name in sorted(PASS_MODULES):
        try:
            cls = get_pass(name)
        except ImportError as e:
            t.add_row(name, "", "", "", f"[yellow]unavailable: {e}[/]")
            continue
        desc = cls.description
        if verbose:
            fields = [f"{k}={'required' if f.is_required() else repr(f.get_default(call_default_factory=True))}"
                      for k, f in cls.config.model_fields.items() if k != "name"]
            desc += "\n" + ", ".join(fields)
        t.add_row(name, ", ".join(sorted(cls.needs)) or "-", ", ".join(cls.precisions), cls.suits, desc)
    out = Console(width=None if sys.stdout.isatty() else 160)
    out.print(t)
    out.print("Accuracy-aware int8 is an option of an int8 tflite or onnx artifact, not a pass: "
              "options: {accuracy_aware: {max_steps: 8}} plus an accuracy gate.")
