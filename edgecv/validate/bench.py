"""`edgecv bench`: measure any artifact on the machine it runs on (a Pi, a Jetson, a phone shell, a VM).

Uses the same runtimes, latency and comparator code as the build, imports no TensorFlow for
TFLite/ONNX artifacts, and records the device so results can be merged into a build's report.
"""

from __future__ import annotations

import platform
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

import edgecv
from edgecv.environment import describe_environment
from edgecv.build_folder import sidecar_input_size
from edgecv.data.image_set import image_set_id
from edgecv.errors import InputError
from edgecv.files import tree_sha256
from edgecv.runtimes.base import detect_format
from edgecv.validate.device import artifact_task, evaluation_set, input_range_options, ran_here
from edgecv.validate.evaluate import EvaluationSet, evaluate_artifact

BENCH_SCHEMA = "edgecv.bench/1"


def describe_device() -> dict:
    env = describe_environment()
    env.update({"hostname": socket.gethostname(), "os": f"{platform.system()} {platform.release()}"})
    try:  # Jetson / Raspberry Pi boards name themselves here
        env["board"] = Path("/proc/device-tree/model").read_text().strip("\x00\n ")
    except OSError:
        pass
    return env


MAX_BATCH = 4096
MAX_THREADS = 1024


def check_bench_options(threads: Optional[int] = None, batches: Sequence[int] = (), runs: int = 1,
                        seconds: float = 0.0) -> None:
    """--threads, --batch, --runs and --seconds as a measurement can use them: a batch of -1 would
    time nothing and report a negative throughput."""
    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise InputError(f"--threads {threads}: give a number of CPU threads from 1 to {MAX_THREADS} (or leave it out "
                         "for the runtime's default)")
    bad = [b for b in batches if not 1 <= b <= MAX_BATCH]
    if bad or not batches:
        raise InputError(f"--batch {', '.join(map(str, bad)) or '(none)'}: a batch size is a whole number from 1 to "
                         f"{MAX_BATCH}")
    if runs < 1:
        raise InputError(f"--runs {runs}: time at least 1 run")
    if not 0 <= seconds < float("inf"):
        raise InputError(f"--seconds {seconds}: give 0 or more seconds")


def bench(artifact: Path, data: Optional[Path], random_inputs: bool, threads: Optional[int], batches: Sequence[int],
          labels_file: Optional[Path] = None, resize_policy: Optional[str] = None, min_runs: int = 50,
          min_seconds: float = 2.0, seed: int = 0, runtime_options: Optional[dict] = None,
          annotations: Optional[Path] = None, input_size: Optional[tuple] = None, warn=None,
          task_name: Optional[str] = None, input_range: Optional[str] = None) -> dict:
    """`input_size`: for a model that accepts any size (else the size preprocessing.json beside it
    records); `annotations`: the annotation file of --data for a task that needs one (keypoints).
    With --data, the artifact's task metrics on it come from the one evaluation kernel. `task_name`
    (--task): a third party's file's task; `input_range` (--input-range LO,HI): what a third party's
    float input takes for pixels 0..255."""
    check_bench_options(threads, batches, min_runs, min_seconds)

    fmt = detect_format(artifact)
    if data is None and not random_inputs:
        raise InputError("give --data DIR (images, or class sub-folders for accuracy) or --random")
    extra, check_input = input_range_options(artifact, input_range, warn if data is not None else None)
    options = {**(runtime_options or {}), "input_size": input_size or sidecar_input_size(artifact), **extra}

    def check_batches(rt) -> None:
        check_input(rt)
        other = [b for b in batches if rt.fixed_batch and b != rt.fixed_batch]
        if other:
            raise InputError(f"{artifact.name} has a fixed batch size of {rt.fixed_batch}: run with --batch "
                             f"{rt.fixed_batch} (not {', '.join(map(str, other))})")

    task, held = None, {}
    if data is None:
        evaluation = EvaluationSet(None)

        def latency_inputs(rt) -> np.ndarray:
            check_batches(rt)
            h, w = rt.input_size
            return np.random.default_rng(seed).integers(0, 256, (16, h, w, 3), dtype=np.uint8)
    else:
        task, info = artifact_task(artifact, annotations, Path(data), task_name)
        evaluation, held = evaluation_set(task, lambda: task.read_device_set(Path(data), annotations, info, {
            "artifact": artifact, "labels": labels_file, "resize": resize_policy, "warn": warn}), data,
            check=check_batches)
        loaded = {}
        load = evaluation.images
        evaluation.images = lambda rt: loaded.setdefault("images", load(rt))

        def latency_inputs(rt) -> np.ndarray:  # the first images of --data
            return loaded["images"][:32]

    # loads the artifact (its load time is the cold start), evaluates it on --data, then times it
    result = evaluate_artifact(artifact, task, evaluation, fmt=fmt, threads=threads, batches=batches,
                               runtime_options=options, latency_images=latency_inputs, min_runs=min_runs,
                               min_seconds=min_seconds)
    ran_here(result)
    m = result.model_dump(mode="json")
    measured = task.bench_fields(held["set"], result) if task is not None and result.metrics else {}
    return {
        "schema": BENCH_SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "edgecv_version": edgecv.__version__,
        "artifact": {"path": str(artifact), "name": artifact.name, "format": fmt, "sha256": tree_sha256(artifact),
                     "size_bytes": m["size_bytes"], "gzip_bytes": m["gzip_bytes"]},
        "device": describe_device(),
        "inputs": "random uint8" if data is None else str(data), "input_size": m["input_size"],
        "threads": threads, "runtime": m["runtime"], "session_options": m.get("session_options"),
        "load_seconds": m["load_seconds"],
        "first_inference_ms": m.get("first_inference_ms"), "memory": m["memory"],
        "latency": m["latency"], "latency_by_batch": m["latency_by_batch"], "accuracy": measured.get("accuracy"),
        "metrics": measured.get("metrics", {}),
        # what the artifact answered on --data: each output's shape (a third party's file's outputs)
        "outputs": {name: [int(d) for d in np.shape(v)] for name, v in (evaluation.outputs or {}).items()},
        # which images the metrics are of (by content): a merge judges them only on the build's own split
        "eval_set": image_set_id(held["set"].paths) if measured and held.get("set") is not None else None,
    }
