"""Which output type for an int8 keypoint TFLite: uint8 (what the target's io_dtype gives) or float32?

Converts the build's trained keypoint model twice, full-integer with a uint8 pixel input, once with
a uint8 and once with a float32 output, and reports validation NME and single-thread latency of each.
An 8-bit output in [0, 1] has steps of 1/256 (0.5 px at 128 px); a float32 output dequantizes the
same int8 tensor inside the model, so only measurement says whether it is worth anything.

  nice -n 10 python benchmarks/keypoints_int8_output.py examples/face-keypoints/edgecv.yaml --out build
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe", type=Path)
    ap.add_argument("--out", type=Path, default=Path("build"), help="the build folder holding the trained model")
    ap.add_argument("--runs", type=int, default=100)
    a = ap.parse_args()

    from ai_edge_litert.interpreter import Interpreter

    from edgecv._keras import tf
    from edgecv.config import load_recipe
    from edgecv.data.calibration import select_calibration
    from edgecv.data.images import load_batch
    from edgecv.models.build import TaskModel
    from edgecv.orchestrator.keys import index_key, train_key
    from edgecv.formats.tflite.convert import make_converter

    recipe = load_recipe(a.recipe)
    task = recipe.make_task()
    index = task.read_data(recipe)
    folder = a.out / ".cache" / "train" / train_key(recipe, index_key(recipe)) / "model"
    if not folder.is_dir():
        raise SystemExit(f"no trained model at {folder}: run `edgecv build -r {a.recipe} -o {a.out}` first")
    model = TaskModel.load(folder)
    size = tuple(recipe.input.size)
    images = load_batch([s.path for s in index.val], size, recipe.input.resize)
    targets = task.targets(index.val, index.info)
    calib = select_calibration(index, recipe.calibration, recipe.resolve, task.stratum)
    calib_images = load_batch(calib.paths, size, recipe.input.resize)
    float_nme = task.evaluate(model.predict(images), targets, index.info)["nme"]
    rows = {"float_nme": float_nme, "load1": os.getloadavg()[0]}
    for out_type in ("uint8", "float32"):
        conv = make_converter(model.keras_model, "int8", "uint8", False, lambda: iter(calib_images[:, None]),
                              model.output_names)
        conv.inference_output_type = {"uint8": tf.uint8, "float32": tf.float32}[out_type]
        blob = conv.convert()
        it = Interpreter(model_content=blob, num_threads=1)
        it.allocate_tensors()
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        preds = []
        for im in images:
            it.set_tensor(inp["index"], im[None])
            it.invoke()
            y = it.get_tensor(out["index"]).astype(np.float32)
            if out["dtype"] != np.float32:
                scale, zero = out["quantization"]
                y = (y - zero) * scale
            preds.append(y[0])
        times = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            it.invoke()
            times.append(time.perf_counter() - t0)
        nme = task.evaluate({"keypoints": np.stack(preds)}, targets, index.info)["nme"]
        rows[out_type] = {"nme": nme, "delta": nme - float_nme, "p50_ms_1thread": float(np.median(times) * 1e3),
                          "output_quantization": [float(q) for q in out["quantization"]]}
        print(out_type, json.dumps(rows[out_type]), flush=True)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
