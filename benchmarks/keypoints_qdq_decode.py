"""QDQ int8 ONNX of a heatmap keypoint model with the soft-argmax decode int8 (edgecv before issue
23) and kept float (now): NME and the distance of every point from the float model's, on the
build's validation split, the same model, calibration and options (jetson-orin-nano's qdq-int8:
bias correction on).

  nice -n 5 python benchmarks/keypoints_qdq_decode.py examples/face-keypoints/edgecv.yaml --out build
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe", type=Path)
    ap.add_argument("--out", type=Path, default=Path("build"), help="the build folder holding the trained model")
    a = ap.parse_args()

    from edgecv.config import load_recipe
    from edgecv.config.target import ArtifactSpec
    from edgecv.data.calibration import select_calibration
    from edgecv.data.images import load_batch
    from edgecv.exporters import ExportContext, get_exporter
    from edgecv.models.build import TaskModel
    from edgecv.orchestrator.keys import index_key, train_key
    from edgecv.runtimes import load_runtime
    from edgecv.tasks.keypoint_heads import SoftArgmax2D
    from edgecv.tasks.keypoints import point_agreement

    recipe = load_recipe(a.recipe)
    task = recipe.make_task()
    index = task.read_data(recipe)
    folder = a.out / ".cache" / "train" / train_key(recipe, index_key(recipe)) / "model"
    if not folder.is_dir():
        raise SystemExit(f"no trained model at {folder}: run `edgecv build -r {a.recipe} -o {a.out}` first")
    model = TaskModel.load(folder)
    size = tuple(recipe.input.size)
    images = load_batch([s.path for s in index.val], size, recipe.input.resize)
    targets = task.targets(index.val, index.info)
    ref = model.predict(images)
    calib = select_calibration(index, recipe.calibration, recipe.resolve, task.stratum)

    def calibration():
        for p in calib.paths:
            yield load_batch([p], size, recipe.input.resize)

    rows = {"float": {"nme": task.evaluate(ref, targets, index.info)["nme"]}, "load1_start": os.getloadavg()[0]}
    spec = ArtifactSpec(name="qdq-int8", format="onnx", precision="int8")
    for label, keep in (("decode int8 (f0987d1)", False), ("decode float (now)", True)):
        SoftArgmax2D.int8_keep_float = keep
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            art = get_exporter("onnx")().export(model, spec, Path(tmp), ExportContext(recipe.name, calibration))
            with load_runtime(art.path) as rt:
                out = rt.predict(images)
        agree = point_agreement(ref["keypoints"], out["keypoints"], size)
        d = np.linalg.norm((np.asarray(out["keypoints"]) - np.asarray(ref["keypoints"])) * np.array(size[::-1]), axis=-1)
        worst = np.unravel_index(int(np.argmax(d)), d.shape)
        rows[label] = {"nme": task.evaluate(out, targets, index.info)["nme"], **agree,
                       "points_over_16px": int((d > 16).sum()), "worst": {"image": index.val[worst[0]].path,
                                                                        "point": int(worst[1])},
                       "kept_float": art.metadata.get("kept_float"), "seconds": round(time.perf_counter() - t0, 1)}
        print(label, json.dumps(rows[label]), flush=True)
    rows["load1_end"] = os.getloadavg()[0]
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
