"""Content-addressed stage cache: a stage's outputs live under <cache>/<stage>/<key>/.

The key hashes everything the stage reads. Entries are written to a temporary folder and renamed
into place, so a killed build never leaves a half-written entry that a later build would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

from edgecv.files import ensure_dir


def stable_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


class StageCache:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def get(self, stage: str, key: str) -> Optional[Path]:
        p = self.path(stage, key)
        return p if (p / ".complete").is_file() else None

    @contextmanager
    def put(self, stage: str, key: str) -> Iterator[Path]:
        """Yield a temporary folder to fill; it becomes the entry only if the block succeeds."""
        final = self.path(stage, key)
        ensure_dir(final.parent)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}.", suffix=".tmp", dir=final.parent))
        try:
            yield tmp
            (tmp / ".complete").write_text(key)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
