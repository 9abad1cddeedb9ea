"""A distilled student for raspberry-pi-4 on examples/flowers: at least 5x faster than the int8
MobileNetV2 1.0/224 and within 2 points of the float teacher on the validation split?

Builds (or reuses) the `raspberry-pi-4-fast` target into one build folder: `int8` is the
fine-tuned MobileNetV2 quantized after training, `student-int8` the MobileNet v1 student the swap
pass distils from it (teacher outputs cached over augmented views, random-resized crops, cosine
schedule: see edgecv/passes/swap.py). Then prints the teacher's float accuracy, the student's float
(Keras, from the pass report) and int8 accuracy, and the two int8 models' latency measured side by
side in this process (ai_edge_litert, the target's 4 threads, batch 1, rounds interleaved, median
over every timed invocation), with the ratio.

    PYTHONPATH=. python benchmarks/distill_flowers.py --out /tmp/flowers-fast [--build] [--threads 4]
    PYTHONPATH=. python benchmarks/distill_flowers.py --latency-only BASE.tflite STUDENT.tflite

The second form only times two int8 TFLite files (e.g. a student from another build, or from
the pass run outside a build) against each other, each fed validation images at its own size.

Needs ../shared (the flowers12 data and the MobileNet weights); exits with the reason otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from passes_flowers import RECIPE, artifact, load_report, pct, side_by_side_latency  # noqa: E402

TARGET = "raspberry-pi-4-fast"
SPEEDUP_MIN, DROP_MAX = 5.0, 2.0  # issue 14's bar


def validation_images(count: int = 32):
    """(paths of the first validation images of examples/flowers, the recipe)."""
    from edgecv.config.loader import load_recipe

    recipe = load_recipe(RECIPE)
    return [s.path for s in recipe.make_task().read_data(recipe).val][:count], recipe


def print_latency(lat: dict, threads: int) -> float:
    """Print both models' medians; return the speed-up of the second over the first."""
    (base, b), (student, s) = lat.items()
    print(f"load averages (1/5/15 min) {os.getloadavg()} on {os.cpu_count()} cores")
    print(f"latency, {threads} threads, batch 1, median of {s['invocations']} interleaved invocations each:")
    for name, v in lat.items():
        print(f"  {name:18s} {v['median_ms']:7.2f} ms (p90 {v['p90_ms']:.2f})")
    ratio = b["median_ms"] / s["median_ms"]
    print(f"speed-up of {student} over {base}: {ratio:.2f}x")
    return ratio


def latency_only(base: Path, student: Path, args) -> int:
    from edgecv.data.images import load_batch
    from edgecv.runtimes import load_runtime

    paths, recipe = validation_images()
    models = {}
    for name, path in (("base", base), ("student", student)):
        with load_runtime(path, "tflite") as rt:
            size = tuple(rt.input_size)
        models[name] = (path, load_batch(paths, size, recipe.input.resize))
    lat = side_by_side_latency(models, args.threads, args.rounds, args.runs)
    ratio = print_latency(lat, args.threads)
    if args.json:
        args.json.write_text(json.dumps({"latency": lat, "speedup": ratio, "load": os.getloadavg()}, indent=2))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/flowers-fast"))
    ap.add_argument("--build", action="store_true", help="build the target when its report.json is missing")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--runs", type=int, default=30, help="timed invocations per model per round")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    ap.add_argument("--latency-only", nargs=2, type=Path, metavar=("BASE", "STUDENT"),
                    help="time these two int8 TFLite files side by side; no build, no report")
    args = ap.parse_args()
    if not (REPO.parent / "shared" / "datasets" / "flowers12").is_dir():
        print("needs ../shared/datasets/flowers12 and ../shared/models beside the repository; not present here")
        return 2
    if args.latency_only:
        return latency_only(*args.latency_only, args)
    report_path = args.out / TARGET / "report.json"
    if args.build and not report_path.is_file():
        from rich.console import Console

        from edgecv.orchestrator.runner import run_build

        t0 = time.perf_counter()
        run_build(RECIPE, [TARGET], args.out, console=Console(stderr=True), gates=False)
        print(f"built {TARGET} in {time.perf_counter() - t0:.0f} s")
    if not report_path.is_file():
        print(f"no {report_path}: run with --build")
        return 2

    from edgecv.data.images import load_batch

    rep = load_report(args.out, TARGET)
    teacher_int8, student = artifact(rep, "int8"), artifact(rep, "student-int8")
    swap = student["passes"][0]
    ref = rep["reference"]["metrics"]["accuracy"]
    n_val = rep["data"]["val_count"]
    paths, recipe = validation_images()
    models = {}
    for name, a in (("int8 MobileNetV2", teacher_int8), ("student int8", student)):
        models[name] = (args.out / TARGET / a["path"], load_batch(paths, tuple(a["input_size"]), recipe.input.resize))
    lat = side_by_side_latency(models, args.threads, args.rounds, args.runs)
    drop = ref - student["metrics"]["accuracy"]
    s = swap["student"]
    print(f"teacher MobileNetV2 1.0/224 float {pct(ref)} on {n_val} validation images "
          f"(1 image = {100 / n_val:.2f} points); its int8 {pct(teacher_int8['metrics']['accuracy'])}")
    print(f"student {s['backbone']} {s['alpha']}/{s['input_size'][0]}: float {pct(s['val_accuracy'])}, "
          f"int8 {pct(student['metrics']['accuracy'])} ({-drop:+.2f} points vs the float teacher), "
          f"distillation {swap['seconds']:.0f} s")
    ratio = print_latency(lat, args.threads)
    ok = ratio >= SPEEDUP_MIN and drop <= DROP_MAX
    print(f"speed-up {ratio:.2f}x (bar {SPEEDUP_MIN}x), drop {drop:.2f} points (bar {DROP_MAX}): "
          f"{'meets' if ok else 'misses'} issue 14's bar")
    if args.json:
        args.json.write_text(json.dumps({"reference_accuracy": ref, "student_float": s["val_accuracy"],
                                         "student_int8": student["metrics"]["accuracy"],
                                         "teacher_int8": teacher_int8["metrics"]["accuracy"], "latency": lat,
                                         "speedup": ratio, "load": os.getloadavg()}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
