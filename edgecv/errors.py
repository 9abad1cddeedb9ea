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
