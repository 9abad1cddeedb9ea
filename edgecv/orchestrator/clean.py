"""Prune the stage cache: keep what the current builds' manifests and reports refer to."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from edgecv.orchestrator.lock import BuildLock


def _size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


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


def prune_cache(out_root: Path, everything: bool = False) -> tuple[int, int, int]:
    """Returns (entries removed, entries kept, bytes freed). Half-written temporaries always go."""
    cache = Path(out_root) / ".cache"
    if not cache.is_dir():
        return 0, 0, 0
    removed = kept = freed = 0
    with BuildLock(out_root):  # never prune under a running build
        used = set() if everything else keys_in_use(Path(out_root))
        for stage_dir in sorted(p for p in cache.iterdir() if p.is_dir()):
            for entry in sorted(stage_dir.iterdir()):
                stale_tmp = entry.name.startswith(".") and entry.name.endswith(".tmp")
                if stale_tmp or everything or entry.name not in used:
                    freed += _size(entry) if entry.is_dir() else entry.stat().st_size
                    shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink()
                    removed += 1
                else:
                    kept += 1
    return removed, kept, freed
