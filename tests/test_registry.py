"""Every registered format and pass name imports and registers a class under that name."""

import pytest

from edgecv.exporters.base import EXPORTER_MODULES, get_exporter
from edgecv.passes.base import PASS_MODULES, get_pass
from edgecv.registry import UnknownName
from edgecv.runtimes.base import RUNTIME_MODULES, get_runtime

OPTIONAL = {"coreml": "coremltools", "onnx": "onnxruntime"}


def _needs(name):
    if name in OPTIONAL:
        pytest.importorskip(OPTIONAL[name])


@pytest.mark.parametrize("fmt", sorted(EXPORTER_MODULES))
def test_every_exporter_registers(fmt):
    _needs(fmt)
    cls = get_exporter(fmt)
    assert cls.format == fmt and cls.precisions


@pytest.mark.parametrize("fmt", sorted(RUNTIME_MODULES))
def test_every_runtime_registers(fmt):
    _needs(fmt)
    assert get_runtime(fmt).format == fmt


@pytest.mark.parametrize("name", sorted(PASS_MODULES))
def test_every_pass_registers(name):
    assert get_pass(name).name == name


def test_unknown_names_say_what_is_known():
    with pytest.raises(UnknownName, match="unknown artifact format 'gif'; known: .*tflite"):
        get_exporter("gif")
    with pytest.raises(ValueError, match="unknown runtime format 'gif'"):  # also a ValueError for CLI arguments
        get_runtime("gif")
    with pytest.raises(KeyError):
        get_pass("nope")
