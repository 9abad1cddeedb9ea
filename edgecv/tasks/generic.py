"""Any model's named outputs, judged by agreement with the float model only.

For a user's model whose outputs edgecv has no metric for (features, several heads, a regressor):
each named output is compared with the float model's as Polygraphy does (max/mean absolute error,
cosine similarity, SNR) and gated by the `output_*` gates and `tolerances: {OUTPUT: {atol, rtol}}`.
Calibration and validation images come from an unlabelled folder. Nothing is trained, so passes
that train (prune, qat, swap) do not apply.

On any machine (`edgecv validate/bench ARTIFACT --task generic --data DIR`) a third party's file of
any outputs runs on the folder's images: its outputs' shapes and value ranges, and its latency on
real photos; no metric (nothing says what the outputs mean).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from edgecv.tasks.base import DeviceSet, OutputSpec, Task
from edgecv.tasks.classification_folder import list_images
from edgecv.data.unlabelled import unlabelled_index
from edgecv.errors import ConfigError


class Generic(Task):
    name = "generic"
    description = "a user's model with any named outputs; judged per output against the float model"
    needs_targets = False

    def read_data(self, recipe):
        if recipe.model.path is None:
            raise ConfigError("task generic judges a model you bring: give model.path (edgecv export MODEL)")
        facts = recipe.model_facts()
        return unlabelled_index(recipe.data, recipe.resolve, {"outputs": facts["outputs"],
                                                               "model_file": facts["model_file"]})

    def targets(self, samples: Sequence, info: dict):
        return None

    def output_spec(self, info: dict) -> List[OutputSpec]:
        return [OutputSpec(o["name"], tuple(o["shape"]), "float32", "the model's own output")
                for o in info.get("outputs", [])]

    def select_outputs(self, outputs: Dict[str, np.ndarray], info: dict) -> Dict[str, np.ndarray]:
        """The float model's named outputs; on a device, with no record of them, every output."""
        return super().select_outputs(outputs, info) if info.get("outputs") else dict(outputs)

    # ---- on any machine: a folder of images, no targets -------------------------------------------
    def read_device_set(self, data: Path, annotations, info: dict, options: dict) -> DeviceSet:
        _, items = list_images(Path(data))  # class sub-folders too: every image, no label
        return DeviceSet([str(p) for p, _ in items], None, dict(info),
                         options.get("resize") or info.get("resize") or "center_crop")

    def device_report(self, evaluation: DeviceSet, result, outputs: Dict[str, np.ndarray], options: dict) -> dict:
        """The images and each output's shape and value range over them (no metric: nothing says
        what the outputs mean)."""
        summary = {}
        for name, value in (outputs or {}).items():
            v = np.asarray(value)
            finite = v[np.isfinite(v)] if np.issubdtype(v.dtype, np.floating) else v
            summary[name] = {"shape": [int(d) for d in v.shape], "dtype": v.dtype.name,
                             **({"min": float(finite.min()), "max": float(finite.max()), "mean": float(finite.mean())}
                                if finite.size else {})}
        return {"images": evaluation.paths, "outputs": summary, "metrics": result.metrics,
                "skipped": evaluation.skipped}

    def print_device_report(self, report: dict, artifact, data, out, err, options: dict) -> None:
        out.print(f"{artifact.name} on {len(report['images'])} images from {data} (task generic: outputs only, no "
                  "metric)", highlight=False)
        for name, o in report["outputs"].items():
            span = f", values {o['min']:.4g} .. {o['max']:.4g}, mean {o['mean']:.4g}" if "min" in o else ""
            out.print(f"  {name} {o['shape']} {o['dtype']}{span}", highlight=False)
        if report["skipped"]:
            err.print(f"skipped {len(report['skipped'])}; first: {report['skipped'][0][0]}: {report['skipped'][0][1]}",
                      highlight=False)
