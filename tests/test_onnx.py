"""ONNX exporter and runtime on the tiny model: fp32, fp16 and int8 QDQ through onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

from edgecv.config.target import ArtifactSpec  # noqa: E402
from edgecv.errors import ConfigError  # noqa: E402
from edgecv.exporters import ExportContext, get_exporter  # noqa: E402
from edgecv.runtimes import load_runtime  # noqa: E402
from edgecv.validate.comparator import compare  # noqa: E402


def _export(model, tmp_path, calibration, precision, name=None, **options):
    batches, calib = calibration
    spec = ArtifactSpec(name=name or precision, format="onnx", precision=precision, options=options)
    ctx = ExportContext("tiny", batches, calib.sha256)
    return get_exporter("onnx")().export(model, spec, tmp_path, ctx)


@pytest.fixture(scope="module")
def keras_probs(tiny_model, tiny_val):
    images, _ = tiny_val
    return tiny_model.keras_model.predict(images.astype(np.float32), verbose=0)


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def fp32(tiny_model, onnx_dir, tiny_calibration):
    return _export(tiny_model, onnx_dir, tiny_calibration, "fp32")


@pytest.fixture(scope="module")
def int8(tiny_model, onnx_dir, tiny_calibration):
    return _export(tiny_model, onnx_dir, tiny_calibration, "int8")


def _compare(model, probs, labels, reference):
    return compare(model.make_task(), model.info, {"probabilities": probs}, labels, {"probabilities": reference})


def _predict(path, images, **kw):
    with load_runtime(path, **kw) as rt:
        return np.concatenate([rt.predict(images[i:i + 7])["probabilities"] for i in range(0, len(images), 7)]), rt


def test_fp32_contract_and_agreement(fp32, tiny_model, tiny_val, keras_probs):
    import onnx

    images, labels = tiny_val
    assert fp32.path.suffix == ".onnx" and fp32.runtime_format == "onnx"
    g = onnx.load(str(fp32.path)).graph
    assert [i.name for i in g.input] == ["image"] and [o.name for o in g.output] == ["probabilities"]
    dims = g.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [32, 32, 3]
    assert fp32.checks["passed"] and fp32.checks["inputs"] == {"image": "float32[batch,32,32,3]"}
    probs, rt = _predict(fp32.path, images)  # format detected from the suffix
    assert rt.input_size == (32, 32) and rt.input_dtype == "float32"
    np.testing.assert_allclose(probs, keras_probs, atol=1e-4)
    cmp = _compare(tiny_model, probs, labels, keras_probs)
    assert cmp.agreement["top1_agreement"] == 1.0 and cmp.deltas["accuracy"] == 0


def test_runtime_threads_batches_and_providers(fp32, tiny_val):
    images, _ = tiny_val
    with load_runtime(fp32.path, "onnx", threads=1, providers=["CUDAExecutionProvider", "CPUExecutionProvider"]) as rt:
        one = rt.predict(images[:1])["probabilities"]
        five = rt.predict(images[:5])["probabilities"]
        d = rt.describe()
    assert one.shape == (1, 3) and five.shape == (5, 3)
    np.testing.assert_allclose(one[0], five[0], atol=1e-6)
    assert d["threads"] == 1 and d["providers"][-1] == "CPUExecutionProvider"
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        assert d["providers"] == ["CPUExecutionProvider"] and d["providers_unavailable"] == ["CUDAExecutionProvider"]


def test_fp16_keeps_float32_io(tiny_model, onnx_dir, tiny_calibration, tiny_val, keras_probs):
    import onnx

    art = _export(tiny_model, onnx_dir, tiny_calibration, "fp16")
    m = onnx.load(str(art.path))
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert m.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert art.checks["float_parameters"]["float16"] > art.checks["float_parameters"]["float32"]
    probs, _ = _predict(art.path, tiny_val[0])
    assert np.abs(probs - keras_probs).max() < 1e-2
    assert (probs.argmax(1) == keras_probs.argmax(1)).mean() >= 0.98


def _qdq_nodes(path):
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    return m, inits, [n for n in m.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]


def test_int8_qdq_is_symmetric_with_zero_points_0(int8):
    m, inits, qdq = _qdq_nodes(int8.path)
    assert int8.checks["passed"], int8.checks["message"]
    assert qdq, "no Q/DQ nodes"
    for n in qdq:
        scale, zp = inits[n.input[1]], inits[n.input[2]]
        assert zp.dtype == np.int8 and np.all(zp == 0), n.name
        assert np.all(scale > 0) and np.all(np.isfinite(scale)), n.name
    # weights: int8 initializers behind per-channel DequantizeLinear (one scale per output channel)
    weight_dq = [n for n in qdq if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    assert weight_dq and all(inits[n.input[0]].dtype == np.int8 for n in weight_dq)
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    for n in weight_dq:
        w, s = inits[n.input[0]], inits[n.input[1]]
        axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
        assert s.shape == (w.shape[axis],), n.name
    # TensorRT placement: every Conv reads dequantized activations and weights; biases stay float;
    # no Q/DQ on a weighted op's output; the pixel input is not quantized
    producers = {o: n for n in m.graph.node for o in n.output}
    consumers = {}
    for n in m.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for c in convs:
        assert producers[c.input[0]].op_type == "DequantizeLinear" and producers[c.input[1]].op_type == "DequantizeLinear"
        assert len(c.input) < 3 or c.input[2] in inits and inits[c.input[2]].dtype == np.float32
        assert all(n.op_type != "QuantizeLinear" for n in consumers.get(c.output[0], []))
    assert all(n.op_type != "QuantizeLinear" for n in consumers["image"])
    assert not any(n.op_type == "DequantizeLinear" and inits.get(n.input[0], np.zeros(0, np.int8)).dtype == np.int32
                   for n in qdq)
    q = int8.checks["qdq"]
    assert q["weighted_ops_int8"] == q["weighted_ops"] and q["zero_points_all_zero"]
    assert int8.metadata["calibration_sha256"] and int8.metadata["calibration_images"] == 16


def test_int8_accuracy_on_onnxruntime(int8, tiny_model, tiny_val, keras_probs):
    images, labels = tiny_val
    probs, _ = _predict(int8.path, images)
    cmp = _compare(tiny_model, probs, labels, keras_probs)
    assert cmp.agreement["top1_agreement"] >= 0.95
    assert abs(cmp.deltas["accuracy"]) <= 5.0  # 15 validation images: one image is 6.7 points
    assert cmp.outputs["probabilities"].max_abs_error < 0.2


def test_int8_qdq_is_bias_corrected_by_default_and_the_option_turns_it_off(int8, tiny_model, onnx_dir,
                                                                         tiny_calibration):
    import onnx
    from onnx import numpy_helper

    assert int8.metadata["ptq"]["applied"] == ["bias_correction"]
    plain = _export(tiny_model, onnx_dir, tiny_calibration, "int8", name="int8-plain", bias_correction=False)
    assert "ptq" not in plain.metadata
    # same graph, other float biases: the correction moved them, the weights' int8 grid is the same
    biases = [{i.name: numpy_helper.to_array(i) for i in onnx.load(str(p)).graph.initializer
               if numpy_helper.to_array(i).dtype == np.float32 and numpy_helper.to_array(i).ndim == 1}
              for p in (int8.path, plain.path)]
    assert biases[0].keys() == biases[1].keys()
    assert any(not np.allclose(biases[0][k], biases[1][k]) for k in biases[0])


def test_int8_keeps_layers_in_float_by_keras_name_and_op_type(tiny_model, onnx_dir, tiny_calibration, int8):
    import onnx

    fp32_graph = onnx.load(str(int8.path)).graph
    dense = [n for n in fp32_graph.node if n.op_type == "MatMul"]
    assert dense, "the tiny model ends in a Dense layer (MatMul)"
    layer = dense[0].name.split("/")[-2]  # tf2onnx keeps the Keras layer name: .../<layer>/MatMul
    art = _export(tiny_model, onnx_dir, tiny_calibration, "int8", name="int8-keep", exclude_nodes=[layer],
                  exclude_op_types=["Add"])
    m, inits, qdq = _qdq_nodes(art.path)
    producers = {o: n for n in m.graph.node for o in n.output}
    for n in m.graph.node:
        if n.op_type == "MatMul" or n.op_type == "Add":
            assert all(producers.get(i) is None or producers[i].op_type != "DequantizeLinear" for i in n.input), n.name
    assert any(n.op_type == "Conv" for n in m.graph.node) and art.checks["qdq"]["weighted_ops_int8"] >= 1
    assert layer in " ".join(art.metadata["kept_float"])


def test_bad_options_are_errors(tiny_model, onnx_dir, tiny_calibration):
    with pytest.raises(ConfigError, match="allowed keys"):
        _export(tiny_model, onnx_dir, tiny_calibration, "int8", name="bad", exclude_layers=["x"])
    with pytest.raises(ConfigError, match="no_such_layer"):
        _export(tiny_model, onnx_dir, tiny_calibration, "int8", name="bad", exclude_nodes=["no_such_layer"])
    with pytest.raises(ConfigError, match="LSTM"):
        _export(tiny_model, onnx_dir, tiny_calibration, "fp16", name="bad", exclude_op_types=["LSTM"])


def test_onnx_is_registered_and_listed():
    from edgecv.exporters import EXPORTER_MODULES
    from edgecv.runtimes import detect_format
    from edgecv.runtimes.base import RUNTIME_MODULES

    assert "onnx" in EXPORTER_MODULES and "onnx" in RUNTIME_MODULES
    exp = get_exporter("onnx")
    assert exp.precisions == ("fp32", "fp16", "int8") and exp.needs_calibration == ("int8",)
    from pathlib import Path

    assert detect_format(Path("m.onnx")) == "onnx"
