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
from edgecv.report.environment import describe_environment
from edgecv.validate.measure import measure_artifact

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
    from edgecv.errors import InputError

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
          annotations: Optional[Path] = None, input_size: Optional[tuple] = None, warn=None) -> dict:
    """`input_size`: for a model that accepts any size (else the size preprocessing.json beside it
    records); `annotations`: keypoint annotations for --data (gives NME)."""
    from edgecv.build_folder import sidecar_input_size
    from edgecv.errors import InputError
    from edgecv.runtimes.base import detect_format
    from edgecv.validate.folder import default_labels, evaluate_folder, read_labels
    from edgecv.validate.keypoint_folder import keypoint_inputs, keypoint_sidecar

    check_bench_options(threads, batches, min_runs, min_seconds)
    keypoint_info = keypoint_sidecar(artifact)
    if annotations is not None or keypoint_info is not None:  # a keypoint artifact: NME instead of accuracy
        policy = resize_policy or (keypoint_info or {}).get("resize") or "resize"
    else:
        resize_policy = resize_policy or "center_crop"

    fmt = detect_format(artifact)
    if data is None and not random_inputs:
        raise InputError("give --data DIR (images, or class sub-folders for accuracy) or --random")
    found: dict = {}
    options = {**(runtime_options or {}), "input_size": input_size or sidecar_input_size(artifact)}

    def latency_inputs(rt) -> np.ndarray:
        """Runs once the artifact is loaded (so load time is the cold start): accuracy, then inputs."""
        other = [b for b in batches if rt.fixed_batch and b != rt.fixed_batch]
        if other:
            raise InputError(f"{artifact.name} has a fixed batch size of {rt.fixed_batch}: run with --batch "
                             f"{rt.fixed_batch} (not {', '.join(map(str, other))})")
        h, w = rt.input_size
        if data is None:
            return np.random.default_rng(seed).integers(0, 256, (16, h, w, 3), dtype=np.uint8)
        from edgecv.data.images import load_batch

        if annotations is not None or keypoint_info is not None:
            return keypoint_inputs(rt, data, annotations, keypoint_info, policy, found)
        names = read_labels(labels_file or default_labels(artifact)) if (labels_file or default_labels(artifact)) else None
        ev = evaluate_folder(rt, data, names, resize_policy, warn=warn)
        found["eval"] = ev
        return load_batch(ev.images[:32], (h, w), resize_policy)

    m = measure_artifact(artifact, fmt, None, threads, batches, options, latency_images=latency_inputs,
                         min_runs=min_runs, min_seconds=min_seconds)
    m.pop("_outputs", None)
    ev = found.get("eval")
    accuracy, metrics = None, {}
    if ev is not None and ev.accuracy is not None:
        accuracy = {"top1": ev.accuracy, "top5": ev.top5_accuracy, "images": len(ev.images),
                    "skipped": len(ev.skipped or [])}
        metrics = {"accuracy": ev.accuracy, **({"top5_accuracy": ev.top5_accuracy} if ev.top5_accuracy is not None else {})}
    if "keypoints" in found:
        metrics = {k: v for k, v in found["keypoints"].metrics.items() if isinstance(v, (int, float))}
    from edgecv.data.image_set import image_set_id

    measured_on = ev.images if ev is not None and accuracy is not None else \
        found["keypoints"].images if "keypoints" in found else None
    from edgecv.files import tree_sha256

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
        "latency": m["latency"], "latency_by_batch": m["latency_by_batch"], "accuracy": accuracy,
        "metrics": metrics,
        # which images the metrics are of (by content): a merge judges them only on the build's own split
        "eval_set": image_set_id(measured_on) if measured_on else None,
    }
