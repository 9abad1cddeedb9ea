"""A user's classifier: class names from its labels file, and its data labelled where the folder
names are its classes, unlabelled otherwise (then artifacts are judged by agreement only)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from edgecv.data.index import DataIndex, Sample, scan_folder, stratified_split
from edgecv.data.unlabelled import unlabelled_index
from edgecv.errors import ConfigError

BACKGROUND = ("background", "__background__", "???")


def class_names(labels_file: Path, n_outputs: int, offset: Optional[int]) -> tuple[list[str], int]:
    """The model's class names (output i is labels line i + offset) and the offset used. Without a
    stated offset, a file with exactly one extra leading background line (ImageNet's 1001-line
    file for a 1000-class model) is read from line 1; any other mismatch is an error."""
    if not labels_file.is_file():
        raise ConfigError(f"labels file {labels_file} not found (edgecv export: --labels FILE)")
    lines = [line.strip() for line in labels_file.read_text().splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if offset is None:
        if len(lines) == n_outputs:
            offset = 0
        elif len(lines) == n_outputs + 1 and lines[0].lower() in BACKGROUND:
            offset = 1
        else:
            raise ConfigError(f"labels file {labels_file} has {len(lines)} lines, the model scores {n_outputs} "
                              "classes: give one name per output, or the offset of output 0's line with "
                              "--label-offset N (recipe: model.label_offset)")
    names = lines[offset:offset + n_outputs]
    if len(names) != n_outputs:
        raise ConfigError(f"labels file {labels_file} from line {offset} has {len(names)} names for the model's "
                          f"{n_outputs} outputs")
    return names, offset


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", " ").replace("-", " ")


def user_classification_index(recipe, n_outputs: int) -> DataIndex:
    m, d = recipe.model, recipe.data
    if m.labels is None:
        raise ConfigError("classification with your own model needs its class names: --labels FILE (recipe: "
                          "model.labels), one per output line; or --task generic to compare outputs only")
    labels_file = recipe.resolve(m.labels)
    names, offset = class_names(labels_file, n_outputs, m.label_offset)
    info = {"class_names": names, "label_offset": offset, "labels_file": str(labels_file)}
    root = recipe.resolve(d.root) if d.root is not None else None
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if root is not None and root.is_dir() else []
    by_name = {_norm(n): i for i, n in enumerate(names)}
    if folders and all(_norm(f) in by_name for f in folders):
        _, files, skipped = scan_folder(root)
        train, val = stratified_split(files, d.val_fraction, d.seed, d.group_by, root)
        # stratified_split numbers the folders; the model numbers its classes
        label_of = {i: by_name[_norm(f)] for i, f in enumerate(sorted(files))}
        remap = lambda ss: [Sample(s.path, label_of[s.label]) for s in ss]  # noqa: E731
        return DataIndex({**info, "labelled": True}, remap(train), remap(val), skipped)
    index = unlabelled_index(d, recipe.resolve, info)
    if folders:
        unknown = [f for f in folders if _norm(f) not in by_name]
        index.info["unlabelled_reason"] = (f"folder names are not all the model's classes ({', '.join(unknown[:5])}"
                                           f"{' ...' if len(unknown) > 5 else ''}): validated by agreement only")
    return index
