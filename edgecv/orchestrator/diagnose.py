"""`edgecv diagnose`: find an int8 artifact's float model and calibration set in its build, then rank
its layers by quantization error (see `edgecv.formats.tflite.diagnose`).

An artifact alone does not hold the float model it was converted from; its build folder does:
manifest.json names the stage key of the model (`made_from`), the cache keeps that model, and
calibration.txt lists the calibration images. So diagnose works on artifacts of an edgecv build.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgecv.errors import InputError
from edgecv.files import tree_sha256
from edgecv.orchestrator.cache import StageCache
from edgecv.data.images import load_batch
from edgecv.formats.tflite.diagnose import diagnose
from edgecv.formats.tflite.runtime import import_interpreter


def locate(artifact: Path) -> dict:
    """The manifest entry, model folder and calibration files for an artifact of an edgecv build."""
    artifact = Path(artifact).resolve()
    if not artifact.is_file():
        raise InputError(f"{artifact}: no such file; give an int8 .tflite of an edgecv build folder")
    target_dir = artifact.parent
    manifest_path = target_dir / "manifest.json"
    if not manifest_path.is_file():
        raise InputError(f"{artifact}: not inside an edgecv build folder (no manifest.json beside it). diagnose "
                         "needs the float model the artifact came from: run it on build/<target>/<artifact>.tflite")
    manifest = json.loads(manifest_path.read_text())
    if "recipe_dir" not in manifest:
        raise InputError(f"{manifest_path} was written by an older edgecv: rebuild the target (it is cached) and retry")
    entry = next((a for a in manifest["artifacts"] if a["path"] == artifact.name), None)
    if entry is None:
        raise InputError(f"{artifact.name} is not listed in {manifest_path}")
    actual = tree_sha256(artifact)
    if actual != entry.get("sha256"):  # the model and calibration found below made the listed file, not this one
        raise InputError(f"{artifact.name} does not match {manifest_path.name} (sha256 {actual[:12]}..., the build "
                         f"wrote {str(entry.get('sha256'))[:12]}...): it was changed or replaced after the build, so "
                         "nothing here says how it was made; rebuild the target (edgecv build) and diagnose the file "
                         "it writes")
    cache = target_dir.parent / ".cache"
    entries = StageCache(cache)  # verified: a damaged model is reported, not loaded
    model_dir = next((hit / "model" for hit in (entries.get(stage, entry["made_from"]) for stage in ("passes", "train"))
                      if hit is not None), None)
    if model_dir is None:
        raise InputError(f"the float model of {artifact.name} (key {entry['made_from'][:12]}) is no longer (intact) "
                         f"in {cache}: rebuild the target (edgecv build) and diagnose again")
    recipe_dir = Path(manifest["recipe_dir"])
    lines = (target_dir / "calibration.txt").read_text().split()
    files = [p if Path(p).is_absolute() else str((recipe_dir / p).resolve()) for p in lines]
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise InputError(f"{len(missing)} calibration image(s) listed in calibration.txt are gone, e.g. {missing[0]}")
    report = json.loads((target_dir / "report.json").read_text()) if (target_dir / "report.json").is_file() else {}
    art = next((a for a in report.get("artifacts", []) if a.get("path") == artifact.name), {})
    if art and art.get("precision") != "int8":
        raise InputError(f"{artifact.name} is {art.get('precision')}: diagnose measures int8 quantization error")
    io_dtype = (art.get("artifact_metadata") or {}).get("io_dtype", "uint8")
    _check_int8_tflite(artifact)
    return {"model_dir": model_dir, "calibration": files, "resize": manifest["input"]["resize"], "io_dtype": io_dtype,
            "sha256": actual, "made_from": entry["made_from"]}


def _check_int8_tflite(artifact: Path) -> None:
    """The file itself: a TFLite model with int8 tensors (what the debugger's re-quantization mirrors)."""
    from types import SimpleNamespace


    try:
        interp = import_interpreter(SimpleNamespace())(model_path=str(artifact))
    except (ValueError, RuntimeError) as e:
        raise InputError(f"{artifact.name} is not a TFLite model this runtime can read: {str(e)[:300]}") from None
    if not any(d["dtype"].__name__ == "int8" for d in interp.get_tensor_details()):
        raise InputError(f"{artifact.name} has no int8 tensor: diagnose measures int8 quantization error")


def diagnose_artifact(artifact: Path, samples: int = 32):
    from edgecv.models.build import TaskModel

    where = locate(artifact)
    model = TaskModel.load(where["model_dir"])

    def calibration():
        for f in where["calibration"]:
            yield load_batch([f], model.input_size, where["resize"])

    d = diagnose(model.keras_model, calibration, debug_samples=samples, io_dtype=where["io_dtype"],
                 output_names=model.output_names)
    d.artifact_sha256, d.made_from = where["sha256"], where["made_from"]
    return d
