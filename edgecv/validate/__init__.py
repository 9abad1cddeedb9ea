"""Validation: measuring artifacts against the float reference, gates, benchmarks.

`edgecv.validate` is both this package and the API function `edgecv.api.validate` (importing any
module below makes Python bind the package to that name), so the package itself is callable.
"""

import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from edgecv.validate.device import validate_folder  # lazy: import cycle (validate.device -> validate); what edgecv.api.validate runs

        return validate_folder(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
