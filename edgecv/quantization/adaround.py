"""Moved to edgecv.passes.adaround (every model-to-model step lives in edgecv.passes); this name
keeps old imports working."""

from edgecv.passes.adaround import *  # noqa: F401,F403
