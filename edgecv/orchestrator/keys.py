"""Stage keys: each is a hash of everything the stage reads, computed without doing the work.

Keys come from cheap facts (file sizes and modification times, recipe sections, target specs,
library versions), so `edgecv build --dry-run` can say which stages would run without decoding an
image or importing TensorFlow.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import edgecv
from edgecv.orchestrator.cache import stable_hash
from edgecv.data.images import IMAGE_EXTENSIONS
from edgecv.files import file_key, walk_files
from edgecv.environment import library_versions
from edgecv.exporters import get_exporter
from edgecv.models.user_model import model_digest

# Libraries whose version can change what a stage produces
TRAIN_LIBS = ("tensorflow", "tf-keras")
EXPORT_LIBS = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert", "tf2onnx", "onnx",
               "onnxruntime", "coremltools", "tensorrt")


def versions(names) -> dict:
    v = library_versions()
    return {"edgecv": edgecv.__version__, **{n: v.get(n, "absent") for n in names}}


def folder_digest(root: Path) -> str:
    """Paths, sizes and mtimes of every image file under root (a stat per file, no decoding). Walks
    as the index does: links to class folders followed once, links inside them not; a file that
    cannot be stat'ed (broken link, loop) counts by its name."""
    h = hashlib.sha256()
    root = Path(root)
    if not root.is_dir():
        return "missing:" + str(root)
    tops = [root] + sorted(p for p in root.iterdir() if p.is_symlink() and p.is_dir() and not p.name.startswith("."))
    for top in tops:
        for p in walk_files(top):
            if p.suffix.lower() in IMAGE_EXTENSIONS:
                try:
                    st = p.stat()
                    h.update(os.fsencode(p) + f"\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
                except OSError:
                    h.update(os.fsencode(p) + b"\tunreadable\n")
    return h.hexdigest()




USER_MODEL_KEYS = ("path", "preprocess", "architecture", "labels", "label_offset", "custom_objects",
                   "unsafe_deserialization")


def user_model_fields(recipe) -> dict:
    """A user's model section with its files by content: the model's bytes and its labels'."""
    m = recipe.model
    fields = m.model_dump(mode="json", exclude={"backbone", "alpha", "weights", "head"})
    fields["path"] = model_digest(recipe.resolve(m.path))
    if m.labels is not None and recipe.resolve(m.labels).is_file():
        fields["labels"] = file_key(recipe.resolve(m.labels))
    return fields


def task_options_key(recipe) -> dict:
    """task_options with a brought detector's anchors file by content (another array at the same path
    must not reuse the index); other options as they are, so existing keys stay what they were."""
    options = dict(recipe.task_options)
    anchors = options.get("anchors")
    if isinstance(anchors, str) and recipe.resolve(anchors).is_file():
        options["anchors"] = {"file_sha256": file_key(recipe.resolve(anchors))}
    return options


def index_key(recipe) -> str:
    d = recipe.data
    roots = [d.root] if d.root is not None else [d.train, d.val]
    annotations = file_key(recipe.resolve(d.annotations)) if d.annotations and recipe.resolve(d.annotations).is_file() \
        else None
    # a user's model's outputs and labels are part of the index's info
    user_model = {"user_model": user_model_fields(recipe)} if recipe.model.path is not None else {}
    data = d.model_dump(mode="json")
    if data.get("group_by") is None:  # keys of recipes without it stay what they were
        data.pop("group_by", None)
    return stable_hash({"stage": "index", "task": recipe.task, "task_options": task_options_key(recipe),
                        "data": data, "annotations": annotations, **user_model,
                        "folders": [folder_digest(recipe.resolve(r)) for r in roots], "edgecv": edgecv.__version__})


def train_key(recipe, idx_key: str) -> str:
    sections = recipe.model_dump(mode="json", include={"task", "task_options", "input", "model", "augment", "train"})
    weights = recipe.model.weights
    if recipe.model.path is not None:  # loaded, not trained: keyed by the model file's bytes
        sections = {"task": recipe.task, "task_options": task_options_key(recipe),
                    "input": sections["input"],
                    "model": user_model_fields(recipe)}
    else:  # keys of recipes that train stay what they were before models could be brought
        sections["model"] = {k: v for k, v in sections["model"].items() if k not in USER_MODEL_KEYS}
        if weights not in ("imagenet", "none") and recipe.resolve(weights).is_file():
            sections["model"]["weights"] = file_key(recipe.resolve(weights))  # the bytes, not the path
    if "train" in sections:
        _drop_default_schedule(sections["train"])
    return stable_hash({"stage": "train", "recipe": sections, "index": idx_key, "versions": versions(TRAIN_LIBS)})


def _drop_default_schedule(train: dict) -> None:
    """Leave the schedule keys out at their defaults: models trained before they existed stay cached."""
    if train.get("keep") == "best":
        del train["keep"]
    for phase in ("warmup", "finetune"):
        if train.get(phase, {}).get("schedule") == "constant":
            del train[phase]["schedule"]


def calibration_key(recipe, idx_key: str) -> str:
    cfg = recipe.calibration.model_dump(mode="json")
    if recipe.calibration.list is not None and recipe.resolve(recipe.calibration.list).is_file():
        cfg["list"] = file_key(recipe.resolve(recipe.calibration.list))
    return stable_hash({"stage": "calibration", "config": cfg, "index": idx_key})


def reference_key(recipe, t_key: str, idx_key: str) -> str:
    return stable_hash({"stage": "reference", "train": t_key, "index": idx_key,
                        "input": recipe.input.model_dump(mode="json")})


def _files_by_content(value, resolve):
    """Pass settings with every value that names an existing file replaced by that file's hash
    (a swapped weights file at the same path must not reuse the old result), and every value that
    names a folder by its images' digest (images added to swap's `unlabelled` folder)."""
    if isinstance(value, dict):
        return {k: _files_by_content(v, resolve) for k, v in value.items()}
    if isinstance(value, list):
        return [_files_by_content(v, resolve) for v in value]
    if isinstance(value, str) and value not in ("none", "imagenet") and resolve is not None:
        path = resolve(value)
        if path.is_file():
            return {"file_sha256": file_key(path)}
        if path.is_dir() and value not in (".", ""):  # a folder of images (swap's unlabelled)
            return {"folder": folder_digest(path)}
    return value


def passes_key(model_key: str, passes: list, calib_key: str, resolve=None) -> str:
    return stable_hash({"stage": "passes", "model": model_key, "passes": _files_by_content(passes, resolve),
                        "calibration": calib_key, "versions": versions(EXPORT_LIBS)})


def export_key(model_key: str, spec, calib_key: str, model_name: str, searched: dict | None = None) -> str:
    """`searched`: what an export that validates its own candidates read (accuracy-aware int8:
    the artifact's gates, the reference outputs, the runtime settings)."""
    fields = spec.model_dump(mode="json", exclude={"gates", "passes"})
    extra = {"searched": searched} if searched else {}

    fields["options"], resolved = get_exporter(spec.format).export_key_fields(spec, fields["options"])
    extra.update(resolved)
    return stable_hash({"stage": "export", "model": model_key, "spec": fields, "calibration": calib_key,
                        "name": model_name, "versions": versions(EXPORT_LIBS), **extra})


# What a cached validation.json holds; 2: per-sample scores too (confidence intervals), so a build
# folder validated before them validates again rather than judging interval gates without them
VALIDATION_FORMAT = 2


def validate_key(exp_key: str, ref_key: str, runtime_settings: dict) -> str:
    """What a validation reads besides the artifact's bytes (planned before anything is exported)."""
    return stable_hash({"stage": "validate", "export": exp_key, "reference": ref_key, "runtime": runtime_settings,
                        "versions": versions(EXPORT_LIBS), "format": VALIDATION_FORMAT})


def validation_entry_key(planned: str, artifact_sha256: str) -> str:
    """The key a validation is cached under: the planned key and the artifact's bytes. An export run
    again (`--force export`, a converter that is not byte-stable) that writes other bytes under the
    same export key is validated again; the same bytes keep their validation."""
    return stable_hash({"validate": planned, "artifact_sha256": artifact_sha256})
