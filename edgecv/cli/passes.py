"""`edgecv passes`: the registered optimization passes with what they need and suit."""
# lazy imports: a command loads only what it runs, so `edgecv --help` and light commands start fast

from __future__ import annotations

import typer
from rich.markup import escape


def list_passes(verbose: bool = typer.Option(False, "--verbose", "-v", help="also list each pass's settings")):
    """List optimization passes: what each needs, which precisions and targets it suits."""
    from edgecv.passes.base import PASS_MODULES, get_pass

    from edgecv.cli.listing import listing_console, print_listing

    rows = []
    for name in sorted(PASS_MODULES):
        try:
            cls = get_pass(name)
        except ImportError as e:
            rows.append([name, "", "", "", f"[yellow]unavailable: {escape(str(e))}[/]"])
            continue
        desc = escape(cls.description)
        if verbose:  # one setting per line: `learning_rate=0.0001` is typed as one word
            fields = [f"{k}={'required' if f.is_required() else repr(f.get_default(call_default_factory=True))}"
                      for k, f in cls.config.model_fields.items() if k != "name"]
            desc += "\n" + "\n".join(escape(f) for f in fields)
        rows.append([name, ", ".join(sorted(cls.needs)) or "-", ", ".join(cls.precisions), escape(cls.suits), desc])
    out = listing_console()
    print_listing(out, ("pass", "needs", "precisions", "suits", "description"), rows, prose=(3,))
    out.print("adaround and bias_correction run inside an int8 export, right before the converter (each format "
              "declares its defaults: tflite both, onnx and tensorrt bias_correction); switch them in the "
              "artifact's options (tflite: options.ptq, onnx: options), not in `passes`.")
    out.print("Accuracy-aware int8 is an option of an int8 tflite or onnx artifact, not a pass: "
              "options: {accuracy_aware: {max_steps: 8}} plus an accuracy gate.")
