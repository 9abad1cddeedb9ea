"""Learned int8 rounding (AdaRound): the rounding it picks is the one TFLite stores, and it lowers
the int8 model's output error against nearest rounding."""

import numpy as np
import pytest

from test_ptq import calibration, int8_logits, skewed_conv_net, spec

from edgecv.formats.tflite.export import TFLiteExporter, ptq_options
from edgecv.passes.adaround import _as_groups, _patch_rows, learn_rounding, learn_rounding_for_layer
from edgecv.passes.bias_correction import correct_bias


def test_the_gram_matrix_is_built_from_the_patches_the_layer_convolves():
    """Rows x kernel must give the layer's output exactly (strides, SAME/VALID padding, depth
    multiplier), or the error AdaRound minimises is not the layer's."""
    from edgecv._keras import keras, tf

    x = np.random.default_rng(0).normal(size=(2, 9, 9, 5)).astype(np.float32)
    layers = [keras.layers.Conv2D(4, 3, strides=2, padding="same", use_bias=False),
              keras.layers.Conv2D(4, 3, padding="valid", use_bias=False),
              keras.layers.Conv2D(4, 1, use_bias=False),
              keras.layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, use_bias=False),
              keras.layers.DepthwiseConv2D(3, padding="valid", use_bias=False)]
    for layer in layers:
        y = layer(x).numpy()
        rows, groups = _patch_rows(layer, tf.constant(x)), _as_groups(layer, layer.get_weights()[0])
        got = np.einsum("rkc,ckm->rcm", rows, groups) if rows.ndim == 3 else rows @ groups[0]
        assert np.allclose(got.reshape(y.shape), y, atol=1e-5), layer.get_config()


def test_learned_rounding_beats_nearest_on_correlated_inputs():
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(24, 24))
    x = rng.normal(size=(4000, 24)) @ mix + 1.0  # correlated inputs with a mean, like ReLU outputs
    w = rng.normal(size=(1, 24, 8)) * 0.05
    gram = (x.T @ x)[None]
    q, scale, e_near, e_learned = learn_rounding_for_layer(w, gram, np.ones((1, 1, 8)), len(x), iterations=500)
    assert e_learned < 0.7 * e_near, (e_near, e_learned)
    assert np.array_equal(q, np.round(q)) and np.abs(q).max() == 127
    # every channel keeps its largest weight at +-127, so the converter computes the same scale
    assert np.all(np.abs(q).max(axis=1) == 127)
    assert np.all(np.abs(q - w / scale) < 1)  # each weight rounded down or up, never further


def test_independent_inputs_leave_nearest_rounding_as_it_is():
    """With uncorrelated zero-mean inputs the output error is the sum of the weights' own errors,
    which nearest rounding already minimises."""
    rng = np.random.default_rng(1)
    w = rng.normal(size=(1, 16, 4)) * 0.05
    q, scale, e_near, e_learned = learn_rounding_for_layer(w, np.eye(16)[None] * 100.0, np.ones((1, 1, 4)), 100, 300)
    assert np.array_equal(q, np.clip(np.round(w / scale), -127, 127)) and e_learned == e_near


def with_varied_batch_norms(model):
    rng = np.random.default_rng(3)
    for name in ("conv_bn", "dw_bn", "pw_bn"):
        layer = model.get_layer(name)
        g, b, m, v = layer.get_weights()
        g = rng.uniform(0.2, 2.0, g.shape).astype(np.float32)
        g[0] = -g[0]  # a negative scale flips the grid's sign: the integers must still match
        layer.set_weights([g, b, m, v])
    return model


def folded_integers(model, rounded, name, layout, axis):
    """The int8 values a converter must store for layer `name`: the chosen kernel with its batch
    norm folded in, in the converter's layout, on the per-channel grid along `axis`."""
    kernel = rounded[name]
    if name != "logits":
        g, _, _, var = model.get_layer(f"{name}_bn").get_weights()
        c = g / np.sqrt(var + 1e-3)
        kernel = kernel * (c[:, None] if name == "dw" else c)
    folded = layout(kernel)
    axes = tuple(i for i in range(folded.ndim) if i != axis)
    return np.round(folded / (np.max(np.abs(folded), axis=axes, keepdims=True) / 127))


def test_the_tflite_converter_stores_exactly_the_chosen_integers():
    """The kernels are set on the unfolded grid; TFLite folds the batch norm and quantizes per
    channel. If its integers differed from the chosen ones, the learned rounding would be lost."""
    from ai_edge_litert.interpreter import Interpreter

    model = with_varied_batch_norms(skewed_conv_net())
    batches, images = calibration()
    rounded, rep = learn_rounding(model, batches, 200)
    assert sorted(rep.layers) == ["conv", "dw", "logits", "pw"] and rep.changed > 0
    corrected, _ = correct_bias(model, batches, rounded=rounded)
    flat, _ = int8_logits(corrected, batches, images[:1])
    interp = Interpreter(model_content=flat)
    layouts = {"logits": lambda k: k.T, "dw": lambda k: k.reshape(k.shape[0], k.shape[1], -1)[None],
               "pw": lambda k: k.transpose(3, 0, 1, 2), "conv": lambda k: k.transpose(3, 0, 1, 2)}
    seen = set()
    for t in interp.get_tensor_details():
        if t["dtype"] != np.int8 or t["quantization_parameters"]["scales"].size <= 1:
            continue
        name = next(n for n in layouts if f"/{n}/" in t["name"])
        axis = t["quantization_parameters"]["quantized_dimension"]
        assert np.array_equal(folded_integers(corrected, rounded, name, layouts[name], axis),
                              interp.get_tensor(t["index"])), name
        seen.add(name)
    assert seen == {"conv", "dw", "pw", "logits"}


def test_the_onnx_qdq_quantizer_stores_exactly_the_chosen_integers():
    """onnxruntime's symmetric per-channel int8 weights use the same grid (scale max|w| / 127), on
    the kernel tf2onnx folded the batch norm into: the QDQ graph (and TensorRT's engine built from
    it) keeps the learned rounding."""
    pytest.importorskip("tf2onnx", reason="the onnx extra is not installed")
    import onnx
    from onnx import numpy_helper

    from edgecv.formats.onnx.export import keras_to_onnx
    from edgecv.quantization.qdq import QdqOptions, quantize_qdq

    model = with_varied_batch_norms(skewed_conv_net())
    batches, _ = calibration()
    rounded, _ = learn_rounding(model, batches, 200)
    corrected, _ = correct_bias(model, batches, rounded=rounded)
    qdq, _ = quantize_qdq(keras_to_onnx(corrected, 17, ["logits"]), batches, QdqOptions())
    graph = onnx.load_from_string(qdq).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    layouts = {"logits": lambda k: k, "dw": lambda k: k.reshape(k.shape[0], k.shape[1], -1).transpose(2, 0, 1)[:, None],
               "pw": lambda k: k.transpose(3, 2, 0, 1), "conv": lambda k: k.transpose(3, 2, 0, 1)}
    seen = set()
    for node in graph.node:
        ints = inits.get(node.input[0])
        if node.op_type != "DequantizeLinear" or ints is None or ints.dtype != np.int8:
            continue
        name = next(n for n in layouts if f"/{n}/" in node.input[0])
        axis = next(a.i for a in node.attribute if a.name == "axis")
        assert np.array_equal(folded_integers(corrected, rounded, name, layouts[name], axis), ints), name
        seen.add(name)
    assert seen == {"conv", "dw", "pw", "logits"}


def test_adaround_lowers_the_int8_models_error_on_unseen_images():
    model = with_varied_batch_norms(skewed_conv_net())
    batches, _ = calibration(32)
    _, test = calibration(32, seed=2)
    reference = model.predict(test, verbose=0)
    plain_model, _ = correct_bias(model, batches)
    rounded, _ = learn_rounding(model, batches, 500)
    learned_model, _ = correct_bias(model, batches, rounded=rounded)
    _, plain = int8_logits(plain_model, batches, test)
    _, learned = int8_logits(learned_model, batches, test)
    plain_err = np.sqrt(np.mean((plain - reference) ** 2))
    learned_err = np.sqrt(np.mean((learned - reference) ** 2))
    assert learned_err < 0.9 * plain_err, (plain_err, learned_err)


def test_adaround_is_an_option_and_the_artifact_says_it_was_applied(tiny_model, tiny_calibration, tmp_path):
    from edgecv.exporters import ExportContext

    assert ptq_options(spec(ptq={"adaround": True})).adaround_iterations == 1000
    batches, calib = tiny_calibration
    ctx = ExportContext("tiny", batches, calib.sha256, {})
    art = TFLiteExporter().export(tiny_model, spec(ptq={"adaround": True, "adaround_iterations": 50}), tmp_path, ctx)
    assert art.metadata["ptq"]["applied"] == ["adaround", "bias_correction"]
    ada = art.metadata["ptq"]["adaround"]
    assert ada["images"] == len(calib.samples) and ada["iterations"] == 50 and ada["layers"] > 0
    assert art.checks["integer_only"] and art.checks["passed"]


def test_export_keys_follow_the_resolved_rounding_settings():
    """A changed default rebuilds an int8 artifact; spelling the default out does not."""
    from edgecv.config.target import ArtifactSpec
    from edgecv.formats.onnx.export import OnnxOptions
    from edgecv.orchestrator.keys import export_key
    from edgecv.quantization.ptq import PTQConfig

    def key(fmt, **options):
        return export_key("m", ArtifactSpec(name="q", format=fmt, precision="int8", options=options), "c", "tiny")

    default = PTQConfig().adaround
    assert key("tflite") == key("tflite", ptq={"adaround": default}) != key("tflite", ptq={"adaround": not default})
    default = OnnxOptions.model_fields["adaround"].default
    for fmt in ("onnx", "tensorrt"):
        assert key(fmt) == key(fmt, adaround=default) != key(fmt, adaround=not default)
        assert key(fmt) != key(fmt, adaround_iterations=10)


def test_layers_with_too_many_inputs_keep_nearest_rounding_and_are_named(monkeypatch):
    """A layer whose Gram matrix would be too large (a Flatten -> Dense in a big model) is skipped
    with the reason, and the others are still rounded."""
    import edgecv.passes.adaround as adaround

    monkeypatch.setattr(adaround, "MAX_INPUTS", 20)  # conv: 3x3x3 = 27, logits: 32; dw: 9, pw: 16
    batches, _ = calibration(8)
    rounded, rep = learn_rounding(skewed_conv_net(), batches, 50)
    assert sorted(rounded) == sorted(rep.layers) == ["dw", "pw"]
    assert set(rep.skipped) == {"conv", "logits"} and "27 inputs per output" in rep.skipped["conv"]
    assert rep.to_json()["skipped"]["logits"].startswith("32 inputs per output")


def test_a_pruned_models_zeros_stay_zero():
    """Sparsity (a 2:4 pattern, a pruned model's compressed size) survives learned rounding: zeros
    are pinned, whatever the optimiser would gain by moving one."""
    from edgecv.passes.prune import is_2_of_4

    model = skewed_conv_net()
    pw = model.get_layer("pw")
    kernel = pw.get_weights()[0]
    kernel[0, 0, [0, 1, 4, 5, 8, 9, 12, 13], :] = 0.0  # 2 of every 4 input channels
    pw.set_weights([kernel])
    batches, _ = calibration(8)
    rounded, rep = learn_rounding(model, batches, 200)
    assert "pw" in rep.layers and is_2_of_4(rounded["pw"])
    assert np.all(rounded["pw"][kernel == 0] == 0)  # (small weights may round to zero too)


def test_a_model_with_extra_graph_nodes_is_still_rounded():
    """A model built from an intermediate tensor of this one (Core ML's export without the
    normalize layer does that) gives every later layer a second node; that is not weight sharing,
    and the layers must still be rounded."""
    from edgecv._keras import keras

    model = skewed_conv_net()
    keras.Model(model.layers[1].output, model.outputs)  # from the Rescaling layer on
    assert len(model.get_layer("dw")._inbound_nodes) == 2
    batches, _ = calibration(4)
    rounded, rep = learn_rounding(model, batches, 20)
    assert sorted(rounded) == ["conv", "dw", "logits", "pw"] and not rep.skipped
