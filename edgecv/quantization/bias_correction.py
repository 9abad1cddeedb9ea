"""Moved to edgecv.passes.bias_correction (every model-to-model step lives in edgecv.passes); this name
keeps old imports working."""

from edgecv.passes.bias_correction import *  # noqa: F401,F403
