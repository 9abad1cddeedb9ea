"""Latency of edgecv's int8 TFLite of a user's model against a reference int8 TFLite, side by side.

Made for the "bring your own model" check: the ImageNet MobileNetV2 h5 exported by
`edgecv export ... -t raspberry-pi-4` against Google's own quantization-aware-trained
`mobilenet_v2_1.0_224_quant.tflite`. Both run in the same process with the same thread count;
repeats are interleaved (A, B, A, B, ...) so machine load hits both alike, and the medians over
repeats of each repeat's median are compared. It also prints what differs between the two files
where latency can come from: input/output types and quantization, per-channel or per-tensor
weights, and the op counts. With `--build DIR` it also measures each file's top-1 agreement with the
build's float reference on the build's validation images (the reference file's extra leading
classes, e.g. Google's background class 0, are dropped).

    python benchmarks/byom_vs_google_int8.py build/raspberry-pi-4/<name>_int8.tflite \
        ../shared/models/mobilenet_v2_1.0_224_quant.tflite --threads 4
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time
from pathlib import Path

import numpy as np


def load(path: Path, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    return it


def one_repeat(it, image: np.ndarray, runs: int) -> float:
    """Median milliseconds of `runs` invocations (input set and output read each time, as an app does)."""
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        it.set_tensor(inp["index"], image)
        it.invoke()
        it.get_tensor(out["index"])
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def describe(it) -> dict:
    """What can make two int8 files of the same network differ in speed."""
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    op_list = it._get_ops_details()
    ops = collections.Counter(op["op_name"] for op in op_list)
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    per_channel = per_tensor = 0
    for op in op_list:  # the filter of each convolution (input 1): one scale or one per output channel
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(op["inputs"]) > 1:
            scales = tensors[op["inputs"][1]]["quantization_parameters"]["scales"]
            per_channel += len(scales) > 1
            per_tensor += len(scales) == 1
    weight_types = collections.Counter(np.dtype(tensors[op["inputs"][1]]["dtype"]).name for op in op_list
                                       if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D"))
    return {"input": f"{np.dtype(inp['dtype']).name} {list(inp['shape'])} q={inp['quantization']}",
            "output": f"{np.dtype(out['dtype']).name} {list(out['shape'])} q={out['quantization']}",
            "conv filters per-channel / per-tensor": f"{per_channel} / {per_tensor} ({dict(weight_types)})",
            "ops": dict(sorted(ops.items(), key=lambda kv: -kv[1])), "op count": sum(ops.values())}


def pixels(it, seed: int = 0) -> np.ndarray:
    inp = it.get_input_details()[0]
    img = np.random.default_rng(seed).integers(0, 256, inp["shape"], dtype=np.int16)
    return (img - 128).astype(np.int8) if inp["dtype"] == np.int8 else img.astype(inp["dtype"])


def validation_set(build: Path, target: str) -> tuple[list[str], np.ndarray]:
    """The build's validation image paths (from its cached index) and its float reference scores."""
    import json

    manifest = json.loads((build / target / "manifest.json").read_text())
    index = json.loads((build / ".cache" / "index" / manifest["stage_keys"]["index"] / "index.json").read_text())
    reference = np.load(build / "reference.npz")
    scores = next(reference[k] for k in reference.files if k.startswith("output:"))
    return [s["path"] for s in index["val"]], scores


def top1(it, images: np.ndarray, n_classes: int) -> np.ndarray:
    """Top-1 class per image over the last `n_classes` outputs (drops a leading background class)."""
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    result = []
    for img in images:
        batch = img[None].astype(np.int16)
        it.set_tensor(inp["index"], (batch - 128).astype(np.int8) if inp["dtype"] == np.int8 else batch.astype(inp["dtype"]))
        it.invoke()
        scores = it.get_tensor(out["index"])[0]
        result.append(int(np.argmax(scores[len(scores) - n_classes:])))
    return np.array(result)


def agreement(models: dict, build: Path, target: str, resize: str) -> None:
    from edgecv.data.images import load_batch

    paths, reference = validation_set(build, target)
    ref_top1 = reference.argmax(1)
    for k, it in models.items():
        size = tuple(int(d) for d in it.get_input_details()[0]["shape"][1:3])
        agree = float((top1(it, load_batch(paths, size, resize), reference.shape[1]) == ref_top1).mean())
        print(f"{k:9s} top-1 agreement with the float reference on {len(paths)} validation images: {agree:.4f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ours", type=Path, help="edgecv's int8 .tflite")
    p.add_argument("reference", type=Path, help="the reference int8 .tflite (e.g. Google's)")
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--repeats", type=int, default=15, help="interleaved repeats")
    p.add_argument("--runs", type=int, default=20, help="invocations per repeat")
    p.add_argument("--build", type=Path, help="also measure top-1 agreement on this build's validation images")
    p.add_argument("--target", default="raspberry-pi-4", help="the target folder whose manifest names the index")
    p.add_argument("--resize", default="center_crop", help="the build's resize policy")
    a = p.parse_args()

    models = {"edgecv": load(a.ours, a.threads), "reference": load(a.reference, a.threads)}
    images = {k: pixels(it) for k, it in models.items()}
    for k, it in models.items():  # warm-up: XNNPACK packs weights on the first runs
        one_repeat(it, images[k], 5)
    medians: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(a.repeats):
        for k, it in models.items():
            medians[k].append(one_repeat(it, images[k], a.runs))
    result = {k: statistics.median(v) for k, v in medians.items()}
    print(f"threads {a.threads}, {a.repeats} interleaved repeats x {a.runs} runs, batch 1")
    for k, path in (("edgecv", a.ours), ("reference", a.reference)):
        spread = (max(medians[k]) - min(medians[k])) / result[k] * 100
        print(f"{k:9s} {path.name}: median {result[k]:.2f} ms (repeat medians spread {spread:.0f}%), "
              f"{path.stat().st_size / 1e6:.2f} MB")
    print(f"ratio edgecv / reference: {result['edgecv'] / result['reference']:.3f}")
    if a.build:
        agreement(models, a.build, a.target, a.resize)
    for k, it in models.items():
        print(f"\n{k}:")
        for field, value in describe(it).items():
            print(f"  {field}: {value}")


if __name__ == "__main__":
    main()
