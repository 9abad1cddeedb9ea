"""What a build folder and its target folders look like when they are whole, and the check that says
whether one is. TensorFlow-free: `validate`, `bench` and `gate` run it on devices.

Folder states (docs/guide.md, "Target folder states"):
  complete    manifest.json lists every file with its sha256 and each one matches;
  incomplete  `.incomplete` is present: a build was writing it (only ever a staging folder
              `<out>/.<target>.staging`, which the next build or `edgecv clean` removes);
  modified    a file differs from its manifest hash, is missing, or was added after the build;
  foreign     no manifest.json: not written by edgecv.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from edgecv.files import tree_sha256
from edgecv.errors import InputError

BUILD_MARKER = ".edgecv-build"  # in <out>: edgecv made this folder, so `clean` may prune its cache
INCOMPLETE = ".incomplete"  # in a target folder while it is being written
MANIFEST = "manifest.json"
# Rewritten by `edgecv report --merge` after the build, or a log of it: not hashed in the manifest
REPORT_FILES = ("report.json", "report.html", "junit.xml", "summary.md", "build.log")


def folder_files(folder: Path) -> dict[str, str]:
    """sha256 of every top-level entry of a target folder (a file, or a folder such as a
    SavedModel as a whole) but the reports, the manifest and hidden bookkeeping."""
    return {p.name: tree_sha256(p) for p in sorted(Path(folder).iterdir())
            if p.name not in REPORT_FILES + (MANIFEST,) and not p.name.startswith(".")}


def folder_problems(folder: Path) -> list[str]:
    """Empty when the target folder is complete; otherwise one line per problem."""
    folder = Path(folder)
    if (folder / INCOMPLETE).exists():
        return [f"{folder} is incomplete: a build was interrupted while writing it; run `edgecv build` again"]
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return [f"{folder} has no {MANIFEST}: not a complete edgecv target folder"]
    except (OSError, ValueError) as e:
        return [f"{folder / MANIFEST} cannot be read: {e}"]
    problems = []
    recorded = manifest.get("files")
    if recorded is None:  # an older manifest: only the artifacts have hashes
        recorded = {a["path"]: a["sha256"] for a in manifest.get("artifacts", []) if a.get("path")}
        present = {name: tree_sha256(folder / name) for name in recorded if (folder / name).exists()}
    else:
        present = folder_files(folder)
        problems += [f"{folder / name} is not part of the build that wrote {MANIFEST}"
                     for name in sorted(set(present) - set(recorded))]
    for name, sha in recorded.items():
        if name not in present:
            problems.append(f"{folder / name} is missing (listed in {MANIFEST})")
        elif present[name] != sha:
            problems.append(f"{folder / name} differs from the file the build wrote (sha256 {present[name][:12]}, "
                            f"{MANIFEST} says {sha[:12]})")
    problems += _report_problems(folder, manifest)
    return problems


def _report_problems(folder: Path, manifest: dict) -> list[str]:
    try:
        report = json.loads((folder / "report.json").read_text())
    except FileNotFoundError:
        return [f"{folder} has no report.json"]
    except (OSError, ValueError) as e:
        return [f"{folder / 'report.json'} cannot be read: {e}"]
    built = {a["name"]: a.get("sha256") for a in manifest.get("artifacts", [])}
    return [f"report.json describes {a['name']} with sha256 {a['sha256'][:12]}, the manifest's is "
            f"{(built.get(a['name']) or '-')[:12]}: they come from different builds"
            for a in report.get("artifacts", []) if a.get("sha256") and built.get(a["name"]) != a["sha256"]]


def enclosing_target_folder(path: Path) -> Optional[Path]:
    """The target folder an artifact or report lies in (it or its parent holds a manifest or the
    incomplete marker), or None for a file outside any edgecv build."""
    path = Path(path).resolve()
    for folder in (path.parent, path.parent.parent):
        if (folder / MANIFEST).is_file() or (folder / INCOMPLETE).exists():
            return folder
    return None


def check_before_use(path: Path, warn) -> None:
    """For `validate`, `bench` and `gate`: refuse a file of an incomplete target folder, warn (via
    `warn(message)`) when its folder no longer matches its manifest; files outside a build pass."""
    folder = enclosing_target_folder(path)
    if folder is None:
        return
    problems = folder_problems(folder)
    if problems and (folder / INCOMPLETE).exists():
        raise InputError(f"{path}: {problems[0]}")
    for p in problems:
        warn(p)


def sidecar_input_size(artifact: Path) -> Optional[tuple[int, int]]:
    """The input size the build recorded for an artifact in preprocessing.json beside it (its own
    size when a pass changed it), or None outside a build folder."""
    folder = enclosing_target_folder(artifact)
    if folder is None or not (folder / "preprocessing.json").is_file():
        return None
    try:
        pre = json.loads((folder / "preprocessing.json").read_text())
        manifest = json.loads((folder / MANIFEST).read_text()) if (folder / MANIFEST).is_file() else {}
        name = next((a["name"] for a in manifest.get("artifacts", []) if a.get("path") == Path(artifact).name), None)
        size = (pre.get("artifact_input_sizes") or {}).get(name) or pre["input"]
        return int(size["height"]), int(size["width"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
