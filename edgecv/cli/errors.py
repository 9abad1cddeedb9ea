"""One error policy for every command: a message and the documented exit code (docs/guide.md), never a traceback
unless `edgecv --debug` (or EDGECV_DEBUG=1) asks for it.

Exit codes: 0 ok, 1 a gate failed, 2 bad input or usage (missing or malformed file, unwritable
path, wrong option), 3 an artifact or target failed to build, 4 `engine build` without TensorRT
or a GPU here, 5 edgecv itself failed (a bug: rerun with --debug and report the traceback), 130
interrupted (Ctrl-C), 143 terminated (SIGTERM: cleaned up like Ctrl-C).
"""
# lazy imports: a command loads only what it runs, so `edgecv --help` and light commands start fast

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
import traceback

import typer
from rich.console import Console
from rich.markup import escape

from edgecv.errors import EdgecvError
from edgecv.files import explain_write_error, is_write_error

BUG_EXIT = 5
console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
_debug = {"on": False}


# typer.TyperException is missing from the older typer a Python 3.8 device gets
PASS_THROUGH = tuple(c for c in (typer.Exit, typer.Abort, getattr(typer, "TyperException", None)) if c is not None)


TERMINATED_EXIT = 143  # 128 + SIGTERM, what a shell reports for a process SIGTERM ended


class Terminated(KeyboardInterrupt):
    """SIGTERM (a service manager, `kill`, a CI timeout): unwinds like Ctrl-C, so a build's staging
    folder is removed and the lock released, instead of dying where it stood."""


def _raise_terminated(signum, frame):
    raise Terminated()


def handle_sigterm() -> None:
    """SIGTERM raises Terminated in the main thread (unless someone installed their own handler)."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_terminated)


def set_debug(on: bool) -> None:
    """`edgecv --debug` (or EDGECV_DEBUG=1): print the traceback of any error as well."""
    _debug["on"] = on or os.environ.get("EDGECV_DEBUG", "") not in ("", "0")


def fail(e: EdgecvError) -> None:
    console.print(f"[red]error:[/] {escape(str(e))}")
    raise typer.Exit(e.exit_code)


def exit_code_of(e: BaseException) -> tuple[int, str]:
    """The exit code and message for an exception a command did not handle itself."""
    from edgecv.runtimes.base import RuntimeUnavailable

    if isinstance(e, EdgecvError):
        return e.exit_code, str(e)
    if is_write_error(e):
        return 2, str(explain_write_error(e.filename or "", e))
    if isinstance(e, (FileNotFoundError, IsADirectoryError, NotADirectoryError)):
        return 2, f"{e.filename}: {e.strerror}"
    if isinstance(e, RuntimeUnavailable):
        return 2, str(e)
    return BUG_EXIT, (f"edgecv failed unexpectedly ({type(e).__name__}: {e}); rerun with `edgecv --debug ...` for the "
                      "traceback and report it")


def handle_errors(command):
    """Wrap a command so that any exception becomes a message and an exit code."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except PASS_THROUGH:  # exit codes and usage errors typer prints
            raise
        except Terminated:
            console.print("[yellow]terminated (SIGTERM)[/]")
            raise typer.Exit(TERMINATED_EXIT) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None
        except Exception as e:
            code, message = exit_code_of(e)
            if _debug["on"]:
                console.print(traceback.format_exc(), markup=False, highlight=False)
            console.print(f"[red]error:[/] {escape(message)}")
            raise typer.Exit(code) from None

    return wrapper


class App(typer.Typer):
    """A Typer app whose every command goes through `handle_errors`."""

    def command(self, *args, **kwargs):
        register = super().command(*args, **kwargs)

        def decorator(f):
            register(handle_errors(f))
            return f

        return decorator
