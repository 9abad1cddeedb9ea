"""Which images a number was measured on, by content: the count and one sha256 over the sorted
sha256 of each file's bytes. Names and order do not matter (a device gets copies renamed
00000.jpg ...), the bytes do. No TensorFlow: `edgecv bench` computes it on a device."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable, Optional


def image_set_id(paths: Iterable[str | Path]) -> dict:
    digests = sorted(hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths)
    return {"count": len(digests), "sha256": hashlib.sha256("\n".join(digests).encode()).hexdigest()}


def same_image_set(a: Optional[dict], b: Optional[dict]) -> tuple[bool, str]:
    """(True, '') when both name the same images, else (False, why not)."""
    if not a or not b:
        missing = "the build's report" if not b else "the device result"
        return False, (f"{missing} does not record which images it measured (made before edgecv recorded them): "
                       "the device's metrics cannot be tied to the build's validation split")
    if a.get("sha256") != b.get("sha256"):
        return False, (f"the device measured {a.get('count')} images, not the build's {b.get('count')} validation "
                       "images (a different image set): run it on the split the build wrote (edgecv build --device, "
                       "or `edgecv bench --data` with the folder `edgecv eval-images` writes)")
    return True, ""
