"""Command-line conventions every edgecv command follows: `-h` as well as `--help`, `--version`,
flags shown as flags in help (close-match suggestions: `edgecv.errors.did_you_mean`)."""
# lazy imports: a command loads only what it runs, so `edgecv --help` and light commands start fast

from __future__ import annotations

import inspect
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
import typer.core

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}

_display_type = getattr(typer.core.TyperOption, "display_type_rich", None)
# typer's own labels (`<list[str]>`, `<path>`, `<int,int>`) in the words of Unix help
METAVARS = {"str": "TEXT", "path": "PATH", "int": "N", "float": "NUMBER", "int,int": "H W", "float,float": "X Y"}


def readable_metavar(label: Optional[str]) -> Optional[str]:
    """`<list[str]>` -> TEXT (repeatable options say so in their help), `<path>` -> PATH, `<int>` -> N."""
    if not label or not label.startswith("<"):
        return label
    inner = label.strip("<>")
    if inner.startswith("list[") and inner.endswith("]"):
        inner = inner[5:-1]
    return METAVARS.get(inner, inner.upper())


def _flags_take_no_value(self, ctx) -> Optional[str]:
    """typer prints `<bool>` after a flag (`--no-gates <bool>`) as if it took a value; a flag takes none."""
    if getattr(self, "is_flag", False):
        return ""
    return readable_metavar(_display_type(self, ctx))


if _display_type is not None:  # the typer releases for Python 3.8 have no such hook: help keeps `<bool>`
    typer.core.TyperOption.display_type_rich = _flags_take_no_value
_Argument = typer.core.TyperArgument
if hasattr(_Argument, "_usage_display_name") and hasattr(_Argument, "display_type_rich"):
    # arguments by name in capitals (`edgecv export [OPTIONS] MODEL`, not `{model}`), without a type label
    _Argument.display_name_raw = property(lambda self: self.metavar or (self.name or "").upper())
    _Argument._usage_display_name = lambda self: ((self.display_name_raw if self.required
                                                   else f"[{self.display_name_raw}]")
                                                  + ("..." if self.nargs != 1 else ""))
    _Argument.display_type_rich = lambda self, ctx: None

# `edgecv -h` groups commands by what a user is doing; commands not named here stay under "Commands"
COMMAND_GROUPS = {
    "Build": ("build", "export", "clean", "select"),
    "Check an artifact": ("validate", "bench", "report", "gate", "diagnose"),
    "Look up": ("targets", "formats", "tasks", "backbones", "passes"),
    "Devices": ("engine", "serve"),
    "Embeddings and search": ("embed", "index", "search", "heads", "outliers"),
}


# `edgecv COMMAND -h` groups a long command's options the same way (option names as the command's spelling)
OPTION_GROUPS = {
    "build": {"Build folder and cache": ("--out", "--dry-run", "--force", "--regen-reference", "--wait", "--wide",
                                         "--verbose"),
              "Device (benchmark after building)": ("--device", "--remote-python", "--identity", "--known-hosts")},
    "export": {"Target": ("--target", "--format", "--int8", "--fp16"),
               "Build folder and cache": ("--out", "--set", "--no-gates", "--dry-run", "--force", "--wide",
                                          "--verbose")},
}


def group_options(callback, groups: dict) -> None:
    """Set typer's rich_help_panel on the options of `callback` (its signature's OptionInfo defaults)."""
    panel = {opt: group for group, opts in groups.items() for opt in opts}
    for p in inspect.signature(callback).parameters.values():
        info = p.default
        for name in getattr(info, "param_decls", None) or ():
            if name in panel and hasattr(info, "rich_help_panel"):
                info.rich_help_panel = info.rich_help_panel or panel[name]


def first_paragraph(doc: Optional[str]) -> Optional[str]:
    """A docstring's first paragraph on one line: the command list shows it whole, wrapped to the width."""
    if not doc:
        return None
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())


def group_commands(app: typer.Typer) -> None:
    """Put each registered command and sub-app in its `COMMAND_GROUPS` panel with a one-paragraph
    summary (typer's rich_help_panel, set here so commands stay where they are defined)."""
    panel = {name: group for group, names in COMMAND_GROUPS.items() for name in names}
    for info in app.registered_commands:
        name = info.name or (info.callback.__name__.replace("_", "-") if info.callback else None)
        info.rich_help_panel = info.rich_help_panel or panel.get(name)
        if info.short_help is None and info.callback is not None:
            info.short_help = first_paragraph(info.callback.__doc__)
        if name in OPTION_GROUPS and info.callback is not None:
            group_options(info.callback, OPTION_GROUPS[name])
    for group in app.registered_groups:
        group.rich_help_panel = group.rich_help_panel or panel.get(group.name)


def emit_json(target, data) -> None:
    """`--json FILE` in every command: write the JSON to FILE (atomically), or to stdout for `-`."""
    import json
    import sys

    text = json.dumps(data, indent=2, default=str)
    if str(target) == "-":
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return
    from edgecv.files import atomic_write_text

    atomic_write_text(target, text + "\n")


@contextmanager
def native_to_log(log: Path, *consoles):
    """TensorFlow's, abseil's and XNNPACK's own lines into `log` (a temporary file) while `consoles`
    keep the terminal: for commands that load models outside a build (diagnose, embed, search)."""
    from edgecv.files import ensure_dir
    from edgecv.terminal import NativeOutput

    ensure_dir(Path(log).parent)
    native = NativeOutput().start(Path(log))
    for c in consoles:
        c.file = native.terminal_err if c.stderr else native.terminal_out
    try:
        yield native
    finally:
        native.stop()
        for c in consoles:
            c.file = None
        if Path(log).name.startswith("edgecv-") and Path(log).parent == Path(tempfile.gettempdir()):
            Path(log).unlink(missing_ok=True)  # native_log's private file: nothing to keep


def native_log(command: str) -> Path:
    """A fresh private log file (mkstemp: unique name, mode 0600), never a fixed name in the shared
    temp folder that another user could plant a link at; `native_to_log` removes it afterwards."""
    import tempfile

    fd, path = tempfile.mkstemp(prefix=f"edgecv-{command}-", suffix=".log")
    os.close(fd)
    return Path(path)


def version() -> str:
    import edgecv  # the running code's version (installed metadata may be older on an editable install)

    return edgecv.__version__


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"edgecv {version()}")
        raise typer.Exit(0)
