"""Latency of edgecv's int8 TFLite of a user's model against a reference int8 TFLite, side by side.

Made for the "bring your own model" check: the ImageNet MobileNetV2 h5 exported by
`edgecv export ... -t raspberry-pi-4` against Google's own quantization-aware-trained
`mobilenet_v2_1.0_224_quant.tflite`. Both run in the same process with the same thread count;
repeats are interleaved (A, B, A, B, ...) so machine load hits both alike, and the medians over
repeats of each repeat's median are compared. It also prints what differs between the two files
where latency can come from: input/output types and quantization, per-channel or per-tensor
weights, and the op counts.

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ours", type=Path, help="edgecv's int8 .tflite")
    p.add_argument("reference", type=Path, help="the reference int8 .tflite (e.g. Google's)")
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--repeats", type=int, default=15, help="interleaved repeats")
    p.add_argument("--runs", type=int, default=20, help="invocations per repeat")
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
    for k, it in models.items():
        print(f"\n{k}:")
        for field, value in describe(it).items():
            print(f"  {field}: {value}")


if __name__ == "__main__":
    main()
