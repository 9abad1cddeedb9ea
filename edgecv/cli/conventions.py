"""Command-line conventions every edgecv command follows: `-h` as well as `--help`, `--version`,
flags shown as flags in help (close-match suggestions: `edgecv.errors.did_you_mean`)."""

from __future__ import annotations

from typing import Optional

import typer
import typer.core

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}

_display_type = getattr(typer.core.TyperOption, "display_type_rich", None)


def _flags_take_no_value(self, ctx) -> Optional[str]:
    """typer prints `<bool>` after a flag (`--no-gates <bool>`) as if it took a value; a flag takes none."""
    if getattr(self, "is_flag", False):
        return ""
    return _display_type(self, ctx)


if _display_type is not None:  # the typer releases for Python 3.8 have no such hook: help keeps `<bool>`
    typer.core.TyperOption.display_type_rich = _flags_take_no_value


def version() -> str:
    import edgecv  # the running code's version (installed metadata may be older on an editable install)

    return edgecv.__version__


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"edgecv {version()}")
        raise typer.Exit(0)
