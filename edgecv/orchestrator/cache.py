"""Content-addressed stage cache: a stage's outputs live under <cache>/<stage>/<key>/.

The key hashes everything the stage reads. Entries are written to a temporary folder and renamed
into place, so a killed build never leaves a half-written entry. When an entry is completed, the
sha256 of each of its files is recorded in its `.complete` file; an entry is reused only if every
file still has that hash, so a truncated or edited file is recomputed (and said so), never
published.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from edgecv.files import ensure_dir, explain_write_error, is_write_error

COMPLETE = ".complete"  # {"key": ..., "files": {relative path: sha256}}, written last


def stable_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def entry_files(entry: Path) -> dict[str, str]:
    """sha256 of every file in an entry folder (relative posix path -> hash), `.complete` aside."""
    return {f.relative_to(entry).as_posix(): file_sha256(f)
            for f in sorted(entry.rglob("*")) if f.is_file() and f.name != COMPLETE}


def entry_problem(entry: Path) -> Optional[str]:
    """Why an entry cannot be trusted, or None when every file has the hash recorded with it."""
    try:
        record = json.loads((entry / COMPLETE).read_text())
        recorded = record["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return "it has no content hashes (written by an older edgecv, or its record is damaged)"
    try:
        present = entry_files(entry)
    except OSError as e:
        return f"a file cannot be read ({e})"
    for name, sha in recorded.items():
        if name not in present:
            return f"{name} is missing"
        if present[name] != sha:
            return f"{name} changed since it was written (sha256 {present[name][:12]}, recorded {sha[:12]})"
    extra = sorted(set(present) - set(recorded))
    return f"{extra[0]} was added after it was written" if extra else None


@dataclass
class CacheEvent:
    stage: str
    key: str
    problem: str

    @property
    def message(self) -> str:
        return f"cache entry {self.stage}/{self.key[:12]} is damaged: {self.problem}; recomputing it"


class StageCache:
    def __init__(self, root: Path, log: Optional[Callable[[str], None]] = None):
        self.root = Path(root)
        self.log = log or (lambda message: None)
        self._checked: dict[Path, Optional[str]] = {}  # entry -> problem (None: verified), once per process
        self.rejected: list[CacheEvent] = []

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def get(self, stage: str, key: str) -> Optional[Path]:
        """The entry's folder if it is complete and every file is as written; None otherwise (a
        damaged entry is reported once and left for `put` to replace)."""
        p = self.path(stage, key)
        if not (p / COMPLETE).is_file():
            return None
        if p not in self._checked:
            self._checked[p] = entry_problem(p)
            if self._checked[p] is not None:
                event = CacheEvent(stage, key, self._checked[p])
                self.rejected.append(event)
                self.log(event.message)
        return p if self._checked[p] is None else None

    @contextmanager
    def put(self, stage: str, key: str) -> Iterator[Path]:
        """Yield a temporary folder to fill; it becomes the entry only if the block succeeds. A
        failed write (disk full, read-only) is an OutputError naming the entry."""
        final = self.path(stage, key)
        ensure_dir(final.parent)
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}.", suffix=".tmp", dir=final.parent))
        except OSError as e:
            raise explain_write_error(final, e) from None
        try:
            yield tmp
            (tmp / COMPLETE).write_text(json.dumps({"key": key, "files": entry_files(tmp)}, indent=1))
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            self._checked[final] = None
        except OSError as e:
            if not is_write_error(e):
                raise
            raise explain_write_error(final, e) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
