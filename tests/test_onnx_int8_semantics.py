"""A QDQ int8 ONNX is validated with its own arithmetic, not the host's int8 shortcuts.

On an x86 CPU with AVX2 (or AVX-512) but no VNNI, onnxruntime's default session fuses
DequantizeLinear -> Conv -> QuantizeLinear into a u8s8 QLinearConv whose vpmaddubsw sums pairs of
uint8 x int8 products in 16 bits with saturation: 255 x 127 x 2 = 64770 > 32767. The model below is
built so that every pair does that (activations at the top of the int8 range, weights of magnitude
127), so the fused path returns garbage there (measured under `qemu-x86_64 -cpu Haswell`: 30.0 for
an exact 2580.0) while on a VNNI host (vpdpbusd accumulates in 32 bits) the fused and unfused
paths agree. These tests therefore pass on every host with edgecv's default (`qdq`: Q/DQ run as
written) and guard the AVX2 hosts, which CI machines may or may not be. The QOperator form
(QLinearConv in the file) saturates there under every preset but u8u8, its default.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from edgecv.results import ArtifactResult  # noqa: E402
from edgecv.runtimes import load_runtime  # noqa: E402
from edgecv.formats.onnx.session import has_qdq_nodes  # noqa: E402

S_X, S_Y = 2.0, 8.0            # pixel 254 -> int8 127: uint8 255 after onnxruntime's s8 -> u8 shift
W_SCALE = 0.01
# output channel x input channel int8 weights, magnitude 127 where it matters (all pairs saturate)
W_Q = np.array([[127, 127, 127], [-127, -127, -127], [127, -127, 127], [127, 127, -127],
                [-127, 127, 127], [100, 127, 90], [127, 0, 127], [-90, -127, 60]], np.int8)
PIXELS = np.array([254, 254, 254, 200, 100, 0, 254, 60], np.uint8)


def qdq_conv_model():
    """image [N, 2, 4, 3] float pixels -> Q/DQ (int8, scale 2) -> 1x1 Conv with int8 weights (DQ, per
    channel) -> Q/DQ (scale 8) -> `scores` [N, 8, 2, 4]: the pattern of a QDQ artifact's project conv."""
    from onnx import TensorProto, helper, numpy_helper

    m = len(W_Q)
    inits = [numpy_helper.from_array(np.array(S_X, np.float32), "s_x"),
             numpy_helper.from_array(np.array(S_Y, np.float32), "s_y"),
             numpy_helper.from_array(np.array(0, np.int8), "zero"),
             numpy_helper.from_array(W_Q.reshape(m, 3, 1, 1), "w_q"),
             numpy_helper.from_array(np.full(m, W_SCALE, np.float32), "s_w"),
             numpy_helper.from_array(np.zeros(m, np.int8), "z_w"),
             numpy_helper.from_array(np.zeros(m, np.float32), "bias")]
    nodes = [helper.make_node("Transpose", ["image"], ["x"], perm=[0, 3, 1, 2]),
             helper.make_node("QuantizeLinear", ["x", "s_x", "zero"], ["x_q"]),
             helper.make_node("DequantizeLinear", ["x_q", "s_x", "zero"], ["x_dq"]),
             helper.make_node("DequantizeLinear", ["w_q", "s_w", "z_w"], ["w"], axis=0),
             helper.make_node("Conv", ["x_dq", "w", "bias"], ["conv"]),
             helper.make_node("QuantizeLinear", ["conv", "s_y", "zero"], ["y_q"]),
             helper.make_node("DequantizeLinear", ["y_q", "s_y", "zero"], ["scores"])]
    graph = helper.make_graph(nodes, "qdq_overflow", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 2, 4, 3])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def images() -> np.ndarray:
    """Two 2x4 RGB images: mostly 254 (int8 127), some smaller values, one image reversed."""
    rng = np.random.default_rng(0)
    a = np.stack([np.roll(PIXELS, k)[:3] for k in range(8)]).reshape(2, 4, 3)
    b = rng.permutation(a.reshape(-1, 3)).reshape(2, 4, 3)
    return np.stack([a, b]).astype(np.uint8)


def exact_int8(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The model's own arithmetic in integers: int8 activations x int8 weights summed in int64, scaled,
    requantized with round-half-even and saturation. Returns (scores, distance of each pre-rounding
    value from a rounding tie)."""
    x_q = np.clip(np.rint(pixels.astype(np.float64) / S_X), -128, 127).astype(np.int64)
    acc = np.einsum("nhwc,oc->nohw", x_q, W_Q.astype(np.int64))
    pre = acc * (S_X * W_SCALE) / S_Y
    y_q = np.clip(np.rint(pre), -128, 127)
    return y_q * S_Y, np.abs(np.abs(pre - np.floor(pre)) - 0.5)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("qdq") / "overflow_qdq.onnx"
    onnx.save(qdq_conv_model(), str(path))
    return path


def test_the_model_saturates_u8s8_pairs():
    """Preconditions of the guard: each int8 activation pair at 127 (uint8 255 once shifted) meets
    weights of magnitude 127, so 16-bit pair sums would saturate; no output sits on a rounding tie."""
    x_q = np.rint(images().astype(np.float64) / S_X)
    assert (x_q == 127).mean() >= 0.5
    pair = (x_q[..., :2] + 128) @ np.abs(W_Q[:, :2].astype(np.int64)).T
    assert pair.max() > 32767
    _, tie_distance = exact_int8(images())
    assert tie_distance.min() > 0.01


def test_qdq_artifact_matches_exact_int8_with_recorded_session_options(model_path):
    """edgecv's default for a graph with Q/DQ nodes runs them as written: the outputs are the exact
    int8 result on every CPU (the fused u8s8 path on AVX2 without VNNI is off by thousands here)."""
    ref, _ = exact_int8(images())
    with load_runtime(model_path) as rt:
        got = rt.predict(images())["scores"]
        described = rt.describe()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4)
    so = described["session_options"]
    assert so["int8_semantics"] == "qdq" and so["qdq_nodes"] is True
    assert so["session_config"] == {"session.disable_quant_qdq": "1"}
    assert "int8_semantics" not in described and "session_config" not in described  # recorded resolved only


def test_validation_result_records_the_session_options(model_path):
    from edgecv.report.identity import identity_rows
    from edgecv.results import Report
    from edgecv.validate.measure import measure_artifact

    m = measure_artifact(model_path, "onnx", images(), threads=1, batches=(1,), min_runs=2, min_seconds=0.0)
    ref, _ = exact_int8(images())
    np.testing.assert_allclose(m.pop("_outputs")["scores"], ref, rtol=0, atol=1e-4)
    result = ArtifactResult(name="qdq-int8", format="onnx", precision="int8", status="ok", path=model_path.name,
                            sha256="ab" * 32, **{k: m[k] for k in ("runtime", "session_options")})
    assert result.session_options.session_config == {"session.disable_quant_qdq": "1"}
    report = Report(edgecv_version="test", created="now", target={"name": "t"}, recipe={}, artifacts=[result])
    row = identity_rows(report)[0]
    assert row["sha256"] == "ab" * 32 and row["int8"] == "qdq: session.disable_quant_qdq=1"


@pytest.mark.parametrize("semantics,entries", [("s8s8", {"session.qdqisint8allowed": "1"}),
                                               ("native", {})])
def test_a_target_can_choose_the_int8_semantics_and_add_entries(model_path, semantics, entries):
    opts = {"int8_semantics": semantics, "session_config": {"session.intra_op.allow_spinning": 0}}
    with load_runtime(model_path, **opts) as rt:
        so = rt.session_options
    assert so["int8_semantics"] == semantics and so["why"] == "runtime.options.int8_semantics"
    assert so["session_config"] == {**entries, "session.intra_op.allow_spinning": "0"}


def test_float_graphs_get_no_int8_preset(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Transpose", ["image"], ["out"], perm=[0, 3, 1, 2])], "float",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 2, 4, 3])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)])
    path = tmp_path / "float.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert not has_qdq_nodes(path)
    with load_runtime(path) as rt:
        assert rt.session_options["int8_semantics"] == "native" and rt.session_options["session_config"] == {}


@pytest.mark.parametrize("options,message", [
    ({"int8_semantics": "tensorrtt"}, "not one of qdq, s8s8, u8u8, native"),
    ({"session_config": {"session.disable_quant_qd": "1"}}, "did you mean 'session.disable_quant_qdq'"),
    ({"session_config": ["session.disable_quant_qdq"]}, "give a mapping"),
    ({"session_config": {"session.disable_quant_qdq": [1]}}, "give a string or number"),
])
def test_bad_session_options_are_input_errors(model_path, options, message):
    from edgecv.errors import InputError

    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        load_runtime(model_path, **options)


def test_bench_result_records_session_options_and_cpu_isa(model_path):
    """`edgecv bench` on a device records the same: the int8 arithmetic and the device's ISA flags."""
    from edgecv.validate.bench import bench

    res = bench(model_path, None, True, threads=1, batches=[1], min_runs=2, min_seconds=0.0,
                runtime_options={"int8_semantics": "native"})
    assert res["session_options"]["int8_semantics"] == "native" and res["session_options"]["session_config"] == {}
    assert set(res["device"]["cpu_isa"]) == {"flags", "source", "int8_dot_product"}


def test_bench_cli_int8_semantics_is_for_onnx_only(tmp_path):
    from typer.testing import CliRunner

    from edgecv.cli.main import app

    tflite = tmp_path / "model.tflite"
    tflite.write_bytes(b"not read")
    result = CliRunner().invoke(app, ["bench", str(tflite), "--random", "--int8-semantics", "native"])
    assert result.exit_code == 2 and "not an ONNX file" in result.output


def qlinear_conv_model():
    """The QOperator form of the same conv: uint8 pixels (scale 1) -> QLinearConv with int8 weights of
    magnitude 127 -> uint8 (zero point 128, scale 8) -> DequantizeLinear. Explicit integer ops run
    onnxruntime's u8s8 kernels whatever the session says about Q/DQ fusion."""
    from onnx import TensorProto, helper, numpy_helper

    m = len(W_Q)
    inits = [numpy_helper.from_array(np.array(1.0, np.float32), "s_x"), numpy_helper.from_array(np.array(0, np.uint8), "z_x"),
             numpy_helper.from_array(W_Q.reshape(m, 3, 1, 1), "w_q"),
             numpy_helper.from_array(np.full(m, W_SCALE, np.float32), "s_w"), numpy_helper.from_array(np.zeros(m, np.int8), "z_w"),
             numpy_helper.from_array(np.array(S_Y, np.float32), "s_y"), numpy_helper.from_array(np.array(128, np.uint8), "z_y")]
    nodes = [helper.make_node("Transpose", ["image"], ["x"], perm=[0, 3, 1, 2]),
             helper.make_node("QuantizeLinear", ["x", "s_x", "z_x"], ["x_q"]),
             helper.make_node("QLinearConv", ["x_q", "s_x", "z_x", "w_q", "s_w", "z_w", "s_y", "z_y"], ["y_q"]),
             helper.make_node("DequantizeLinear", ["y_q", "s_y", "z_y"], ["scores"])]
    graph = helper.make_graph(nodes, "qlinear_overflow",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 2, 4, 3])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def exact_uint8(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    acc = np.einsum("nhwc,oc->nohw", pixels.astype(np.int64), W_Q.astype(np.int64))
    pre = acc * W_SCALE / S_Y
    return (np.clip(np.rint(pre) + 128, 0, 255) - 128) * S_Y, np.abs(np.abs(pre - np.floor(pre)) - 0.5)


def test_integer_op_graphs_default_to_u8u8_and_match_exact(tmp_path):
    """QOperator graphs: pair sums of 255 x 127 saturate in u8s8 on AVX2 without VNNI (measured under
    `qemu-x86_64 -cpu Haswell`); the u8u8 default keeps them exact, and on VNNI hosts all agree."""
    path = tmp_path / "qlinear.onnx"
    onnx.save(qlinear_conv_model(), str(path))
    ref, tie_distance = exact_uint8(images())
    assert tie_distance.min() > 0.01
    with load_runtime(path) as rt:
        got = rt.predict(images())["scores"]
        so = rt.session_options
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4)
    assert so["int8_semantics"] == "u8u8" and so["session_config"] == {"session.x64quantprecision": "1"}
    assert "QLinearConv" in so["why"]
