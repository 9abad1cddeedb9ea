"""Raccoon detector on seeded splits: float and int8 (raspberry-pi-4 conversion) mAP per split.

For each seed: the recipe's split with `data.seed=SEED`, training through edgecv's trainer, the float
model's raw outputs decoded and NMS'd by the numpy reference (edgecv.metrics.nms), and the int8
TFLite conversion of the raw outputs (full integer, uint8 in and out, calibrated on the first 100
training images; WITHOUT the build's AdaRound and bias correction) judged the same way. Prints one
line per split, then mean ± sd; `--out FILE` writes the numbers as JSON. Each split trains a model
(13-36 min on 2 shared CPU cores, docs/detection.md).

  python benchmarks/detection_splits.py --seeds 0 1 2 --head ssd
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("map", "ap50", "ap75", "f1")


def int8_outputs(blob: bytes, images: np.ndarray) -> dict:
    """The int8 model's raw outputs, dequantized, by contract name (told apart by their last axis)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=blob)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    rows = {}
    for i in range(len(images)):
        interp.set_tensor(inp["index"], images[i:i + 1].astype(inp["dtype"]))
        interp.invoke()
        for o in interp.get_output_details():
            v = interp.get_tensor(o["index"]).astype(np.float32)
            scale, zero = o["quantization"]
            rows.setdefault(o["name"], []).append((v - zero) * scale if scale else v)
    named = {}
    for v in rows.values():
        named["box_encodings" if v[0].shape[-1] == 4 else "scores"] = np.concatenate(v)
    return named


def one_split(recipe_path: Path, seed: int, head: str, overrides: list) -> dict:
    from edgecv.config.loader import load_recipe
    from edgecv.data.images import load_batch
    from edgecv.formats.tflite.convert import convert
    from edgecv.train.trainer import train

    recipe = load_recipe(recipe_path, [f"data.seed={seed}", f"task_options.head={head}", *overrides])
    task = recipe.make_task()
    index = task.read_data(recipe)
    t0 = time.time()
    model = train(recipe, index).model
    seconds = time.time() - t0
    size, resize = tuple(recipe.input.size), recipe.input.resize
    images = load_batch([s.path for s in index.val], size, resize)
    targets = task.targets(index.val, index.info)
    reference = model.predict(images)

    def calibration():
        for s in index.train[:100]:
            yield load_batch([s.path], size, resize)

    blob = convert(model.keras_model, "int8", "uint8", False, calibration, model.output_names)
    quantized = int8_outputs(blob, images)
    f, q = task.evaluate(reference, targets, model.info), task.evaluate(quantized, targets, model.info)
    return {"seed": seed, "head": head, "train": len(index.train), "val": len(index.val), "train_seconds": round(seconds),
            "float": {k: f[k] for k in KEYS}, "int8": {k: q[k] for k in KEYS},
            "box_f1": task.agreement(reference, quantized, model.info)["box_f1"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", type=Path, default=ROOT / "examples/raccoon/edgecv.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--head", default="ssd", choices=["ssd", "anchor_free"])
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override key=value")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows = []
    for seed in args.seeds:
        r = one_split(args.recipe, seed, args.head, args.overrides)
        rows.append(r)
        print(f"seed {seed} ({r['train']} train / {r['val']} val, trained in {r['train_seconds']} s): "
              f"float mAP {r['float']['map']:.3f} AP50 {r['float']['ap50']:.3f} | int8 mAP {r['int8']['map']:.3f} "
              f"AP50 {r['int8']['ap50']:.3f} | int8 - float mAP {r['int8']['map'] - r['float']['map']:+.3f} | "
              f"box F1 {r['box_f1']:.3f}", flush=True)
    for kind in ("float", "int8"):
        for key in ("map", "ap50"):
            v = np.array([r[kind][key] for r in rows])
            print(f"{kind} {key}: mean {v.mean():.3f} ± sd {v.std(ddof=1) if len(v) > 1 else 0:.3f} over {len(v)} split(s)")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
