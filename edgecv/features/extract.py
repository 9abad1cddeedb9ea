"""`edgecv embed`: embed every image of a folder with any artifact into a resumable features.h5."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from edgecv.data.images import IMAGE_EXTENSIONS, ImageDecodeError, load_image
from edgecv.errors import ConfigError, DataError
from edgecv.features import store
from edgecv.features.embedder import Embedder


def scan_images(root: Path) -> tuple[list[str], list[int], list[str]]:
    """Every image under root, sorted: (paths, labels, class names). An image inside a first-level
    sub-folder has that folder's class; one directly in root has label -1."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"--data {root}: no such folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataError(f"--data {root}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    classes = sorted({p.relative_to(root).parts[0] for p in files if len(p.relative_to(root).parts) > 1})
    cls_index = {c: i for i, c in enumerate(classes)}
    labels = [cls_index[p.relative_to(root).parts[0]] if len(p.relative_to(root).parts) > 1 else -1 for p in files]
    return [str(p) for p in files], labels, classes


def _resume_or_create(out: Path, embedder: Embedder, paths, labels, classes, chunk_size: int, restart: bool):
    if out.exists() and not restart:
        f = store.open_features(out, "r+")
        stored = [p.decode() if isinstance(p, bytes) else p for p in f["paths"][:]]
        problem = ("it was made with another model (sha256 differs)" if f.attrs["model_sha256"] != embedder.sha256
                   else "the folder's images changed since" if stored != paths else None)
        if problem:
            f.close()
            raise ConfigError(f"{out} exists but {problem}: give another --out, or --restart to overwrite it")
        return f
    dim = embedder.embed(np.zeros((1, *embedder.input_size, 3), np.uint8)).shape[1]  # a probe: the size D
    return store.create(out, paths, labels, classes, str(embedder.path), embedder.sha256, embedder.input_size,
                        embedder.resize, chunk_size, dim)


def _decode(paths, size, policy) -> tuple[np.ndarray, np.ndarray, list[str]]:
    images, valid, reasons = [], [], []
    for p in paths:
        try:
            images.append(load_image(p, size, policy))
            valid.append(True)
            reasons.append("")
        except ImageDecodeError as e:
            valid.append(False)
            reasons.append(str(e))
    pixels = np.stack(images) if images else np.zeros((0, *size, 3), np.uint8)
    return pixels, np.array(valid, bool), reasons


def embed_folder(embedder: Embedder, data: Path, out: Path, chunk_size: int = 64, restart: bool = False,
                 console=None) -> dict:
    """Embed data/ into out, resuming a previous run of the same model on the same files. Returns
    a summary: images, embedded now, resumed from, skipped (path, reason)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    if chunk_size < 1:
        raise ConfigError("--chunk must be at least 1")
    paths, labels, classes = scan_images(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    f = _resume_or_create(out, embedder, paths, labels, classes, chunk_size, restart)
    try:
        chunk = int(f.attrs["chunk_size"])
        n_chunks = -(-len(paths) // chunk)
        first = int(f.attrs["chunks_done"])
        columns = (TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("eta"), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task("embed", total=len(paths), completed=min(first * chunk, len(paths)))
            for c in range(first, n_chunks):
                start = c * chunk
                pixels, valid, reasons = _decode(paths[start:start + chunk], embedder.input_size, embedder.resize)
                emb = embedder.embed(pixels) if len(pixels) else np.zeros((0, f["embeddings"].shape[1]), np.float32)
                store.write_chunk(f, start, emb, valid, reasons)
                bar.update(task, advance=len(valid))
        reasons = [r.decode() if isinstance(r, bytes) else r for r in f["skip_reason"][:]]
        skipped = [(p, r) for p, r in zip(paths, reasons) if r]
        f.attrs["skipped"] = json.dumps(skipped)
    finally:
        f.close()
    return {"images": len(paths), "resumed_from_chunk": first, "chunks": n_chunks,
            "embedded_now": max(0, len(paths) - first * chunk), "skipped": skipped}
