"""A task that exists only in tests: find a bright spot (two outputs) on synthetic images.

It is the proof that the task seam holds: it is named in a recipe as `seam_task:SpotTask`, reads
its targets from an annotation CSV, trains, and builds for TFLite int8, ONNX and SavedModel
targets with no code of its own outside tests/.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from edgecv.data.index import DataIndex, Sample
from edgecv.tasks.base import ColumnSpec, DeviceSet, GateSpec, MetricSpec, OutputSpec, Task, drop_gate

POSITION_ERROR = MetricSpec("position_error", False, "", "mean |predicted - true| spot position, fraction of the image",
                            ".4f", 0.01)
INTENSITY_ERROR = MetricSpec("intensity_error", False, "", "mean |predicted - true| spot brightness (0..1)", ".4f")
POSITION_SHIFT = MetricSpec("position_shift", False, "", "mean |artifact - float| position", ".4f")


def make_spot_data(root: Path, count: int = 80, size: int = 32, seed: int = 0) -> tuple[Path, Path]:
    """Images of a bright square on noise, and spots.csv: file, x, y (0..1), intensity (0..1)."""
    rng = np.random.default_rng(seed)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(count):
        img = rng.normal(40, 10, (size, size, 3))
        x, y = rng.integers(4, size - 4, 2)
        level = rng.uniform(0.4, 1.0)
        img[y - 3:y + 3, x - 3:x + 3] = 255 * level
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(images / f"{i:03d}.png")
        rows.append((f"{i:03d}.png", x / size, y / size, level))
    ann = root / "spots.csv"
    with ann.open("w", newline="") as f:
        csv.writer(f).writerows([("file", "x", "y", "intensity"), *rows])
    return images, ann


class SpotTask(Task):
    name = "spot"
    description = "where the bright spot is (x, y) and how bright (tests only)"
    metrics = (POSITION_ERROR, INTENSITY_ERROR)
    agreement_metrics = (POSITION_SHIFT,)
    gates = (GateSpec("position_error_max", "metrics", "position_error", "max"), drop_gate(POSITION_ERROR),
             GateSpec("position_shift_max", "agreement", "position_shift", "max"))
    quality_metric = "position_error"
    columns = (ColumnSpec("pos", "pos err", "metrics", "position_error", ".4f"),
               ColumnSpec("shift", "pos shift", "agreement", "position_shift", ".4f"))

    def read_data(self, recipe) -> DataIndex:
        folder, ann = recipe.resolve(recipe.data.root), recipe.resolve(recipe.data.annotations)
        with ann.open() as f:
            rows = list(csv.DictReader(f))
        samples = [Sample(str(folder / r["file"]), None, [float(r["x"]), float(r["y"]), float(r["intensity"])])
                   for r in rows]
        n_val = int(len(samples) * recipe.data.val_fraction)
        return DataIndex({"outputs": ["position", "intensity"]}, samples[n_val:], samples[:n_val])

    def read_device_set(self, data, annotations, info, options) -> DeviceSet:
        """`edgecv validate/bench ARTIFACT --data IMAGES --annotations spots.csv` (labels: x, y, intensity)."""
        if annotations is None:
            return DeviceSet([str(p) for p in sorted(Path(data).glob("*.png"))], None, info,
                             options.get("resize") or "resize")
        with Path(annotations).open() as f:
            rows = list(csv.DictReader(f))
        return DeviceSet([str(Path(data) / r["file"]) for r in rows],
                         [[float(r["x"]), float(r["y"]), float(r["intensity"])] for r in rows], info,
                         options.get("resize") or "resize")

    def device_info(self, folder) -> dict:
        names = (Path(folder) / "outputs.txt").read_text().split() if folder else ["position", "intensity"]
        return {"outputs": names}

    def targets(self, samples, info) -> np.ndarray:
        return np.array([s.target for s in samples], np.float32)

    def output_spec(self, info):
        return [OutputSpec("position", ("N", 2), "float32", "spot centre (x, y) in [0, 1] of the image"),
                OutputSpec("intensity", ("N", 1), "float32", "spot brightness 0..1")]

    def build_head(self, features, recipe, info):
        from edgecv._keras import keras

        flat = keras.layers.Flatten(name="spot_flat")(features)
        position = keras.layers.Dense(2, activation="sigmoid", name="position")(flat)
        pooled = keras.layers.GlobalMaxPooling2D(name="spot_pool")(features)
        intensity = keras.layers.Dense(1, activation="sigmoid", name="intensity")(pooled)
        return [position, intensity]

    def loss(self, recipe):
        return ["mae", "mae"]

    def keras_target(self, y, info):
        return (y[:, :2], y[:, 2:3])

    def evaluate(self, outputs, targets, info) -> dict:
        t = np.asarray(targets)
        return {"position_error": float(np.abs(outputs["position"] - t[:, :2]).mean()),
                "intensity_error": float(np.abs(outputs["intensity"][:, 0] - t[:, 2]).mean())}

    def agreement(self, reference, candidate, info) -> dict:
        return {"position_shift": float(np.abs(candidate["position"] - reference["position"]).mean())}

    def sidecars(self, info):
        return {"outputs.txt": "".join(f"{n}\n" for n in info["outputs"])}
