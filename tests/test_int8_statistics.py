"""Int8 weight preparation as passes: one pass over the calibration images for every step, and the
bias shift measured from its statistics equal to the shift the weight error makes in the layer."""

import numpy as np
import pytest

from test_ptq import calibration, skewed_conv_net

from edgecv.passes.statistics import ROW_SUM, copy_for_statistics, gather
from edgecv.passes.bias_correction import (_weight_error_layer, kernel_reduce_axes, mean_shift,
                                                 quantize_per_channel)
from edgecv.quantization.ptq import PTQConfig, prepare


def counted(batches):
    calls = []

    def wrapped():
        calls.append(1)
        return batches()

    return wrapped, calls


def test_adaround_and_bias_correction_read_the_calibration_images_once():
    batches, _ = calibration()
    wrapped, calls = counted(batches)
    _, info = prepare(skewed_conv_net(), wrapped, PTQConfig(adaround_iterations=50))
    assert info["applied"] == ["adaround", "bias_correction"]
    assert len(calls) == 1  # before: once per step


def strided_and_dilated_net():
    from edgecv._keras import keras

    x = inp = keras.Input((15, 13, 3))
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", name="strided")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="valid", depth_multiplier=2, name="dw")(x)
    x = keras.layers.Conv2D(5, 3, dilation_rate=2, padding="same", name="dilated")(x)
    x = keras.layers.Dense(4, name="dense")(x)  # on [H, W, C]: every position is a row
    model = keras.Model(inp, x)
    rng = np.random.default_rng(3)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    return model


@pytest.mark.parametrize("name", ["strided", "dw", "dilated", "dense"])
def test_the_shift_from_patch_row_sums_is_the_shift_of_the_error_convolution(name):
    from edgecv._keras import keras

    model, _ = copy_for_statistics(strided_and_dilated_net())
    batches, images = calibration(6, seed=2)
    images = np.random.default_rng(4).normal(size=(6, 15, 13, 3)).astype(np.float32)
    stats = gather(model, {name: {ROW_SUM}}, lambda: (images[i:i + 1] for i in range(6)))
    layer = model.get_layer(name)
    kernel = layer.get_weights()[0]
    error = quantize_per_channel(kernel, kernel_reduce_axes(layer)) - kernel
    s = stats.layers[name]
    got = mean_shift(layer, s.row_sum, s.rows, error)
    inputs = keras.Model(model.inputs, layer.input).predict(images, verbose=0)
    shift = np.asarray(_weight_error_layer(layer, error)(inputs), np.float64)
    want = shift.reshape(-1, shift.shape[-1]).mean(axis=0)
    assert s.rows == int(np.prod(shift.shape[:-1]))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6 * np.abs(want).max())
