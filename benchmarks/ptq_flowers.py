"""Why does int8 lose on the fine-tuned flowers MobileNetV2, and which post-training technique wins?

Reads an edgecv build folder (its cached trained model, data index and the raspberry-pi-4
calibration list), converts the model to integer-only int8 TFLite in several ways and runs each on
the validation split with the TFLite interpreter:

  python benchmarks/ptq_flowers.py BUILD_DIR --out /work/exp/ptq/seed0.json [--variants a,b,...]

Variants: baseline (uint8 softmax output, as edgecv 0.x), float_out (same ops, softmax
dequantized to float32 at the very end), int8_logits (softmax left to the host: the model ends at
the int8 logits, dequantized by its last op). The others also end at the logits, so that their
error can be measured in logits (rmse against float): bias_correction (bias_correction_uint8: with the uint8 softmax output, edgecv's default), calib_all (every training
image), calib_flip (the 200 images plus their mirror images), calib_N (the first N training images), bc_<all|cal|flip|N>_<uint8|float|both> (bias correction measured on all training images / the build's calibration list / that list plus mirror images / the first N, probabilities output as uint8 or float32; _both: the converter's ranges from the same images), bclogit_uint8 (bias correction, then the int8 model's mean logit error on the calibration images subtracted from the logits bias), bcseq_<uint8|logits> (bias correction measured group by group on the network with earlier kernels already rounded and corrected), adaround_<uint8|logits> (learned rounding, then bias correction: options.ptq {adaround: true}; --adaround-iterations), adaroundonly_<uint8|logits> (learned rounding alone). Prints accuracy, agreement with float, the images that flip and
their float margin (top-1 minus top-2 logit), and writes everything to --out as JSON.
"""

from __future__ import annotations

import argparse
import glob
import json
import time
from pathlib import Path

import numpy as np


def load_build(build: Path, target: str = "raspberry-pi-4"):
    from edgecv.data.images import load_batch
    from edgecv.models.build import TaskModel

    model = TaskModel.load(Path(glob.glob(str(build / ".cache/train/*/model"))[0]))
    index = json.loads(Path(glob.glob(str(build / ".cache/index/*/index.json"))[0]).read_text())
    manifest = json.loads((build / target / "manifest.json").read_text())
    resize = manifest["input"]["resize"]
    val = index["val"]
    images = load_batch([s["path"] for s in val], model.input_size, resize)
    labels = np.array([s["label"] for s in val])
    calib = (build / target / "calibration.txt").read_text().split()
    train = [s["path"] for s in index["train"]]
    return model, images, labels, calib, train, resize, [s["path"] for s in val]


def calibration_from(files, size, resize, flip=False):
    from edgecv.data.images import load_batch

    def batches():
        for f in files:
            b = load_batch([f], size, resize)
            yield b
            if flip:
                yield b[:, :, ::-1, :].copy()

    return batches


def sequential_bias_correction(keras_model, calibration, chunk=10):
    """Empirical bias correction measured on the weight-rounded network, layer group by group: each
    group's mean output shift (against the float network) is measured with every earlier layer's
    kernel already rounded to the int8 grid and its bias corrected, so upstream shifts count."""
    from edgecv._keras import keras
    from edgecv.models.build import copy_keras
    from edgecv.passes.bias_correction import (CORRECTED_LAYERS, _consumers, _weight_error_layer,
                                                     batch_norm_after, kernel_reduce_axes, quantize_per_channel)

    model = copy_keras(keras_model)
    consumers = _consumers(model)
    targets = []
    for layer in model.layers:
        if type(layer).__name__ not in CORRECTED_LAYERS or len(layer._inbound_nodes) != 1:
            continue
        bn = batch_norm_after(layer, consumers)
        if bn is None and not getattr(layer, "use_bias", False):
            continue
        kernel = layer.get_weights()[0]
        q = quantize_per_channel(kernel, kernel_reduce_axes(layer))
        targets.append((layer, bn, _weight_error_layer(layer, kernel), _weight_error_layer(layer, q), q))

    def channel_means(net, group, which):
        probe = keras.Model(net.inputs, [net.get_layer(t[0].name).input for t in group])
        sums, counts = [0.0] * len(group), [0] * len(group)
        for batch in calibration():
            xs = probe(np.asarray(batch, np.float32), training=False)
            xs = xs if isinstance(xs, list) else [xs]
            for i, (t, x) in enumerate(zip(group, xs)):
                y = np.asarray(t[which](x), np.float64)
                sums[i] = sums[i] + y.reshape(-1, y.shape[-1]).sum(axis=0)
                counts[i] += int(np.prod(y.shape[:-1]))
        return [s_ / c_ for s_, c_ in zip(sums, counts)]

    images = np.concatenate(list(calibration())).astype(np.float32)
    calibration = lambda: (images[i:i + 20] for i in range(0, len(images), 20))  # noqa: E731
    float_means = channel_means(keras_model, targets, 2)  # float kernels on float inputs
    for start in range(0, len(targets), chunk):
        group = targets[start:start + chunk]
        q_means = channel_means(model, group, 3)  # rounded kernels on the rounded network's inputs
        for (layer, bn, _, _, q), fm, qm in zip(group, float_means[start:start + chunk], q_means):
            shift = qm - fm
            if bn is not None:
                w = bn.get_weights()
                c = (w[0] if bn.scale else 1.0) / np.sqrt(w[-1] + bn.epsilon)
                w[-3] = w[-3] - c * shift
                bn.set_weights(w)
                layer.set_weights([q] + layer.get_weights()[1:])
            else:
                _, bias = layer.get_weights()
                layer.set_weights([q, bias - shift])
        print(f"sequential bias correction: layers {start}..{start + len(group) - 1}", flush=True)
    return model


def logits_model(keras_model):
    from edgecv._keras import keras

    return keras.Model(keras_model.inputs, keras_model.get_layer("logits").output, name=keras_model.name)


def convert(keras_model, calibration, output_dtype="uint8", output_names=("probabilities",)):
    from edgecv._keras import tf
    from edgecv.formats.tflite.convert import make_converter

    conv = make_converter(keras_model, "int8", "uint8", False, calibration, list(output_names))
    conv.inference_output_type = {"uint8": tf.uint8, "int8": tf.int8, "float32": tf.float32}[output_dtype]
    return conv.convert()


def run_tflite(flat: bytes, images: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=flat, num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    rows = []
    for img in images:
        interp.set_tensor(inp["index"], img[None].astype(inp["dtype"]))
        interp.invoke()
        y = interp.get_tensor(out["index"])[0]
        scale, zero = out["quantization"]
        rows.append((y.astype(np.float32) - zero) * scale if scale else y.astype(np.float32))
    return np.stack(rows)


def top1_ties(y: np.ndarray) -> int:
    s = np.sort(y, axis=1)
    return int(np.sum(s[:, -1] == s[:, -2]))


def summarize(name, y, labels, float_logits, margins, seconds, extra=None, logits=False):
    float_top1 = float_logits.argmax(1)
    top1 = y.argmax(1)
    if logits:  # the int8 logits against the float ones: a continuous measure at N=144
        err = y - float_logits
        extra = {**(extra or {}), "logit_rmse": round(float(np.sqrt(np.mean(err ** 2))), 4),
                 "logit_mean_error": round(float(np.mean(err)), 4),
                 "top1_logit_rmse": round(float(np.sqrt(np.mean((err[np.arange(len(y)), float_top1]) ** 2))), 4)}
    flipped = np.where(top1 != float_top1)[0]
    if logits:  # the flipped images' float and int8 logits of the two classes involved
        extra["flipped_logits"] = [{"float": [round(float(float_logits[i, c]), 3) for c in (float_top1[i], top1[i])],
                                    "int8": [round(float(y[i, c]), 3) for c in (float_top1[i], top1[i])]}
                                   for i in flipped]
    row = {"variant": name, "accuracy": float(np.mean(top1 == labels) * 100),
           "agreement": float(np.mean(top1 == float_top1)), "flipped": flipped.tolist(),
           "flipped_margins": [round(float(margins[i]), 3) for i in flipped],
           "flipped_right_to_wrong": int(np.sum((float_top1[flipped] == labels[flipped]) & (top1[flipped] != labels[flipped]))),
           "flipped_wrong_to_right": int(np.sum((float_top1[flipped] != labels[flipped]) & (top1[flipped] == labels[flipped]))),
           "top1_ties": top1_ties(y), "convert_seconds": round(seconds, 1), **(extra or {})}
    print(f"{name:18s} acc {row['accuracy']:.2f}  agree {row['agreement']:.4f}  flipped {row['flipped']} "
          f"margins {row['flipped_margins']}  ties {row['top1_ties']}  convert {seconds:.0f}s "
          f"logit rmse {row.get('logit_rmse', '-')}", flush=True)
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--variants", default="baseline,float_out,int8_logits,bias_correction,calib_all,calib_flip")
    ap.add_argument("--adaround-iterations", type=int, default=1000)
    args = ap.parse_args()

    model, images, labels, calib, train, resize, val_paths = load_build(args.build)
    km = model.keras_model
    lm = logits_model(km)
    float_logits = lm.predict(images.astype(np.float32), batch_size=16, verbose=0)
    float_top1 = float_logits.argmax(1)
    s = np.sort(float_logits, axis=1)
    margins = s[:, -1] - s[:, -2]
    result = {"build": str(args.build), "float_accuracy": float(np.mean(float_top1 == labels) * 100),
              "val_images": len(labels), "calibration_images": len(calib),
              "float_margin_quantiles": {q: round(float(np.quantile(margins, q / 100)), 3) for q in (1, 5, 10, 50)},
              "float_wrong": np.where(float_top1 != labels)[0].tolist(), "variants": []}
    print(f"float acc {result['float_accuracy']:.2f}  wrong {result['float_wrong']}  margin quantiles "
          f"{result['float_margin_quantiles']}", flush=True)
    base_cal = calibration_from(calib, model.input_size, resize)
    for v in args.variants.split(","):
        t0 = time.perf_counter()
        extra = {}
        logits = (v not in ("baseline", "float_out", "bias_correction_uint8") and not v.startswith(("bc_", "bclogit_"))
                  and not (v.startswith(("bcseq_", "adaround")) and v.endswith("uint8")))
        if v == "baseline":
            flat = convert(km, base_cal)
        elif v == "float_out":
            flat = convert(km, base_cal, "float32")
        elif v == "int8_logits":
            flat = convert(lm, base_cal, "float32", ["logits"])
        elif v in ("bias_correction", "bias_correction_uint8"):  # the latter: edgecv's default artifact
            from edgecv.passes.bias_correction import correct_bias

            corrected, rep = correct_bias(km, base_cal)
            extra["bias_correction"] = rep.to_json()
            flat = (convert(corrected, base_cal) if v.endswith("uint8")
                    else convert(logits_model(corrected), base_cal, "float32", ["logits"]))
        elif v.startswith("bc_"):  # bc_<all|N>_<uint8|float>: bias correction measured on all / the
            # first N training images (conversion calibrated on the build's list), probabilities output
            from edgecv.passes.bias_correction import correct_bias

            _, which, out_type = v.split("_")
            files = train if which == "all" else (calib if which in ("cal", "flip") else train[:int(which)])
            images_for = calibration_from(files, model.input_size, resize, flip=which == "flip")
            corrected, rep = correct_bias(km, images_for)
            extra["bias_correction"] = rep.to_json()
            ranges = base_cal if out_type != "both" else images_for
            flat = convert(corrected, ranges, "float32" if out_type == "float" else "uint8")
        elif v.startswith("bclogit_"):  # bias correction, then the int8 model's mean logit error on the
            # calibration images (all layers' shifts together) subtracted from the logits bias
            from edgecv.data.images import load_batch
            from edgecv.passes.bias_correction import correct_bias

            corrected, rep = correct_bias(km, base_cal)
            cal_images = load_batch(calib, model.input_size, resize).astype(np.float32)
            want = lm.predict(cal_images, batch_size=16, verbose=0)
            got = run_tflite(convert(logits_model(corrected), base_cal, "float32", ["logits"]), cal_images)
            shift = (got - want).mean(axis=0)
            dense = corrected.get_layer("logits")
            kernel, bias = dense.get_weights()
            dense.set_weights([kernel, bias - shift])
            extra["bias_correction"] = rep.to_json()
            extra["logit_shift"] = [round(float(x), 4) for x in shift]
            print("logit shift", np.round(shift, 3), flush=True)
            flat = convert(corrected, base_cal, "float32" if v.endswith("float") else "uint8")
        elif v.startswith("adaround"):  # adaround_<uint8|logits> (+ bias correction, as edgecv's
            # options.ptq {adaround: true} does); adaroundonly_<...>: learned rounding alone
            from edgecv.quantization.ptq import PTQConfig, prepare

            cfg = PTQConfig(adaround=True, adaround_iterations=args.adaround_iterations,
                            bias_correction=not v.startswith("adaroundonly"))
            corrected, info = prepare(km, base_cal, cfg, log=print)
            extra["ptq"] = info
            flat = (convert(corrected, base_cal) if v.endswith("uint8")
                    else convert(logits_model(corrected), base_cal, "float32", ["logits"]))
        elif v.startswith("bcseq_"):  # bcseq_<uint8|logits>
            corrected = sequential_bias_correction(km, base_cal)
            flat = (convert(corrected, base_cal) if v.endswith("uint8")
                    else convert(logits_model(corrected), base_cal, "float32", ["logits"]))
        elif v == "calib_all":
            flat = convert(lm, calibration_from(train, model.input_size, resize), "float32", ["logits"])
        elif v == "calib_flip":
            flat = convert(lm, calibration_from(calib, model.input_size, resize, flip=True), "float32", ["logits"])
        elif v.startswith("calib_"):  # calib_N: the first N training images
            flat = convert(lm, calibration_from(train[:int(v[6:])], model.input_size, resize), "float32", ["logits"])
        else:
            raise SystemExit(f"unknown variant {v}")
        seconds = time.perf_counter() - t0
        y = run_tflite(flat, images)
        row = summarize(v, y, labels, float_logits, margins, seconds, extra, logits)
        row["flipped_files"] = [val_paths[i] for i in row["flipped"]]
        result["variants"].append(row)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
