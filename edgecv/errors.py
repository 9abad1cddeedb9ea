"""Errors a user can act on. The CLI prints their message without a traceback and exits with the
error's code (docs/guide.md, "Exit codes"): 1 a gate failed, 2 bad input or usage, 3 an artifact or
target failed to build."""


class EdgecvError(Exception):
    """Base for errors caused by input (recipe, data, artifact) rather than by a bug."""

    exit_code = 3

    def __init__(self, *args, result=None):
        super().__init__(*args)
        self.result = result  # the API's full result where there is one (a BuildResult for a build)


class InputError(EdgecvError):
    """A command was given something it cannot use (a missing or malformed file, a wrong option):
    the message names the file or option and what to do."""

    exit_code = 2


class ConfigError(InputError):
    """A recipe or target file is wrong: the message names the file, the key and the fix."""


class DataError(InputError):
    """The dataset cannot be used: missing root, empty class, no readable images."""


class ConversionError(EdgecvError):
    """A converter rejected the model; the message says which converter and why."""


class StageFailed(EdgecvError):
    """A stage every artifact needs (index, training, reference) failed: the build stops for the
    target instead of retrying the stage once per artifact."""


class GateFailure(EdgecvError):
    """A target's gate failed. Distinct exit code so CI can tell it from a crash."""

    exit_code = 1


class BuildFailed(EdgecvError):
    """An artifact or target of a build failed (`edgecv.build`/`export` raise it with the result)."""


def did_you_mean(name: str, known) -> str:
    """' — did you mean `MobileNetV2`?' for a close match of a misspelt name (case-insensitive), else ''."""
    import difflib

    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=2, cutoff=0.6)
    return " — did you mean " + " or ".join(f"`{by_lower[c]}`" for c in close) + "?" if close else ""
