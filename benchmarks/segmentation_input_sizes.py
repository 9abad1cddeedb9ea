"""Segmenter latency by input size: int8 and fp32 TFLite of the CamVid model, side by side.

For each decoder and input size: MobileNetV2 + the decoder + the in-model class map (as
examples/camvid builds it; untrained weights: latency does not depend on their values), converted
to int8 (uint8 in/out, 8 random calibration images) and fp32; both timed in the same loop,
alternating, after warm-up; medians over repeats (ai_edge_litert, XNNPACK). Prints the p50 of each
and the int8/fp32 ratio, with the load average: on a busy machine the ratio is what to read.

  python benchmarks/segmentation_input_sizes.py --decoders lraspp unet --sizes 192x256 288x384 352x480 --threads 4
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def segmenter(decoder: str, h: int, w: int, classes: int = 11):
    from edgecv._keras import keras
    from edgecv.tasks.segmentation import SegmentationOptions
    from edgecv.tasks.segmentation_heads import build_head, with_class_map

    inp = keras.Input((h, w, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, -1.0)(inp)
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_tensor=x)
    scores = build_head(base.output, SegmentationOptions(decoder=decoder), classes, "scores")
    return with_class_map(keras.Model(inp, scores), "scores", "classes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--decoders", nargs="+", default=["lraspp"])
    ap.add_argument("--sizes", nargs="+", default=["192x256", "288x384", "352x480"], help="HxW")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    from edgecv.formats.tflite.convert import convert
    from edgecv.formats.tflite.runtime import TFLiteRuntime

    rng = np.random.default_rng(0)
    print(f"{'decoder':8} {'input':>8} {'int8 p50':>9} {'fp32 p50':>9} {'int8/fp32':>9}  load")
    with tempfile.TemporaryDirectory() as tmp:
        for decoder in args.decoders:
            for size in args.sizes:
                h, w = (int(v) for v in size.split("x"))
                model = segmenter(decoder, h, w)
                calibration = lambda: (rng.integers(0, 256, (1, h, w, 3)).astype(np.float32) for _ in range(8))
                runtimes = {}
                for precision in ("int8", "fp32"):
                    path = Path(tmp) / f"{decoder}_{size}_{precision}.tflite"
                    path.write_bytes(convert(model, precision, "uint8", False, calibration, ["scores", "classes"]))
                    runtimes[precision] = TFLiteRuntime(str(path), threads=args.threads)
                image = rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8)
                times = {p: [] for p in runtimes}
                for _ in range(3):
                    for rt in runtimes.values():
                        rt.predict(image)
                for _ in range(args.repeats):
                    for p, rt in runtimes.items():
                        t0 = time.perf_counter()
                        rt.predict(image)
                        times[p].append((time.perf_counter() - t0) * 1000)
                p50 = {p: float(np.median(t)) for p, t in times.items()}
                load = " ".join(f"{v:.1f}" for v in os.getloadavg())
                print(f"{decoder:8} {size:>8} {p50['int8']:8.1f}ms {p50['fp32']:8.1f}ms {p50['int8'] / p50['fp32']:9.2f}  {load}",
                      flush=True)


if __name__ == "__main__":
    main()
