"""Where does int8 lose on the fine-tuned flowers MobileNetV2? Numbers for docs/int8-flowers.md.

  python benchmarks/int8_flowers_diagnosis.py BUILD_DIR --out /work/exp/ptq/diagnosis-seed0.json

Prints (1) the per-op error ranking of TFLite's QuantizationDebugger (edgecv.formats.tflite.diagnose)
with and without bias correction, including each op's mean error (the output shift bias correction
targets); (2) the int8 output shift that weight rounding alone causes per layer (|c E[conv(x, Q(W)-W)]|,
largest channel); (3) per-channel weight ranges of the depthwise layers after BN folding;
(4) the activation ranges the converter chose for the last layers against the float values there.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ptq_flowers import calibration_from, load_build


def weight_ranges(km):
    rows = []
    for layer in km.layers:
        if type(layer).__name__ != "DepthwiseConv2D":
            continue
        bn = km.get_layer(layer.name.replace("depthwise", "depthwise_BN")) if "depthwise" in layer.name else None
        k = layer.get_weights()[0][:, :, :, 0]
        gamma, _, _, var = bn.get_weights()
        folded = k * (gamma / np.sqrt(var + bn.epsilon))
        r = np.max(np.abs(folded), axis=(0, 1))
        rows.append({"layer": layer.name, "channels": int(r.size), "range_min": float(r.min()),
                     "range_median": float(np.median(r)), "range_max": float(r.max()),
                     "max_over_median": float(r.max() / np.median(r))})
    return rows


def rounding_shifts(km, calibration, n=64):
    """Per corrected layer: the largest per-channel output mean shift int8 weight rounding causes."""
    from itertools import islice

    from edgecv.passes.bias_correction import correct_bias

    corrected, _ = correct_bias(km, lambda: islice(calibration(), n))
    rows = []
    for a, b in zip(km.layers, corrected.layers):
        if type(a).__name__ == "BatchNormalization" or a.name == "logits":
            wa, wb = a.get_weights(), b.get_weights()
            idx = -3 if type(a).__name__ == "BatchNormalization" else 1
            d = np.abs(wa[idx] - wb[idx])
            if d.max() > 0:
                rows.append({"layer": a.name, "max_shift": float(d.max()), "mean_shift": float(d.mean())})
    return corrected, sorted(rows, key=lambda r: -r["max_shift"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--samples", type=int, default=32)
    args = ap.parse_args()
    from edgecv._keras import keras
    from edgecv.formats.tflite.diagnose import diagnose

    model, images, labels, calib, train, resize, _ = load_build(args.build)
    km = model.keras_model
    cal = calibration_from(calib, model.input_size, resize)
    out = {"depthwise_weight_ranges": weight_ranges(km)}
    corrected, out["rounding_shifts"] = rounding_shifts(km, cal)
    print("largest rounding shifts:", out["rounding_shifts"][:6], flush=True)
    for name, m in (("baseline", km), ("bias_corrected", corrected)):
        d = diagnose(m, cal, args.samples, "uint8", model.output_names)
        out[f"layers_{name}"] = d.to_json(12)
        print(name, [(e.layers[0], e.op, round(e.rmse_over_scale, 3), round(e.mean_error, 4)) for e in d.worst(8)], flush=True)
        mean_err = [abs(e.mean_error) / e.scale for e in d.layers if e.scale > 0]
        out[f"mean_abs_mean_error_steps_{name}"] = float(np.mean(mean_err))
        print(name, "mean |mean error| in steps over ops", np.mean(mean_err), flush=True)
    probe = keras.Model(km.inputs, [km.get_layer(n).output for n in ("out_relu", "pool", "logits")])
    acts = probe.predict(images.astype(np.float32), batch_size=16, verbose=0)
    out["float_activations_on_val"] = {n: {q: float(np.quantile(a, q / 100)) for q in (0, 50, 99, 99.99, 100)}
                                       for n, a in zip(("out_relu", "pool", "logits"), acts)}
    print(json.dumps(out["float_activations_on_val"], indent=1))
    args.out.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
