"""Which optional parts of edgecv are installed here.

`pip install edgecv` is the device path (runtimes, `validate`, `bench`, `engine`, `report`); the
training and conversion stack is the `build` extra. Commands that need an extra check for it
first, so a device install says what to install instead of failing deep inside a stage.
"""

from __future__ import annotations

import importlib.util
from typing import Dict, Tuple

from edgecv.errors import EdgecvError

# extra -> the modules it provides (import names)
EXTRAS: Dict[str, Tuple[str, ...]] = {
    "build": ("tensorflow", "tf_keras", "tensorflow_model_optimization"),
    "remote": ("paramiko",),
    "features": ("h5py", "sklearn"),
}


class MissingExtra(EdgecvError):
    """A command needs an optional part of edgecv that is not installed here."""

    exit_code = 2


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or deliberately blocked install
        return False


def missing_modules(extra: str) -> Tuple[str, ...]:
    return tuple(m for m in EXTRAS[extra] if not _installed(m))


def require_extra(extra: str, what: str) -> None:
    """Raise MissingExtra naming the extra and the one command that installs it."""
    missing = missing_modules(extra)
    if missing:
        raise MissingExtra(f"{what} needs edgecv's `{extra}` extra, which is not installed here (missing: "
                           f"{', '.join(missing)}): pip install 'edgecv[{extra}]'")
