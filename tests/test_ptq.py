"""Post-training int8 options of TFLite artifacts: bias correction, float outputs, clear option errors."""

import numpy as np
import pytest

from edgecv.config.target import ArtifactSpec
from edgecv.errors import ConfigError
from edgecv.formats.tflite.export import TFLiteExporter, ptq_options
from edgecv.passes.bias_correction import correct_bias, quantize_per_channel


def skewed_conv_net():
    """Input -> conv+BN+ReLU6 -> depthwise+BN+ReLU6 -> pool -> dense logits, whose kernels have one
    large weight per output channel and many small positive ones: per-channel int8 rounds the small
    ones the same way, so the output mean shifts (what bias correction exists for)."""
    from edgecv._keras import keras

    rng = np.random.default_rng(0)
    x = inp = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0)(x)
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv")(x)
    x = keras.layers.BatchNormalization(name="conv_bn")(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(x)
    x = keras.layers.BatchNormalization(name="dw_bn")(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.Conv2D(32, 1, use_bias=False, name="pw")(x)
    x = keras.layers.BatchNormalization(name="pw_bn")(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(4, name="logits")(x)
    model = keras.Model(inp, out)
    for layer in model.layers:
        w = layer.get_weights()
        if layer.name in ("conv", "dw", "pw", "logits"):
            k = rng.uniform(0.0, 0.004, w[0].shape).astype(np.float32)  # below half a step of the big one
            if layer.name == "dw":  # kernel [h, w, channel, 1]
                k[0, 0] = 1.0
            else:
                k.reshape(-1, k.shape[-1])[0] = 1.0  # one large weight per output channel: int8 scale 1/127
            w[0] = k
            if layer.name == "logits":
                w[0][:] -= 0.002 * np.arange(4)
        elif layer.name.endswith("_bn"):
            g, b, m, v = w
            w = [np.full_like(g, 0.5), np.full_like(b, 0.1), rng.uniform(0, 0.2, m.shape).astype(np.float32), np.ones_like(v)]
        layer.set_weights(w)
    return model


def calibration(n=24, seed=1):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 16, 16, 3)).astype(np.float32)

    def batches():
        for i in range(n):
            yield images[i:i + 1]

    return batches, images


def int8_logits(model, batches, images):
    from ai_edge_litert.interpreter import Interpreter

    from edgecv.formats.tflite.convert import convert

    flat = convert(model, "int8", "uint8", False, batches, ["logits"], output_dtype="float32")
    interp = Interpreter(model_content=flat)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    rows = []
    for img in images:
        interp.set_tensor(inp["index"], img[None].astype(np.uint8))
        interp.invoke()
        rows.append(interp.get_tensor(out["index"])[0].copy())
    return flat, np.stack(rows)


def test_bias_correction_reduces_the_int8_output_shift():
    model = skewed_conv_net()
    batches, _ = calibration()
    _, test = calibration(32, seed=2)  # other images than the calibration ones
    reference = model.predict(test, verbose=0)
    _, plain = int8_logits(model, batches, test)
    corrected_model, rep = correct_bias(model, batches)
    _, corrected = int8_logits(corrected_model, batches, test)
    assert set(rep.layers) == {"conv", "dw", "pw", "logits"} and rep.images == 24 and rep.max_shift > 0
    plain_shift = np.abs(np.mean(plain - reference, axis=0)).mean()
    corrected_shift = np.abs(np.mean(corrected - reference, axis=0)).mean()
    assert corrected_shift < 0.5 * plain_shift, (plain_shift, corrected_shift)
    # the float model itself is left alone: correct_bias works on a copy
    assert np.allclose(model.predict(test, verbose=0), reference)


def test_weights_are_rounded_on_the_grid_tflite_uses():
    """quantize_per_channel must reproduce the converter's int8 weights, or the correction would
    cancel an error TFLite does not make."""
    from ai_edge_litert.interpreter import Interpreter

    model = skewed_conv_net()
    batches, images = calibration(8)
    flat, _ = int8_logits(model, batches, images[:1])
    interp = Interpreter(model_content=flat)
    dense = next(t for t in interp.get_tensor_details()
                 if t["dtype"] == np.int8 and tuple(t["shape"]) == (4, 32))  # TFLite stores [out, in]
    stored = interp.get_tensor(dense["index"]).astype(np.float32) * dense["quantization_parameters"]["scales"][:, None]
    kernel = model.get_layer("logits").get_weights()[0]
    assert np.allclose(quantize_per_channel(kernel, (0,)).T, stored, atol=1e-6)


def spec(**options):
    return ArtifactSpec(name="q", format="tflite", precision="int8", options=options)


def test_ptq_defaults_and_option_errors():
    cfg = ptq_options(spec())
    assert cfg.bias_correction is True and cfg.adaround is True and cfg.output_dtype is None
    with pytest.raises(ConfigError, match=r"ptq options: bias_corection: .*allowed keys: bias_correction, adaround, adaround_iterations, output_dtype"):
        TFLiteExporter.check_spec(spec(ptq={"bias_corection": False}))
    with pytest.raises(ConfigError, match="output_dtype"):
        TFLiteExporter.check_spec(spec(ptq={"output_dtype": "float16"}))
    with pytest.raises(ConfigError, match="options.ptq needs precision int8, not fp32"):
        TFLiteExporter.check_spec(ArtifactSpec(name="f", format="tflite", precision="fp32", options={"ptq": {}}))
    assert ptq_options(ArtifactSpec(name="f", format="tflite", precision="fp32")) is None


def test_applied_techniques_reach_the_artifact(tiny_model, tiny_calibration, tmp_path):
    from edgecv.exporters import ExportContext

    batches, calib = tiny_calibration
    ctx = ExportContext("tiny", batches, calib.sha256, {})
    art = TFLiteExporter().export(tiny_model, spec(ptq={"output_dtype": "float32"}), tmp_path, ctx)
    assert art.metadata["ptq"]["applied"] == ["adaround", "bias_correction", "float_output"], art.metadata["ptq"]
    assert art.metadata["ptq"]["bias_correction"]["images"] == len(calib.samples)
    assert art.checks["integer_only"] and art.checks["passed"]  # the closing DEQUANTIZE is no float compute
    off = TFLiteExporter().export(tiny_model, spec(ptq={"bias_correction": False, "adaround": False}),
                                  tmp_path / "off", ctx)
    assert off.metadata["ptq"]["applied"] == []
    ada_only = TFLiteExporter().export(tiny_model, spec(ptq={"bias_correction": False}), tmp_path / "ada", ctx)
    assert ada_only.metadata["ptq"]["applied"] == ["adaround"]


def test_export_cache_key_follows_the_resolved_ptq_settings():
    from edgecv.orchestrator.keys import export_key

    def key(**options):
        return export_key("m", spec(**options), "c", "tiny")

    assert key() == key(ptq={"bias_correction": True})  # the default spelled out is the same artifact
    assert key() != key(ptq={"bias_correction": False})
    assert key() != key(ptq={"output_dtype": "float32"})


def test_a_model_without_plain_conv_or_dense_layers_is_left_as_it_is():
    """A QAT model's layers are tfmot wrappers whose training already accounted for the rounding."""
    from edgecv._keras import keras

    inp = keras.Input((4, 4, 3))
    model = keras.Model(inp, keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(inp)))
    batches, _ = calibration(2)
    same, rep = correct_bias(model, batches)
    assert same is model and rep.layers == [] and rep.to_json()["layers"] == 0
