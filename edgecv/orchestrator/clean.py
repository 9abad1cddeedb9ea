"""Prune the stage cache: keep what the current builds' manifests and reports refer to.

Only a folder an edgecv build made (it holds `.edgecv-build`) is touched, and in it only `.cache/`
and the staging folders killed builds left: `edgecv clean -o ~` removes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from edgecv.build_folder import BUILD_MARKER
from edgecv.errors import InputError
from edgecv.orchestrator.lock import BuildLock
from edgecv.orchestrator.publish import STAGING_SUFFIX


def _size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())


def keys_in_use(out_root: Path) -> set[str]:
    used: set[str] = set()
    for report in out_root.glob("*/report.json"):
        try:
            data = json.loads(report.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        used |= {s["key"] for s in data.get("stages", [])}
        for a in data.get("artifacts", []):
            used |= set((a.get("keys") or {}).values())
    for manifest in out_root.glob("*/manifest.json"):
        try:
            used |= set(json.loads(manifest.read_text()).get("stage_keys", {}).values())
        except (OSError, json.JSONDecodeError):
            continue
    return used


def check_build_folder(out_root: Path) -> None:
    if not (Path(out_root) / BUILD_MARKER).is_file():
        raise InputError(f"{out_root} was not made by `edgecv build` (no {BUILD_MARKER} file in it): nothing removed. "
                         "Point --out at a build folder (a build of this edgecv version writes the marker)")


def _remove(entry: Path) -> int:
    freed = _size(entry) if entry.is_dir() and not entry.is_symlink() else entry.lstat().st_size
    shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    return freed


def prune_cache(out_root: Path, everything: bool = False) -> tuple[int, int, int]:
    """Returns (entries removed, entries kept, bytes freed). Half-written temporaries and staging
    folders of killed builds always go."""
    out_root = Path(out_root)
    if not out_root.is_dir():
        return 0, 0, 0
    check_build_folder(out_root)
    removed = kept = freed = 0
    cache = out_root / ".cache"
    with BuildLock(out_root):  # never prune under a running build
        for staging in out_root.glob(f".*{STAGING_SUFFIX}"):
            freed += _remove(staging)
            removed += 1
        if cache.is_symlink():  # is_dir() follows it: never prune another tool's folder through a link
            raise InputError(f"{cache} is a symbolic link (to {os.readlink(cache)}): edgecv clean deletes only "
                             f"inside {out_root}, never through a link; nothing removed from the cache. Remove the "
                             "link (the next build makes a real .cache folder)")
        if not cache.is_dir():
            return removed, kept, freed
        used = set() if everything else keys_in_use(out_root)
        for stage_dir in sorted(p for p in cache.iterdir() if p.is_dir() and not p.is_symlink()):
            for entry in sorted(stage_dir.iterdir()):
                stale_tmp = entry.name.startswith(".") and entry.name.endswith(".tmp")
                if stale_tmp or everything or entry.name not in used:
                    freed += _remove(entry)
                    removed += 1
                else:
                    kept += 1
    return removed, kept, freed
