"""`edgecv build ... --device user@host`: after the build, benchmark every artifact the device's
`edgecv bench` can run on the device itself, with the validation split's images and labels, and
merge the results into each target's report (gates re-checked with the device's numbers)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, List, Optional
from edgecv.remote.bench import bench_on_host, copy_split
from edgecv.report.merge import merge_results
from edgecv.results import load_report

# formats `edgecv bench` runs on a device install (SavedModel needs TensorFlow, Core ML macOS, and
# TensorRT engines are built and measured on the device by `edgecv engine build`)
DEVICE_FORMATS = ("tflite", "onnx")


def bench_build_on_device(build, result, host: str, remote_python: str = "python3", identity: Optional[Path] = None,
                          known_hosts: Optional[Path] = None, log: Callable[[str], None] = print) -> List[str]:
    """Bench each built artifact of each target on `host` and merge; returns gate failure messages."""
    import json

    failures: List[str] = []
    with tempfile.TemporaryDirectory(prefix="edgecv-device-") as tmp:
        images = copy_split(build.index.val, build.index.info.get("class_names"), Path(tmp) / "validation")
        for outcome in result.outcomes:
            if outcome.report_path is None or not outcome.report_path.is_file():
                continue
            report = load_report(json.loads(outcome.report_path.read_text()))
            target = next(t for t in build.targets if t.name == outcome.target)
            options = {"threads": target.runtime.threads, "batch": target.runtime.batches,
                       "resize": build.recipe.input.resize}
            results = []
            for a in report.artifacts:
                if a.status != "ok" or a.format not in DEVICE_FORMATS or not a.path:
                    continue
                log(f"{outcome.target}/{a.name}: benchmarking on {host}")
                results.append(bench_on_host(outcome.report_path.parent / a.path, host, images, False, options,
                                             None, remote_python, identity, known_hosts, log))
            if results:
                failures += merge_results(outcome.report_path, results)
                log(f"{outcome.target}: merged {len(results)} device result(s) into {outcome.report_path}")
            else:
                log(f"{outcome.target}: no artifact the device's `edgecv bench` runs ({', '.join(DEVICE_FORMATS)})")
    return failures
