"""Optimization passes on examples/flowers (ImageNet MobileNetV2 1.0/224 fine-tuned on flowers12).

Builds (or reuses) these targets into one build folder, so the fine-tuned original is trained
once and shared through the stage cache:

  raspberry-pi-4                 post-training int8 and fp32 of the original (the baselines)
  raspberry-pi-4-pruned          50% magnitude pruning, int8 and fp32
  raspberry-pi-4-qat             quantization-aware training, int8
  raspberry-pi-4-accuracy-aware  int8 with a zero-drop gate: worst layers kept float until it passes
  raspberry-pi-zero-student      MobileNet v1 0.25/128 distilled from the original, int8
  jetson-orin-nano-accuracy-aware  QDQ int8 ONNX with the same zero-drop gate (onnxruntime validates)

then prints what each report measured (accuracy on the 144-image validation split, which the
build decodes once; the calibration set comes from the training split) and measures the int8
artifacts' latency side by side in this one process: ai_edge_litert, the same thread count, each
model fed validation images at its own input size, rounds interleaved across models so drift on a
shared machine hits all of them alike; the figure is the median over all timed invocations.

    PYTHONPATH=. python benchmarks/passes_flowers.py --out /tmp/flowers-build [--build] [--threads 4]

Needs ../shared (the flowers12 data and the MobileNet weights); exits with the reason otherwise.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "examples" / "flowers" / "edgecv.yaml"
TARGETS = ["raspberry-pi-4", "raspberry-pi-4-pruned", "raspberry-pi-4-qat", "raspberry-pi-4-accuracy-aware",
           "raspberry-pi-zero-student", "jetson-orin-nano-accuracy-aware"]


def load_report(out: Path, target: str) -> dict:
    return json.loads((out / target / "report.json").read_text())


def artifact(report: dict, name: str) -> dict:
    return next(a for a in report["artifacts"] if a["name"] == name)


def gzip_size(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=9))


def pct(x) -> str:
    return "n/a" if x is None else f"{x:.2f}%"


def side_by_side_latency(models: dict[str, tuple[Path, np.ndarray]], threads: int, rounds: int, runs: int) -> dict:
    """Median ms per invoke, batch 1, rounds interleaved across the models."""
    from edgecv.runtimes import load_runtime

    rts = {name: load_runtime(path, "tflite", threads=threads) for name, (path, _) in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    for name, rt in rts.items():  # warm-up
        for i in range(10):
            rt.predict(models[name][1][i % len(models[name][1])][None])
    for _ in range(rounds):
        for name, rt in rts.items():
            imgs = models[name][1]
            for i in range(runs):
                x = imgs[i % len(imgs)][None]
                t0 = time.perf_counter()
                rt.predict(x)
                times[name].append((time.perf_counter() - t0) * 1000)
    for rt in rts.values():
        rt.close()
    return {name: {"median_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90)), "invocations": len(t)}
            for name, t in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/flowers-build"))
    ap.add_argument("--build", action="store_true", help="build targets whose report.json is missing")
    ap.add_argument("--rebuild", action="store_true", help="build every target again (stage cache still applies)")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=40, help="timed invocations per model per round")
    args = ap.parse_args()
    if not (REPO.parent / "shared" / "datasets" / "flowers12").is_dir():
        print("needs ../shared/datasets/flowers12 and ../shared/models beside the repository; not present here")
        return 2

    if args.build or args.rebuild:
        from rich.console import Console

        from edgecv.orchestrator.runner import run_build

        for t in TARGETS:
            if args.rebuild or not (args.out / t / "report.json").is_file():
                t0 = time.perf_counter()
                run_build(RECIPE, [t], args.out, console=Console(stderr=True), gates=False)
                print(f"built {t} in {time.perf_counter() - t0:.0f} s")
    missing = [t for t in TARGETS if not (args.out / t / "report.json").is_file()]
    if missing:
        print(f"no report for {', '.join(missing)} in {args.out}: run with --build")
        return 2

    from edgecv.data.images import load_batch

    summary: dict = {}
    base = load_report(args.out, "raspberry-pi-4")
    ref_acc = base["reference"]["accuracy"]
    n_val = base["data"]["val_count"]
    ptq = artifact(base, "int8")
    print(f"Original: {base['training']['key'][:12]} MobileNetV2 1.0/224 fine-tuned, float reference accuracy "
          f"{pct(ref_acc)} on {n_val} validation images (1 image = {100 / n_val:.2f} points)")
    print(f"  post-training int8: {pct(ptq['metrics']['accuracy'])} (delta {ptq['deltas']['accuracy']:+.2f}), "
          f"agreement {ptq['agreement']['top1_agreement']:.4f}")

    # ---- pruning
    pr = load_report(args.out, "raspberry-pi-4-pruned")
    p8, p32 = artifact(pr, "int8"), artifact(pr, "fp32")
    prep = p8["passes"][0]
    base_int8 = args.out / "raspberry-pi-4" / ptq["path"]
    pruned_int8 = args.out / "raspberry-pi-4-pruned" / p8["path"]
    summary["prune"] = {
        "target_sparsity": prep["target_sparsity"], "achieved_sparsity": prep["achieved_sparsity"],
        "model_kernel_sparsity": prep["model_kernel_sparsity"],
        "keras_accuracy_before": prep["val_accuracy_before"], "keras_accuracy_after": prep["val_accuracy_after"],
        "fp32_tflite_accuracy_delta": p32['deltas']['accuracy'], "int8_accuracy": p8["metrics"]["accuracy"],
        "int8_accuracy_delta": p8['deltas']['accuracy'],
        "int8_size_bytes": p8["size_bytes"], "int8_gzip_bytes": gzip_size(pruned_int8),
        "unpruned_int8_size_bytes": ptq["size_bytes"], "unpruned_int8_gzip_bytes": gzip_size(base_int8),
        "seconds": prep["seconds"],
    }
    s = summary["prune"]
    print(f"\nPruning ({prep['schedule']}, {prep['steps']} fine-tuning steps, {prep['seconds']:.0f} s): "
          f"{s['achieved_sparsity']:.1%} zeros in the {len(prep['layers'])} pruned kernels "
          f"({s['model_kernel_sparsity']:.1%} of all kernel weights)")
    print(f"  accuracy: Keras {pct(s['keras_accuracy_before'])} -> {pct(s['keras_accuracy_after'])}; fp32 TFLite delta vs "
          f"reference {s['fp32_tflite_accuracy_delta']:+.2f} points; int8 {pct(s['int8_accuracy'])} "
          f"(delta {s['int8_accuracy_delta']:+.2f})")
    print(f"  int8 TFLite gzip -9: pruned {s['int8_gzip_bytes'] / 1e6:.2f} MB vs unpruned "
          f"{s['unpruned_int8_gzip_bytes'] / 1e6:.2f} MB ({s['int8_gzip_bytes'] / s['unpruned_int8_gzip_bytes']:.0%}); "
          f"raw {s['int8_size_bytes'] / 1e6:.2f} vs {s['unpruned_int8_size_bytes'] / 1e6:.2f} MB")

    # ---- QAT
    q = load_report(args.out, "raspberry-pi-4-qat")
    q8 = artifact(q, "int8")
    qrep = q8["passes"][0]
    summary["qat"] = {"qat_int8_accuracy": q8["metrics"]["accuracy"], "qat_int8_delta": q8['deltas']['accuracy'],
                      "qat_int8_agreement": q8["agreement"]["top1_agreement"],
                      "ptq_int8_accuracy": ptq["metrics"]["accuracy"], "ptq_int8_delta": ptq['deltas']['accuracy'],
                      "ptq_int8_agreement": ptq["agreement"]["top1_agreement"],
                      "integer_only": q8["checks"].get("integer_only"), "seconds": qrep["seconds"]}
    s = summary["qat"]
    print(f"\nQAT ({qrep['config']['epochs']} epochs, {qrep['seconds']:.0f} s): int8 {pct(s['qat_int8_accuracy'])} "
          f"(delta {s['qat_int8_delta']:+.2f}, agreement {s['qat_int8_agreement']:.4f}, integer-only {s['integer_only']}) "
          f"vs post-training int8 {pct(s['ptq_int8_accuracy'])} (delta {s['ptq_int8_delta']:+.2f}, "
          f"agreement {s['ptq_int8_agreement']:.4f})")

    # ---- accuracy-aware int8 (TFLite, and QDQ ONNX)
    summary["accuracy_aware"] = {}
    for target, name, fmt in (("raspberry-pi-4-accuracy-aware", "int8", "TFLite"),
                              ("jetson-orin-nano-accuracy-aware", "qdq-int8", "QDQ ONNX")):
        a8 = artifact(load_report(args.out, target), name)
        aw = a8["artifact_metadata"]["accuracy_aware"]
        gates = {g["gate"]: g["limit"] for g in a8["gates"]}
        print(f"\nAccuracy-aware {fmt} int8 (gates {gates}): {'passed' if aw['passed'] else 'GAVE UP'} after "
              f"{aw['steps_used']} step(s), {aw['seconds']:.0f} s")
        for st in aw["steps"]:
            r = st["result"]
            if st["step"] is None:
                print(f"  skipped {st['added']}: {st['error']}")
                continue
            what = "all int8" if st["step"] == 0 else f"+float {st['added'][0].split(';')[0]}"
            print(f"  step {st['step']}: {what}: accuracy {pct(r['metrics'].get('accuracy'))} "
                  f"(delta {r['deltas'].get('accuracy'):+.2f}), agreement {r['agreement'].get('top1_agreement'):.4f}, "
                  f"{'pass' if st['passed'] else 'miss'}")
        print(f"  kept float: {aw['float_layers_keras']}")
        c = aw["cost"]
        print(f"  cost: size {c['size_bytes_all_int8'] / 1e6:.3f} -> {c['size_bytes_final'] / 1e6:.3f} MB"
              + (f", latency p50 {c['latency_p50_ms_all_int8']:.2f} -> {c['latency_p50_ms_final']:.2f} ms (build's measurement)"
                 if "latency_p50_ms_final" in c else ""))
        summary["accuracy_aware"][fmt] = {"passed": aw["passed"], "steps_used": aw["steps_used"],
                                          "float_layers": aw["float_layers_keras"], "cost": c,
                                          "final_accuracy": a8["metrics"]["accuracy"], "final_delta": a8['deltas']['accuracy']}
        if fmt == "TFLite":
            aa_int8 = args.out / target / a8["path"]

    # ---- student
    st = load_report(args.out, "raspberry-pi-zero-student")
    s8 = artifact(st, "int8")
    srep = s8["passes"][0]
    student_int8 = args.out / "raspberry-pi-zero-student" / s8["path"]
    summary["swap"] = {"teacher": srep["teacher"], "student": srep["student"],
                       "student_int8_accuracy": s8["metrics"]["accuracy"], "student_int8_delta": s8['deltas']['accuracy'],
                       "student_int8_size_bytes": s8["size_bytes"], "original_int8_size_bytes": ptq["size_bytes"],
                       "original_int8_accuracy": ptq["metrics"]["accuracy"], "seconds": srep["seconds"]}
    s = summary["swap"]
    print(f"\nSwap to MobileNet v1 0.25/128 by distillation ({len(srep['history'])} epochs, {srep['seconds']:.0f} s): "
          f"Keras teacher {pct(srep['teacher']['val_accuracy'])} ({srep['teacher']['params'] / 1e6:.2f} M params) "
          f"vs student {pct(srep['student']['val_accuracy'])} ({srep['student']['params'] / 1e6:.3f} M params)")
    print(f"  int8 TFLite: student {pct(s['student_int8_accuracy'])} ({s['student_int8_size_bytes'] / 1e6:.3f} MB) vs "
          f"original {pct(s['original_int8_accuracy'])} ({s['original_int8_size_bytes'] / 1e6:.3f} MB)")

    # ---- latency, side by side
    from edgecv.config import load_recipe
    from edgecv.data.index import build_index

    recipe = load_recipe(RECIPE)
    index = build_index(recipe.data, recipe.resolve)
    index_paths = [x.path for x in index.val[:32]]
    imgs224 = load_batch(index_paths, tuple(recipe.input.size), recipe.input.resize)
    imgs128 = load_batch(index_paths, (128, 128), recipe.input.resize)
    models = {
        "original int8 (MobileNetV2 1.0/224)": (base_int8, imgs224),
        "pruned int8": (pruned_int8, imgs224),
        "QAT int8": (args.out / "raspberry-pi-4-qat" / q8["path"], imgs224),
        "accuracy-aware int8": (aa_int8, imgs224),
        "student int8 (MobileNet v1 0.25/128)": (student_int8, imgs128),
        "original fp32": (args.out / "raspberry-pi-4" / artifact(base, "fp32")["path"], imgs224),
    }
    lat = side_by_side_latency(models, args.threads, args.rounds, args.runs)
    summary["latency"] = {"threads": args.threads, "rounds": args.rounds, "runs_per_round": args.runs, "models": lat}
    print(f"\nLatency, batch 1, ai_edge_litert {args.threads} threads, {args.rounds} interleaved rounds x {args.runs} "
          "invocations per model, median (p90) over all invocations:")
    for name, v in lat.items():
        size = models[name][0].stat().st_size
        print(f"  {name:40s} {v['median_ms']:7.2f} ms ({v['p90_ms']:.2f})  {size / 1e6:6.3f} MB")
    o, sv = lat["original int8 (MobileNetV2 1.0/224)"], lat["student int8 (MobileNet v1 0.25/128)"]
    print(f"  student vs original int8: {o['median_ms'] / sv['median_ms']:.1f}x faster, "
          f"{ptq['size_bytes'] / s8['size_bytes']:.1f}x smaller")
    out_json = args.out / f"passes_flowers_threads{args.threads}.json"
    out_json.write_text(json.dumps(summary, indent=2, default=float) + "\n")
    print(f"\nsummary written to {out_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
