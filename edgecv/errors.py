"""Errors a user can act on. The CLI prints their message without a traceback."""


class EdgecvError(Exception):
    """Base for errors caused by input (recipe, data, artifact) rather than by a bug."""

    exit_code = 3


class ConfigError(EdgecvError):
    """A recipe or target file is wrong: the message names the file, the key and the fix."""

    exit_code = 2


class DataError(EdgecvError):
    """The dataset cannot be used: missing root, empty class, no readable images."""

    exit_code = 2


class ConversionError(EdgecvError):
    """A converter rejected the model; the message says which converter and why."""


class GateFailure(EdgecvError):
    """A target's gate failed. Distinct exit code so CI can tell it from a crash."""

    exit_code = 1


def did_you_mean(name: str, known) -> str:
    """' — did you mean `MobileNetV2`?' for a close match of a misspelt name (case-insensitive), else ''."""
    import difflib

    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=2, cutoff=0.6)
    return " — did you mean " + " or ".join(f"`{by_lower[c]}`" for c in close) + "?" if close else ""
