"""What an app needs beside the model, written in one place: the task's files (labels.txt ...),
preprocessing.json (the pixel contract, resize policy, normalization inside the model, the named
outputs) and the calibration list. The build writes them into each target folder; the TensorRT
device bundle reuses the same function.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from edgecv.files import atomic_write_text

PAD_VALUE = 0  # letterbox padding (matches edgecv.data.images.PAD_VALUE, kept here to stay TF- and Pillow-free)
PIXEL_CONTRACT = {"uint8": "pixel value 0..255", "int8": "pixel value - 128", "float32": "pixel value 0.0..255.0"}


def preprocessing(task, info: dict, input_size, resize: str, normalization: dict,
                  artifact_sizes: Optional[dict] = None) -> dict:
    """preprocessing.json's content; `artifact_sizes` names artifacts whose input size differs (a
    swapped backbone)."""
    h, w = input_size
    pre = {
        "task": task.name,
        "input": {"color": "RGB", "layout": "NHWC", "height": int(h), "width": int(w)},
        "pixel_contract": PIXEL_CONTRACT,
        "resize": resize, "interpolation": "bilinear", "pad_value": PAD_VALUE,
        "normalization_inside_model": normalization,
        "outputs": {o.name: o.to_json() for o in task.output_spec(info)},
    }
    pre.update(task.preprocessing_fields(info))
    if artifact_sizes:
        pre["artifact_input_sizes"] = {name: {"height": s[0], "width": s[1]} for name, s in artifact_sizes.items()}
    return pre


def write_sidecars(out_dir: Path, task, info: dict, preprocessing_json: dict, calibration=None,
                   relative_to: Optional[Path] = None) -> list[str]:
    """Write the task's files, preprocessing.json and (with `calibration`) calibration.txt/.json;
    returns the names written."""
    out_dir = Path(out_dir)
    names = []
    for name, text in task.sidecars(info).items():
        atomic_write_text(out_dir / name, text)
        names.append(name)
    atomic_write_text(out_dir / "preprocessing.json", json.dumps(preprocessing_json, indent=2) + "\n")
    names.append("preprocessing.json")
    if calibration is not None:
        calibration.write(out_dir, relative_to=relative_to)
        names += ["calibration.txt", "calibration.json"]
    return names
